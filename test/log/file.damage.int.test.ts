/**
 * Damage the file log must tell apart: a record its index proves committed, cut short, is
 * corruption (never a torn tail); stray bytes in the zero-filled space after the data are not
 * damage of committed records and are named as such.
 */
import test from 'ava';
import { closeSync, openSync, readFileSync, readdirSync, statSync, truncateSync, writeSync } from 'node:fs';
import path from 'node:path';
import { CorruptLogError } from '../../src/log/errors.ts';
import { openFileEventLog, type FileLogWarning } from '../../src/log/file/index.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const SEGMENT_HEADER = 8;
const FRAME_HEADER = 12;

/** Record offsets of a segment, found by walking frame lengths (independently of the log's index). */
function recordOffsets(file: string): number[] {
  const data = readFileSync(file);
  const offsets: number[] = [];
  let at = SEGMENT_HEADER;
  while (at + FRAME_HEADER <= data.length && !data.subarray(at, at + FRAME_HEADER).equals(Buffer.alloc(FRAME_HEADER))) {
    offsets.push(at);
    at += FRAME_HEADER + data.readUInt32LE(at);
  }
  return offsets;
}

function segmentsOf(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.seg'))
    .sort()
    .map((name) => path.join(dir, name));
}

function writeBytes(file: string, offset: number, bytes: Buffer): void {
  const fd = openSync(file, 'r+');
  writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
}

/** A log of `count` records in one segment, closed: its index lists every record. */
async function closedLog(dir: string, count: number): Promise<void> {
  const log = await openFileEventLog({ dir });
  for (let i = 0; i < count; i++)
    await log.append(`s${i % 3}`, [{ type: 'Filled', data: { i, text: 'x'.repeat(100) } }]);
  await log.close();
}

test('a record the index lists as committed, cut short, is corruption, not a torn tail', async (t) => {
  const dir = tempDir();
  await closedLog(dir, 20);
  const [segment] = segmentsOf(dir) as [string];
  t.true(readdirSync(dir).includes(`${path.basename(segment)}.idx`), 'the index lists the records');
  const offsets = recordOffsets(segment);
  const lastStart = offsets.at(-1)!;
  const lastEnd = lastStart + FRAME_HEADER + readFileSync(segment).readUInt32LE(lastStart);
  const cut = lastStart + Math.floor((lastEnd - lastStart) / 2);
  truncateSync(segment, cut);

  const warnings: FileLogWarning[] = [];
  const error = await t.throwsAsync(openFileEventLog({ dir, onWarning: (w) => warnings.push(w) }), {
    instanceOf: CorruptLogError,
  });
  t.is(error!.file, segment);
  t.is(error!.offset, lastStart);
  t.regex(error!.reason, /lists as committed/);
  t.deepEqual(
    warnings.filter((w) => w.code === 'TORN_TAIL_TRUNCATED'),
    [],
  );
  t.is(statSync(segment).size, cut, 'the segment was not truncated');
  const reader = await t.throwsAsync(openFileEventLog({ dir, readOnly: true }), { instanceOf: CorruptLogError });
  t.is(reader!.offset, lastStart);

  // Zeroing the same bytes instead gives the same answer at the same offset.
  const other = tempDir();
  await closedLog(other, 20);
  const [otherSegment] = segmentsOf(other) as [string];
  t.deepEqual(recordOffsets(otherSegment), offsets);
  writeBytes(otherSegment, cut, Buffer.alloc(lastEnd - cut));
  writeBytes(otherSegment, lastStart, Buffer.alloc(cut - lastStart));
  const zeroed = await t.throwsAsync(openFileEventLog({ dir: other }), { instanceOf: CorruptLogError });
  t.is(zeroed!.offset, lastStart);
});

test('a segment cut inside an earlier record its index lists is corruption at that record', async (t) => {
  const dir = tempDir();
  await closedLog(dir, 20);
  const [segment] = segmentsOf(dir) as [string];
  const offsets = recordOffsets(segment);
  truncateSync(segment, offsets[12]! + 30);
  const error = await t.throwsAsync(openFileEventLog({ dir }), { instanceOf: CorruptLogError });
  t.is(error!.offset, offsets[12]!);
  t.is(statSync(segment).size, offsets[12]! + 30);
  truncateSync(segment, offsets[12]!);
  const missing = await t.throwsAsync(openFileEventLog({ dir }), { instanceOf: CorruptLogError });
  t.is(missing!.offset, offsets[12]!, 'a listed record that is gone entirely');
});
