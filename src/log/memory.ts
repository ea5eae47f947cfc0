/**
 * The in-memory EventLog adapter: the reference implementation of the port, for tests, examples
 * and short-lived tools. Nothing survives the process.
 *
 * Events are stored as structured clones and handed out as fresh copies, so neither the caller's
 * input nor a read result can change what the log holds. Positions are dense: 0n, 1n, 2n, ...
 */
import { randomUUID } from 'node:crypto';
import { Observable, type Subscriber } from 'rxjs';
import { ClosedError, InvalidArgumentError } from '../errors.ts';
import { StreamNotFoundError, WrongExpectedRevisionError } from './errors.ts';
import { findRetry } from './idempotence.ts';
import type {
  AppendOptions,
  AppendResult,
  EventData,
  EventLog,
  ExpectedRevision,
  ListStreamsResult,
  ReadAllOptions,
  ReadAllResult,
  ReadStreamOptions,
  ReadStreamResult,
  RecordedEvent,
  SubscribeOptions,
  SubscriptionItem,
  VerifyResult,
} from './types.ts';
import {
  checkEvents,
  checkStreamName,
  expectedRevisionOf,
  normalizeReadAll,
  normalizeReadStream,
  selectRange,
  type NormalizedRead,
} from './validate.ts';

export type InMemoryEventLogOptions = {
  /** Clock for event timestamps; every event of one append gets the same one. Default `() => new Date()`. */
  clock?: () => Date;
  /** Id source for events given without an id. Default `crypto.randomUUID`. */
  newId?: () => string;
};

/** Events a subscription delivers from history before giving the event loop a turn. */
const CATCH_UP_PAGE = 256;

const WHAT = 'in-memory event log';

export function getInMemoryEventLog(options: InMemoryEventLogOptions = {}): EventLog {
  const clock = options.clock ?? (() => new Date());
  const newId = options.newId ?? randomUUID;

  /** Every event, indexed by position. */
  const log: RecordedEvent[] = [];
  /** Every event of each stream, indexed by revision. */
  const streams = new Map<string, RecordedEvent[]>();
  /** Drain functions of the subscriptions that have caught up, run after each append. */
  const live = new Set<() => void>();
  /** Every running subscription, completed on close. */
  const running = new Set<Subscriber<SubscriptionItem>>();
  let closed = false;

  function ensureOpen(): void {
    if (closed) throw new ClosedError(WHAT);
  }

  function lastPosition(): bigint | null {
    return log.length === 0 ? null : BigInt(log.length - 1);
  }

  async function append(
    stream: string,
    events: readonly EventData[],
    appendOptions?: AppendOptions,
  ): Promise<AppendResult> {
    ensureOpen();
    checkStreamName(stream);
    checkEvents(events);
    const expected = expectedRevisionOf(appendOptions);
    const prepared = events.map((event, i) => ({ type: event.type, data: cloneData(event.data, i), id: event.id }));

    // A retry of a stored append (same ids) is acknowledged with its original result.
    const stored = streams.get(stream) ?? [];
    const retry = await findRetry(stream, events, expected, stored.length, async (from, count) =>
      stored.slice(from, from + count),
    );
    if (retry !== null) return retry;
    ensureOpen();

    const existing = streams.get(stream);
    const actual = existing === undefined ? 'no_stream' : BigInt(existing.length - 1);
    if (!satisfies(expected, actual)) throw new WrongExpectedRevisionError(stream, expected, actual);

    const timestamp = timestampFrom(clock);
    const recorded = prepared.map((event, i): RecordedEvent => ({
      type: event.type,
      data: event.data,
      stream,
      revision: BigInt((existing?.length ?? 0) + i),
      position: BigInt(log.length + i),
      id: event.id ?? newId(),
      timestamp,
    }));
    // Nothing above this line touched the log: a rejected append leaves it as it was.
    const streamEvents = existing ?? [];
    if (existing === undefined) streams.set(stream, streamEvents);
    for (const event of recorded) {
      streamEvents.push(event);
      log.push(event);
    }
    for (const drain of [...live]) drain();

    const first = recorded[0]!;
    const last = recorded[recorded.length - 1]!;
    return { nextExpectedRevision: last.revision, firstPosition: first.position, lastPosition: last.position };
  }

  async function readStream(stream: string, readOptions?: ReadStreamOptions): Promise<ReadStreamResult> {
    ensureOpen();
    checkStreamName(stream);
    const read = normalizeReadStream(readOptions);
    const events = streams.get(stream);
    if (events === undefined) throw new StreamNotFoundError(stream);
    return { events: pick(events, read), lastRevision: BigInt(events.length - 1) };
  }

  async function readAll(readOptions?: ReadAllOptions): Promise<ReadAllResult> {
    ensureOpen();
    const read = normalizeReadAll(readOptions);
    return { events: pick(log, read), lastPosition: lastPosition() };
  }

  async function listStreams(): Promise<ListStreamsResult> {
    ensureOpen();
    return {
      streams: [...streams].map(([stream, events]) => ({
        stream,
        lastRevision: BigInt(events.length - 1),
        firstPosition: events[0]!.position,
        lastPosition: events[events.length - 1]!.position,
      })),
    };
  }

  function subscribe(subscribeOptions?: SubscribeOptions): Observable<SubscriptionItem> {
    return new Observable<SubscriptionItem>((subscriber) => {
      let matches: (event: RecordedEvent) => boolean;
      /** Index into `log` of the next event to look at. */
      let cursor: number;
      try {
        ensureOpen();
        ({ matches, cursor } = startOf(subscribeOptions));
      } catch (error) {
        subscriber.error(error);
        return;
      }

      let caughtUp = false;
      let draining = false;
      let nextPage: NodeJS.Immediate | undefined;

      // Delivers everything from the cursor to the end of the log, re-reading the end after each
      // item, so events appended meanwhile (even from inside a handler) are neither skipped nor
      // delivered twice. A re-entrant call returns at once: the running loop will reach them.
      const drain = (): void => {
        if (draining) return;
        draining = true;
        try {
          let budget = caughtUp ? Number.POSITIVE_INFINITY : CATCH_UP_PAGE;
          while (!subscriber.closed) {
            if (cursor < log.length) {
              if (budget-- <= 0) {
                nextPage = setImmediate(() => {
                  nextPage = undefined;
                  drain();
                });
                return;
              }
              const event = log[cursor++]!;
              if (matches(event)) subscriber.next({ kind: 'event', event: copyOf(event) });
            } else if (!caughtUp) {
              caughtUp = true;
              live.add(drain);
              subscriber.next({ kind: 'caughtUp', position: lastPosition() });
            } else {
              return;
            }
          }
        } finally {
          draining = false;
        }
      };

      running.add(subscriber);
      drain();
      return () => {
        running.delete(subscriber);
        live.delete(drain);
        if (nextPage !== undefined) clearImmediate(nextPage);
      };
    });
  }

  function startOf(subscribeOptions: SubscribeOptions | undefined): {
    matches: (event: RecordedEvent) => boolean;
    cursor: number;
  } {
    const from = subscribeOptions?.from ?? 'start';
    if (from !== 'start' && from !== 'end' && !(typeof from === 'bigint' && from >= 0n)) {
      throw new InvalidArgumentError('from', 'must be a non-negative bigint, "start" or "end"', from);
    }
    const stream = subscribeOptions?.stream;
    if (stream === undefined) {
      const fromPosition = from === 'start' ? 0n : from === 'end' ? BigInt(log.length) : from;
      return {
        matches: (event) => event.position >= fromPosition,
        cursor: fromPosition > BigInt(log.length) ? log.length : Number(fromPosition),
      };
    }
    checkStreamName(stream);
    const events = streams.get(stream) ?? [];
    const fromRevision = from === 'start' ? 0n : from === 'end' ? BigInt(events.length) : from;
    const first = fromRevision < BigInt(events.length) ? events[Number(fromRevision)] : undefined;
    return {
      matches: (event) => event.stream === stream && event.revision >= fromRevision,
      cursor: first === undefined ? log.length : Number(first.position),
    };
  }

  async function verify(): Promise<VerifyResult> {
    ensureOpen();
    return { ok: true, eventsChecked: log.length, bytesChecked: 0, problems: [] };
  }

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    live.clear();
    for (const subscriber of [...running]) subscriber.complete();
    running.clear();
  }

  return { append, readStream, readAll, listStreams, subscribe, verify, close };
}

function satisfies(expected: ExpectedRevision, actual: bigint | 'no_stream'): boolean {
  switch (expected) {
    case 'any':
      return true;
    case 'no_stream':
      return actual === 'no_stream';
    case 'stream_exists':
      return actual !== 'no_stream';
    default:
      return actual === expected;
  }
}

function cloneData(data: unknown, index: number): unknown {
  try {
    return structuredClone(data);
  } catch (error) {
    throw new InvalidArgumentError(
      `events[${index}].data`,
      `must be plain data the structured clone algorithm can copy (${(error as Error).message})`,
      data,
    );
  }
}

function timestampFrom(clock: () => Date): Date {
  const now = clock();
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) {
    throw new InvalidArgumentError('clock()', 'must return a valid Date', now);
  }
  return new Date(now.getTime());
}

function pick(events: readonly RecordedEvent[], read: NormalizedRead): RecordedEvent[] {
  const { start, end, step } = selectRange(events.length, read);
  const picked: RecordedEvent[] = [];
  for (let i = start; step === 1 ? i < end : i > end; i += step) picked.push(copyOf(events[i]!));
  return picked;
}

function copyOf(event: RecordedEvent): RecordedEvent {
  return Object.freeze({ ...event, data: structuredClone(event.data), timestamp: new Date(event.timestamp.getTime()) });
}
