/**
 * TFRecord framing, the container of TensorBoard's event files: each record is
 *
 *     u64 length (little-endian) | u32 masked CRC-32C of those 8 bytes | data | u32 masked CRC-32C of data
 *
 * with the CRC-32C (Castagnoli) masked as `((crc >>> 15) | (crc << 17)) + 0xa282ead8` (mod 2^32),
 * as TensorFlow's record writer and TensorBoard's readers (Python and the Rust data server) define it.
 * CRC-32C comes from the `crc-32` package (`crc-32/crc32c`), a small, dependency-free, well-used
 * implementation.
 */
import CRC32C from 'crc-32/crc32c.js';

const MASK_DELTA = 0xa282ead8;
/** Bytes of framing around each record's data: 8 (length) + 4 (its CRC) + 4 (data CRC). */
export const RECORD_OVERHEAD = 16;

/** CRC-32C of `bytes` as an unsigned 32-bit integer (`crc32c("123456789")` is 0xe3069283). */
export function crc32c(bytes: Uint8Array): number {
  return CRC32C.buf(bytes) >>> 0;
}

/** The masked CRC-32C TFRecord stores, an unsigned 32-bit integer. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return (((crc >>> 15) | (crc << 17)) + MASK_DELTA) >>> 0;
}

/** One record framed: `data.length + 16` bytes. */
export function frameRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(data.length + RECORD_OVERHEAD);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

/** What `readRecords` found: the whole records, and what follows the last of them. */
export type ReadRecordsResult = {
  records: Buffer[];
  /** Byte offset just past the last whole, valid record. */
  end: number;
  /**
   * Null when the bytes end exactly after the last record; `torn` when they end inside a record
   * (a write cut short: its bytes are a prefix of a record); `corrupt` when a length or data CRC
   * does not match, with the byte offset of the record it is in.
   */
  tail: null | Readonly<{ kind: 'torn' | 'corrupt'; offset: number; reason: string }>;
};

/**
 * Reads TFRecord records from `bytes`, stopping at the first that is not whole and valid. A
 * length is trusted only once its own CRC matches, so a damaged length never makes it allocate
 * or skip what the damaged value says.
 */
export function readRecords(bytes: Uint8Array): ReadRecordsResult {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: Buffer[] = [];
  let offset = 0;
  while (offset < buf.length) {
    if (buf.length - offset < 12) {
      return { records, end: offset, tail: { kind: 'torn', offset, reason: 'the record header is cut short' } };
    }
    const header = buf.subarray(offset, offset + 8);
    if (buf.readUInt32LE(offset + 8) !== maskedCrc32c(header)) {
      return { records, end: offset, tail: { kind: 'corrupt', offset, reason: 'the length fails its CRC-32C' } };
    }
    const length = buf.readBigUInt64LE(offset);
    const available = BigInt(buf.length - offset - RECORD_OVERHEAD);
    if (length > available) {
      return { records, end: offset, tail: { kind: 'torn', offset, reason: 'the record data is cut short' } };
    }
    const n = Number(length);
    const data = buf.subarray(offset + 12, offset + 12 + n);
    if (buf.readUInt32LE(offset + 12 + n) !== maskedCrc32c(data)) {
      return { records, end: offset, tail: { kind: 'corrupt', offset, reason: 'the data fails its CRC-32C' } };
    }
    records.push(data);
    offset += n + RECORD_OVERHEAD;
  }
  return { records, end: offset, tail: null };
}
