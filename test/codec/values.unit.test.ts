/** The value codec: msgpackr round trips, lz4 above the threshold, and errors for damaged bytes. */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { DEFAULT_COMPRESS_THRESHOLD, ValueEncoding, decodeValue, encodeValue } from '../../src/codec/values.ts';

const roundTrip = (value: unknown, threshold?: number) => {
  const { encoding, bytes } = encodeValue(value, threshold);
  return decodeValue(encoding, bytes);
};

test('nested objects, arrays and scalars round-trip', (t) => {
  const value = {
    round: 3,
    nodes: ['node-a', 'node-b'],
    metrics: { loss: 0.125, accuracy: [0.5, 0.75], nested: { deeper: { flag: true, none: null } } },
    note: 'ünïcødé ✓',
  };
  t.deepEqual(roundTrip(value), value);
});

test('bigints round-trip as bigints, including beyond 64 bits', (t) => {
  const value = { small: 5n, max: 2n ** 63n - 1n, min: -(2n ** 63n), huge: 2n ** 64n + 1n };
  t.deepEqual(roundTrip(value), value);
});

test('a Date round-trips to the same millisecond', (t) => {
  const decoded = roundTrip({ at: new Date(Date.UTC(2024, 1, 29, 12, 30, 15, 123)) }) as { at: Date };
  t.true(decoded.at instanceof Date);
  t.is(decoded.at.toISOString(), '2024-02-29T12:30:15.123Z');
});

test('typed arrays round-trip with their class and bits', (t) => {
  const value = {
    f32: new Float32Array([1.5, -0, Number.NaN]),
    f64: new Float64Array([Math.PI, -Infinity]),
    i32: new Int32Array([-1, 2147483647]),
    i64: new BigInt64Array([-(2n ** 63n)]),
    u8: new Uint8Array([0, 255]),
  };
  const decoded = roundTrip(value) as typeof value;
  for (const key of Object.keys(value) as (keyof typeof value)[]) {
    t.is(decoded[key].constructor, value[key].constructor, key);
    t.true(
      Buffer.from(decoded[key].buffer, decoded[key].byteOffset, decoded[key].byteLength).equals(
        Buffer.from(value[key].buffer),
      ),
      key,
    );
  }
});

test('a large compressible value is lz4-encoded (encoding 2) and smaller than its msgpack', (t) => {
  const value = { history: Array.from({ length: 2000 }, (_, i) => ({ round: i % 10, node: 'node-a' })) };
  const { encoding, bytes } = encodeValue(value);
  t.is(encoding, ValueEncoding.msgpackLz4);
  t.is(encoding, 2);
  const uncompressed = encodeValue(value, Number.POSITIVE_INFINITY);
  t.is(uncompressed.encoding, ValueEncoding.msgpack);
  t.true(bytes.length < uncompressed.bytes.length / 4, `${bytes.length} vs ${uncompressed.bytes.length}`);
  t.deepEqual(decodeValue(encoding, bytes), value);
});

test('a small value stays plain msgpack (encoding 1)', (t) => {
  const { encoding } = encodeValue({ type: 'RoundStarted', round: 1 });
  t.is(encoding, ValueEncoding.msgpack);
  t.is(encoding, 1);
});

test('a large value that lz4 cannot shrink stays plain msgpack', (t) => {
  const noise = randomBytes(DEFAULT_COMPRESS_THRESHOLD * 4);
  const { encoding, bytes } = encodeValue(noise);
  t.is(encoding, ValueEncoding.msgpack);
  t.true(Buffer.from(decodeValue(encoding, bytes) as Uint8Array).equals(noise));
});

test('the compression threshold is the msgpack size at which lz4 is tried', (t) => {
  const value = 'a'.repeat(200);
  t.is(encodeValue(value).encoding, ValueEncoding.msgpack);
  t.is(encodeValue(value, 100).encoding, ValueEncoding.msgpackLz4);
  t.is(roundTrip(value, 100), value);
});

const compressed = () => encodeValue({ text: 'roundlog '.repeat(1000) });
const plain = () => encodeValue({ list: [1, 2, 3], name: 'experiment' });

const damaged: [string, () => { encoding: number; bytes: Uint8Array }, RegExp][] = [
  [
    'truncated lz4 bytes',
    () => ({ encoding: 2, bytes: compressed().bytes.subarray(0, compressed().bytes.length - 5) }),
    /malformed lz4 block/,
  ],
  [
    'garbled lz4 bytes',
    () => ({ encoding: 2, bytes: Buffer.concat([compressed().bytes.subarray(0, 4), Buffer.alloc(64, 0xff)]) }),
    /malformed lz4 block/,
  ],
  [
    'lz4 bytes shorter than the length prefix',
    () => ({ encoding: 2, bytes: Buffer.from([1, 2]) }),
    /shorter than its length prefix/,
  ],
  [
    'a wrong uncompressed length',
    () => ({ encoding: 2, bytes: withUInt32(compressed().bytes, 1) }),
    /expected 1 bytes/,
  ],
  [
    'truncated msgpack bytes',
    () => ({ encoding: 1, bytes: plain().bytes.subarray(0, plain().bytes.length - 3) }),
    /Unexpected end of MessagePack data/,
  ],
  ['an unknown encoding', () => ({ encoding: 7, bytes: plain().bytes }), /unknown value encoding 7/],
];

for (const [what, make, message] of damaged) {
  test(`decoding ${what} throws`, (t) => {
    const { encoding, bytes } = make();
    t.throws(() => decodeValue(encoding, bytes), { message });
  });
}

// msgpackr decodes the never-used byte 0xc1 to a placeholder object instead of throwing.
test('a never-used msgpack byte (0xc1) throws', (t) => {
  t.throws(() => decodeValue(ValueEncoding.msgpack, Buffer.from([0xc1])));
});

function withUInt32(bytes: Buffer, value: number): Buffer {
  const copy = Buffer.from(bytes);
  copy.writeUInt32LE(value, 0);
  return copy;
}

test('an lz4 value claiming more bytes than lz4 could expand to is rejected before any allocation', (t) => {
  const encoded = encodeValue({ text: 'abc'.repeat(5000) });
  t.is(encoded.encoding, ValueEncoding.msgpackLz4);
  const error = t.throws(() => decodeValue(encoded.encoding, withUInt32(encoded.bytes, 0xfffffff0)));
  t.regex(error!.message, /claims 4294967280 bytes/);
});
