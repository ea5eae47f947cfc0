/**
 * The embedded file log: the default EventLog, no server needed. Segment files of framed,
 * checksummed records under one folder; appends are durable before they resolve and are
 * group-committed; one writer process at a time, any number of readers. See ARCHITECTURE.md.
 */
import { createHash, randomUUID } from 'node:crypto';
import { constants as fsConstants, promises as fs, writeSync, writevSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Observable } from 'rxjs';
import { ClosedError, InvalidArgumentError } from '../../errors.ts';
import {
  CorruptLogError,
  LogLockedError,
  LogReadOnlyError,
  LogWriteFailedError,
  StreamNotFoundError,
  WrongExpectedRevisionError,
} from '../errors.ts';
import type {
  AppendOptions,
  AppendResult,
  EventData,
  ListStreamsResult,
  ReadAllOptions,
  ReadAllResult,
  ReadStreamOptions,
  ReadStreamResult,
  RecordedEvent,
  SubscribeOptions,
  SubscriptionItem,
  VerifyProblem,
  VerifyResult,
} from '../types.ts';
import {
  checkEvents,
  checkStreamName,
  expectedRevisionOf,
  normalizeReadAll,
  normalizeReadStream,
  selectRange,
} from '../validate.ts';
import {
  FRAME_HEADER_BYTES,
  HEADS_FILE,
  INDEX_SUFFIX,
  MAX_RECORD_BYTES,
  SEGMENT_HEADER_BYTES,
  SEGMENT_MAGIC,
  checkFrame,
  checkFrameHeader,
  classifyTail,
  isZero,
  decodeHeads,
  decodeIndexChunks,
  decodeRecordBody,
  encodeHeads,
  encodeIndexChunk,
  encodeRecord,
  parseSegmentFileName,
  segmentFileName,
  type StoredRecord,
} from './format.ts';
import { acquireLock, removeDeadCandidates, type HeldLock } from './lock.ts';
import type { FileEventLog, FileEventLogOptions, FileLogStats, FileLogWarning } from './options.ts';
import { U32List } from './u32list.ts';
import { exists, syncDir } from '../../durable.ts';

export type { FileEventLog, FileEventLogOptions, FileLogStats, FileLogWarning } from './options.ts';

const DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024;
/** How far ahead of the data the writer zero-fills the active segment. */
const PREALLOCATE_STEP = 1024 * 1024;
const ZERO_FILL = Buffer.alloc(PREALLOCATE_STEP);
/** Index entries are appended to the active segment's index once this many are pending. */
const INDEX_EVERY = 1024;
/** The active segment's index is rewritten as one chunk once it has this many. */
const MAX_INDEX_CHUNKS = 32;
/** Events per page when a subscription catches up from history. */
const CATCH_UP_PAGE = 1024;

type Segment = {
  base: number;
  file: string;
  /** Committed records. */
  count: number;
  /** End of the last committed record. */
  size: number;
  /** Length of the file (the writer zero-fills ahead of `size`; see `extend`). */
  allocated: number;
  /** Record offsets and stream numbers; null until a sealed segment is first read. */
  offsets: U32List | null;
  streams: U32List | null;
  sealed: boolean;
  /** Entries already in the segment's index file, and in how many chunks. */
  indexed: number;
  indexChunks: number;
  reader: Promise<FileHandle> | null;
  /** Set while a sealed segment's index is being loaded. */
  loading: Promise<void> | null;
};

type StreamState = {
  name: string;
  num: number;
  count: number;
  first: number;
  last: number;
  /** Log positions of the stream's events, built on first read. */
  positions: number[] | null;
  /** Count including appends not yet durable (writer only). */
  pending: number;
};

type PendingAppend = {
  state: StreamState;
  frames: Buffer[];
  firstPosition: number;
  lastRevision: number;
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
};

type Listener = {
  onEvents(events: readonly RecordedEvent[]): void;
  onError(error: unknown): void;
  onClose(): void;
};

/** Opens (creating when missing, unless read-only) the file log in `options.dir`. */
export async function openFileEventLog(options: FileEventLogOptions): Promise<FileEventLog> {
  if (typeof options?.dir !== 'string' || options.dir.length === 0) {
    throw new InvalidArgumentError('dir', 'must be a non-empty path', options?.dir);
  }
  const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  if (!Number.isInteger(segmentBytes) || segmentBytes < 4096 || segmentBytes > 1024 * 1024 * 1024) {
    throw new InvalidArgumentError('segmentBytes', 'must be an integer between 4096 and 1 GiB', segmentBytes);
  }
  const dir = path.resolve(options.dir);
  const readOnly = options.readOnly ?? false;
  const warn =
    options.onWarning ??
    ((warning: FileLogWarning) => process.emitWarning(warning.message, { code: `ROUNDLOG_${warning.code}` }));
  let lock: HeldLock | null = null;
  if (!readOnly) {
    await fs.mkdir(dir, { recursive: true });
    const onReclaim = (previous: string) =>
      warn({
        code: 'STALE_LOCK_RECLAIMED',
        message: `reclaimed the writer lock of ${dir} left by ${previous}, which is no longer running`,
        file: path.join(dir, 'LOCK'),
      });
    const deadline = Date.now() + (options.lockWaitMs ?? 0);
    for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
      try {
        lock = await acquireLock(dir, onReclaim);
        break;
      } catch (error) {
        if (!(error instanceof LogLockedError) || Date.now() + delay > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }
  const log = new FileLog(dir, readOnly, lock, segmentBytes, options, warn);
  try {
    await log.load();
  } catch (error) {
    await log.close().catch(() => undefined);
    throw error;
  }
  return log;
}

class FileLog implements FileEventLog {
  private segments: Segment[] = [];
  private readonly streams = new Map<string, StreamState>();
  private readonly streamsByNum: StreamState[] = [];
  /** Position after the last committed record. */
  private committed = 0;
  /** Position after the last accepted append (writer). */
  private nextPosition = 0;
  private writer: FileHandle | null = null;
  private indexWriter: FileHandle | null = null;
  private queue: PendingAppend[] = [];
  private flushing: Promise<void> | null = null;
  private failed: LogWriteFailedError | null = null;
  private closed = false;
  private readonly listeners = new Set<Listener>();
  private pollTimer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  private readonly compressThreshold: number;
  private readonly clock: () => Date;
  private readonly newId: () => string;
  private readonly pollIntervalMs: number;
  private readonly counters = { appends: 0, events: 0, flushes: 0 };

  constructor(
    readonly dir: string,
    readonly readOnly: boolean,
    private readonly lock: HeldLock | null,
    private readonly segmentBytes: number,
    options: FileEventLogOptions,
    private readonly warn: (warning: FileLogWarning) => void,
  ) {
    this.compressThreshold = options.compressThreshold ?? 4096;
    this.clock = options.clock ?? (() => new Date());
    this.newId = options.newId ?? randomUUID;
    this.pollIntervalMs = options.pollIntervalMs ?? 50;
  }

  // ---- opening -------------------------------------------------------------------------

  async load(): Promise<void> {
    const names = await fs.readdir(this.dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' && this.readOnly) return [] as string[];
      throw error;
    });
    if (!this.readOnly) {
      // Leftovers of a crash: temp files of checkpoints, and lock candidates of dead processes.
      for (const name of names) {
        if (name.endsWith('.tmp')) await fs.unlink(path.join(this.dir, name)).catch(() => undefined);
      }
      await removeDeadCandidates(this.dir, names);
    }
    const bases = names
      .map(parseSegmentFileName)
      .filter((base): base is number => base !== null)
      .sort((a, b) => a - b);
    if (bases.length > 0 && bases[0] !== 0) {
      throw new CorruptLogError(this.pathOf(bases[0]!), 0, 'the first segment does not start at position 0: earlier segments are missing');
    }
    const checkpointed = await this.loadHeads(bases);
    for (let i = 0; i < checkpointed; i++) {
      const base = bases[i]!;
      const next = i + 1 < bases.length ? bases[i + 1]! : this.committed;
      this.segments.push(this.newSegment(base, next - base, true));
    }
    for (let i = checkpointed; i < bases.length; i++) {
      const base = bases[i]!;
      if (base !== this.committed) {
        throw new CorruptLogError(
          this.pathOf(base),
          0,
          `segment starts at position ${base} but the previous segments end at ${this.committed}: records are missing`,
        );
      }
      const segment = this.newSegment(base, 0, false);
      this.segments.push(segment);
      await this.loadSegment(segment, i === bases.length - 1);
      if (i < bases.length - 1) segment.sealed = true;
    }
    this.nextPosition = this.committed;
    for (const state of this.streamsByNum) state.pending = state.count;
    if (this.readOnly) return;
    const last = this.segments.at(-1);
    if (last === undefined || last.sealed) {
      await this.startSegment();
    } else {
      this.writer = await fs.open(last.file, fsConstants.O_RDWR | fsConstants.O_DSYNC);
    }
    // Sealed segments that a crash left without a full index get one now; the heads
    // checkpoint catches up at the next seal.
    for (const segment of this.segments.slice(checkpointed, -1)) {
      if (segment.indexed < segment.count) await this.writeFullIndex(segment);
    }
  }

  /** Applies the heads checkpoint; returns how many leading segments it covers. */
  private async loadHeads(bases: number[]): Promise<number> {
    const file = path.join(this.dir, HEADS_FILE);
    const buf = await fs.readFile(file).catch(() => null);
    if (buf === null) return 0;
    const heads = decodeHeads(buf);
    const fits =
      heads !== null &&
      heads.segments >= 1 &&
      heads.segments <= bases.length &&
      (heads.segments === bases.length || bases[heads.segments] === heads.nextPosition) &&
      heads.streams.reduce((sum, s) => sum + s[1], 0) === heads.nextPosition;
    if (!fits) {
      this.warn({
        code: 'INDEX_REBUILT',
        message: `ignored ${file}: it does not match the segments on disk; the index is rebuilt from the records`,
        file,
      });
      return 0;
    }
    for (const [name, count, first, last] of heads!.streams) {
      const state = this.addStream(name);
      state.count = count;
      state.first = first;
      state.last = last;
    }
    this.committed = heads!.nextPosition;
    return heads!.segments;
  }

  private newSegment(base: number, count: number, sealed: boolean): Segment {
    return {
      base,
      file: this.pathOf(base),
      count,
      size: 0,
      allocated: 0,
      offsets: sealed ? null : new U32List(),
      streams: sealed ? null : new U32List(),
      sealed,
      indexed: sealed ? count : 0,
      indexChunks: sealed ? 1 : 0,
      reader: null,
      loading: null,
    };
  }

  private pathOf(base: number): string {
    return path.join(this.dir, segmentFileName(base));
  }

  private addStream(name: string): StreamState {
    const state: StreamState = { name, num: this.streamsByNum.length, count: 0, first: -1, last: -1, positions: null, pending: 0 };
    this.streams.set(name, state);
    this.streamsByNum.push(state);
    return state;
  }

  /**
   * Loads a segment that is not covered by the heads checkpoint: its index file, then the
   * records after it. The last segment of a writer may end in a torn record, which is cut off.
   */
  private async loadSegment(segment: Segment, isLast: boolean): Promise<void> {
    const handle = await fs.open(segment.file, 'r');
    try {
      const fileSize = (await handle.stat()).size;
      if (fileSize < SEGMENT_HEADER_BYTES) {
        if (!isLast) throw new CorruptLogError(segment.file, 0, `segment is ${fileSize} bytes, shorter than its header`);
        if (!this.readOnly) await this.rewriteHeader(segment, fileSize);
        segment.size = SEGMENT_HEADER_BYTES;
        segment.allocated = SEGMENT_HEADER_BYTES;
        return;
      }
      const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
      await handle.read(header, 0, SEGMENT_HEADER_BYTES, 0);
      if (!header.equals(SEGMENT_MAGIC)) {
        throw new CorruptLogError(segment.file, 0, 'segment header is not a roundlog segment header (wrong magic or version)');
      }
      const tail = await this.loadIndex(segment, handle, fileSize);
      segment.allocated = fileSize;
      const buf = Buffer.alloc(fileSize - tail);
      if (buf.length > 0) await readFully(handle, buf, tail);
      let offset = 0;
      while (offset < buf.length) {
        const check = checkFrame(buf, offset);
        if (check.kind === 'ok') {
          const record = this.decodeAt(segment.file, tail + offset, buf, check.bodyStart, check.end);
          this.ingest(segment, record, tail + offset);
          offset = check.end;
          continue;
        }
        const at = tail + offset;
        const verdict = classifyTail(buf, offset, check);
        if (verdict.kind === 'corrupt') throw new CorruptLogError(segment.file, at, verdict.reason);
        if (verdict.kind === 'torn' && !isLast) throw new CorruptLogError(segment.file, at, 'record cut short inside a sealed segment');
        // A torn record is cut off; so are the unused zeros of a sealed segment whose seal a crash interrupted.
        if (!this.readOnly && (verdict.kind === 'torn' || !isLast)) {
          await truncateDurably(segment.file, at);
          segment.allocated = at;
        }
        if (verdict.kind === 'torn' && !this.readOnly) {
          this.warn({
            code: 'TORN_TAIL_TRUNCATED',
            message: `truncated ${verdict.bytes} bytes of an incomplete record at the end of ${segment.file} (offset ${at}); these bytes were never acknowledged as committed`,
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

  /** Applies a segment's index file; returns the byte offset where its unindexed records start. */
  private async loadIndex(segment: Segment, handle: FileHandle, fileSize: number): Promise<number> {
    const file = segment.file + INDEX_SUFFIX;
    this.indexedStreamEnd = this.streamsByNum.length;
    const buf = await fs.readFile(file).catch(() => null);
    if (buf === null) return SEGMENT_HEADER_BYTES;
    const { chunks, validBytes } = decodeIndexChunks(buf);
    // Validate before applying anything.
    let known = this.streamsByNum.length;
    let previous = SEGMENT_HEADER_BYTES - 1;
    let valid = true;
    for (const chunk of chunks) {
      for (const name of chunk.newStreams) {
        if (typeof name !== 'string' || this.streams.has(name)) valid = false;
      }
      known += chunk.newStreams.length;
      for (let j = 0; j < chunk.offsets.length && valid; j++) {
        const offset = chunk.offsets[j]!;
        const num = chunk.streams[j]!;
        if (offset <= previous || offset + FRAME_HEADER_BYTES > fileSize || num >= known) valid = false;
        previous = offset;
      }
    }
    let tail = SEGMENT_HEADER_BYTES;
    const lastOffset = previous;
    if (valid && lastOffset >= SEGMENT_HEADER_BYTES) {
      const header = Buffer.alloc(FRAME_HEADER_BYTES);
      await handle.read(header, 0, FRAME_HEADER_BYTES, lastOffset);
      const check = checkFrameHeader(header, 0);
      if ('reason' in check) {
        throw new CorruptLogError(segment.file, lastOffset, `${check.reason} (a record the index lists as committed)`);
      }
      tail = lastOffset + FRAME_HEADER_BYTES + check.bodyLength;
      if (tail > fileSize) valid = false;
    }
    if (!valid) {
      this.warn({ code: 'INDEX_REBUILT', message: `ignored ${file}: it does not match its segment; the segment is read in full instead`, file });
      if (!this.readOnly) await fs.unlink(file).catch(() => undefined);
      return SEGMENT_HEADER_BYTES;
    }
    if (!this.readOnly && validBytes < buf.length) await fs.truncate(file, validBytes);
    for (const chunk of chunks) for (const name of chunk.newStreams) this.addStream(name);
    this.placeAll(segment, concatU32(chunks.map((c) => c.offsets)), concatU32(chunks.map((c) => c.streams)));
    segment.indexChunks = chunks.length;
    segment.indexed = segment.count;
    this.indexedStreamEnd = this.streamsByNum.length;
    return tail;
  }

  private async rewriteHeader(segment: Segment, fileSize: number): Promise<void> {
    const handle = await fs.open(segment.file, 'r+');
    try {
      await handle.truncate(0);
      await handle.write(SEGMENT_MAGIC, 0, SEGMENT_HEADER_BYTES, 0);
      await handle.datasync();
    } finally {
      await handle.close();
    }
    if (fileSize > 0) {
      this.warn({
        code: 'TORN_TAIL_TRUNCATED',
        message: `rewrote the header of ${segment.file}, cut short at ${fileSize} bytes by a crash while it was created`,
        file: segment.file,
        bytesDropped: fileSize,
      });
    }
  }

  private decodeAt(file: string, offset: number, buf: Buffer, bodyStart: number, end: number): StoredRecord {
    try {
      return decodeRecordBody(buf, bodyStart, end);
    } catch (error) {
      throw new CorruptLogError(file, offset, `record passes its checksum but cannot be decoded: ${(error as Error).message}`);
    }
  }

  /** Takes a record found on disk into the in-memory state, checking it is the one expected. */
  private ingest(segment: Segment, record: StoredRecord, offset: number): void {
    if (record.position !== this.committed) {
      throw new CorruptLogError(segment.file, offset, `record has position ${record.position} where ${this.committed} was expected`);
    }
    const state = this.streams.get(record.stream) ?? this.addStream(record.stream);
    if (record.revision !== state.count) {
      throw new CorruptLogError(
        segment.file,
        offset,
        `record of stream ${JSON.stringify(record.stream)} has revision ${record.revision} where ${state.count} was expected`,
      );
    }
    this.place(segment, state, offset);
  }

  /** Records that the next position of the log is `offset` in `segment`, for `state`'s stream. */
  private place(segment: Segment, state: StreamState, offset: number): void {
    const position = segment.base + segment.count;
    segment.offsets!.push(offset);
    segment.streams!.push(state.num);
    segment.count++;
    if (state.count === 0) state.first = position;
    state.count++;
    state.pending = Math.max(state.pending, state.count);
    state.last = position;
    state.positions?.push(position);
    this.committed = position + 1;
  }

  /** `place` for many records at once: what an index chunk lists. */
  private placeAll(segment: Segment, offsets: Uint32Array, nums: Uint32Array): void {
    const base = segment.base + segment.count;
    const streams = this.streamsByNum.length;
    const counts = new Uint32Array(streams);
    const firsts = new Float64Array(streams).fill(-1);
    const lasts = new Float64Array(streams);
    for (let j = 0; j < nums.length; j++) {
      const num = nums[j]!;
      if (counts[num]!++ === 0) firsts[num] = base + j;
      lasts[num] = base + j;
    }
    for (let num = 0; num < streams; num++) {
      if (counts[num] === 0) continue;
      const state = this.streamsByNum[num]!;
      if (state.count === 0) state.first = firsts[num]!;
      state.count += counts[num]!;
      state.pending = Math.max(state.pending, state.count);
      state.last = lasts[num]!;
      state.positions = null;
    }
    segment.offsets!.pushAll(offsets);
    segment.streams!.pushAll(nums);
    segment.count += nums.length;
    this.committed = base + nums.length;
  }

  // ---- appending -----------------------------------------------------------------------

  async append(stream: string, events: readonly EventData[], options?: AppendOptions): Promise<AppendResult> {
    this.checkOpen();
    if (this.readOnly) throw new LogReadOnlyError(this.dir);
    if (this.failed) throw this.failed;
    checkStreamName(stream);
    checkEvents(events);
    const expected = expectedRevisionOf(options);
    const existing = this.streams.get(stream);
    const current = existing?.pending ?? 0;
    const ok =
      expected === 'any' ||
      (expected === 'no_stream' && current === 0) ||
      (expected === 'stream_exists' && current > 0) ||
      (typeof expected === 'bigint' && current > 0 && BigInt(current - 1) === expected);
    if (!ok) throw new WrongExpectedRevisionError(stream, expected, current === 0 ? 'no_stream' : BigInt(current - 1));

    const timestampMs = this.clock().getTime();
    const firstPosition = this.nextPosition;
    const frames = events.map((event, i) => {
      const frame = encodeRecord(
        {
          position: firstPosition + i,
          stream,
          revision: current + i,
          id: event.id ?? this.newId(),
          timestampMs,
          type: event.type,
          data: event.data,
        },
        this.compressThreshold,
      );
      if (frame.length - FRAME_HEADER_BYTES > MAX_RECORD_BYTES) {
        throw new InvalidArgumentError(
          `events[${i}].data`,
          `must encode to at most ${MAX_RECORD_BYTES} bytes (store large payloads in the blob store and reference them)`,
          `${frame.length} bytes`,
        );
      }
      return frame;
    });
    const state = existing ?? this.addStream(stream);
    state.pending = current + events.length;
    this.nextPosition += events.length;
    const lastRevision = state.pending - 1;
    return new Promise<AppendResult>((resolve, reject) => {
      this.queue.push({ state, frames, firstPosition, lastRevision, resolve, reject });
      this.flushing ??= Promise.resolve().then(() => this.flush());
    });
  }

  /**
   * Writes queued appends in batches, one durable write per batch (group commit). The write is
   * synchronous on an O_DSYNC file: it blocks the event loop for the time the disk takes, and in
   * exchange costs no thread-pool round trip; appends made meanwhile wait for the next batch.
   */
  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0 && this.failed === null) {
        const segment = this.segments.at(-1)!;
        // One batch fills at most the rest of the segment (or holds one append), so that
        // segments stay near their size and offsets within u32.
        let room = this.segmentBytes - segment.size;
        let take = 0;
        while (take < this.queue.length) {
          const bytes = this.queue[take]!.frames.reduce((sum, f) => sum + f.length, 0);
          if (take > 0 && bytes > room) break;
          room -= bytes;
          take++;
        }
        const batch = this.queue.splice(0, take);
        const frames = batch.flatMap((p) => p.frames);
        const bytes = frames.reduce((sum, f) => sum + f.length, 0);
        try {
          if (segment.size + bytes > segment.allocated && segment.allocated < this.segmentBytes) await this.extend(segment, segment.size + bytes);
          // The segment is open with O_DSYNC: each write returns once its bytes are durable.
          writeAllAtSync(this.writer!.fd, frames, segment.size);
        } catch (error) {
          this.fail(new LogWriteFailedError(segment.file, error), batch);
          break;
        }
        this.commit(segment, batch);
        this.counters.flushes++;
        this.counters.appends += batch.length;
        this.counters.events += frames.length;
        try {
          if (segment.count - segment.indexed >= INDEX_EVERY) await this.appendIndex(segment);
          if (segment.size >= this.segmentBytes) await this.seal(segment);
        } catch (error) {
          this.fail(new LogWriteFailedError(segment.file, error), []);
        }
      }
    } finally {
      this.flushing = null;
    }
  }

  private fail(error: LogWriteFailedError, batch: PendingAppend[]): void {
    this.failed = error;
    for (const pending of [...batch, ...this.queue]) pending.reject(error);
    this.queue = [];
  }

  private commit(segment: Segment, batch: PendingAppend[]): void {
    let offset = segment.size;
    for (const pending of batch) {
      for (const frame of pending.frames) {
        this.place(segment, pending.state, offset);
        offset += frame.length;
      }
    }
    segment.size = offset;
    for (const pending of batch) {
      pending.resolve({
        nextExpectedRevision: BigInt(pending.lastRevision),
        firstPosition: BigInt(pending.firstPosition),
        lastPosition: BigInt(pending.firstPosition + pending.frames.length - 1),
      });
    }
    if (this.listeners.size > 0) {
      const events: RecordedEvent[] = [];
      for (const pending of batch) {
        for (const frame of pending.frames) {
          events.push(toRecordedEvent(decodeRecordBody(frame, FRAME_HEADER_BYTES, frame.length)));
        }
      }
      for (const listener of this.listeners) listener.onEvents(events);
    }
  }

  private async appendIndex(segment: Segment): Promise<void> {
    if (segment.indexed >= segment.count) return;
    // Each close adds a chunk; past a few dozen, reading them costs more than rewriting one.
    if (segment.indexChunks >= MAX_INDEX_CHUNKS) {
      await this.indexWriter?.close();
      this.indexWriter = null;
      await this.writeFullIndex(segment);
      this.indexedStreamEnd = this.streamsByNum.filter((st) => st.count > 0).length;
      return;
    }
    const from = segment.indexed;
    const streamsBefore = this.indexedStreamEnd;
    const nums = segment.streams!.slice(from, segment.count);
    let end = streamsBefore;
    for (const num of nums) if (num + 1 > end) end = num + 1;
    const chunk = encodeIndexChunk({
      offsets: segment.offsets!.slice(from, segment.count),
      streams: nums,
      newStreams: this.streamsByNum.slice(streamsBefore, end).map((s) => s.name),
    });
    this.indexWriter ??= await fs.open(segment.file + INDEX_SUFFIX, 'a');
    await this.indexWriter.write(chunk);
    segment.indexed = segment.count;
    segment.indexChunks++;
    this.indexedStreamEnd = end;
  }

  /** Streams named in the active segment's index file, or known before that segment. */
  private indexedStreamEnd = 0;

  /** Closes the active segment: full index, heads checkpoint, then a new segment. */
  private async seal(segment: Segment): Promise<void> {
    await this.indexWriter?.close();
    this.indexWriter = null;
    await this.writeFullIndex(segment);
    if (segment.allocated > segment.size) {
      await this.writer!.truncate(segment.size);
      await this.writer!.datasync();
      segment.allocated = segment.size;
    }
    segment.sealed = true;
    await this.writer?.close();
    this.writer = null;
    await this.writeHeads(this.segments.length);
    await this.startSegment();
  }

  private async writeFullIndex(segment: Segment): Promise<void> {
    const end = segment.base + segment.count;
    const chunk = encodeIndexChunk({
      offsets: segment.offsets!.slice(0, segment.count),
      streams: segment.streams!.slice(0, segment.count),
      newStreams: this.streamsByNum.filter((s) => s.count > 0 && s.first >= segment.base && s.first < end).map((s) => s.name),
    });
    await writeFileDurably(segment.file + INDEX_SUFFIX, chunk);
    segment.indexed = segment.count;
    segment.indexChunks = 1;
  }

  /** Checkpoints every stream's head; called when all committed records are in sealed segments. */
  private async writeHeads(segments: number): Promise<void> {
    await writeFileDurably(
      path.join(this.dir, HEADS_FILE),
      encodeHeads({
        segments,
        nextPosition: this.committed,
        streams: this.streamsByNum.filter((s) => s.count > 0).map((s) => [s.name, s.count, s.first, s.last]),
      }),
    );
  }

  /**
   * Zero-fills the active segment ahead of the data, up to `needed` bytes and at least one
   * step further (never past the segment size). Overwriting blocks that already belong to
   * the file makes a durable write cheaper than growing the file, whose new length the file
   * system must also journal.
   */
  private async extend(segment: Segment, needed: number): Promise<void> {
    const target = Math.min(this.segmentBytes, Math.max(needed, segment.allocated + PREALLOCATE_STEP));
    if (target <= segment.allocated) return;
    let at = segment.allocated;
    while (at < target) {
      const n = Math.min(ZERO_FILL.length, target - at);
      const { bytesWritten } = await this.writer!.write(ZERO_FILL, 0, n, at);
      at += bytesWritten;
    }
    segment.allocated = target;
  }

  private async startSegment(): Promise<void> {
    const segment = this.newSegment(this.committed, 0, false);
    segment.size = SEGMENT_HEADER_BYTES;
    segment.allocated = SEGMENT_HEADER_BYTES;
    const handle = await fs.open(segment.file, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_RDWR | fsConstants.O_DSYNC);
    try {
      await handle.write(SEGMENT_MAGIC, 0, SEGMENT_HEADER_BYTES, 0);
      await handle.datasync();
    } catch (error) {
      await handle.close();
      throw error;
    }
    await syncDir(this.dir);
    this.segments.push(segment);
    this.writer = handle;
    this.indexedStreamEnd = this.streamsByNum.filter((s) => s.count > 0).length;
  }

  // ---- reading -------------------------------------------------------------------------

  async readStream(stream: string, options?: ReadStreamOptions): Promise<ReadStreamResult> {
    this.checkOpen();
    checkStreamName(stream);
    const read = normalizeReadStream(options);
    const state = this.streams.get(stream);
    if (state === undefined || state.count === 0) throw new StreamNotFoundError(stream);
    const positions = await this.positionsOf(state);
    const { start, end, step } = selectRange(positions.length, read);
    const wanted: number[] = [];
    for (let i = start; i !== end; i += step) wanted.push(positions[i]!);
    return { events: await this.readPositions(wanted), lastRevision: BigInt(positions.length - 1) };
  }

  async readAll(options?: ReadAllOptions): Promise<ReadAllResult> {
    this.checkOpen();
    const read = normalizeReadAll(options);
    const total = this.committed;
    const { start, end, step } = selectRange(total, read);
    const lo = step === 1 ? start : end + 1;
    const hi = step === 1 ? end : start + 1;
    const events = lo < hi ? await this.readSpan(lo, hi) : [];
    if (step === -1) events.reverse();
    return { events, lastPosition: total === 0 ? null : BigInt(total - 1) };
  }

  async listStreams(): Promise<ListStreamsResult> {
    this.checkOpen();
    return {
      streams: this.streamsByNum
        .filter((s) => s.count > 0)
        .map((s) => ({
          stream: s.name,
          lastRevision: BigInt(s.count - 1),
          firstPosition: BigInt(s.first),
          lastPosition: BigInt(s.last),
        })),
    };
  }

  private async positionsOf(state: StreamState): Promise<number[]> {
    if (state.positions !== null) return state.positions;
    const last = state.last;
    for (const segment of this.segments) {
      if (segment.base + segment.count <= state.first) continue;
      if (segment.base > last) break;
      await this.ensureIndexed(segment);
    }
    if (state.positions !== null) return state.positions;
    // No await from here on: the scan sees one consistent state of the log.
    const found: number[] = [];
    for (const segment of this.segments) {
      if (segment.base + segment.count <= state.first) continue;
      if (found.length === state.count) break;
      const nums = segment.streams!;
      for (let j = 0; j < segment.count; j++) if (nums.get(j) === state.num) found.push(segment.base + j);
    }
    if (found.length !== state.count) {
      throw new CorruptLogError(
        this.dir,
        0,
        `the index lists ${found.length} events of stream ${JSON.stringify(state.name)} where ${state.count} were expected; delete ${HEADS_FILE} and the .idx files to rebuild the index`,
      );
    }
    state.positions = found;
    return found;
  }

  /** Loads the index of a sealed segment on first use, rebuilding it from records when needed. */
  private async ensureIndexed(segment: Segment): Promise<void> {
    if (segment.offsets !== null) return;
    segment.loading ??= this.loadSealedIndex(segment).finally(() => {
      segment.loading = null;
    });
    await segment.loading;
  }

  private async loadSealedIndex(segment: Segment): Promise<void> {
    const expected = segment.count;
    const loaded: Segment = { ...segment, count: 0, offsets: new U32List(), streams: new U32List(), indexed: 0 };
    const buf = await fs.readFile(segment.file + INDEX_SUFFIX).catch(() => null);
    const chunk = buf === null ? undefined : decodeIndexChunks(buf).chunks[0];
    const handle = await this.readerOf(segment);
    const fileSize = (await handle.stat()).size;
    if (chunk !== undefined && chunk.offsets.length === expected && indexLooksValid(chunk, fileSize, this.streamsByNum.length)) {
      const last = expected === 0 ? null : chunk.offsets[expected - 1]!;
      let size = SEGMENT_HEADER_BYTES;
      if (last !== null) {
        const header = Buffer.alloc(FRAME_HEADER_BYTES);
        await handle.read(header, 0, FRAME_HEADER_BYTES, last);
        const check = checkFrameHeader(header, 0);
        if ('reason' in check) throw new CorruptLogError(segment.file, last, `${check.reason} (a record the index lists as committed)`);
        size = last + FRAME_HEADER_BYTES + check.bodyLength;
      }
      segment.offsets = U32List.from(chunk.offsets);
      segment.streams = U32List.from(chunk.streams);
      segment.size = size;
      segment.allocated = fileSize;
      segment.indexed = expected;
      return;
    }
    // Rebuild by reading the whole segment; its records must all be intact and in sequence.
    const data = Buffer.alloc(fileSize);
    await readFully(handle, data, 0);
    if (!data.subarray(0, SEGMENT_HEADER_BYTES).equals(SEGMENT_MAGIC)) {
      throw new CorruptLogError(segment.file, 0, 'segment header is not a roundlog segment header (wrong magic or version)');
    }
    let offset = SEGMENT_HEADER_BYTES;
    while (offset < data.length) {
      const check = checkFrame(data, offset);
      if (check.kind === 'zeros') break;
      if (check.kind !== 'ok') {
        throw new CorruptLogError(segment.file, offset, check.kind === 'bad' ? check.reason : 'record cut short inside a sealed segment');
      }
      const record = this.decodeAt(segment.file, offset, data, check.bodyStart, check.end);
      const state = this.streams.get(record.stream);
      if (record.position !== segment.base + loaded.count || state === undefined) {
        throw new CorruptLogError(segment.file, offset, `record at position ${record.position} does not belong here (expected ${segment.base + loaded.count})`);
      }
      loaded.offsets!.push(offset);
      loaded.streams!.push(state.num);
      loaded.count++;
      offset = check.end;
    }
    if (loaded.count !== expected) {
      throw new CorruptLogError(segment.file, offset, `segment holds ${loaded.count} records where ${expected} were expected`);
    }
    segment.offsets = loaded.offsets;
    segment.streams = loaded.streams;
    segment.size = offset;
    segment.allocated = fileSize;
    segment.indexed = expected;
    if (!this.readOnly) {
      this.warn({ code: 'INDEX_REBUILT', message: `rebuilt the index of ${segment.file} from its records`, file: segment.file + INDEX_SUFFIX });
      await this.writeFullIndex(segment);
    }
  }

  private readerOf(segment: Segment): Promise<FileHandle> {
    segment.reader ??= fs.open(segment.file, 'r');
    return segment.reader;
  }

  /** Reads events at the given positions, in the given order. */
  private async readPositions(positions: readonly number[]): Promise<RecordedEvent[]> {
    const out: RecordedEvent[] = new Array(positions.length);
    const order = positions.map((p, i) => [p, i] as const).sort((a, b) => a[0] - b[0]);
    let i = 0;
    while (i < order.length) {
      let j = i + 1;
      while (j < order.length && order[j]![0] === order[j - 1]![0] + 1) j++;
      const events = await this.readSpan(order[i]![0], order[j - 1]![0] + 1);
      for (let k = i; k < j; k++) out[order[k]![1]] = events[k - i]!;
      i = j;
    }
    return out;
  }

  /** Reads the committed events at positions `[from, to)`. */
  private async readSpan(from: number, to: number): Promise<RecordedEvent[]> {
    const events: RecordedEvent[] = [];
    let position = from;
    while (position < to) {
      const segment = this.segmentOf(position);
      await this.ensureIndexed(segment);
      const first = position - segment.base;
      const last = Math.min(to - segment.base, segment.count, first + 4096);
      const offsets = segment.offsets!;
      const start = offsets.get(first);
      const end = last < segment.count ? offsets.get(last) : segment.size;
      const buf = Buffer.allocUnsafe(end - start);
      await readFully(await this.readerOf(segment), buf, start);
      for (let j = first; j < last; j++) {
        const at = offsets.get(j);
        const limit = (j + 1 < last ? offsets.get(j + 1) : end) - start;
        const check = checkFrame(buf, at - start, limit);
        if (check.kind !== 'ok' || check.end !== limit) {
          throw new CorruptLogError(segment.file, at, check.kind === 'bad' ? check.reason : 'record does not fill the space the index gives it');
        }
        const record = this.decodeAt(segment.file, at, buf, check.bodyStart, check.end);
        if (record.position !== segment.base + j) {
          throw new CorruptLogError(segment.file, at, `record has position ${record.position} where ${segment.base + j} was expected`);
        }
        events.push(toRecordedEvent(record));
      }
      position = segment.base + last;
    }
    return events;
  }

  private segmentOf(position: number): Segment {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.segments[mid]!.base <= position) lo = mid;
      else hi = mid - 1;
    }
    return this.segments[lo]!;
  }

  // ---- subscriptions -------------------------------------------------------------------

  subscribe(options?: SubscribeOptions): Observable<SubscriptionItem> {
    return new Observable<SubscriptionItem>((subscriber) => {
      const stream = options?.stream;
      const from = options?.from ?? 'start';
      try {
        this.checkOpen();
        if (stream !== undefined) checkStreamName(stream);
        if (!(from === 'start' || from === 'end' || (typeof from === 'bigint' && from >= 0n))) {
          throw new InvalidArgumentError('from', 'must be a non-negative bigint, "start" or "end"', from);
        }
      } catch (error) {
        subscriber.error(error);
        return;
      }
      // Next revision (stream) or position (all) to deliver; everything below it was delivered.
      let next: number;
      if (stream !== undefined) {
        const count = this.streams.get(stream)?.count ?? 0;
        next = from === 'start' ? 0 : from === 'end' ? count : Number(from);
      } else {
        next = from === 'start' ? 0 : from === 'end' ? this.committed : Number(from);
      }
      let live = false;
      const buffered: RecordedEvent[] = [];
      const deliver = (events: readonly RecordedEvent[]) => {
        for (const event of events) {
          if (subscriber.closed) return;
          if (stream !== undefined && event.stream !== stream) continue;
          const key = Number(stream !== undefined ? event.revision : event.position);
          if (key < next) continue;
          next = key + 1;
          subscriber.next({ kind: 'event', event });
        }
      };
      const listener: Listener = {
        onEvents: (events) => (live ? deliver(events) : buffered.push(...events)),
        onError: (error) => subscriber.error(error),
        onClose: () => subscriber.complete(),
      };
      this.listeners.add(listener);
      this.startPolling();
      const catchUp = async () => {
        for (;;) {
          if (subscriber.closed) return;
          let page: readonly RecordedEvent[];
          if (stream !== undefined) {
            const state = this.streams.get(stream);
            if (state === undefined || next >= state.count) break;
            page = (await this.readStream(stream, { fromRevision: BigInt(next), maxCount: CATCH_UP_PAGE })).events;
          } else {
            if (next >= this.committed) break;
            page = (await this.readAll({ fromPosition: BigInt(next), maxCount: CATCH_UP_PAGE })).events;
          }
          deliver(page);
          if (page.length === 0) break;
        }
        live = true;
        deliver(buffered.splice(0));
        if (!subscriber.closed) {
          subscriber.next({ kind: 'caughtUp', position: this.committed === 0 ? null : BigInt(this.committed - 1) });
        }
      };
      catchUp().catch((error: unknown) => subscriber.error(error));
      return () => {
        this.listeners.delete(listener);
        if (this.listeners.size === 0) this.stopPolling();
      };
    });
  }

  /** A read-only log learns of new records by looking at the files; a writer knows already. */
  private startPolling(): void {
    if (!this.readOnly || this.pollTimer !== null) return;
    const tick = () => {
      this.polling = this.poll()
        .catch((error: unknown) => {
          for (const listener of [...this.listeners]) listener.onError(error);
          this.listeners.clear();
        })
        .finally(() => {
          this.polling = null;
          if (this.pollTimer !== null && this.listeners.size > 0) this.pollTimer = setTimeout(tick, this.pollIntervalMs);
          else this.pollTimer = null;
        });
    };
    this.pollTimer = setTimeout(tick, this.pollIntervalMs);
  }

  private stopPolling(): void {
    if (this.pollTimer !== null) clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }

  /** Reads records a writer in another process has added since the last look. */
  private async poll(): Promise<void> {
    const before = this.committed;
    for (;;) {
      let segment = this.segments.at(-1);
      if (segment === undefined) {
        if (!(await exists(this.pathOf(0)))) break;
        segment = this.newSegment(0, 0, false);
        segment.size = SEGMENT_HEADER_BYTES;
        this.segments.push(segment);
      }
      await this.readNew(segment);
      const nextFile = this.pathOf(this.committed);
      if (this.committed === segment.base + segment.count && this.committed > segment.base && (await exists(nextFile))) {
        // The writer sealed this segment: take what it finished writing, then move on.
        await this.readNew(segment);
        segment.sealed = true;
        const nextSegment = this.newSegment(this.committed, 0, false);
        nextSegment.size = SEGMENT_HEADER_BYTES;
        this.segments.push(nextSegment);
        continue;
      }
      break;
    }
    if (this.committed > before) {
      const events = await this.readSpan(before, this.committed);
      for (const listener of this.listeners) listener.onEvents(events);
    }
  }

  /** A tail that looked damaged at the last look of a follower, not yet declared corrupt. */
  private suspect: { at: string; bytes: string } | null = null;

  private async readNew(segment: Segment): Promise<void> {
    const handle = await this.readerOf(segment);
    const fileSize = (await handle.stat()).size;
    if (fileSize <= segment.size) return;
    // The writer zero-fills ahead of its data: a zero header means nothing new yet.
    const probe = Buffer.alloc(Math.min(FRAME_HEADER_BYTES, fileSize - segment.size));
    await readFully(handle, probe, segment.size);
    if (isZero(probe, 0, probe.length)) return;
    const buf = Buffer.allocUnsafe(fileSize - segment.size);
    await readFully(handle, buf, segment.size);
    let offset = 0;
    while (offset < buf.length) {
      const check = checkFrame(buf, offset);
      if (check.kind !== 'ok') {
        const verdict = classifyTail(buf, offset, check);
        if (verdict.kind === 'corrupt') {
          // A read racing the writer's copy into the page cache can see a later page already
          // written and an earlier one not yet: bytes that look damaged. Damage is declared only
          // when the next look finds the same bytes at the same place.
          const seen = { at: `${segment.file}:${segment.size + offset}`, bytes: createHash('sha256').update(buf.subarray(offset)).digest('hex') };
          if (this.suspect === null || this.suspect.at !== seen.at || this.suspect.bytes !== seen.bytes) {
            this.suspect = seen;
            break;
          }
          throw new CorruptLogError(segment.file, segment.size + offset, verdict.reason);
        }
        break;
      }
      this.suspect = null;
      const record = this.decodeAt(segment.file, segment.size + offset, buf, check.bodyStart, check.end);
      this.ingest(segment, record, segment.size + offset);
      offset = check.end;
    }
    segment.size += offset;
  }


  // ---- verify and close ----------------------------------------------------------------

  async verify(): Promise<VerifyResult> {
    this.checkOpen();
    await this.flushing;
    const problems: VerifyProblem[] = [];
    const revisions = new Map<string, number>();
    let eventsChecked = 0;
    let bytesChecked = 0;
    let expectedPosition = 0;
    for (const [i, segment] of this.segments.entries()) {
      const data = await fs.readFile(segment.file).catch((error: Error) => {
        problems.push({ file: segment.file, offset: 0, reason: `cannot read: ${error.message}` });
        return null;
      });
      if (data === null) continue;
      if (segment.base !== expectedPosition) {
        problems.push({ file: segment.file, offset: 0, reason: `segment starts at position ${segment.base}, expected ${expectedPosition}` });
      }
      if (!data.subarray(0, SEGMENT_HEADER_BYTES).equals(SEGMENT_MAGIC)) {
        problems.push({ file: segment.file, offset: 0, reason: 'segment header is not a roundlog segment header' });
        continue;
      }
      const isLast = i === this.segments.length - 1;
      const limit = isLast ? segment.size : data.length;
      let offset = SEGMENT_HEADER_BYTES;
      let position = segment.base;
      while (offset < limit) {
        const check = checkFrame(data, offset, limit);
        if (check.kind === 'zeros') break;
        if (check.kind !== 'ok') {
          problems.push({
            file: segment.file,
            offset,
            reason: `${check.kind === 'bad' ? check.reason : 'record cut short'}; the ${limit - offset} bytes from here to the end of the segment could not be checked`,
          });
          break;
        }
        try {
          const record = decodeRecordBody(data, check.bodyStart, check.end);
          const revision = revisions.get(record.stream) ?? 0;
          if (record.position !== position) {
            problems.push({ file: segment.file, offset, reason: `record has position ${record.position}, expected ${position}` });
          } else if (record.revision !== revision) {
            problems.push({ file: segment.file, offset, reason: `record of stream ${JSON.stringify(record.stream)} has revision ${record.revision}, expected ${revision}` });
          }
          revisions.set(record.stream, revision + 1);
          eventsChecked++;
        } catch (error) {
          problems.push({ file: segment.file, offset, reason: `record cannot be decoded: ${(error as Error).message}` });
        }
        bytesChecked += check.end - offset;
        offset = check.end;
        position++;
      }
      expectedPosition = position;
    }
    return { ok: problems.length === 0, eventsChecked, bytesChecked, problems };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.flushing !== null) await this.flushing;
    this.stopPolling();
    await this.polling;
    const segment = this.segments.at(-1);
    if (!this.readOnly && this.failed === null && segment !== undefined && !segment.sealed) {
      await this.appendIndex(segment).catch(() => undefined);
    }
    await this.indexWriter?.close().catch(() => undefined);
    await this.writer?.close().catch(() => undefined);
    await Promise.all(this.segments.map((s) => s.reader?.then((handle) => handle.close()).catch(() => undefined)));
    await this.lock?.release();
    for (const listener of [...this.listeners]) listener.onClose();
    this.listeners.clear();
  }

  stats(): FileLogStats {
    return { ...this.counters, segments: this.segments.length };
  }

  private checkOpen(): void {
    if (this.closed) throw new ClosedError(`file log ${this.dir}`);
  }
}

function indexLooksValid(chunk: { offsets: Uint32Array; streams: Uint32Array }, fileSize: number, streamCount: number): boolean {
  let previous = SEGMENT_HEADER_BYTES - 1;
  for (let j = 0; j < chunk.offsets.length; j++) {
    const offset = chunk.offsets[j]!;
    if (offset <= previous || offset + FRAME_HEADER_BYTES > fileSize || chunk.streams[j]! >= streamCount) return false;
    previous = offset;
  }
  return true;
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

function toRecordedEvent(record: StoredRecord): RecordedEvent {
  return {
    type: record.type,
    data: record.data,
    stream: record.stream,
    revision: BigInt(record.revision),
    position: BigInt(record.position),
    id: record.id,
    timestamp: new Date(record.timestampMs),
  };
}

async function readFully(handle: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await handle.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
}

function writeAllAtSync(fd: number, buffers: Buffer[], position: number): void {
  let at = position;
  for (let i = 0; i < buffers.length; i += 256) {
    const group = buffers.slice(i, i + 256);
    const total = group.reduce((sum, b) => sum + b.length, 0);
    let written = writevSync(fd, group, at);
    if (written < total) {
      const rest = Buffer.concat(group).subarray(written);
      while (written < total) written += writeSync(fd, rest, written - (total - rest.length), total - written, at + written);
    }
    at += total;
  }
}

async function writeFileDurably(file: string, data: Buffer): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  const handle = await fs.open(temp, 'w');
  try {
    await handle.write(data, 0, data.length, 0);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await fs.rename(temp, file);
  await syncDir(path.dirname(file));
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
