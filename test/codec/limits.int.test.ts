/**
 * Decoding is bounded in total, not only in ratio: values and tensor sets that declare (or would
 * take) more than the maximum fail typed before anything is allocated, including through a real
 * log read by `roundlog ls`. Serial: each test measures this process's memory.
 */
import test from 'ava';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DecodeLimitError } from '../../src/codec/errors.ts';
import { MAX_VALUE_DEPTH, setDecodeLimits } from '../../src/codec/limits.ts';
import { decodeTensors, encodeTensors } from '../../src/codec/tensors.ts';
import { decodeValue, encodeValue } from '../../src/codec/values.ts';
import { crc32c } from '../../src/log/file/crc32c.ts';
import { FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES, checkFrame } from '../../src/log/file/format.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const MiB = 1024 * 1024;

/**
 * A valid lz4 block that expands to `prefix` then `count` copies of `byte`: one match at offset 1
 * whose length is spelled in 255-byte steps (about 255x), then the 5 literal bytes lz4 ends with.
 */
function lz4Repeat(prefix: Buffer, byte: number, count: number): Buffer {
  const literals = Buffer.concat([prefix, Buffer.from([byte])]);
  const matchLength = count - 1 - 5;
  const parts: number[] = [];
  const litNibble = Math.min(literals.length, 15);
  parts.push((litNibble << 4) | 15);
  if (literals.length >= 15) {
    let rest = literals.length - 15;
    while (rest >= 255) {
      parts.push(255);
      rest -= 255;
    }
    parts.push(rest);
  }
  parts.push(...literals, 1, 0);
  let rest = matchLength - 4 - 15;
  const steps = Math.floor(rest / 255);
  rest -= steps * 255;
  const head = Buffer.from(parts);
  const ff = Buffer.alloc(steps, 255);
  const tail = Buffer.from([rest, 5 << 4, byte, byte, byte, byte, byte]);
  return Buffer.concat([head, ff, tail]);
}

/** A `msgpackLz4` value: u32 declared length, then the block. */
function lz4Value(declared: number, block: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32LE(declared, 0);
  return Buffer.concat([head, block]);
}

/** msgpack array32 of `count` empty arrays, lz4-compressed: a few KB that msgpackr would turn into `count` arrays. */
function arrayBomb(count: number): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = 0xdd;
  prefix.writeUInt32BE(count, 1);
  return lz4Value(5 + count, lz4Repeat(prefix, 0x90, count));
}

function rssGrowth<T>(run: () => T): { value: T | undefined; error: unknown; growth: number } {
  const before = process.memoryUsage().rss;
  let value: T | undefined;
  let error: unknown;
  try {
    value = run();
  } catch (e) {
    error = e;
  }
  return { value, error, growth: process.memoryUsage().rss - before };
}

test.serial('the crafted lz4 block is what it says: a small bomb decodes when the bound allows it', (t) => {
  const value = decodeValue(2, arrayBomb(1000));
  t.true(Array.isArray(value));
  t.is((value as unknown[]).length, 1000);
});

test.serial('a value of a few KB that would become 8 million arrays fails typed, with bounded memory', (t) => {
  const bytes = arrayBomb(8_000_000);
  t.true(bytes.length < 64 * 1024);
  const { error, growth } = rssGrowth(() => decodeValue(2, bytes));
  t.true(error instanceof DecodeLimitError, String(error));
  t.is((error as DecodeLimitError).code, 'DECODE_LIMIT');
  t.regex((error as Error).message, /ROUNDLOG_MAX_VALUE_BYTES/);
  t.true(growth < 40 * MiB, `rss grew by ${growth} bytes`);
});

test.serial('an lz4 value declaring a gigabyte from 4 MB is refused before decompressing', (t) => {
  const bytes = lz4Value(1024 * MiB, Buffer.alloc(4.3 * MiB, 0x11));
  const { error, growth } = rssGrowth(() => decodeValue(2, bytes));
  t.true(error instanceof DecodeLimitError, String(error));
  t.is((error as DecodeLimitError).declared, 1024 * MiB);
  t.is((error as DecodeLimitError).limit, 64 * MiB);
  t.true(growth < 40 * MiB, `rss grew by ${growth} bytes`);
});

test.serial('msgpack nested deeper than the limit fails typed instead of exhausting the stack', (t) => {
  const depth = 200_000;
  const bytes = Buffer.concat([Buffer.alloc(depth, 0x91), Buffer.from([0xc0])]);
  const error = t.throws(() => decodeValue(1, bytes), { instanceOf: DecodeLimitError });
  t.is(error?.limit, MAX_VALUE_DEPTH);
  // A value within the limits still round-trips, nested and with typed arrays and bigints.
  const ok = { a: [[[[1, 'x', new Float32Array([1, 2])]]]], b: 12345678901234567890n, c: new Date(0) };
  const encoded = encodeValue(ok, 1);
  t.deepEqual(decodeValue(encoded.encoding, encoded.bytes), ok);
});

test.serial('a value over the maximum is refused when written too, so nothing written is unreadable', (t) => {
  const previous = setDecodeLimits({ maxValueBytes: 1 * MiB });
  try {
    t.throws(() => encodeValue({ big: 'x'.repeat(2 * MiB) }), { instanceOf: DecodeLimitError });
  } finally {
    setDecodeLimits(previous);
  }
});

test.serial(
  'a 9 MB tensor file declaring 2.2 GB in total (each tensor within lz4 ratio) is refused unallocated',
  (t) => {
    // 9 tensors of 1 MiB stored bytes each, each declaring 255 MiB of float32: lz4 could expand that much.
    const tensors = Array.from({ length: 9 }, (_, i) => ({
      name: `t${i}`,
      dtype: 'float32',
      shape: [(255 * MiB) / 4],
      size: MiB,
    }));
    const header = encodeValue({ v: 1, tensors }).bytes;
    const head = Buffer.alloc(4);
    head.writeUInt32LE(header.length, 0);
    const payload = Buffer.concat([head, header, Buffer.alloc(9 * MiB, 0x22)]);
    const { error, growth } = rssGrowth(() =>
      decodeTensors('tensors/msgpack+lz4', payload, { source: 'blob crafted' }),
    );
    t.true(error instanceof DecodeLimitError, String(error));
    t.is((error as DecodeLimitError).declared, 9 * 255 * MiB);
    t.regex((error as Error).message, /ROUNDLOG_MAX_TENSOR_BYTES/);
    t.regex((error as Error).message, /blob crafted/);
    t.true(growth < 40 * MiB, `rss grew by ${growth} bytes`);
    // The same bound given as an option; a genuine set under it decodes.
    const real = encodeTensors({ w: { dtype: 'float32', shape: [4], data: new Float32Array([1, 2, 3, 4]) } });
    t.throws(() => decodeTensors(real.encoding, real.bytes, { maxBytes: 15 }), { instanceOf: DecodeLimitError });
    t.deepEqual(
      [...(decodeTensors(real.encoding, real.bytes, { maxBytes: 16 }).w!.data as Float32Array)],
      [1, 2, 3, 4],
    );
  },
);

test.serial(
  'roundlog ls on a log holding a bomb record fails typed, naming the segment, with bounded memory',
  async (t) => {
    const root = tempDir();
    const rl = await openRoundLog({ root });
    await rl.createExperiment({ roundLimit: 2 });
    await rl.close();
    const logDir = path.join(root, 'log');
    const segment = path.join(
      logDir,
      (await fs.readdir(logDir)).find((name) => name.endsWith('.seg'))!,
    );
    const data = await fs.readFile(segment);
    let offset = SEGMENT_HEADER_BYTES;
    for (let check = checkFrame(data, offset); check.kind === 'ok'; check = checkFrame(data, offset))
      offset = check.end;
    // A record whose checksums are right and whose value is the bomb: what damage that passes the
    // checksums, or a writer that is not roundlog, could leave.
    const value = arrayBomb(8_000_000);
    const body = Buffer.concat([Buffer.from([2]), value]);
    const frame = Buffer.alloc(FRAME_HEADER_BYTES + body.length);
    frame.writeUInt32LE(body.length, 0);
    body.copy(frame, FRAME_HEADER_BYTES);
    frame.writeUInt32LE(crc32c(frame, FRAME_HEADER_BYTES, frame.length), 4);
    frame.writeUInt32LE(crc32c(frame, 0, 8), 8);
    const handle = await fs.open(segment, 'r+');
    await handle.write(frame, 0, frame.length, offset);
    await handle.close();

    const before = process.memoryUsage().rss;
    const run = await roundlog(['ls', '--root', root]);
    const growth = process.memoryUsage().rss - before;
    t.not(run.code, 0);
    t.notRegex(run.stderr, /unexpected error/);
    t.true(run.stderr.includes(`${segment} at byte offset ${offset}`), run.stderr);
    t.regex(run.stderr, /ROUNDLOG_MAX_VALUE_BYTES/);
    t.true(growth < 60 * MiB, `rss grew by ${growth} bytes`);
  },
);

test.serial('a state of small integers and floats packing to 6.7 MB is recorded under the default maximum', (t) => {
  // JSON of this is about 18 MB; each small integer takes an 8-byte slot once decoded, each float a
  // slot and a 16-byte heap number: about 39 MB, under the 64 MiB maximum.
  const state = {
    counts: Array.from({ length: 4_000_000 }, (_, i) => i % 100),
    weights: Array.from({ length: 300_000 }, (_, i) => i / 7),
  };
  const encoded = encodeValue(state);
  t.deepEqual(decodeValue(encoded.encoding, encoded.bytes), state);
});

test.serial(
  'the limit message says the size is an estimate of memory, and a refused record is not called damaged',
  (t) => {
    const value = { counts: Array.from({ length: 100_000 }, (_, i) => i % 100) };
    const stored = encodeValue(value, Number.MAX_SAFE_INTEGER);
    const previous = setDecodeLimits({ maxValueBytes: 200_000 });
    try {
      const writing = t.throws(() => encodeValue(value), { instanceOf: DecodeLimitError });
      t.is(writing?.measure, 'estimated');
      t.true(writing!.writing);
      t.regex(writing!.message, /the value to record would take an estimated \d+ bytes of memory once decoded/);
      t.regex(writing!.message, /over the maximum of 200000 bytes \(ROUNDLOG_MAX_VALUE_BYTES\)/);
      t.regex(writing!.message, /nothing was recorded.*raise ROUNDLOG_MAX_VALUE_BYTES/);
      t.notRegex(writing!.message, /damaged/);

      const reading = t.throws(() => decodeValue(stored.encoding, stored.bytes), { instanceOf: DecodeLimitError });
      t.false(reading!.writing);
      t.regex(reading!.message, /estimated \d+ bytes of memory once decoded/);
      t.regex(
        reading!.message,
        /damaged or were not written by roundlog; if they are genuine, raise ROUNDLOG_MAX_VALUE_BYTES/,
      );
    } finally {
      setDecodeLimits(previous);
    }
  },
);
