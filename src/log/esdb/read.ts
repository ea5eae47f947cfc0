/**
 * Reads of the EventStoreDB log: a stream's events, `$all` filtered to this log's streams, the
 * list of streams; and the paged scan of `$all` that reads, subscriptions and verify build on.
 */
import { BACKWARDS, END, FORWARDS, START, type AllStreamResolvedEvent, type Position } from '@eventstore/db-client';
import type {
  ListStreamsResult,
  ReadAllOptions,
  ReadAllResult,
  ReadStreamOptions,
  ReadStreamResult,
  RecordedEvent,
  StreamInfo,
} from '../types.ts';
import { checkStreamName, normalizeReadAll, normalizeReadStream } from '../validate.ts';
import { packPosition, serverStream, toRecorded, unpackPosition, visibleStream, type ServerEvent } from './mapping.ts';
import { closedError, run, type EsdbState } from './state.ts';

/** Events per request of a scan of `$all`. */
const SCAN_PAGE = 256;

/** A stream's entry in `listStreams`, updated as the scan goes. */
type StreamHead = { stream: string; lastRevision: bigint; firstPosition: bigint; lastPosition: bigint };

export function readStream(log: EsdbState, stream: string, options?: ReadStreamOptions): Promise<ReadStreamResult> {
  if (log.closed) return Promise.reject(closedError());
  let read: ReturnType<typeof normalizeReadStream>;
  try {
    checkStreamName(stream);
    read = normalizeReadStream(options);
  } catch (error) {
    return Promise.reject(error);
  }
  return run(
    log,
    'readStream',
    async () => {
      if (!read.forwards && typeof read.from === 'bigint') {
        // Backwards from beyond the end starts at the end, as on every other adapter.
        const lastRevision = await lastRevisionOf(log, stream);
        const from = read.from > lastRevision ? 'end' : read.from;
        return { events: await readServerStream(log, stream, { ...read, from }), lastRevision };
      }
      const events = await readServerStream(log, stream, read);
      if (!read.forwards && read.from === 'end' && events.length > 0) {
        return { events, lastRevision: events[0]!.revision };
      }
      // Read after the events, so the revision is never older than what they show.
      return { events, lastRevision: await lastRevisionOf(log, stream) };
    },
    stream,
  );
}

export function readAll(log: EsdbState, options?: ReadAllOptions): Promise<ReadAllResult> {
  if (log.closed) return Promise.reject(closedError());
  let read: ReturnType<typeof normalizeReadAll>;
  try {
    read = normalizeReadAll(options);
  } catch (error) {
    return Promise.reject(error);
  }
  return run(log, 'readAll', async () => {
    const events: RecordedEvent[] = [];
    const take = (event: ServerEvent): boolean => {
      if (events.length >= read.maxCount) return false;
      const recorded = toRecorded(log, event);
      if (recorded !== null) events.push(recorded);
      return events.length < read.maxCount;
    };
    if (read.maxCount > 0) {
      if (!read.forwards && typeof read.from === 'bigint') {
        // The server reads backwards from a position exclusively; the port includes it.
        const from = read.from;
        const takeFrom = (event: ServerEvent) => {
          if (packPosition(event.position!) === from) take(event);
          return false;
        };
        await scanAll(log, true, from, takeFrom, 1);
      }
      if (events.length < read.maxCount) await scanAll(log, read.forwards, read.from, take);
    }
    const lastPosition =
      !read.forwards && read.from === 'end' && events.length > 0 ? events[0]!.position : await lastVisiblePosition(log);
    return { events, lastPosition };
  });
}

export function listStreams(log: EsdbState): Promise<ListStreamsResult> {
  return run(log, 'listStreams', async () => {
    const streams = new Map<string, StreamHead>();
    await scanAll(log, true, 'start', (event) => {
      const stream = visibleStream(log, event.streamId, event.type);
      if (stream === null) return true;
      const position = packPosition(event.position!);
      const info = streams.get(stream);
      if (info === undefined) {
        streams.set(stream, { stream, lastRevision: event.revision, firstPosition: position, lastPosition: position });
      } else {
        info.lastRevision = event.revision;
        info.lastPosition = position;
      }
      return true;
    });
    // A soft-deleted stream keeps its events in $all until a scavenge; it is not listed.
    const listed: StreamInfo[] = [];
    for (const info of streams.values()) {
      try {
        if ((await lastRevisionOf(log, info.stream)) >= 0n) listed.push(info);
      } catch (error) {
        if ((error as { type?: string })?.type !== 'stream-not-found') throw error;
      }
    }
    return { streams: listed };
  });
}

export async function readServerStream(
  log: EsdbState,
  stream: string,
  read: { forwards: boolean; from: bigint | 'start' | 'end'; maxCount: number },
): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  if (read.maxCount === 0) return out;
  const fromRevision = read.from === 'start' ? START : read.from === 'end' ? END : read.from;
  const reader = log.client.readStream(serverStream(log, stream), {
    direction: read.forwards ? FORWARDS : BACKWARDS,
    fromRevision,
    ...(Number.isFinite(read.maxCount) ? { maxCount: BigInt(read.maxCount) } : {}),
  });
  for await (const resolved of reader) {
    if (resolved.event === undefined) continue;
    const recorded = toRecorded(log, resolved.event);
    if (recorded !== null) out.push(recorded);
  }
  return out;
}

/** The stream's last revision; throws the driver's stream-not-found when it has no event. */
async function lastRevisionOf(log: EsdbState, stream: string): Promise<bigint> {
  const [last] = await readServerStream(log, stream, { forwards: false, from: 'end', maxCount: 1 });
  if (last === undefined) throw Object.assign(new Error('stream not found'), { type: 'stream-not-found' });
  return last.revision;
}

/**
 * Every raw `$all` event from `from` (forwards: inclusive; backwards: exclusive, the server's
 * rule) in `direction`, handed to `visit` until it returns false. Reads in pages and cancels the
 * page it stops in: a read left open would hold the connection's flow-control window, and
 * every other call on the connection (appends too) would stall behind it.
 */
export async function scanAll(
  log: EsdbState,
  forwards: boolean,
  from: bigint | 'start' | 'end',
  visit: (event: ServerEvent) => boolean,
  page = SCAN_PAGE,
): Promise<void> {
  let cursor: Position | typeof START | typeof END =
    from === 'start' ? START : from === 'end' ? END : unpackPosition(from);
  /** Forwards, a page starts at the last event of the one before (inclusive): skip it. */
  let seen: bigint | null = null;
  for (;;) {
    const direction = forwards ? FORWARDS : BACKWARDS;
    const reader = log.client.readAll({ direction, fromPosition: cursor, maxCount: BigInt(page) });
    let count = 0;
    let last: Position | null = null;
    let stopped = false;
    for await (const resolved of reader as AsyncIterable<AllStreamResolvedEvent>) {
      count++;
      const event = resolved.event as ServerEvent | undefined;
      if (event === undefined) continue;
      last = event.position!;
      if (seen !== null && packPosition(last) === seen) continue;
      if (!visit(event)) {
        stopped = true;
        break;
      }
    }
    if (stopped) {
      await reader.cancel();
      return;
    }
    if (count < page || last === null) return;
    cursor = last;
    seen = forwards ? packPosition(last) : null;
  }
}

/** Reads the newest event of the server, whatever it is: the server answers, or this throws. */
export function probe(log: EsdbState): Promise<void> {
  return run(log, 'connect', () => scanAll(log, false, 'end', () => false, 1));
}

/** Position of the newest visible event, or null when there is none. */
export async function lastVisiblePosition(log: EsdbState): Promise<bigint | null> {
  let last: bigint | null = null;
  const newestVisible = (event: ServerEvent) => {
    if (visibleStream(log, event.streamId, event.type) === null) return true;
    last = packPosition(event.position!);
    return false;
  };
  await scanAll(log, false, 'end', newestVisible, 32);
  return last;
}
