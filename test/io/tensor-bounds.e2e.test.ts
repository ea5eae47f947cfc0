/**
 * Tensor reads are bounded by what the record says before anything is allocated: the bytes must be
 * as long as the record's `bytes`, and the tensors their header declares must fit in those bytes.
 * A parameters blob whose header claims a tensor it does not hold is refused typed (a
 * `CorruptPayloadError`) with a small memory footprint, measured in a real process.
 */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pack } from 'msgpackr';
import { CorruptPayloadError } from '../../src/codec/errors.ts';
import { lz4Compress } from '../../src/codec/lz4.ts';
import { decodeTensors, encodeTensors, TensorEncoding } from '../../src/codec/tensors.ts';
import { killSpawned, spawnTs } from '../support/child.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

/** A payload by hand: a 4-byte header length, the msgpack header, then the stored tensors. */
function payload(tensors: Array<{ name: string; shape: number[]; size: number }>, body: Buffer): Buffer {
  const header = pack({ v: 1, tensors: tensors.map((t) => ({ ...t, dtype: 'float32' })) });
  const head = Buffer.alloc(4);
  head.writeUInt32LE(header.length, 0);
  return Buffer.concat([head, header, body]);
}

const MB = 1024 * 1024;

test('a header that claims a tensor the bytes do not hold is refused before a byte is allocated', async (t) => {
  // Tensor a: 128 MB of zeros as one lz4 block (about 0.5 MB stored): what the header says is true.
  // Tensor b: 4 kB claimed, none stored. Refused before a is decompressed, so a's 128 MB never exist.
  const zeros = Buffer.alloc(128 * MB);
  const block = lz4Compress(zeros)!;
  const bytes = payload(
    [
      { name: 'a', shape: [32 * MB], size: block.length },
      { name: 'b', shape: [1024], size: 4096 },
    ],
    block,
  );
  const dir = tempDir();
  const file = path.join(dir, 'params.tensors');
  writeFileSync(file, bytes);
  const child = spawnTs('decode-child.ts', [file, path.join(dir, 'root'), TensorEncoding.msgpackLz4]);
  const { code } = await child.exited;
  t.is(code, 0, child.stderr());
  const { outcome, before, after } = JSON.parse(child.lines.at(-1)!) as {
    outcome: string;
    before: number;
    after: number;
  };
  t.is(outcome, 'CORRUPT_PAYLOAD');
  t.true(
    after - before < 32 * 1024,
    `peak memory grew by ${after - before} kB while reading a ${bytes.length}-byte blob`,
  );
});

test('bytes of another length than the record says are refused before they are parsed', (t) => {
  const { encoding, bytes } = encodeTensors({ w: { dtype: 'float32', shape: [4], data: new Float32Array(4) } });
  t.notThrows(() => decodeTensors(encoding, bytes, { storedBytes: bytes.length }));
  const error = t.throws(() => decodeTensors(encoding, bytes, { storedBytes: bytes.length - 1, source: 'blob x' }), {
    instanceOf: CorruptPayloadError,
  })!;
  t.regex(error.message, new RegExp(`the payload has ${bytes.length} bytes where its record says ${bytes.length - 1}`));
});

test('stored bytes after the last tensor are refused before any tensor is decoded', (t) => {
  const body = Buffer.alloc(16 + 8);
  const bytes = payload([{ name: 'a', shape: [4], size: 16 }], body);
  t.throws(() => decodeTensors(TensorEncoding.msgpack, bytes), {
    instanceOf: CorruptPayloadError,
    message: /8 bytes follow the last tensor/,
  });
});
