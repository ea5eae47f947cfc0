/**
 * Opening and closing a file log. Opening takes the writer lock (unless read-only), then
 * recovers the state from disk: the heads checkpoint and index files where they match the
 * segments, the records after them, and a torn tail cut off the last segment.
 */
import { constants as fsConstants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { NotARegularFileError, type FileTooLargeError } from '../../confine.ts';
import { InvalidArgumentError } from '../../errors.ts';
import { CorruptLogError, LogLockedError, StrayTailBytesError } from '../errors.ts';
import {
  FRAME_HEADER_BYTES,
  HEADS_FILE,
  MAX_HEADS_BYTES,
  readCacheFile,
  readIndexFile,
  INDEX_SUFFIX,
  SEGMENT_HEADER_BYTES,
  SEGMENT_MAGIC,
  checkFrame,
  checkFrameHeader,
  classifyTail,
  decodeHeads,
  decodeIndexChunks,
  parseSegmentFileName,
} from './format.ts';
import { stopPolling } from './follower.ts';
import { acquireLock, removeDeadCandidates, type HeldLock } from './lock.ts';
import type { FileEventLogOptions, FileLogWarning } from './options.ts';
import {
  addStream,
  createState,
  decodeAt,
  ingest,
  newSegment,
  pathOf,
  placeAll,
  readFully,
  type FileLogState,
  type Segment,
} from './state.ts';
import { ensureIndexed } from './reader.ts';
import { appendIndex, startSegment, writeFullIndex } from './writer.ts';

const DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024;

/** Checks the options, takes the writer lock and recovers the log's state from its folder. */
export async function openLog(options: FileEventLogOptions): Promise<FileLogState> {
  if (typeof options?.dir !== 'string' || options.dir.length === 0) {
    throw new InvalidArgumentError('dir', 'must be a non-empty path', options?.dir);
  }
  const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  if (!Number.isInteger(segmentBytes) || segmentBytes < 4096 || segmentBytes > 1024 * 1024 * 1024) {
    throw new InvalidArgumentError('segmentBytes', 'must be an integer between 4096 and 1 GiB', segmentBytes);
  }
  const dir = path.resolve(options.dir);
  const readOnly = options.readOnly ?? false;
  const warn = options.onWarning ?? emitFileLogWarning;
  let lock: HeldLock | null = null;
  if (!readOnly) {
    await fs.mkdir(dir, { recursive: true });
    lock = await lockWriter(dir, options.lockWaitMs ?? 0, warn);
  }
  const log = createState(dir, readOnly, lock, segmentBytes, options, warn);
  try {
    await recover(log);
  } catch (error) {
    await closeLog(log).catch(() => undefined);
    throw error;
  }
  return log;
}

/** Warnings this process has emitted, by code and message. */
const emitted = new Set<string>();

/**
 * The default sink of the file log's warnings: `process.emitWarning` (code `ROUNDLOG_<code>`), each
 * distinct warning once per process. A command opens the log several times (every read of the
 * round log opens its own handle), and each open finds the same stray tail or the same ignored
 * index again: saying it once is enough. A warning about another file or offset is another message.
 */
export function emitFileLogWarning(warning: FileLogWarning): void {
  const key = `${warning.code}\0${warning.message}`;
  if (emitted.has(key)) return;
  emitted.add(key);
  process.emitWarning(warning.message, { code: `ROUNDLOG_${warning.code}` });
}

/** Takes the writer lock, retrying with backoff for up to `waitMs` while another process holds it. */
async function lockWriter(dir: string, waitMs: number, warn: (warning: FileLogWarning) => void): Promise<HeldLock> {
  const onReclaim = (previous: string) =>
    warn({
      code: 'STALE_LOCK_RECLAIMED',
      message: `reclaimed the writer lock of ${dir} left by ${previous}, which is no longer running`,
      file: path.join(dir, 'LOCK'),
    });
  const deadline = Date.now() + waitMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    try {
      return await acquireLock(dir, onReclaim);
    } catch (error) {
      if (!(error instanceof LogLockedError) || Date.now() + delay > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

export async function closeLog(log: FileLogState): Promise<void> {
  if (log.closed) return;
  log.closed = true;
  while (log.flushing !== null) await log.flushing;
  stopPolling(log);
  await log.polling;
  const segment = log.segments.at(-1);
  if (!log.readOnly && log.failed === null && segment !== undefined && !segment.sealed) {
    await appendIndex(log, segment).catch(() => undefined);
  }
  await log.indexWriter?.close().catch(() => undefined);
  await log.writer?.close().catch(() => undefined);
  await Promise.all(log.segments.map((s) => s.reader?.then((handle) => handle.close()).catch(() => undefined)));
  await log.lock?.release();
  for (const listener of [...log.listeners]) listener.onClose();
  log.listeners.clear();
}

async function recover(log: FileLogState): Promise<void> {
  const names = await fs.readdir(log.dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' && log.readOnly) return [] as string[];
    throw error;
  });
  if (!log.readOnly) {
    // Leftovers of a crash: temp files of checkpoints, and lock candidates of dead processes.
    for (const name of names) {
      if (name.endsWith('.tmp')) await fs.unlink(path.join(log.dir, name)).catch(() => undefined);
    }
    await removeDeadCandidates(log.dir, names);
    // Indexes are caches of the records: removed, each is written again from its segment below.
    if (log.rebuildIndexes) {
      for (const name of names) {
        if (name.endsWith(INDEX_SUFFIX) && parseSegmentFileName(name.slice(0, -INDEX_SUFFIX.length)) !== null) {
          await fs.unlink(path.join(log.dir, name)).catch(() => undefined);
        }
      }
    }
  }
  const bases = names
    .map(parseSegmentFileName)
    .filter((base): base is number => base !== null)
    .sort((a, b) => a - b);
  if (bases.length > 0 && bases[0] !== 0) {
    const reason = 'the first segment does not start at position 0: earlier segments are missing';
    throw new CorruptLogError(pathOf(log, bases[0]!), 0, reason);
  }
  const checkpointed = await loadHeads(log, bases);
  for (let i = 0; i < checkpointed; i++) {
    const base = bases[i]!;
    const next = i + 1 < bases.length ? bases[i + 1]! : log.committed;
    log.segments.push(newSegment(log, base, next - base, true));
  }
  for (let i = checkpointed; i < bases.length; i++) {
    const base = bases[i]!;
    if (base !== log.committed) {
      throw new CorruptLogError(
        pathOf(log, base),
        0,
        `segment starts at position ${base} but the previous segments end at ${log.committed}: records are missing`,
      );
    }
    const segment = newSegment(log, base, 0, false);
    log.segments.push(segment);
    await loadSegment(log, segment, i === bases.length - 1);
    if (i < bases.length - 1) segment.sealed = true;
  }
  log.nextPosition = log.committed;
  for (const state of log.streamsByNum) state.pending = state.count;
  if (log.readOnly) return;
  const last = log.segments.at(-1);
  if (last === undefined || last.sealed) {
    await startSegment(log);
  } else {
    log.writer = await fs.open(last.file, fsConstants.O_RDWR | fsConstants.O_DSYNC);
  }
  // Sealed segments that a crash left without a full index get one now; the heads
  // checkpoint catches up at the next seal.
  for (const segment of log.segments.slice(checkpointed, -1)) {
    if (segment.indexed < segment.count) await writeFullIndex(log, segment);
  }
  if (log.rebuildIndexes) {
    // Sealed segments the heads checkpoint covers are read on first use: their index is rebuilt now.
    for (const segment of log.segments.slice(0, checkpointed)) await ensureIndexed(log, segment);
    const active = log.segments.at(-1)!;
    if (!active.sealed && active.count > 0) {
      await writeFullIndex(log, active);
      log.indexedStreamEnd = log.streamsByNum.filter((state) => state.count > 0).length;
    }
  }
}

/**
 * A cache file of the log that is not a regular file or is too large: warned about and, by a
 * writer, removed (so the cache is written again as a regular file, and nothing opens a FIFO).
 */
async function ignoreRefusedCache(
  log: FileLogState,
  refused: NotARegularFileError | FileTooLargeError,
  instead: string,
): Promise<void> {
  const what = refused instanceof NotARegularFileError ? `it is a ${refused.kind}` : 'it is too large';
  log.warn({
    code: 'INDEX_REBUILT',
    message: `ignored ${refused.file}: ${what}, not the cache it should be; ${instead}`,
    file: refused.file,
  });
  if (!log.readOnly) await fs.rm(refused.file, { force: true }).catch(() => undefined);
}

/** Applies the heads checkpoint; returns how many leading segments it covers. */
async function loadHeads(log: FileLogState, bases: number[]): Promise<number> {
  const file = path.join(log.dir, HEADS_FILE);
  // Bounded, and only a regular file: a heads file replaced by a FIFO or a device is never opened;
  // it is a cache, so the log is read without it (a writer removes it; the next seal writes it again).
  const { bytes: buf, refused } = await readCacheFile(file, 'heads checkpoint', MAX_HEADS_BYTES);
  if (refused !== null) await ignoreRefusedCache(log, refused, 'the index is rebuilt from the records');
  if (buf === null) return 0;
  const heads = decodeHeads(buf);
  const fits =
    heads !== null &&
    heads.segments >= 1 &&
    heads.segments <= bases.length &&
    (heads.segments === bases.length || bases[heads.segments] === heads.nextPosition) &&
    heads.streams.reduce((sum, s) => sum + s[1], 0) === heads.nextPosition;
  if (!fits) {
    log.warn({
      code: 'INDEX_REBUILT',
      message: `ignored ${file}: it does not match the segments on disk; the index is rebuilt from the records`,
      file,
    });
    return 0;
  }
  for (const [name, count, first, last] of heads!.streams) {
    const state = addStream(log, name);
    state.count = count;
    state.first = first;
    state.last = last;
  }
  log.committed = heads!.nextPosition;
  return heads!.segments;
}

/**
 * Loads a segment that is not covered by the heads checkpoint: its index file, then the
 * records after it. The last segment of a writer may end in a torn record, which is cut off.
 */
async function loadSegment(log: FileLogState, segment: Segment, isLast: boolean): Promise<void> {
  const handle = await fs.open(segment.file, 'r');
  try {
    const fileSize = (await handle.stat()).size;
    if (fileSize < SEGMENT_HEADER_BYTES) {
      if (!isLast) {
        throw new CorruptLogError(segment.file, 0, `segment is ${fileSize} bytes, shorter than its header`);
      }
      if (!log.readOnly) await rewriteHeader(log, segment, fileSize);
      segment.size = SEGMENT_HEADER_BYTES;
      segment.allocated = SEGMENT_HEADER_BYTES;
      return;
    }
    const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
    await handle.read(header, 0, SEGMENT_HEADER_BYTES, 0);
    if (!header.equals(SEGMENT_MAGIC)) {
      const reason = 'segment header is not a roundlog segment header (wrong magic or version)';
      throw new CorruptLogError(segment.file, 0, reason);
    }
    const tail = await loadIndex(log, segment, handle, fileSize);
    segment.allocated = fileSize;
    const buf = Buffer.alloc(fileSize - tail);
    if (buf.length > 0) await readFully(handle, buf, tail);
    let offset = 0;
    while (offset < buf.length) {
      const check = checkFrame(buf, offset);
      if (check.kind === 'ok') {
        const record = decodeAt(segment.file, tail + offset, buf, check.bodyStart, check.end);
        ingest(log, segment, record, tail + offset);
        offset = check.end;
        continue;
      }
      const at = tail + offset;
      const verdict = classifyTail(buf, offset, check);
      if (verdict.kind === 'corrupt') throw new CorruptLogError(segment.file, at, verdict.reason);
      if (verdict.kind === 'stray') {
        await strayBytes(log, segment, at, tail + verdict.from, tail + verdict.to, fileSize);
        segment.allocated = log.readOnly ? fileSize : at;
        break;
      }
      if (verdict.kind === 'torn' && !isLast) {
        throw new CorruptLogError(segment.file, at, 'record cut short inside a sealed segment');
      }
      // A torn record is cut off; so are the unused zeros of a sealed segment whose seal a crash interrupted.
      if (!log.readOnly && (verdict.kind === 'torn' || !isLast)) {
        await truncateDurably(segment.file, at);
        segment.allocated = at;
      }
      if (verdict.kind === 'torn' && !log.readOnly) {
        log.warn({
          code: 'TORN_TAIL_TRUNCATED',
          message:
            `truncated ${verdict.bytes} bytes of an incomplete record at the end of ${segment.file} ` +
            `(offset ${at}); these bytes were never acknowledged as committed`,
          file: segment.file,
          bytesDropped: verdict.bytes,
        });
      }
      break;
    }
    segment.size = tail + offset;
  } finally {
    await handle.close();
  }
}

/**
 * Non-zero bytes in the zero-filled space after the data (`dataEnd`): a reader reads the records
 * before them and warns; a writer cuts them off only when asked (`repairTail`), else refuses.
 */
async function strayBytes(
  log: FileLogState,
  segment: Segment,
  dataEnd: number,
  from: number,
  to: number,
  fileSize: number,
): Promise<void> {
  // The records after `dataEnd` in this segment are not counted yet: the log's count is final.
  const error = new StrayTailBytesError(segment.file, from, dataEnd, to - from, log.committed);
  if (log.readOnly) {
    log.warn({ code: 'STRAY_TAIL_BYTES', message: error.message, file: segment.file });
    return;
  }
  if (!log.repairTail) throw error;
  await truncateDurably(segment.file, dataEnd);
  log.warn({
    code: 'TAIL_REPAIRED',
    message:
      `cut off ${fileSize - dataEnd} bytes after the end of the data of ${segment.file} (byte ${dataEnd}): ` +
      `non-zero bytes at ${from}..${to - 1} in its zero-filled space, which held no record; ` +
      `the log's ${log.committed} records are intact`,
    file: segment.file,
    bytesDropped: fileSize - dataEnd,
  });
}

/** Applies a segment's index file; returns the byte offset where its unindexed records start. */
async function loadIndex(log: FileLogState, segment: Segment, handle: FileHandle, fileSize: number): Promise<number> {
  const file = segment.file + INDEX_SUFFIX;
  log.indexedStreamEnd = log.streamsByNum.length;
  const { bytes: buf, refused } = await readIndexFile(file, fileSize);
  if (refused !== null) await ignoreRefusedCache(log, refused, 'the segment is read in full instead');
  if (buf === null) return SEGMENT_HEADER_BYTES;
  const { chunks, validBytes } = decodeIndexChunks(buf);
  // Validate before applying anything.
  let known = log.streamsByNum.length;
  let previous = SEGMENT_HEADER_BYTES - 1;
  let valid = true;
  let listed = 0;
  /** The first record the index lists that does not fit in the file: cut short, or missing. */
  let cut: number | null = null;
  for (const chunk of chunks) {
    for (const name of chunk.newStreams) {
      if (typeof name !== 'string' || log.streams.has(name)) valid = false;
    }
    known += chunk.newStreams.length;
    for (let j = 0; j < chunk.offsets.length && valid; j++) {
      const offset = chunk.offsets[j]!;
      const num = chunk.streams[j]!;
      if (offset <= previous || num >= known) valid = false;
      // Record `previous` ends where this one starts: past the end of the file, it was cut.
      if (cut === null && offset > fileSize) cut = previous >= SEGMENT_HEADER_BYTES ? previous : offset;
      if (cut === null && offset + FRAME_HEADER_BYTES > fileSize) cut = offset;
      previous = offset;
      listed++;
    }
  }
  let tail = SEGMENT_HEADER_BYTES;
  const lastOffset = previous;
  // The index is written only for records already durable: a record it lists was acknowledged,
  // and one that is cut short or gone is corruption, never a torn tail.
  const lost = (at: number) =>
    new CorruptLogError(
      segment.file,
      at,
      `record cut short: the segment ends at byte ${fileSize}, inside or before a record that its index ` +
        `${path.basename(file)} lists as committed (${listed} records listed)`,
    );
  if (valid && cut !== null) throw lost(cut);
  if (valid && lastOffset >= SEGMENT_HEADER_BYTES) {
    const header = Buffer.alloc(FRAME_HEADER_BYTES);
    await handle.read(header, 0, FRAME_HEADER_BYTES, lastOffset);
    const check = checkFrameHeader(header, 0);
    if ('reason' in check) {
      throw new CorruptLogError(segment.file, lastOffset, `${check.reason} (a record the index lists as committed)`);
    }
    tail = lastOffset + FRAME_HEADER_BYTES + check.bodyLength;
    if (tail > fileSize) throw lost(lastOffset);
  }
  if (!valid) {
    log.warn({
      code: 'INDEX_REBUILT',
      message: `ignored ${file}: it does not match its segment; the segment is read in full instead`,
      file,
    });
    if (!log.readOnly) await fs.unlink(file).catch(() => undefined);
    return SEGMENT_HEADER_BYTES;
  }
  if (!log.readOnly && validBytes < buf.length) await fs.truncate(file, validBytes);
  for (const chunk of chunks) for (const name of chunk.newStreams) addStream(log, name);
  placeAll(log, segment, concatU32(chunks.map((c) => c.offsets)), concatU32(chunks.map((c) => c.streams)));
  segment.indexChunks = chunks.length;
  segment.indexed = segment.count;
  log.indexedStreamEnd = log.streamsByNum.length;
  return tail;
}

async function rewriteHeader(log: FileLogState, segment: Segment, fileSize: number): Promise<void> {
  const handle = await fs.open(segment.file, 'r+');
  try {
    await handle.truncate(0);
    await handle.write(SEGMENT_MAGIC, 0, SEGMENT_HEADER_BYTES, 0);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  if (fileSize > 0) {
    log.warn({
      code: 'TORN_TAIL_TRUNCATED',
      message: `rewrote the header of ${segment.file}, cut short at ${fileSize} bytes by a crash while it was created`,
      file: segment.file,
      bytesDropped: fileSize,
    });
  }
}

function concatU32(parts: Uint32Array[]): Uint32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint32Array(parts.reduce((sum, p) => sum + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

async function truncateDurably(file: string, length: number): Promise<void> {
  const handle = await fs.open(file, 'r+');
  try {
    await handle.truncate(length);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}
