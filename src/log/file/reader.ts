/**
 * Reads of a file log: a stream's events, spans of the whole log and the list of streams.
 * The index of a sealed segment is loaded on first use, and rebuilt from its records when it
 * is missing or does not match.
 */
import { CorruptLogError, StreamNotFoundError } from '../errors.ts';
import type {
  ListStreamsResult,
  ReadAllOptions,
  ReadAllResult,
  ReadStreamOptions,
  ReadStreamResult,
  RecordedEvent,
} from '../types.ts';
import { checkStreamName, normalizeReadAll, normalizeReadStream, selectRange } from '../validate.ts';
import {
  FRAME_HEADER_BYTES,
  HEADS_FILE,
  INDEX_SUFFIX,
  SEGMENT_HEADER_BYTES,
  SEGMENT_MAGIC,
  checkFrame,
  checkFrameHeader,
  decodeIndexChunks,
  readIndexFile,
} from './format.ts';
import {
  checkOpen,
  decodeAt,
  readFully,
  readerOf,
  segmentOf,
  toRecordedEvent,
  type FileLogState,
  type Segment,
  type StreamState,
} from './state.ts';
import { U32List } from './u32list.ts';
import { writeFullIndex } from './writer.ts';

export async function readStream(
  log: FileLogState,
  stream: string,
  options?: ReadStreamOptions,
): Promise<ReadStreamResult> {
  checkOpen(log);
  checkStreamName(stream);
  const read = normalizeReadStream(options);
  const state = log.streams.get(stream);
  if (state === undefined || state.count === 0) throw new StreamNotFoundError(stream);
  const positions = await positionsOf(log, state);
  const { start, end, step } = selectRange(positions.length, read);
  const wanted: number[] = [];
  const revisions: number[] = [];
  for (let i = start; i !== end; i += step) {
    wanted.push(positions[i]!);
    revisions.push(i);
  }
  const events = await readPositions(log, wanted);
  // The positions come from the index (a cache): a record of another stream or revision there
  // is a lying index, never an event of this stream.
  for (const [k, event] of events.entries()) {
    if (event.stream !== stream || event.revision !== BigInt(revisions[k]!)) {
      const segment = segmentOf(log, wanted[k]!);
      throw new CorruptLogError(
        segment.file + INDEX_SUFFIX,
        0,
        `the index gives log position ${wanted[k]} as revision ${revisions[k]} of stream ` +
          `${JSON.stringify(stream)}, where the record there is revision ${event.revision} of stream ` +
          `${JSON.stringify(event.stream)}; ${REBUILD_INDEXES}`,
      );
    }
  }
  return { events, lastRevision: BigInt(positions.length - 1) };
}

/**
 * Checks the frames (length, checksums) of the records of `stream` before `toRevision` without
 * decoding them; throws `CorruptLogError` at the first damaged one. A reader that starts from a
 * snapshot calls it so that damage earlier in the history is seen, at a fraction of a full read.
 */
export async function checkStream(
  log: FileLogState,
  stream: string,
  options: { toRevision?: bigint } = {},
): Promise<void> {
  checkOpen(log);
  checkStreamName(stream);
  const state = log.streams.get(stream);
  if (state === undefined || state.count === 0) throw new StreamNotFoundError(stream);
  const positions = await positionsOf(log, state);
  const to =
    options.toRevision === undefined ? positions.length : Math.min(Number(options.toRevision), positions.length);
  let i = 0;
  while (i < to) {
    let j = i + 1;
    while (j < to && positions[j] === positions[j - 1]! + 1) j++;
    await readSpan(log, positions[i]!, positions[j - 1]! + 1, false);
    i = j;
  }
}

export async function readAll(log: FileLogState, options?: ReadAllOptions): Promise<ReadAllResult> {
  checkOpen(log);
  const read = normalizeReadAll(options);
  const total = log.committed;
  const { start, end, step } = selectRange(total, read);
  const lo = step === 1 ? start : end + 1;
  const hi = step === 1 ? end : start + 1;
  const events = lo < hi ? await readSpan(log, lo, hi) : [];
  if (step === -1) events.reverse();
  return { events, lastPosition: total === 0 ? null : BigInt(total - 1) };
}

export async function listStreams(log: FileLogState): Promise<ListStreamsResult> {
  checkOpen(log);
  return {
    streams: log.streamsByNum
      .filter((s) => s.count > 0)
      .map((s) => ({
        stream: s.name,
        lastRevision: BigInt(s.count - 1),
        firstPosition: BigInt(s.first),
        lastPosition: BigInt(s.last),
      })),
  };
}

async function positionsOf(log: FileLogState, state: StreamState): Promise<number[]> {
  if (state.positions !== null) return state.positions;
  const last = state.last;
  for (const segment of log.segments) {
    if (segment.base + segment.count <= state.first) continue;
    if (segment.base > last) break;
    await ensureIndexed(log, segment);
  }
  if (state.positions !== null) return state.positions;
  // No await from here on: the scan sees one consistent state of the log.
  const found: number[] = [];
  for (const segment of log.segments) {
    if (segment.base + segment.count <= state.first) continue;
    if (found.length === state.count) break;
    const nums = segment.streams!;
    for (let j = 0; j < segment.count; j++) if (nums.get(j) === state.num) found.push(segment.base + j);
  }
  if (found.length !== state.count) {
    throw new CorruptLogError(
      log.dir,
      0,
      `the index lists ${found.length} events of stream ${JSON.stringify(state.name)} where ${state.count} ` +
        `were expected; ${REBUILD_INDEXES}`,
    );
  }
  state.positions = found;
  return found;
}

/** What to do about an index that lies: it is a cache of the records. */
const REBUILD_INDEXES =
  "run 'roundlog verify --repair' to write the indexes again from the records " +
  `(or delete ${HEADS_FILE} and the .idx files: the next writer rebuilds them)`;

/** Loads the index of a sealed segment on first use, rebuilding it from records when needed. */
export async function ensureIndexed(log: FileLogState, segment: Segment): Promise<void> {
  if (segment.offsets !== null) return;
  segment.loading ??= loadSealedIndex(log, segment).finally(() => {
    segment.loading = null;
  });
  await segment.loading;
}

async function loadSealedIndex(log: FileLogState, segment: Segment): Promise<void> {
  const expected = segment.count;
  const loaded: Segment = { ...segment, count: 0, offsets: new U32List(), streams: new U32List(), indexed: 0 };
  const handle = await readerOf(segment);
  const fileSize = (await handle.stat()).size;
  // An index that is not a regular file is never opened: the segment is read in full, and a
  // writer writes the index again (temp file and rename, over whatever was there).
  const buf = (await readIndexFile(segment.file + INDEX_SUFFIX, fileSize)).bytes;
  const chunk = buf === null ? undefined : decodeIndexChunks(buf).chunks[0];
  if (
    chunk !== undefined &&
    chunk.offsets.length === expected &&
    indexLooksValid(chunk, fileSize, log.streamsByNum.length)
  ) {
    const last = expected === 0 ? null : chunk.offsets[expected - 1]!;
    let size = SEGMENT_HEADER_BYTES;
    if (last !== null) {
      const header = Buffer.alloc(FRAME_HEADER_BYTES);
      await handle.read(header, 0, FRAME_HEADER_BYTES, last);
      const check = checkFrameHeader(header, 0);
      if ('reason' in check) {
        throw new CorruptLogError(segment.file, last, `${check.reason} (a record the index lists as committed)`);
      }
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
    const reason = 'segment header is not a roundlog segment header (wrong magic or version)';
    throw new CorruptLogError(segment.file, 0, reason);
  }
  let offset = SEGMENT_HEADER_BYTES;
  while (offset < data.length) {
    const check = checkFrame(data, offset);
    if (check.kind === 'zeros') break;
    if (check.kind !== 'ok') {
      const reason = check.kind === 'bad' ? check.reason : 'record cut short inside a sealed segment';
      throw new CorruptLogError(segment.file, offset, reason);
    }
    const record = decodeAt(segment.file, offset, data, check.bodyStart, check.end);
    const state = log.streams.get(record.stream);
    if (record.position !== segment.base + loaded.count || state === undefined) {
      throw new CorruptLogError(
        segment.file,
        offset,
        `record at position ${record.position} does not belong here (expected ${segment.base + loaded.count})`,
      );
    }
    loaded.offsets!.push(offset);
    loaded.streams!.push(state.num);
    loaded.count++;
    offset = check.end;
  }
  if (loaded.count !== expected) {
    const reason = `segment holds ${loaded.count} records where ${expected} were expected`;
    throw new CorruptLogError(segment.file, offset, reason);
  }
  segment.offsets = loaded.offsets;
  segment.streams = loaded.streams;
  segment.size = offset;
  segment.allocated = fileSize;
  segment.indexed = expected;
  if (!log.readOnly) {
    log.warn({
      code: 'INDEX_REBUILT',
      message: `rebuilt the index of ${segment.file} from its records`,
      file: segment.file + INDEX_SUFFIX,
    });
    await writeFullIndex(log, segment);
  }
}

function indexLooksValid(
  chunk: { offsets: Uint32Array; streams: Uint32Array },
  fileSize: number,
  streamCount: number,
): boolean {
  let previous = SEGMENT_HEADER_BYTES - 1;
  for (let j = 0; j < chunk.offsets.length; j++) {
    const offset = chunk.offsets[j]!;
    if (offset <= previous || offset + FRAME_HEADER_BYTES > fileSize || chunk.streams[j]! >= streamCount) return false;
    previous = offset;
  }
  return true;
}

/** Reads events at the given positions, in the given order. */
async function readPositions(log: FileLogState, positions: readonly number[]): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = new Array(positions.length);
  const order = positions.map((p, i) => [p, i] as const).sort((a, b) => a[0] - b[0]);
  let i = 0;
  while (i < order.length) {
    let j = i + 1;
    while (j < order.length && order[j]![0] === order[j - 1]![0] + 1) j++;
    const events = await readSpan(log, order[i]![0], order[j - 1]![0] + 1);
    for (let k = i; k < j; k++) out[order[k]![1]] = events[k - i]!;
    i = j;
  }
  return out;
}

/**
 * Reads the committed events at positions `[from, to)`; with `decode` false it only checks their
 * frames (and returns nothing).
 */
export async function readSpan(log: FileLogState, from: number, to: number, decode = true): Promise<RecordedEvent[]> {
  const events: RecordedEvent[] = [];
  let position = from;
  while (position < to) {
    const segment = segmentOf(log, position);
    await ensureIndexed(log, segment);
    const first = position - segment.base;
    const last = Math.min(to - segment.base, segment.count, first + 4096);
    const offsets = segment.offsets!;
    const start = offsets.get(first);
    const end = last < segment.count ? offsets.get(last) : segment.size;
    const buf = Buffer.allocUnsafe(end - start);
    await readFully(await readerOf(segment), buf, start);
    for (let j = first; j < last; j++) {
      const at = offsets.get(j);
      const limit = (j + 1 < last ? offsets.get(j + 1) : end) - start;
      const check = checkFrame(buf, at - start, limit);
      if (check.kind !== 'ok' || check.end !== limit) {
        const reason = check.kind === 'bad' ? check.reason : 'record does not fill the space the index gives it';
        throw new CorruptLogError(segment.file, at, reason);
      }
      if (!decode) continue;
      const record = decodeAt(segment.file, at, buf, check.bodyStart, check.end);
      if (record.position !== segment.base + j) {
        const reason = `record has position ${record.position} where ${segment.base + j} was expected`;
        throw new CorruptLogError(segment.file, at, reason);
      }
      events.push(toRecordedEvent(record));
    }
    position = segment.base + last;
  }
  return events;
}
