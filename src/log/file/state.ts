/**
 * The in-memory state of an open file log, shared by its operations (open, writer, reader,
 * follower, verify): segments and their indexes, stream heads, open files and settings; and
 * the steps that take a committed record into that state.
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ClosedError } from '../../errors.ts';
import { CorruptLogError, type LogWriteFailedError } from '../errors.ts';
import type { AppendResult, RecordedEvent } from '../types.ts';
import { decodeRecordBody, segmentFileName, type StoredRecord } from './format.ts';
import type { HeldLock } from './lock.ts';
import type { FileEventLogOptions, FileLogWarning } from './options.ts';
import { U32List } from './u32list.ts';

export type Segment = {
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

export type StreamState = {
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

export type PendingAppend = {
  state: StreamState;
  frames: Buffer[];
  firstPosition: number;
  lastRevision: number;
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
};

export type Listener = {
  onEvents(events: readonly RecordedEvent[]): void;
  onError(error: unknown): void;
  onClose(): void;
};

export type FileLogState = {
  readonly dir: string;
  readonly readOnly: boolean;
  readonly lock: HeldLock | null;
  readonly segmentBytes: number;
  readonly compressThreshold: number;
  readonly clock: () => Date;
  readonly newId: () => string;
  readonly pollIntervalMs: number;
  /** Writer: cut off stray bytes after the data of the last segment instead of refusing to open. */
  readonly repairTail: boolean;
  /** Writer: write every segment's index again from its records at open. */
  readonly rebuildIndexes: boolean;
  readonly warn: (warning: FileLogWarning) => void;

  segments: Segment[];
  readonly streams: Map<string, StreamState>;
  readonly streamsByNum: StreamState[];
  /** Position after the last committed record. */
  committed: number;
  /** Position after the last accepted append (writer). */
  nextPosition: number;

  writer: FileHandle | null;
  indexWriter: FileHandle | null;
  /** Streams named in the active segment's index file, or known before that segment. */
  indexedStreamEnd: number;
  queue: PendingAppend[];
  flushing: Promise<void> | null;
  failed: LogWriteFailedError | null;
  closed: boolean;
  readonly counters: { appends: number; events: number; flushes: number };

  readonly listeners: Set<Listener>;
  pollTimer: NodeJS.Timeout | null;
  polling: Promise<void> | null;
  /** A tail that looked damaged at the last look of a follower, not yet declared corrupt. */
  suspect: { at: string; bytes: string } | null;
};

export function createState(
  dir: string,
  readOnly: boolean,
  lock: HeldLock | null,
  segmentBytes: number,
  options: FileEventLogOptions,
  warn: (warning: FileLogWarning) => void,
): FileLogState {
  return {
    dir,
    readOnly,
    lock,
    segmentBytes,
    compressThreshold: options.compressThreshold ?? 4096,
    clock: options.clock ?? (() => new Date()),
    newId: options.newId ?? randomUUID,
    pollIntervalMs: options.pollIntervalMs ?? 50,
    repairTail: options.repairTail ?? false,
    rebuildIndexes: options.rebuildIndexes ?? false,
    warn,
    segments: [],
    streams: new Map(),
    streamsByNum: [],
    committed: 0,
    nextPosition: 0,
    writer: null,
    indexWriter: null,
    indexedStreamEnd: 0,
    queue: [],
    flushing: null,
    failed: null,
    closed: false,
    counters: { appends: 0, events: 0, flushes: 0 },
    listeners: new Set(),
    pollTimer: null,
    polling: null,
    suspect: null,
  };
}

export function checkOpen(log: FileLogState): void {
  if (log.closed) throw new ClosedError(`file log ${log.dir}`);
}

export function pathOf(log: FileLogState, base: number): string {
  return path.join(log.dir, segmentFileName(base));
}

export function newSegment(log: FileLogState, base: number, count: number, sealed: boolean): Segment {
  return {
    base,
    file: pathOf(log, base),
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

export function addStream(log: FileLogState, name: string): StreamState {
  const num = log.streamsByNum.length;
  const state: StreamState = { name, num, count: 0, first: -1, last: -1, positions: null, pending: 0 };
  log.streams.set(name, state);
  log.streamsByNum.push(state);
  return state;
}

/** The segment holding `position`. */
export function segmentOf(log: FileLogState, position: number): Segment {
  let lo = 0;
  let hi = log.segments.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (log.segments[mid]!.base <= position) lo = mid;
    else hi = mid - 1;
  }
  return log.segments[lo]!;
}

export function readerOf(segment: Segment): Promise<FileHandle> {
  segment.reader ??= fs.open(segment.file, 'r');
  return segment.reader;
}

/** Takes a record found on disk into the in-memory state, checking it is the one expected. */
export function ingest(log: FileLogState, segment: Segment, record: StoredRecord, offset: number): void {
  if (record.position !== log.committed) {
    throw new CorruptLogError(
      segment.file,
      offset,
      `record has position ${record.position} where ${log.committed} was expected`,
    );
  }
  const state = log.streams.get(record.stream) ?? addStream(log, record.stream);
  if (record.revision !== state.count) {
    throw new CorruptLogError(
      segment.file,
      offset,
      `record of stream ${JSON.stringify(record.stream)} has revision ${record.revision} ` +
        `where ${state.count} was expected`,
    );
  }
  place(log, segment, state, offset);
}

/** Records that the next position of the log is `offset` in `segment`, for `state`'s stream. */
export function place(log: FileLogState, segment: Segment, state: StreamState, offset: number): void {
  const position = segment.base + segment.count;
  segment.offsets!.push(offset);
  segment.streams!.push(state.num);
  segment.count++;
  if (state.count === 0) state.first = position;
  state.count++;
  state.pending = Math.max(state.pending, state.count);
  state.last = position;
  state.positions?.push(position);
  log.committed = position + 1;
}

/** `place` for many records at once: what an index chunk lists. */
export function placeAll(log: FileLogState, segment: Segment, offsets: Uint32Array, nums: Uint32Array): void {
  const base = segment.base + segment.count;
  const streams = log.streamsByNum.length;
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
    const state = log.streamsByNum[num]!;
    if (state.count === 0) state.first = firsts[num]!;
    state.count += counts[num]!;
    state.pending = Math.max(state.pending, state.count);
    state.last = lasts[num]!;
    state.positions = null;
  }
  segment.offsets!.pushAll(offsets);
  segment.streams!.pushAll(nums);
  segment.count += nums.length;
  log.committed = base + nums.length;
}

export function decodeAt(file: string, offset: number, buf: Buffer, bodyStart: number, end: number): StoredRecord {
  try {
    return decodeRecordBody(buf, bodyStart, end);
  } catch (error) {
    const reason = `record passes its checksum but cannot be decoded: ${(error as Error).message}`;
    throw new CorruptLogError(file, offset, reason);
  }
}

export function toRecordedEvent(record: StoredRecord): RecordedEvent {
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

export async function readFully(handle: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await handle.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
}
