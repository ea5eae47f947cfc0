/** The tensor codec: bit-exact round trips, recorded encodings, and typed errors for bad input or bytes. */
import test from 'ava';
import { randomBytes, randomFillSync } from 'node:crypto';
import { pack as packMsgpack } from 'msgpackr';
import { CorruptPayloadError, UnknownEncodingError } from '../../src/codec/errors.ts';
import {
  TensorEncoding,
  decodeTensors,
  encodeTensorChunks,
  encodeTensors,
  type Tensor,
  type TensorDType,
  type TensorSet,
} from '../../src/codec/tensors.ts';
import { InvalidArgumentError } from '../../src/errors.ts';

const bytesOf = (data: ArrayBufferView) => Buffer.from(data.buffer, data.byteOffset, data.byteLength);

/** The dtypes of the msgpack encodings (the newer ones are safetensors only: safetensors.unit.test.ts). */
type LegacyDType = Extract<TensorDType, 'float32' | 'float64' | 'int32' | 'int64' | 'uint8'>;

const SAMPLES: { [D in LegacyDType]: () => Extract<Tensor, { dtype: D }>['data'] } = {
  float32: () => new Float32Array([1.5, -2.25, 3.4028234663852886e38, 1e-45, Infinity, -Infinity]),
  float64: () => new Float64Array([0, Math.PI, -1e308, 5e-324, Number.MAX_SAFE_INTEGER, -Infinity]),
  int32: () => new Int32Array([0, 1, -1, 2147483647, -2147483648, 42]),
  int64: () => new BigInt64Array([0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 1234567890123n]),
  uint8: () => new Uint8Array([0, 1, 127, 128, 255, 7]),
};

const roundTripsBitExact = test.macro({
  exec(t, dtype: LegacyDType, compress: boolean) {
    const data = SAMPLES[dtype]();
    const tensors = { t: { dtype, shape: [2, 3], data } as Tensor };
    const { encoding, bytes } = encodeTensors(tensors, { compress });
    const decoded = decodeTensors(encoding, bytes).t!;
    t.is(decoded.dtype, dtype);
    t.deepEqual(decoded.shape, tensors.t.shape);
    t.is(decoded.data.constructor, data.constructor);
    t.true(bytesOf(decoded.data).equals(bytesOf(data)));
  },
  title: (_, dtype, compress) => `${dtype} round-trips bit for bit (compress: ${compress})`,
});

for (const dtype of Object.keys(SAMPLES) as LegacyDType[]) {
  test(roundTripsBitExact, dtype, true);
  test(roundTripsBitExact, dtype, false);
}

test('compressible tensors of every dtype round-trip through lz4', (t) => {
  const n = 4096;
  const tensors: TensorSet = {
    f32: { dtype: 'float32', shape: [n], data: new Float32Array(n).map((_, i) => i % 7) },
    f64: { dtype: 'float64', shape: [n], data: new Float64Array(n).map((_, i) => i % 5) },
    i32: { dtype: 'int32', shape: [n], data: new Int32Array(n).map((_, i) => i % 3) },
    i64: { dtype: 'int64', shape: [n], data: new BigInt64Array(n).map((_, i) => BigInt(i % 11)) },
    u8: { dtype: 'uint8', shape: [n], data: new Uint8Array(n).map((_, i) => i % 13) },
  };
  const { encoding, bytes } = encodeTensors(tensors);
  t.is(encoding, TensorEncoding.msgpackLz4);
  const raw = Object.values(tensors).reduce((sum, { data }) => sum + data.byteLength, 0);
  t.true(bytes.length < raw / 4, `${bytes.length} bytes for ${raw} raw`);
  const decoded = decodeTensors(encoding, bytes);
  for (const [name, tensor] of Object.entries(tensors)) {
    t.true(bytesOf(decoded[name]!.data).equals(bytesOf(tensor.data)), name);
  }
});

test('multi-dimensional shapes, names and their order are kept', (t) => {
  const tensors: TensorSet = {
    'layer.0.weight': { dtype: 'float32', shape: [2, 3, 4], data: new Float32Array(24).map((_, i) => i / 3) },
    ['__proto__']: { dtype: 'int32', shape: [1], data: new Int32Array([9]) },
    ünïcødé: { dtype: 'uint8', shape: [2, 1], data: new Uint8Array([1, 2]) },
  };
  const decoded = decodeTensors(...args(encodeTensors(tensors)));
  t.deepEqual(Object.keys(decoded), ['layer.0.weight', '__proto__', 'ünïcødé']);
  t.true(Object.hasOwn(decoded, '__proto__'));
  t.deepEqual(decoded['layer.0.weight']!.shape, [2, 3, 4]);
  t.deepEqual([...(decoded.__proto__!.data as Int32Array)], [9]);
  t.deepEqual(decoded['ünïcødé']!.shape, [2, 1]);
});

test('empty tensors and an empty set round-trip', (t) => {
  const tensors: TensorSet = {
    none: { dtype: 'float32', shape: [0], data: new Float32Array(0) },
    rows: { dtype: 'int64', shape: [3, 0], data: new BigInt64Array(0) },
  };
  const decoded = decodeTensors(...args(encodeTensors(tensors)));
  t.deepEqual(decoded.none!.shape, [0]);
  t.is(decoded.none!.data.length, 0);
  t.deepEqual(decoded.rows!.shape, [3, 0]);
  t.true(decoded.rows!.data instanceof BigInt64Array);
  t.deepEqual(decodeTensors(...args(encodeTensors({}))), {});
});

test('a scalar has shape [] and one element', (t) => {
  const decoded = decodeTensors(
    ...args(encodeTensors({ lr: { dtype: 'float64', shape: [], data: new Float64Array([0.1]) } })),
  );
  t.deepEqual(decoded.lr!.shape, []);
  t.deepEqual([...(decoded.lr!.data as Float64Array)], [0.1]);
});

test('NaN payloads and -0 survive bit for bit', (t) => {
  const f32Bits = new Uint32Array([0x7fc00000, 0x7fc00001, 0xffc12345, 0x7f800001, 0x80000000, 0x00000001]);
  const f64Bits = new BigUint64Array([
    0x7ff8000000000000n,
    0x7ff8dead0000beefn,
    0xfff0000000000001n,
    0x8000000000000000n,
  ]);
  const tensors: TensorSet = {
    f32: { dtype: 'float32', shape: [f32Bits.length], data: new Float32Array(f32Bits.buffer) },
    f64: { dtype: 'float64', shape: [f64Bits.length], data: new Float64Array(f64Bits.buffer) },
  };
  for (const compress of [true, false]) {
    const decoded = decodeTensors(...args(encodeTensors(tensors, { compress })));
    t.deepEqual([...new Uint32Array(decoded.f32!.data.buffer)], [...f32Bits]);
    t.deepEqual([...new BigUint64Array(decoded.f64!.data.buffer)], [...f64Bits]);
    t.true(Object.is(decoded.f64!.data[3], -0));
  }
});

test('decoded arrays are aligned, own their buffer and do not alias the payload', (t) => {
  const data = new Float64Array([1, 2, 3]);
  const { encoding, bytes } = encodeTensors({ x: { dtype: 'float64', shape: [3], data } });
  // An odd offset in a larger buffer, so the float64 elements are misaligned in the payload.
  const shifted = Buffer.alloc(bytes.length + 1);
  bytes.copy(shifted, 1);
  const decoded = decodeTensors(encoding, shifted.subarray(1)).x!.data;
  t.is(decoded.byteOffset, 0);
  t.is(decoded.buffer.byteLength, decoded.byteLength);
  shifted.fill(0);
  t.deepEqual([...(decoded as Float64Array)], [1, 2, 3]);
});

test('a view into a larger buffer encodes only its own elements', (t) => {
  const backing = new Float32Array([9, 1, 2, 3, 9]);
  const view = backing.subarray(1, 4);
  const decoded = decodeTensors(...args(encodeTensors({ v: { dtype: 'float32', shape: [3], data: view } })));
  t.deepEqual([...(decoded.v!.data as Float32Array)], [1, 2, 3]);
});

test('the encoding says whether lz4 was used, and only when it shrinks the bytes', (t) => {
  const zeros = { dtype: 'float32', shape: [1 << 16], data: new Float32Array(1 << 16) } as const;
  const noise = { dtype: 'uint8', shape: [1 << 16], data: new Uint8Array(randomBytes(1 << 16)) } as const;

  const compressed = encodeTensors({ zeros });
  t.is(compressed.encoding, 'tensors/msgpack+lz4');
  t.true(compressed.bytes.length < zeros.data.byteLength / 10);

  const incompressible = encodeTensors({ noise });
  t.is(incompressible.encoding, 'tensors/msgpack');
  t.true(incompressible.bytes.length > noise.data.byteLength);

  const mixed = encodeTensors({ zeros, noise });
  t.is(mixed.encoding, 'tensors/msgpack+lz4');
  t.true(mixed.bytes.length < noise.data.byteLength + zeros.data.byteLength / 10);
  t.true(bytesOf(decodeTensors(...args(mixed)).noise!.data).equals(bytesOf(noise.data)));

  t.is(encodeTensors({ zeros }, { compress: false }).encoding, 'tensors/msgpack');
});

test('encodeTensorChunks gives the same bytes without copying raw tensors', (t) => {
  const weights = randomFillSync(new Float32Array(1024));
  const tensors: TensorSet = {
    weights: { dtype: 'float32', shape: [32, 32], data: weights },
    bias: { dtype: 'float32', shape: [1024], data: new Float32Array(1024) },
  };
  const { encoding, chunks, byteLength } = encodeTensorChunks(tensors);
  const whole = encodeTensors(tensors);
  t.is(encoding, whole.encoding);
  t.is(byteLength, whole.bytes.length);
  t.true(Buffer.concat(chunks).equals(whole.bytes));
  t.is(chunks.length, 3);
  t.is(chunks[1]!.buffer, weights.buffer);
  t.true(chunks[2]!.length < 1024 * 4);
});

test('a large tensor is compressed when a start, middle or end sample of it shrinks', (t) => {
  const size = 1024 * 1024;
  for (const zeroAt of [0, size / 2 - 32 * 1024, size - 64 * 1024]) {
    const data = new Uint8Array(randomBytes(size));
    data.fill(0, zeroAt, zeroAt + 64 * 1024);
    const { encoding, bytes } = encodeTensors({ t: { dtype: 'uint8', shape: [size], data } });
    t.is(encoding, TensorEncoding.msgpackLz4, `zeros at ${zeroAt}`);
    t.true(bytes.length < size - 32 * 1024);
    t.true(bytesOf(decodeTensors(encoding, bytes).t!.data).equals(bytesOf(data)));
  }
});

test('a large tensor whose samples do not shrink is stored raw without trying the rest', (t) => {
  const size = 1024 * 1024;
  const data = new Uint8Array(randomBytes(size));
  data.fill(0, 128 * 1024, 384 * 1024);
  t.is(encodeTensors({ t: { dtype: 'uint8', shape: [size], data } }).encoding, TensorEncoding.msgpack);
  const small = data.subarray(0, 256 * 1024);
  t.is(
    encodeTensors({ t: { dtype: 'uint8', shape: [small.length], data: small } }).encoding,
    TensorEncoding.msgpackLz4,
  );
});

test('bytes must be decoded with the encoding they were recorded with', (t) => {
  const { bytes } = encodeTensors({ zeros: { dtype: 'float32', shape: [4096], data: new Float32Array(4096) } });
  const error = t.throws(() => decodeTensors(TensorEncoding.msgpack, bytes), { instanceOf: CorruptPayloadError });
  t.is(error?.encoding, 'tensors/msgpack');
  t.regex(error?.message ?? '', /tensor "zeros" has \d+ stored bytes/);
});

test('an unknown encoding is a typed error naming it, the known ones and the source', (t) => {
  const { bytes } = encodeTensors({ x: { dtype: 'int32', shape: [1], data: new Int32Array([1]) } });
  const error = t.throws(() => decodeTensors('tensors/msgpack+zstd', bytes, { source: 'blob ab12' }), {
    instanceOf: UnknownEncodingError,
  });
  t.is(error?.code, 'UNKNOWN_ENCODING');
  t.is(error?.encoding, 'tensors/msgpack+zstd');
  t.deepEqual(error?.known, ['tensors/msgpack', 'tensors/msgpack+lz4', 'tensors/safetensors']);
  t.is(error?.source, 'blob ab12');
  t.regex(error?.message ?? '', /"tensors\/msgpack\+zstd" for blob ab12/);
});

const lz4Payload = () =>
  encodeTensors({
    a: { dtype: 'int32', shape: [2, 512], data: new Int32Array(1024).map((_, i) => i % 10) },
    b: { dtype: 'float64', shape: [256], data: new Float64Array(256).fill(0.5) },
  });

const corruptions: [string, (bytes: Buffer) => Buffer, RegExp][] = [
  ['shorter than the length prefix', (b) => b.subarray(0, 3), /shorter than the 4-byte header length/],
  ['truncated by one byte', (b) => b.subarray(0, b.length - 1), /needs bytes \d+\.\.\d+ but the payload ends/],
  ['one trailing byte', (b) => Buffer.concat([b, Buffer.from([0])]), /1 bytes follow the last tensor/],
  ['a header length past the end', (b) => withUInt32(b, 0, 0xffffffff), /header length 4294967295 runs past/],
  [
    'a header that is not msgpack',
    (b) => replaceHeaderBytes(b, Buffer.from([0x92, 0x01])),
    /the header is not msgpack \(/,
  ],
  ['a header of the wrong shape', (b) => replaceHeader(b, [1, 2, 3]), /the header has version undefined/],
  [
    'an impossible stored size',
    (b) => replaceHeader(b, { v: 1, tensors: [{ name: 'a', dtype: 'int32', shape: [1e6], size: 10 }] }),
    /cannot hold shape \[1000000\]/,
  ],
  [
    'an unknown dtype',
    (b) => replaceHeader(b, { v: 1, tensors: [{ name: 'a', dtype: 'complex64', shape: [1], size: 8 }] }),
    /unknown dtype "complex64"/,
  ],
  [
    'a zeroed lz4 block',
    (b) => zeroFrom(b, 4 + b.readUInt32LE(0)),
    /tensor "a" is not a valid lz4 block of 4096 bytes/,
  ],
];

for (const [what, damage, reason] of corruptions) {
  test(`a payload with ${what} is a CorruptPayloadError`, (t) => {
    const { encoding, bytes } = lz4Payload();
    t.is(encoding, TensorEncoding.msgpackLz4);
    const error = t.throws(() => decodeTensors(encoding, damage(Buffer.from(bytes)), { source: 'blob cd34' }), {
      instanceOf: CorruptPayloadError,
    });
    t.is(error?.code, 'CORRUPT_PAYLOAD');
    t.is(error?.encoding, encoding);
    t.is(error?.source, 'blob cd34');
    t.regex(error?.reason ?? '', reason);
    t.regex(error?.message ?? '', /^corrupt tensors\/msgpack\+lz4 payload in blob cd34: /);
  });
}

const badTensors: [string, unknown, string, RegExp][] = [
  [
    'a shape whose product is not data.length',
    { w: { dtype: 'float32', shape: [2, 3], data: new Float32Array(5) } },
    'tensors["w"].shape',
    /product of dimensions \(6\) equal to data\.length \(5\)/,
  ],
  [
    'a negative dimension',
    { w: { dtype: 'float32', shape: [-1, -5], data: new Float32Array(5) } },
    'tensors["w"].shape',
    /non-negative integers/,
  ],
  [
    'a fractional dimension',
    { w: { dtype: 'int32', shape: [2.5, 2], data: new Int32Array(5) } },
    'tensors["w"].shape',
    /non-negative integers/,
  ],
  ['a missing shape', { w: { dtype: 'int32', data: new Int32Array(1) } }, 'tensors["w"].shape', /array/],
  [
    'data of another dtype',
    { w: { dtype: 'float32', shape: [2], data: new Float64Array(2) } },
    'tensors["w"].data',
    /must be a Float32Array for dtype float32/,
  ],
  ['a plain array as data', { w: { dtype: 'int32', shape: [2], data: [1, 2] } }, 'tensors["w"].data', /Int32Array/],
  [
    'an unknown dtype',
    { w: { dtype: 'float16', shape: [1], data: new Uint8Array(2) } },
    'tensors["w"].dtype',
    /one of float32, float64, int32, int64, uint8/,
  ],
  ['a tensor that is not an object', { w: 3 }, 'tensors["w"]', /object/],
  ['an array instead of a set', [], 'tensors', /object mapping names/],
];

for (const [what, tensors, argument, rule] of badTensors) {
  test(`encoding ${what} is an InvalidArgumentError`, (t) => {
    const error = t.throws(() => encodeTensors(tensors as TensorSet), { instanceOf: InvalidArgumentError });
    t.is(error?.code, 'INVALID_ARGUMENT');
    t.is(error?.argument, argument);
    t.regex(error?.rule ?? '', rule);
  });
}

function args({ encoding, bytes }: { encoding: string; bytes: Buffer }): [string, Buffer] {
  return [encoding, bytes];
}

function withUInt32(bytes: Buffer, offset: number, value: number): Buffer {
  bytes.writeUInt32LE(value, offset);
  return bytes;
}

function zeroFrom(bytes: Buffer, offset: number): Buffer {
  bytes.fill(0, offset);
  return bytes;
}

/** The payload with its header replaced by `header` packed as msgpack (chunks unchanged). */
function replaceHeader(bytes: Buffer, header: unknown): Buffer {
  return replaceHeaderBytes(bytes, packMsgpack(header));
}

function replaceHeaderBytes(bytes: Buffer, header: Buffer): Buffer {
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32LE(header.length, 0);
  return Buffer.concat([prefix, header, bytes.subarray(4 + bytes.readUInt32LE(0))]);
}
