/**
 * Child process for test/codec/safetensors-header-memory.int.test.ts, run with a small V8 heap
 * (`--max-old-space-size`): builds a safetensors file whose header is `megabytes` MB of balanced
 * nested arrays (valid JSON) at the place `kind` says, then reads it with `decodeSafetensorsFile`
 * (or, for `kind` json-parse, hands the header's text to `JSON.parse`, to show that building it does
 * not fit that heap). Prints one JSON line: the error's code (or "decoded"/"parsed"), its byteOffset
 * and reason, and the process's peak resident memory (kB) before and after the read. With `kind`
 * count, reads a small file of `megabytes` tensors instead (under the environment's
 * `ROUNDLOG_MAX_TENSOR_COUNT`), printing the outcome and the error's fields.
 */
import { decodeSafetensorsFile, encodeSafetensors } from '../../src/codec/safetensors.ts';
import { setDecodeLimits } from '../../src/codec/limits.ts';

const [kind, megabytes] = process.argv.slice(2) as [string, string];
if (kind === 'count') {
  const count = Number(megabytes);
  const previous = setDecodeLimits({ maxTensorCount: count });
  const tensors = Object.fromEntries(
    Array.from({ length: count }, (_, i) => [
      `t${i}`,
      { dtype: 'uint8' as const, shape: [1], data: new Uint8Array(1) },
    ]),
  );
  const file = encodeSafetensors(tensors);
  setDecodeLimits(previous);
  try {
    console.log(JSON.stringify({ outcome: 'decoded', count: Object.keys(decodeSafetensorsFile(file).tensors).length }));
  } catch (error) {
    const { code, declared, limit, setting, byteOffset } = error as Record<string, unknown>;
    console.log(JSON.stringify({ outcome: code, declared, limit, setting, byteOffset }));
  }
  process.exit(0);
}
const { prefix, suffix } = (
  {
    'tensor-arrays': { prefix: '{"a": ', suffix: '}' },
    'shape-arrays': { prefix: '{"a": {"dtype": "F32", "shape": ', suffix: ', "data_offsets": [0, 4]}}' },
    'metadata-arrays': { prefix: '{"__metadata__": {"k": ', suffix: '}}' },
    'json-parse': { prefix: '{"a": ', suffix: '}' },
  } as Record<string, { prefix: string; suffix: string }>
)[kind]!;
const headerLength = Number(megabytes) * 1_000_000;
const depth = Math.floor((headerLength - prefix.length - suffix.length) / 2);
// Outside the V8 heap (a Buffer, space-filled: a byte left over is the format's padding).
const file = Buffer.alloc(8 + headerLength, 0x20);
file.writeBigUInt64LE(BigInt(headerLength), 0);
const at = 8 + file.write(prefix, 8, 'latin1');
file.fill(0x5b, at, at + depth);
file.fill(0x5d, at + depth, at + 2 * depth);
file.write(suffix, at + 2 * depth, 'latin1');

const before = process.resourceUsage().maxRSS;
let result: Record<string, unknown>;
if (kind === 'json-parse') {
  JSON.parse(file.toString('latin1', 8));
  result = { outcome: 'parsed' };
} else {
  try {
    decodeSafetensorsFile(file, { source: `a ${megabytes} MB header` });
    result = { outcome: 'decoded' };
  } catch (error) {
    const { code, byteOffset, reason } = error as { code?: string; byteOffset?: number; reason?: string };
    result = { outcome: code ?? String(error), byteOffset, reason };
  }
}
const after = process.resourceUsage().maxRSS;
console.log(JSON.stringify({ ...result, before, after, headerLength }));
