/**
 * The segment files of the embedded file log, for tests that damage them: logs filled with known
 * records, the records found by walking frame lengths (independently of the log's code and
 * index), and bytes written in place.
 */
import { closeSync, openSync, readFileSync, readSync, readdirSync, writeSync } from 'node:fs';
import path from 'node:path';
import { openFileEventLog } from '../../src/log/file/index.ts';

/** Bytes of a segment's header (magic and version). */
export const SEGMENT_HEADER = 8;
/** Bytes of a record's frame header (length and checksums). */
export const FRAME_HEADER = 12;

/** Record offsets of a segment, found by walking frame lengths (independently of the log's index). */
export function recordOffsets(file: string): number[] {
  const data = readFileSync(file);
  const offsets: number[] = [];
  let at = SEGMENT_HEADER;
  // The writer zero-fills ahead of its data: a zero header is the end.
  while (at + FRAME_HEADER <= data.length && !data.subarray(at, at + FRAME_HEADER).equals(Buffer.alloc(FRAME_HEADER))) {
    offsets.push(at);
    at += FRAME_HEADER + data.readUInt32LE(at);
  }
  return offsets;
}

/** The end of the record at `start` of a segment: its frame header and the body length it states. */
export function recordEnd(file: string, start: number): number {
  return start + FRAME_HEADER + readFileSync(file).readUInt32LE(start);
}

/** The end of the data of a segment: where its frames stop, at the first zero header. */
export function dataEnd(file: string): number {
  const last = recordOffsets(file).at(-1);
  return last === undefined ? SEGMENT_HEADER : recordEnd(file, last);
}

/** The segment files of a log folder, in order. */
export function segmentsOf(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.seg'))
    .sort()
    .map((name) => path.join(dir, name));
}

/** Writes `bytes` at `offset` of `file`, in place. */
export function writeBytes(file: string, offset: number, bytes: Buffer): void {
  const fd = openSync(file, 'r+');
  writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
}

/** Flips bits of the byte at `offset` of `file` (XOR 0x5a), in place. */
export function flipByte(file: string, offset: number): void {
  const fd = openSync(file, 'r+');
  const byte = Buffer.alloc(1);
  readSync(fd, byte, 0, 1, offset);
  byte[0] = byte[0]! ^ 0x5a;
  writeSync(fd, byte, 0, 1, offset);
  closeSync(fd);
}

/** Zeroes the bytes `[start, end)` of `file`, in place. */
export function zeroBytes(file: string, start: number, end: number): void {
  writeBytes(file, start, Buffer.alloc(end - start));
}

/**
 * Fills a log in `dir` with `count` records (`Filled`, `{ i, text }` of 100 bytes, in streams s0,
 * s1, s2 in turn) and closes it: its index lists every record. `concurrently` appends are made at
 * once (group-committed); default one at a time.
 */
export async function fillLog(
  dir: string,
  count: number,
  options: { segmentBytes?: number; concurrently?: number } = {},
): Promise<void> {
  const log = await openFileEventLog({
    dir,
    ...(options.segmentBytes ? { segmentBytes: options.segmentBytes } : {}),
  });
  const batch = options.concurrently ?? 1;
  for (let i = 0; i < count; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, count - i) }, (_, k) =>
        log.append(`s${(i + k) % 3}`, [{ type: 'Filled', data: { i: i + k, text: 'x'.repeat(100) } }]),
      ),
    );
  }
  await log.close();
}
