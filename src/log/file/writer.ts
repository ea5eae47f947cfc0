/**
 * The writer of a file log: appends checked against the expected revision, group commit into
 * durable writes, zero-fill ahead of the data, index chunks and their compaction, and the seal
 * that closes a full segment, checkpoints the heads and starts the next one.
 */
import { constants as fsConstants, promises as fs, writeSync, writevSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../../errors.ts';
import { LogReadOnlyError, LogWriteFailedError, WrongExpectedRevisionError } from '../errors.ts';
import type { AppendOptions, AppendResult, EventData, RecordedEvent } from '../types.ts';
import { checkEvents, checkStreamName, expectedRevisionOf } from '../validate.ts';
import {
  FRAME_HEADER_BYTES,
  HEADS_FILE,
  INDEX_SUFFIX,
  MAX_RECORD_BYTES,
  SEGMENT_HEADER_BYTES,
  SEGMENT_MAGIC,
  decodeRecordBody,
  encodeHeads,
  encodeIndexChunk,
  encodeRecord,
} from './format.ts';
import {
  addStream,
  checkOpen,
  newSegment,
  place,
  toRecordedEvent,
  type FileLogState,
  type PendingAppend,
  type Segment,
} from './state.ts';
import { syncDir, writeStep } from '../../durable.ts';

/** How far ahead of the data the writer zero-fills the active segment. */
const PREALLOCATE_STEP = 1024 * 1024;
const ZERO_FILL = Buffer.alloc(PREALLOCATE_STEP);
/** Index entries are appended to the active segment's index once this many are pending. */
const INDEX_EVERY = 1024;
/** The active segment's index is rewritten as one chunk once it has this many. */
const MAX_INDEX_CHUNKS = 32;

export async function append(
  log: FileLogState,
  stream: string,
  events: readonly EventData[],
  options?: AppendOptions,
): Promise<AppendResult> {
  checkOpen(log);
  if (log.readOnly) throw new LogReadOnlyError(log.dir);
  if (log.failed) throw log.failed;
  checkStreamName(stream);
  checkEvents(events);
  const expected = expectedRevisionOf(options);
  const existing = log.streams.get(stream);
  const current = existing?.pending ?? 0;
  const ok =
    expected === 'any' ||
    (expected === 'no_stream' && current === 0) ||
    (expected === 'stream_exists' && current > 0) ||
    (typeof expected === 'bigint' && current > 0 && BigInt(current - 1) === expected);
  if (!ok) throw new WrongExpectedRevisionError(stream, expected, current === 0 ? 'no_stream' : BigInt(current - 1));

  const timestampMs = log.clock().getTime();
  const firstPosition = log.nextPosition;
  const frames = events.map((event, i) => {
    const frame = encodeRecord(
      {
        position: firstPosition + i,
        stream,
        revision: current + i,
        id: event.id ?? log.newId(),
        timestampMs,
        type: event.type,
        data: event.data,
      },
      log.compressThreshold,
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
  const state = existing ?? addStream(log, stream);
  state.pending = current + events.length;
  log.nextPosition += events.length;
  const lastRevision = state.pending - 1;
  return new Promise<AppendResult>((resolve, reject) => {
    log.queue.push({ state, frames, firstPosition, lastRevision, resolve, reject });
    log.flushing ??= Promise.resolve().then(() => flush(log));
  });
}

/**
 * Writes queued appends in batches, one durable write per batch (group commit). The write is
 * synchronous on an O_DSYNC file: it blocks the event loop for the time the disk takes, and in
 * exchange costs no thread-pool round trip; appends made meanwhile wait for the next batch.
 */
async function flush(log: FileLogState): Promise<void> {
  try {
    while (log.queue.length > 0 && log.failed === null) {
      const segment = log.segments.at(-1)!;
      // One batch fills at most the rest of the segment (or holds one append), so that
      // segments stay near their size and offsets within u32.
      let room = log.segmentBytes - segment.size;
      let take = 0;
      while (take < log.queue.length) {
        const bytes = log.queue[take]!.frames.reduce((sum, f) => sum + f.length, 0);
        if (take > 0 && bytes > room) break;
        room -= bytes;
        take++;
      }
      const batch = log.queue.splice(0, take);
      const frames = batch.flatMap((p) => p.frames);
      const bytes = frames.reduce((sum, f) => sum + f.length, 0);
      try {
        if (segment.size + bytes > segment.allocated && segment.allocated < log.segmentBytes) {
          await extend(log, segment, segment.size + bytes);
        }
        // The segment is open with O_DSYNC: each write returns once its bytes are durable.
        writeAllAtSync(log.writer!.fd, frames, segment.size);
      } catch (error) {
        fail(log, new LogWriteFailedError(segment.file, error), batch);
        break;
      }
      commit(log, segment, batch);
      log.counters.flushes++;
      log.counters.appends += batch.length;
      log.counters.events += frames.length;
      try {
        if (segment.count - segment.indexed >= INDEX_EVERY) await appendIndex(log, segment);
        if (segment.size >= log.segmentBytes) await seal(log, segment);
      } catch (error) {
        fail(log, new LogWriteFailedError(segment.file, error), []);
      }
    }
  } finally {
    log.flushing = null;
  }
}

function fail(log: FileLogState, error: LogWriteFailedError, batch: PendingAppend[]): void {
  log.failed = error;
  for (const pending of [...batch, ...log.queue]) pending.reject(error);
  log.queue = [];
}

function commit(log: FileLogState, segment: Segment, batch: PendingAppend[]): void {
  let offset = segment.size;
  for (const pending of batch) {
    for (const frame of pending.frames) {
      place(log, segment, pending.state, offset);
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
  if (log.listeners.size > 0) {
    const events: RecordedEvent[] = [];
    for (const pending of batch) {
      for (const frame of pending.frames) {
        events.push(toRecordedEvent(decodeRecordBody(frame, FRAME_HEADER_BYTES, frame.length)));
      }
    }
    for (const listener of log.listeners) listener.onEvents(events);
  }
}

/** Adds the active segment's entries not yet in its index file as one chunk. */
export async function appendIndex(log: FileLogState, segment: Segment): Promise<void> {
  if (segment.indexed >= segment.count) return;
  // Each close adds a chunk; past a few dozen, reading them costs more than rewriting one.
  if (segment.indexChunks >= MAX_INDEX_CHUNKS) {
    await log.indexWriter?.close();
    log.indexWriter = null;
    await writeFullIndex(log, segment);
    log.indexedStreamEnd = log.streamsByNum.filter((st) => st.count > 0).length;
    return;
  }
  const from = segment.indexed;
  const streamsBefore = log.indexedStreamEnd;
  const nums = segment.streams!.slice(from, segment.count);
  let end = streamsBefore;
  for (const num of nums) if (num + 1 > end) end = num + 1;
  const chunk = encodeIndexChunk({
    offsets: segment.offsets!.slice(from, segment.count),
    streams: nums,
    newStreams: log.streamsByNum.slice(streamsBefore, end).map((s) => s.name),
  });
  log.indexWriter ??= await fs.open(segment.file + INDEX_SUFFIX, 'a');
  await log.indexWriter.write(chunk);
  segment.indexed = segment.count;
  segment.indexChunks++;
  log.indexedStreamEnd = end;
}

/** Closes the active segment: full index, heads checkpoint, then a new segment. */
async function seal(log: FileLogState, segment: Segment): Promise<void> {
  await log.indexWriter?.close();
  log.indexWriter = null;
  await writeFullIndex(log, segment);
  if (segment.allocated > segment.size) {
    await log.writer!.truncate(segment.size);
    await log.writer!.datasync();
    segment.allocated = segment.size;
  }
  segment.sealed = true;
  await log.writer?.close();
  log.writer = null;
  await writeHeads(log, log.segments.length);
  await startSegment(log);
}

/** Replaces a segment's index file with one chunk listing all its records. */
export async function writeFullIndex(log: FileLogState, segment: Segment): Promise<void> {
  const end = segment.base + segment.count;
  const chunk = encodeIndexChunk({
    offsets: segment.offsets!.slice(0, segment.count),
    streams: segment.streams!.slice(0, segment.count),
    newStreams: log.streamsByNum
      .filter((s) => s.count > 0 && s.first >= segment.base && s.first < end)
      .map((s) => s.name),
  });
  await writeFileDurably(segment.file + INDEX_SUFFIX, chunk);
  segment.indexed = segment.count;
  segment.indexChunks = 1;
}

/** Checkpoints every stream's head; called when all committed records are in sealed segments. */
async function writeHeads(log: FileLogState, segments: number): Promise<void> {
  await writeFileDurably(
    path.join(log.dir, HEADS_FILE),
    encodeHeads({
      segments,
      nextPosition: log.committed,
      streams: log.streamsByNum.filter((s) => s.count > 0).map((s) => [s.name, s.count, s.first, s.last]),
    }),
  );
}

/**
 * Zero-fills the active segment ahead of the data, up to `needed` bytes and at least one
 * step further (never past the segment size). Overwriting blocks that already belong to
 * the file makes a durable write cheaper than growing the file, whose new length the file
 * system must also journal.
 */
async function extend(log: FileLogState, segment: Segment, needed: number): Promise<void> {
  const target = Math.min(log.segmentBytes, Math.max(needed, segment.allocated + PREALLOCATE_STEP));
  if (target <= segment.allocated) return;
  let at = segment.allocated;
  while (at < target) {
    const n = Math.min(ZERO_FILL.length, target - at);
    const { bytesWritten } = await log.writer!.write(ZERO_FILL, 0, n, at);
    at += bytesWritten;
  }
  segment.allocated = target;
}

/** Creates the next segment at the committed position and makes it the one written to. */
export async function startSegment(log: FileLogState): Promise<void> {
  const segment = newSegment(log, log.committed, 0, false);
  segment.size = SEGMENT_HEADER_BYTES;
  segment.allocated = SEGMENT_HEADER_BYTES;
  const flags = fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_RDWR | fsConstants.O_DSYNC;
  const handle = await fs.open(segment.file, flags);
  try {
    await handle.write(SEGMENT_MAGIC, 0, SEGMENT_HEADER_BYTES, 0);
    await handle.datasync();
  } catch (error) {
    await handle.close();
    throw error;
  }
  await syncDir(log.dir);
  log.segments.push(segment);
  log.writer = handle;
  log.indexedStreamEnd = log.streamsByNum.filter((s) => s.count > 0).length;
}

function writeAllAtSync(fd: number, buffers: Buffer[], position: number): void {
  let at = position;
  for (let i = 0; i < buffers.length; i += 256) {
    const group = buffers.slice(i, i + 256);
    const total = group.reduce((sum, b) => sum + b.length, 0);
    let written = writevSync(fd, group, at);
    if (written < total) {
      const rest = Buffer.concat(group).subarray(written);
      while (written < total) {
        written += writeSync(fd, rest, written - (total - rest.length), total - written, at + written);
      }
    }
    at += total;
  }
}

async function writeFileDurably(file: string, data: Buffer): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await writeStep(file, `writing the log file ${path.basename(file)}`, async () => {
    try {
      const handle = await fs.open(temp, 'w');
      try {
        await handle.write(data, 0, data.length, 0);
        await handle.datasync();
      } finally {
        await handle.close();
      }
      await fs.rename(temp, file);
    } catch (error) {
      await fs.rm(temp, { force: true });
      throw error;
    }
    await syncDir(path.dirname(file));
  });
}
