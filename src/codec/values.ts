/**
 * The value layer: any structured value to bytes with msgpackr, compressed with lz4 above a
 * threshold. The encoding is returned beside the bytes and must be stored with them, so that
 * records written under an older encoding stay readable.
 */
import { C1, Packr } from 'msgpackr';
import { MAX_VALUE_BYTES_ENV, checkDeclaredSize, checkMsgpack, decodeLimits } from './limits.ts';
import { lz4Compress, lz4Decompress } from './lz4.ts';

/** Encodings, as stored: a byte in a log record, a name in a blob reference. */
export const ValueEncoding = {
  /** msgpack bytes, uncompressed. */
  msgpack: 1,
  /** u32 little-endian uncompressed length, then one lz4 block of msgpack bytes. */
  msgpackLz4: 2,
} as const;
export type ValueEncoding = (typeof ValueEncoding)[keyof typeof ValueEncoding];

export const DEFAULT_COMPRESS_THRESHOLD = 4096;

const packr = new Packr({
  useRecords: false,
  moreTypes: true,
  int64AsType: 'bigint',
  largeBigIntToFloat: false,
});

export type EncodedValue = { encoding: ValueEncoding; bytes: Buffer };

/**
 * Throws `DecodeLimitError` for a value that decoding would refuse (over `ROUNDLOG_MAX_VALUE_BYTES`,
 * or nested too deep), so nothing is written that cannot be read back.
 */
export function encodeValue(value: unknown, compressThreshold = DEFAULT_COMPRESS_THRESHOLD): EncodedValue {
  const packed = packr.pack(value);
  checkValue(packed, true);
  if (packed.length >= compressThreshold) {
    const compressed = lz4Compress(packed);
    if (compressed !== null) {
      const bytes = Buffer.allocUnsafe(4 + compressed.length);
      bytes.writeUInt32LE(packed.length, 0);
      compressed.copy(bytes, 4);
      return { encoding: ValueEncoding.msgpackLz4, bytes };
    }
  }
  return { encoding: ValueEncoding.msgpack, bytes: packed };
}

/**
 * Throws a plain Error describing what is wrong (callers wrap it with where the bytes came from),
 * or `DecodeLimitError` when the value declares, or would take, more than `ROUNDLOG_MAX_VALUE_BYTES`:
 * checked before anything is decompressed or built.
 */
export function decodeValue(encoding: number, bytes: Uint8Array): unknown {
  switch (encoding) {
    case ValueEncoding.msgpack:
      return unpack(bytes);
    case ValueEncoding.msgpackLz4: {
      if (bytes.length < 4) throw new Error('lz4 value shorter than its length prefix');
      const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const length = view.readUInt32LE(0);
      // lz4 expands at most 255-fold; a larger claim is damage, not data.
      if (length > (view.length - 4) * 255 + 16)
        throw new Error(`lz4 value claims ${length} bytes from a ${view.length - 4}-byte block`);
      checkDeclaredSize('an lz4-compressed value', length, decodeLimits().maxValueBytes, MAX_VALUE_BYTES_ENV);
      return unpack(lz4Decompress(view.subarray(4), length));
    }
    default:
      throw new Error(`unknown value encoding ${encoding}`);
  }
}

/** `writing`: the bytes are a value being recorded, not stored bytes being read. */
function checkValue(bytes: Uint8Array, writing = false): void {
  const max = decodeLimits().maxValueBytes;
  const what = writing ? 'the value to record' : 'a msgpack value';
  checkDeclaredSize(what, bytes.byteLength, max, MAX_VALUE_BYTES_ENV, writing);
  checkMsgpack(what, bytes, max, MAX_VALUE_BYTES_ENV, writing);
}

function unpack(bytes: Uint8Array): unknown {
  checkValue(bytes);
  const value: unknown = packr.unpack(bytes);
  // msgpackr returns a placeholder for the never-used byte 0xc1 instead of failing.
  if (value === C1) throw new Error('value is the never-used msgpack byte 0xc1');
  return value;
}
