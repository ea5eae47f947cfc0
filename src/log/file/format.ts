/**
 * The on-disk format of the embedded file log: segment files of framed records, and the index
 * files that let a log open without reading its history. ARCHITECTURE.md documents it.
 */
import {
  isReadRefusal,
  readRegularFileIfAny,
  type FileTooLargeError,
  type NotARegularFileError,
} from '../../confine.ts';
import { Packr } from 'msgpackr';
import { decodeValue, encodeValue } from '../../codec/values.ts';
import { crc32c } from './crc32c.ts';

/** Every segment starts with these 8 bytes; the last one is the format version. */
export const SEGMENT_MAGIC = Buffer.from('RLOGSEG\x01', 'latin1');
export const SEGMENT_HEADER_BYTES = SEGMENT_MAGIC.length;

/**
 * Record frame: u32 body length, u32 CRC-32C of the body, u32 CRC-32C of the previous 8 bytes
 * (so a damaged length is told apart from a torn write), then the body:
 * u8 value encoding (see codec/values), then the encoded record value.
 */
export const FRAME_HEADER_BYTES = 12;
/** Largest body accepted; bigger payloads belong in the blob store. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

export const SEGMENT_SUFFIX = '.seg';
export const INDEX_SUFFIX = '.idx';
export const HEADS_FILE = 'heads.ckpt';
/** The most bytes read from the heads checkpoint: a file larger than this is not one. */
export const MAX_HEADS_BYTES = 256 * 1024 * 1024;
/**
 * The most bytes read from the index of a segment of `segmentSize` bytes: 8 bytes a record (each
 * at least a 12-byte frame) plus the names of the streams it starts and the chunk headers, with room.
 */
export function maxIndexBytes(segmentSize: number): number {
  return 4 * segmentSize + 16 * 1024 * 1024;
}
export const LOCK_FILE = 'LOCK';

export function segmentFileName(basePosition: number): string {
  return `${String(basePosition).padStart(20, '0')}${SEGMENT_SUFFIX}`;
}

export function parseSegmentFileName(name: string): number | null {
  const match = /^(\d{20})\.seg$/.exec(name);
  return match ? Number(match[1]) : null;
}

/** What a record holds; `data` is the caller's value. */
export type StoredRecord = {
  position: number;
  stream: string;
  revision: number;
  id: string;
  timestampMs: number;
  type: string;
  data: unknown;
};

export function encodeRecord(record: StoredRecord, compressThreshold: number): Buffer {
  const value = [
    record.position,
    record.stream,
    record.revision,
    record.id,
    record.timestampMs,
    record.type,
    record.data,
  ];
  const { encoding, bytes } = encodeValue(value, compressThreshold);
  const bodyLength = 1 + bytes.length;
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + bodyLength);
  frame.writeUInt32LE(bodyLength, 0);
  frame[FRAME_HEADER_BYTES] = encoding;
  bytes.copy(frame, FRAME_HEADER_BYTES + 1);
  frame.writeUInt32LE(crc32c(frame, FRAME_HEADER_BYTES, frame.length), 4);
  frame.writeUInt32LE(crc32c(frame, 0, 8), 8);
  return frame;
}

/** Outcome of looking at the bytes at one offset of a segment. */
export type FrameCheck =
  | { kind: 'ok'; bodyStart: number; end: number }
  /** The bytes stop before the record does: what a write cut short leaves. */
  | { kind: 'incomplete' }
  /** A checksum failed or the length is impossible; `end` is where the record claims to end, if its header is sound. */
  | { kind: 'bad'; reason: string; end: number | null }
  /** Only zero bytes from here to the end: space not yet written (preallocated, or left by a crash). */
  | { kind: 'zeros' };

export function checkFrame(buf: Buffer, offset: number, limit = buf.length): FrameCheck {
  if (limit - offset < FRAME_HEADER_BYTES) {
    return isZero(buf, offset, limit) ? { kind: 'zeros' } : { kind: 'incomplete' };
  }
  const bodyLength = buf.readUInt32LE(offset);
  if (buf.readUInt32LE(offset + 8) !== crc32c(buf, offset, offset + 8)) {
    if (isZero(buf, offset, limit)) return { kind: 'zeros' };
    return { kind: 'bad', reason: 'record header checksum mismatch', end: null };
  }
  if (bodyLength < 2 || bodyLength > MAX_RECORD_BYTES) {
    return { kind: 'bad', reason: `record length ${bodyLength} out of range`, end: null };
  }
  const bodyStart = offset + FRAME_HEADER_BYTES;
  const end = bodyStart + bodyLength;
  if (end > limit) return { kind: 'incomplete' };
  if (buf.readUInt32LE(offset + 4) !== crc32c(buf, bodyStart, end)) {
    return { kind: 'bad', reason: 'record body checksum mismatch', end };
  }
  return { kind: 'ok', bodyStart, end };
}

/**
 * What a frame that is not a good record means, given every byte from it to the end of the file:
 * `end` of the data (zeros from here on), a `torn` write (the record's bytes, then only zeros or
 * the end of the file: a write cut short), or `corrupt` (anything else).
 */
export type TailVerdict =
  | { kind: 'end' }
  | { kind: 'torn'; bytes: number }
  | { kind: 'corrupt'; reason: string }
  /**
   * The data ends here (a zero frame header) but the zero-filled space after it holds non-zero
   * bytes that are no record: `from` is the first of them and `to` the end of the last. Nothing
   * committed is there; the records before `offset` are intact.
   */
  | { kind: 'stray'; from: number; to: number };

export function classifyTail(
  buf: Buffer,
  offset: number,
  check: Exclude<FrameCheck, { kind: 'ok' }>,
  limit = buf.length,
): TailVerdict {
  switch (check.kind) {
    case 'zeros':
      return { kind: 'end' };
    case 'incomplete':
      return { kind: 'torn', bytes: limit - offset };
    case 'bad': {
      if (isZero(buf, offset, offset + FRAME_HEADER_BYTES)) {
        // A zero header is the end of the data; what follows is preallocated space, unless a
        // record is found in it (then records are missing: a zeroed record, or more).
        const record = findRecord(buf, offset + FRAME_HEADER_BYTES, limit);
        if (record !== null) {
          return {
            kind: 'corrupt',
            reason:
              `zero bytes where a record should be, and a record at byte offset ${record - offset} ` +
              `from here: records are missing`,
          };
        }
        const from = firstNonZero(buf, offset, limit);
        return { kind: 'stray', from, to: lastNonZero(buf, from, limit) };
      }
      const claimedEnd = check.end ?? offset + FRAME_HEADER_BYTES;
      if (claimedEnd >= limit || isZero(buf, claimedEnd, limit)) {
        return { kind: 'torn', bytes: lastNonZero(buf, offset, Math.min(claimedEnd, limit)) - offset };
      }
      return { kind: 'corrupt', reason: check.reason };
    }
  }
}

const ZEROS = Buffer.alloc(64 * 1024);

/** True when `buf[start, end)` holds only zero bytes. */
export function isZero(buf: Buffer, start: number, end: number): boolean {
  for (let at = start; at < end; at += ZEROS.length) {
    const stop = Math.min(end, at + ZEROS.length);
    if (!buf.subarray(at, stop).equals(ZEROS.subarray(0, stop - at))) return false;
  }
  return true;
}

function firstNonZero(buf: Buffer, start: number, end: number): number {
  let i = start;
  while (i < end && buf[i] === 0) i++;
  return i;
}

/** The offset of the first good record frame (both checksums) in `buf[start, end)`, or null. */
function findRecord(buf: Buffer, start: number, end: number): number | null {
  for (let at = firstNonZero(buf, start, end) - FRAME_HEADER_BYTES + 1; at + FRAME_HEADER_BYTES <= end; at++) {
    if (at < start) continue;
    if (buf.readUInt32LE(at) === 0) {
      // A record's length is at least 2: skip to where a non-zero length could start.
      const next = firstNonZero(buf, at, end);
      at = Math.max(at, next - 4);
      continue;
    }
    if (checkFrame(buf, at, end).kind === 'ok') return at;
  }
  return null;
}

export function lastNonZero(buf: Buffer, start: number, end: number): number {
  let i = end;
  while (i > start && buf[i - 1] === 0) i--;
  return i;
}

/** Checks only a frame's 12-byte header; returns the body length, or why the header is bad. */
export function checkFrameHeader(buf: Buffer, offset: number): { bodyLength: number } | { reason: string } {
  if (buf.readUInt32LE(offset + 8) !== crc32c(buf, offset, offset + 8))
    return { reason: 'record header checksum mismatch' };
  const bodyLength = buf.readUInt32LE(offset);
  if (bodyLength < 2 || bodyLength > MAX_RECORD_BYTES) return { reason: `record length ${bodyLength} out of range` };
  return { bodyLength };
}

/** Decodes a checked record body; throws a plain Error saying what is wrong. */
export function decodeRecordBody(buf: Buffer, bodyStart: number, end: number): StoredRecord {
  const value = decodeValue(buf[bodyStart]!, buf.subarray(bodyStart + 1, end));
  if (!Array.isArray(value) || value.length !== 7) throw new Error('record value is not a 7-field record');
  const [position, stream, revision, id, timestampMs, type] = value;
  if (
    typeof position !== 'number' ||
    typeof stream !== 'string' ||
    typeof revision !== 'number' ||
    typeof id !== 'string' ||
    typeof timestampMs !== 'number' ||
    typeof type !== 'string'
  ) {
    throw new Error('record fields have unexpected types');
  }
  return { position, stream, revision, id, timestampMs, type, data: value[6] };
}

/**
 * Index chunk, appended to `<segment>.idx` as records become durable:
 * u32 body length, u32 CRC-32C of the body, body = msgpack
 * `{ o: Uint32Array offsets, s: Uint32Array stream numbers, n: names of the streams first seen in this chunk }`.
 * Stream numbers count streams in order of their first event in the log.
 */
export type IndexChunk = { offsets: Uint32Array; streams: Uint32Array; newStreams: string[] };

const indexPackr = new Packr({ useRecords: false, moreTypes: true });

export function encodeIndexChunk(chunk: IndexChunk): Buffer {
  const body = indexPackr.pack({ o: chunk.offsets, s: chunk.streams, n: chunk.newStreams });
  const out = Buffer.allocUnsafe(8 + body.length);
  out.writeUInt32LE(body.length, 0);
  out.writeUInt32LE(crc32c(body), 4);
  body.copy(out, 8);
  return out;
}

/** Decodes the valid chunks of an index file; `validBytes` is where the first bad or torn chunk starts. */
export function decodeIndexChunks(buf: Buffer): { chunks: IndexChunk[]; validBytes: number } {
  const chunks: IndexChunk[] = [];
  let offset = 0;
  while (offset + 8 <= buf.length) {
    const length = buf.readUInt32LE(offset);
    const end = offset + 8 + length;
    if (end > buf.length || buf.readUInt32LE(offset + 4) !== crc32c(buf, offset + 8, end)) break;
    let value: unknown;
    try {
      value = indexPackr.unpack(buf.subarray(offset + 8, end));
    } catch {
      break;
    }
    const v = value as { o?: unknown; s?: unknown; n?: unknown };
    if (
      !(v.o instanceof Uint32Array) ||
      !(v.s instanceof Uint32Array) ||
      v.o.length !== v.s.length ||
      !Array.isArray(v.n)
    )
      break;
    chunks.push({ offsets: v.o, streams: v.s, newStreams: v.n as string[] });
    offset = end;
  }
  return { chunks, validBytes: offset };
}

/**
 * Heads checkpoint, rewritten (temp file + rename) each time a segment is sealed: the state of
 * every stream as of the end of the first `segments` segments, streams in stream-number order.
 */
export type HeadsCheckpoint = {
  segments: number;
  nextPosition: number;
  streams: Array<[name: string, count: number, firstPosition: number, lastPosition: number]>;
};

export function encodeHeads(heads: HeadsCheckpoint): Buffer {
  const body = indexPackr.pack({ v: 1, g: heads.segments, p: heads.nextPosition, s: heads.streams });
  const out = Buffer.allocUnsafe(8 + body.length);
  out.writeUInt32LE(body.length, 0);
  out.writeUInt32LE(crc32c(body), 4);
  body.copy(out, 8);
  return out;
}

export function decodeHeads(buf: Buffer): HeadsCheckpoint | null {
  if (buf.length < 8) return null;
  const length = buf.readUInt32LE(0);
  if (8 + length !== buf.length || buf.readUInt32LE(4) !== crc32c(buf, 8)) return null;
  try {
    const v = indexPackr.unpack(buf.subarray(8)) as { v?: unknown; g?: unknown; p?: unknown; s?: unknown };
    if (v.v !== 1 || typeof v.g !== 'number' || typeof v.p !== 'number' || !Array.isArray(v.s)) return null;
    return { segments: v.g, nextPosition: v.p, streams: v.s as HeadsCheckpoint['streams'] };
  } catch {
    return null;
  }
}

/**
 * The index file of a segment of `segmentSize` bytes: its bytes, or null when it is missing or
 * unreadable (it is rebuilt from the records then). An index is a cache: a file that is not a
 * regular file (a FIFO, a device) or is larger than `maxIndexBytes` is never opened and counts as
 * damaged, `refused` saying why, so a writer can remove it before writing a new one.
 */
export async function readIndexFile(
  file: string,
  segmentSize: number,
): Promise<{ bytes: Buffer | null; refused: NotARegularFileError | FileTooLargeError | null }> {
  return readCacheFile(file, 'segment index', maxIndexBytes(segmentSize));
}

/**
 * A cache file of the log (a segment index, the heads checkpoint) read as `readIndexFile` does:
 * missing or unreadable is `bytes: null`; not a regular file or too large is `refused`, never opened.
 */
export async function readCacheFile(
  file: string,
  field: string,
  maxBytes: number,
): Promise<{ bytes: Buffer | null; refused: NotARegularFileError | FileTooLargeError | null }> {
  try {
    return { bytes: await readRegularFileIfAny(file, field, maxBytes), refused: null };
  } catch (error) {
    return { bytes: null, refused: isReadRefusal(error) ? error : null };
  }
}
