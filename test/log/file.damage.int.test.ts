/**
 * Damage the file log must tell apart: a record its index proves committed, cut short, is
 * corruption (never a torn tail); stray bytes in the zero-filled space after the data are not
 * damage of committed records and are named as such.
 */
import test from 'ava';
import { readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CorruptLogError, StrayTailBytesError } from '../../src/log/errors.ts';
import { openFileEventLog, type FileLogWarning } from '../../src/log/file/index.ts';
import { decodeIndexChunks, encodeIndexChunk } from '../../src/log/file/format.ts';
import { FRAME_HEADER, fillLog, recordEnd, recordOffsets, segmentsOf, writeBytes } from '../support/segments.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

/** A log of several sealed segments and one active one, closed: index files and a heads checkpoint exist. */
const sealedLog = (dir: string) => fillLog(dir, 120, { segmentBytes: 4096 });

test('a record the index lists as committed, cut short, is corruption, not a torn tail', async (t) => {
  const dir = tempDir();
  await fillLog(dir, 20);
  const [segment] = segmentsOf(dir) as [string];
  t.true(readdirSync(dir).includes(`${path.basename(segment)}.idx`), 'the index lists the records');
  const offsets = recordOffsets(segment);
  const lastStart = offsets.at(-1)!;
  const lastEnd = recordEnd(segment, lastStart);
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
  await fillLog(other, 20);
  const [otherSegment] = segmentsOf(other) as [string];
  t.deepEqual(recordOffsets(otherSegment), offsets);
  writeBytes(otherSegment, cut, Buffer.alloc(lastEnd - cut));
  writeBytes(otherSegment, lastStart, Buffer.alloc(cut - lastStart));
  const zeroed = await t.throwsAsync(openFileEventLog({ dir: other }), { instanceOf: CorruptLogError });
  t.is(zeroed!.offset, lastStart);
});

test('a segment cut inside an earlier record its index lists is corruption at that record', async (t) => {
  const dir = tempDir();
  await fillLog(dir, 20);
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

/** A log of 20 records whose active segment has one stray byte `distance` bytes after its data. */
async function strayByteLog(distance: number): Promise<{ dir: string; segment: string; end: number; at: number }> {
  const dir = tempDir();
  await fillLog(dir, 20);
  const [segment] = segmentsOf(dir) as [string];
  const offsets = recordOffsets(segment);
  const end = recordEnd(segment, offsets.at(-1)!);
  const at = end + distance;
  assertInside(segment, at);
  writeBytes(segment, at, Buffer.from([0x42]));
  return { dir, segment, end, at };
}

function assertInside(segment: string, at: number): void {
  if (statSync(segment).size <= at) throw new Error(`the zero-filled space ends before ${at}`);
}

test('one stray byte after the data: readers read every record; a writer refuses naming the byte', async (t) => {
  const { dir, segment, end, at } = await strayByteLog(5000);
  const sizeBefore = statSync(segment).size;

  const warnings: FileLogWarning[] = [];
  const reader = await openFileEventLog({ dir, readOnly: true, onWarning: (w) => warnings.push(w) });
  t.is((await reader.readAll()).events.length, 20, 'every committed record reads');
  t.is((await reader.readStream('s1')).events.length, 7);
  t.deepEqual(
    warnings.map((w) => w.code),
    ['STRAY_TAIL_BYTES'],
  );
  t.regex(warnings[0]!.message, new RegExp(`byte offset ${at} `));
  await reader.close();

  const error = await t.throwsAsync(openFileEventLog({ dir }), { instanceOf: StrayTailBytesError });
  t.is(error!.code, 'STRAY_TAIL_BYTES');
  t.is(error!.file, segment);
  t.is(error!.offset, at, 'the offset of the stray byte, not the end of the data');
  t.is(error!.dataEnd, end);
  t.is(error!.records, 20);
  t.regex(error!.message, /nothing committed is damaged/);
  t.regex(error!.message, /--repair-tail/);
  t.is(statSync(segment).size, sizeBefore, 'nothing was changed without the flag');
});

test('one stray byte after the data: a writer opened with repairTail cuts it off and appends', async (t) => {
  const { dir, segment, end, at } = await strayByteLog(12);
  const warnings: FileLogWarning[] = [];
  const log = await openFileEventLog({ dir, repairTail: true, onWarning: (w) => warnings.push(w) });
  t.teardown(() => log.close());
  const repaired = warnings.filter((w) => w.code === 'TAIL_REPAIRED');
  t.is(repaired.length, 1);
  t.is(repaired[0]!.file, segment);
  t.regex(repaired[0]!.message, new RegExp(`non-zero bytes at ${at}\\.\\.${at}`));
  t.is((await log.readAll()).events.length, 20);
  const result = await log.append('s0', [{ type: 'After', data: null }], { expectedRevision: 6n });
  t.is(result.lastPosition, 20n);
  t.true((await log.verify()).ok);
  await log.close();
  t.true(statSync(segment).size > end);
  const again = await openFileEventLog({ dir });
  t.is((await again.readAll()).events.length, 21);
  await again.close();
});

test('one damaged record in a sealed segment is one verify problem, at its offset, not a cascade', async (t) => {
  for (const where of ['body', 'length'] as const) {
    const dir = tempDir();
    const log = await openFileEventLog({ dir, segmentBytes: 4096 });
    for (let i = 0; i < 200; i++) await log.append(`s${i % 3}`, [{ type: 'T', data: { i, text: 'x'.repeat(100) } }]);
    await log.close();
    const segments = segmentsOf(dir);
    t.true(segments.length > 4);
    const victim = recordOffsets(segments[1]!)[2]!;
    const original = readFileSync(segments[1]!);
    const at = where === 'body' ? victim + FRAME_HEADER + 30 : victim + 1;
    writeBytes(segments[1]!, at, Buffer.from([original[at]! ^ 0x5a]));

    const reader = await openFileEventLog({ dir, readOnly: true });
    const result = await reader.verify();
    await reader.close();
    t.false(result.ok);
    t.is(result.problems.length, 1, `${where}: ${JSON.stringify(result.problems, null, 1)}`);
    t.is(result.problems[0]!.file, segments[1]!);
    t.is(result.problems[0]!.offset, victim);
    t.regex(result.problems[0]!.reason, where === 'body' ? /body checksum/ : /header checksum/);
  }
});

async function verifyOf(dir: string) {
  const log = await openFileEventLog({ dir, readOnly: true });
  try {
    return await log.verify();
  } finally {
    await log.close();
  }
}

test('verify names a segment index with a flipped byte, and the log still reads every record', async (t) => {
  const dir = tempDir();
  await sealedLog(dir);
  t.true((await verifyOf(dir)).ok, 'an undamaged log verifies');
  const index = `${segmentsOf(dir)[0]!}.idx`;
  const bytes = readFileSync(index);
  writeBytes(index, Math.floor(bytes.length / 2), Buffer.from([bytes[Math.floor(bytes.length / 2)]! ^ 0xff]));
  const result = await verifyOf(dir);
  t.false(result.ok);
  t.true(
    result.problems.some((p) => p.file === index),
    JSON.stringify(result.problems),
  );
  const log = await openFileEventLog({ dir, readOnly: true });
  const { events } = await log.readAll();
  await log.close();
  t.is(events.length, 120, 'the damaged index is not used: every record is read');
});

test('verify names a heads checkpoint with a flipped byte', async (t) => {
  const dir = tempDir();
  await sealedLog(dir);
  const heads = path.join(dir, 'heads.ckpt');
  t.true(statSync(heads).size > 0, 'sealed segments write a heads checkpoint');
  const bytes = readFileSync(heads);
  const at = bytes.length - 1;
  writeBytes(heads, at, Buffer.from([bytes[at]! ^ 0x01]));
  const result = await verifyOf(dir);
  t.false(result.ok);
  t.true(
    result.problems.some((p) => p.file === heads && /heads checkpoint/.test(p.reason)),
    JSON.stringify(result.problems),
  );
});

test('an index that passes its checksum but gives a record to another stream is refused, not read as it', async (t) => {
  const dir = tempDir();
  await sealedLog(dir);
  const index = `${segmentsOf(dir)[0]!}.idx`;
  const { chunks } = decodeIndexChunks(readFileSync(index));
  t.is(chunks.length, 1, 'a sealed segment has its index as one chunk');
  const chunk = chunks[0]!;
  const streams = Uint32Array.from(chunk.streams);
  t.deepEqual([...streams.subarray(3, 5)], [0, 1]);
  streams[3] = 1;
  streams[4] = 0;
  writeFileSync(index, encodeIndexChunk({ ...chunk, streams }));

  const log = await openFileEventLog({ dir, readOnly: true });
  try {
    const error = await t.throwsAsync(log.readStream('s0'), { instanceOf: CorruptLogError });
    t.is(error!.file, index);
    t.regex(error!.message, /the index gives log position 4 as revision 1 of stream "s0"/);
    t.false((await log.verify()).ok, 'verify names it too');
  } finally {
    await log.close();
  }
});
