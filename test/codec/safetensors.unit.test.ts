/**
 * The safetensors codec: the published layout (length, JSON header, tiled buffer), alignment,
 * zero-copy views, every dtype bit for bit, and a typed error for each kind of hostile file.
 */
import test from 'ava';
import { CorruptPayloadError, DecodeLimitError } from '../../src/codec/errors.ts';
import { decodeLimits, setDecodeLimits } from '../../src/codec/limits.ts';
import {
  decodeSafetensors,
  decodeSafetensorsFile,
  encodeSafetensors,
  encodeSafetensorsChunks,
} from '../../src/codec/safetensors.ts';
import { TensorEncoding, decodeTensors, type Tensor, type TensorSet } from '../../src/codec/tensors.ts';
import { DTYPES, TENSOR_DTYPES, type TensorDType } from '../../src/codec/dtypes.ts';
import { InvalidArgumentError } from '../../src/errors.ts';
import { ITEM_BYTES, SAFETENSORS_DTYPE, everyDtype } from '../support/dtypes.ts';

/** The roundlog dtype of each safetensors name, from the hand-written table. */
const DTYPE_OF_NAME = Object.fromEntries(
  Object.entries(SAFETENSORS_DTYPE).map(([dtype, name]) => [name, dtype as TensorDType]),
) as Record<string, TensorDType>;

const bytesOf = (data: ArrayBufferView) => Buffer.from(data.buffer, data.byteOffset, data.byteLength);

/** A file with the given header object and buffer, as a hostile writer would make it. */
function file(header: unknown, buffer: Uint8Array = new Uint8Array(0), headerText?: string): Buffer {
  const json = Buffer.from(headerText ?? JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, buffer]);
}

test('every dtype round-trips bit for bit, with its dtype, shape and typed array', (t) => {
  const tensors = everyDtype();
  const decoded = decodeSafetensors(encodeSafetensors(tensors));
  t.deepEqual(Object.keys(decoded).sort(), Object.keys(tensors).sort());
  for (const [name, tensor] of Object.entries(tensors)) {
    const back = decoded[name]!;
    t.is(back.dtype, tensor.dtype, name);
    t.deepEqual(back.shape, tensor.shape, name);
    t.is(back.data.constructor, tensor.data.constructor, name);
    t.true(bytesOf(back.data).equals(bytesOf(tensor.data)), name);
  }
  t.deepEqual(new Set(Object.values(tensors).map((x) => x.dtype)), new Set(TENSOR_DTYPES));
});

test('the layout is the published one: u64 length, JSON header space-padded to 8 bytes, tiled buffer, ordered', (t) => {
  // Tensors by element size, largest first, then by name.
  const bytes = encodeSafetensors(everyDtype(), { metadata: { format: 'pt' } });
  const length = Number(bytes.readBigUInt64LE(0));
  t.is((8 + length) % 8, 0);
  const text = bytes.subarray(8, 8 + length).toString('utf8');
  t.regex(text, /^\{.*\} *$/);
  const header = JSON.parse(text) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  t.deepEqual(header.__metadata__ as unknown, { format: 'pt' });
  const names = Object.keys(header).filter((name) => name !== '__metadata__');
  t.deepEqual(names, [
    'f64',
    'i64',
    'u64',
    'f32',
    'i32',
    'scalar',
    'u32',
    'bf16',
    'f16',
    'i16',
    'u16',
    'empty',
    'flags',
    'i8',
    'u8',
  ]);
  let end = 0;
  for (const name of names) {
    const {
      dtype,
      data_offsets: [begin, stop],
    } = header[name]!;
    t.is(begin, end, name);
    const itemBytes = ITEM_BYTES[DTYPE_OF_NAME[dtype]!];
    t.is((8 + length + begin) % itemBytes, 0, `${name} is aligned`);
    end = stop;
  }
  t.is(8 + length + end, bytes.length);
  t.is(header.bf16!.dtype, 'BF16');
  t.is(header.flags!.dtype, 'BOOL');
  t.deepEqual(header.scalar!.shape, []);
});

test('the chunks are the file, with each tensor a view of its own memory (zero copies)', (t) => {
  const tensors = everyDtype();
  const { encoding, chunks, byteLength } = encodeSafetensorsChunks(tensors);
  t.is(encoding, TensorEncoding.safetensors);
  t.true(Buffer.concat(chunks).equals(encodeSafetensors(tensors)));
  t.is(byteLength, Buffer.concat(chunks).length);
  const f32 = tensors.f32!.data;
  t.true(chunks.some((chunk) => chunk.buffer === f32.buffer && chunk.byteOffset === f32.byteOffset));
});

test('the same tensors in another insertion order give the same bytes', (t) => {
  const tensors = everyDtype();
  const reversed = Object.fromEntries(Object.entries(tensors).reverse());
  t.true(encodeSafetensors(reversed).equals(encodeSafetensors(tensors)));
});

test('decoding views aligned tensors in place (sharing memory) and copies misaligned ones', (t) => {
  const bytes = encodeSafetensors({ w: { dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) } });
  const aligned = decodeSafetensors(bytes).w!;
  t.is(aligned.data.buffer, bytes.buffer);
  (aligned.data as Float32Array)[0] = 5;
  t.is(decodeSafetensors(bytes).w!.data[0], 5, 'a view shares memory with the input');
  const shifted = new Uint8Array(bytes.length + 1);
  shifted.set(bytes, 1);
  const copied = decodeSafetensors(shifted.subarray(1)).w!;
  t.not(copied.data.buffer, shifted.buffer);
  t.deepEqual([...(copied.data as Float32Array)], [5, 2]);
});

test('decodeTensors dispatches tensors/safetensors, and metadata is returned by decodeSafetensorsFile', (t) => {
  const bytes = encodeSafetensors(everyDtype(), { metadata: { a: 'b' } });
  t.deepEqual(Object.keys(decodeTensors(TensorEncoding.safetensors, bytes)).length, 15);
  t.deepEqual(decodeSafetensorsFile(bytes).metadata, { a: 'b' });
  t.deepEqual(decodeSafetensorsFile(encodeSafetensors({})).metadata, {});
  t.deepEqual(decodeSafetensors(encodeSafetensors({})), {});
});

test('a tensor named __proto__ is an ordinary tensor', (t) => {
  const tensors = JSON.parse('{"__proto__": 1}') as Record<string, Tensor>;
  tensors['__proto__'] = { dtype: 'int8', shape: [1], data: new Int8Array([3]) };
  const decoded = decodeSafetensors(encodeSafetensors(tensors));
  t.true(Object.hasOwn(decoded, '__proto__'));
  t.deepEqual([...(decoded['__proto__']!.data as Int8Array)], [3]);
});

test('encoding refuses a bool not 0/1, data of the wrong array, a tensor __metadata__, metadata not strings', (t) => {
  const refused = (tensors: unknown, metadata?: unknown) =>
    t.throws(() => encodeSafetensors(tensors as TensorSet, { metadata } as never), {
      instanceOf: InvalidArgumentError,
    });
  t.regex(
    refused({ b: { dtype: 'bool', shape: [2], data: new Uint8Array([1, 2]) } })!.message,
    /tensors\["b"\]\.data\[1\]/,
  );
  t.regex(refused({ h: { dtype: 'float16', shape: [1], data: new Float32Array([1]) } })!.message, /Uint16Array/);
  refused({ i: { dtype: 'int8', shape: [1], data: new Uint8Array([1]) } });
  refused({ __metadata__: { dtype: 'int8', shape: [1], data: new Int8Array([1]) } });
  refused({}, { a: 1 });
  refused({ x: { dtype: 'float8', shape: [1], data: new Uint8Array([1]) } });
});

/** Decoding `bytes` is a CorruptPayloadError naming the source and matching `reason`. */
const corrupt = test.macro({
  exec(t, bytes: Buffer, reason: RegExp) {
    const error = t.throws(
      () => decodeTensors(TensorEncoding.safetensors, bytes, { source: 'file /x/params.safetensors' }),
      {
        instanceOf: CorruptPayloadError,
      },
    );
    t.is(error?.code, 'CORRUPT_PAYLOAD');
    t.is(error?.source, 'file /x/params.safetensors');
    t.is(error?.encoding, 'tensors/safetensors');
    t.regex(error!.message, /\/x\/params\.safetensors/);
    t.regex(error!.reason, reason);
  },
  title: (given) => `hostile: ${given} is a CorruptPayloadError naming the file`,
});

const ENTRY = '{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}';
const f32 = (n: number) => new Uint8Array(new Float32Array(n).buffer);

test('shorter than the length field', corrupt, Buffer.from([1, 2, 3]), /shorter than the 8-byte header length/);
test(
  'a header length past the end of the file',
  corrupt,
  (() => {
    const bytes = file({});
    bytes.writeBigUInt64LE(1000n);
    return bytes;
  })(),
  /header length 1000 \(bytes 0\.\.8\) runs past the end of the 10-byte file/,
);
test('a header that is not JSON', corrupt, file(null, undefined, '{"a": {"dtype": "F32" "shape": [1, 2'), /not JSON/);
test(
  'a header that is not UTF-8',
  corrupt,
  (() => {
    const bytes = file(null, undefined, '{"x": 1}');
    bytes[10] = 0xff;
    return bytes;
  })(),
  /not UTF-8/,
);
test('a header that is not an object', corrupt, file(null, undefined, '[1, 2]'), /does not start with "\{"/);
test('a header cut short', corrupt, file(null, undefined, '{ '), /not JSON/);
test(
  'an unknown dtype',
  corrupt,
  file({ w: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)),
  /tensor "w" has dtype "F8_E4M3", which this build does not read/,
);
test(
  'a negative dimension',
  corrupt,
  file({ w: { dtype: 'U8', shape: [-1], data_offsets: [0, 1] } }, new Uint8Array(1)),
  /tensor "w" has shape \[-1\]/,
);
test(
  'a fractional dimension',
  corrupt,
  file({ w: { dtype: 'U8', shape: [1.5], data_offsets: [0, 1] } }, new Uint8Array(1)),
  /shape \[1\.5\]/,
);
test(
  'a size that does not match dtype × shape',
  corrupt,
  file({ w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, f32(3)),
  /tensor "w" has 12 bytes .* needs 16/,
);
test(
  'a shape whose product overflows',
  corrupt,
  file({ w: { dtype: 'F64', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 8] } }, f32(2)),
  /needs more than 2\^53/,
);
test(
  'offsets past the end of the buffer',
  corrupt,
  file({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32(2)),
  /past the end of the 8-byte buffer/,
);
test(
  'reversed offsets',
  corrupt,
  file({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, f32(1)),
  /not \[begin, end\]/,
);
test(
  'overlapping tensors',
  corrupt,
  file(
    { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
    f32(3),
  ),
  /tensors "a" .* and "b" .* overlap/,
);
test(
  'a hole between tensors',
  corrupt,
  file(
    { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } },
    f32(3),
  ),
  /buffer bytes 4\.\.8 belong to no tensor/,
);
test(
  'trailing bytes',
  corrupt,
  file({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(2)),
  /4 bytes follow the last tensor/,
);
test('a repeated name', corrupt, file(null, f32(1), `{"a": ${ENTRY}, "a": ${ENTRY}}`), /names "a" more than once/);
test(
  'a repeated name spelled with an escape',
  corrupt,
  file(null, f32(1), `{"a": ${ENTRY}, "\\u0061": ${ENTRY}}`),
  /names "a" more than once/,
);
test(
  'metadata that is not string to string',
  corrupt,
  file({ __metadata__: { epoch: 3 } }),
  /__metadata__\["epoch"\] is 3, not a string/,
);
test(
  'metadata that is not an object',
  corrupt,
  file({ __metadata__: ['a'] }),
  /__metadata__ is not an object of strings/,
);
test(
  'an entry with an unknown field',
  corrupt,
  file({ a: { dtype: 'U8', shape: [1], data_offsets: [0, 1], extra: 1 } }, new Uint8Array(1)),
  /unknown field "extra"/,
);
test('an entry that is not an object', corrupt, file({ a: 3 }), /tensor "a" is not an object/);
test(
  'a bool byte other than 0 or 1',
  corrupt,
  file({ b: { dtype: 'BOOL', shape: [3], data_offsets: [0, 3] } }, new Uint8Array([1, 0, 7])),
  /bool tensor "b" has byte 7 at element 2/,
);
test('a stored size that differs from the record', (t) => {
  const error = t.throws(() => decodeTensors(TensorEncoding.safetensors, encodeSafetensors({}), { storedBytes: 9 }), {
    instanceOf: CorruptPayloadError,
  });
  t.regex(error!.message, /has 16 bytes where its record says 9/);
});

test('a 100 MB header claimed by the length field of a small file is refused before anything is read', (t) => {
  const bytes = file({});
  for (const claimed of [100n * 1024n * 1024n, 2n ** 64n - 1n]) {
    bytes.writeBigUInt64LE(claimed);
    const error = t.throws(() => decodeSafetensors(bytes, { source: 'blob ab' }), { instanceOf: CorruptPayloadError });
    t.is(error?.reason, `the header length ${claimed} (bytes 0..8) runs past the end of the 10-byte file`);
  }
});

test('a header that is there but over the value limit (64 MiB by default) is a DecodeLimitError', (t) => {
  const headerLength = decodeLimits().maxValueBytes + 1;
  const bytes = Buffer.alloc(8 + headerLength, 0x20);
  bytes.writeBigUInt64LE(BigInt(headerLength));
  bytes.write('{}', 8);
  const error = t.throws(() => decodeSafetensors(bytes, { source: 'blob ab' }), { instanceOf: DecodeLimitError });
  t.is(error?.declared, headerLength);
  t.is(error?.limit, decodeLimits().maxValueBytes);
  t.regex(error!.message, /the safetensors header of blob ab/);
});

test('a set larger than the tensor maximum is a DecodeLimitError naming the source', (t) => {
  const bytes = encodeSafetensors({ w: { dtype: 'float64', shape: [16], data: new Float64Array(16) } });
  const error = t.throws(() => decodeSafetensors(bytes, { source: 'blob cd', maxBytes: 100 }), {
    instanceOf: DecodeLimitError,
  });
  t.is(error?.declared, 128);
  t.regex(error!.message, /blob cd/);
});

test('a header over a lowered value limit is a DecodeLimitError', (t) => {
  const previous = setDecodeLimits({ maxValueBytes: 16 });
  try {
    t.throws(
      () =>
        decodeSafetensors(encodeSafetensors({ long_name: { dtype: 'uint8', shape: [1], data: new Uint8Array(1) } })),
      {
        instanceOf: DecodeLimitError,
      },
    );
  } finally {
    setDecodeLimits(previous);
  }
});

test('every dtype has the safetensors name of the published list', (t) => {
  t.deepEqual(
    Object.fromEntries(TENSOR_DTYPES.map((dtype: TensorDType) => [dtype, DTYPES[dtype].safetensors])),
    SAFETENSORS_DTYPE,
  );
  const header = JSON.parse(
    (() => {
      const bytes = encodeSafetensors(everyDtype());
      return bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString('utf8');
    })(),
  ) as Record<string, { dtype: string }>;
  for (const [name, tensor] of Object.entries(everyDtype()))
    t.is(header[name]!.dtype, SAFETENSORS_DTYPE[tensor.dtype], name);
});
