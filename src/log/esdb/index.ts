/**
 * The EventLog port on EventStoreDB (or KurrentDB), through `@eventstore/db-client` over gRPC.
 * Imported from `roundlog/esdb` only: nothing else in roundlog loads the driver, and no driver
 * type crosses this module's boundary.
 *
 * Mapping:
 * - a roundlog stream is the server stream `<namespace><stream>`; streams outside the namespace,
 *   system streams (`$…`) and system event types (`$…`) are invisible to every read;
 * - event data is stored as binary events (content type `application/octet-stream`): one byte of
 *   value encoding, then the msgpack (lz4 above 4 KiB) bytes of `src/codec/values.ts`, so bigints
 *   and typed arrays round-trip exactly as on the file log;
 * - a log position is the server's `(commit, prepare)` pair packed as `commit·2⁶⁴ + prepare`,
 *   which keeps the server's `$all` order;
 * - timestamps are the server's `created` time (an injected clock does not apply);
 * - `expectedRevision` maps one-to-one onto the client's; a wrong expected version becomes the
 *   same `WrongExpectedRevisionError` the file log raises;
 * - `subscribe` is a catch-up subscription of the server (stream or `$all` with a server-side
 *   filter); the server's caught-up message becomes the port's `caughtUp` item (needs a server
 *   of version 23.10 or later).
 */
import { randomUUID } from 'node:crypto';
import { Observable } from 'rxjs';
import {
  ANY as ESDB_ANY,
  BACKWARDS,
  END,
  EventStoreDBClient,
  FORWARDS,
  NO_STREAM as ESDB_NO_STREAM,
  START,
  STREAM_EXISTS as ESDB_STREAM_EXISTS,
  binaryEvent,
  excludeSystemEvents,
  streamNameFilter,
  type AllStreamResolvedEvent,
  type AppendExpectedRevision,
  type Position,
  type ResolvedEvent,
} from '@eventstore/db-client';
import { decodeValue, encodeValue } from '../../codec/values.ts';
import { ClosedError, InvalidArgumentError, RoundlogError } from '../../errors.ts';
import {
  AppendTooLargeError,
  StoreRequestFailedError,
  StoreUnavailableError,
  StreamNotFoundError,
  WrongExpectedRevisionError,
} from '../errors.ts';
import type {
  AppendOptions,
  AppendResult,
  EventData,
  EventLog,
  ListStreamsResult,
  ReadAllOptions,
  ReadAllResult,
  ReadStreamOptions,
  ReadStreamResult,
  RecordedEvent,
  StreamInfo,
  SubscribeOptions,
  SubscriptionItem,
  VerifyProblem,
  VerifyResult,
} from '../types.ts';
import { checkEvents, checkStreamName, expectedRevisionOf, normalizeReadAll, normalizeReadStream } from '../validate.ts';

export type EsdbEventLogOptions = {
  /** `esdb://host:2113?tls=false`, `esdb+discover://…`, or a comma-separated cluster list. */
  connectionString: string;
  /**
   * Prefix of every server stream this log uses; streams without it are invisible. Lets several
   * roundlog roots (or test runs) share one cluster. Default `''`: every non-system stream.
   */
  namespace?: string;
  /**
   * Stream prefixes (after the namespace) this handle does not show: their events are left out of
   * `readAll`, `listStreams`, `subscribe` and `verify` (e.g. the chunked blob store's streams).
   */
  hide?: readonly string[];
  /** Event ids for events given without one. Default `randomUUID`; must return UUIDs. */
  newId?: () => string;
};

export interface EsdbEventLog extends EventLog {
  /** The connection string without credentials. */
  readonly store: string;
  readonly namespace: string;
  /**
   * Soft-deletes a stream (the server's delete): reads then find no stream; a later append
   * starts it again, its revisions continuing. Used by the chunked blob store's `delete`.
   */
  deleteStream(stream: string): Promise<void>;
}

/** Opens the log and checks that the server answers; a server that does not is a `StoreUnavailableError`. */
export async function openEsdbEventLog(options: EsdbEventLogOptions): Promise<EsdbEventLog> {
  const { connectionString } = options;
  if (typeof connectionString !== 'string' || !/^esdb(\+discover)?:\/\//.test(connectionString)) {
    throw new InvalidArgumentError('connectionString', 'must be an EventStoreDB connection string (esdb://host:2113?tls=false)', connectionString);
  }
  const namespace = options.namespace ?? '';
  if (typeof namespace !== 'string' || namespace.startsWith('$')) {
    throw new InvalidArgumentError('namespace', 'must be a string that does not start with "$"', namespace);
  }
  const client = acquireClient(connectionString);
  const log = new EsdbLog(client, redact(connectionString), namespace, options.hide ?? [], options.newId ?? randomUUID);
  try {
    // One cheap read: a wrong address or a stopped server fails here, not at the first append.
    await log.probe();
  } catch (error) {
    await log.close();
    throw error;
  }
  return log;
}

/**
 * One driver client per connection string in a process, shared by every log opened on it and
 * disposed with the last of them. The driver keeps the pending appends of all its clients in one
 * table, and a client that is disposed fails the appends of the others that are in flight: with
 * one client per store, closing a log (a follower, the blob store's) cannot fail another's append.
 */
const clients = new Map<string, { client: EventStoreDBClient; refs: number }>();

function acquireClient(connectionString: string): SharedClient {
  let entry = clients.get(connectionString);
  if (entry === undefined) {
    let client: EventStoreDBClient;
    try {
      client = EventStoreDBClient.connectionString(connectionString);
    } catch (error) {
      throw new InvalidArgumentError('connectionString', `is not a valid connection string (${(error as Error).message})`, redact(connectionString));
    }
    entry = { client, refs: 0 };
    clients.set(connectionString, entry);
  }
  entry.refs++;
  const held = entry;
  let released = false;
  return {
    client: held.client,
    appendCredentials: appendCredentialsOf(connectionString),
    async release() {
      if (released) return;
      released = true;
      if (--held.refs > 0) return;
      if (clients.get(connectionString) === held) clients.delete(connectionString);
      // The driver cancels every call of the client and waits for each to end; a cancelled
      // two-way call (the batch append stream) may never report its end, so the wait is bounded.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        held.client.dispose().catch(() => undefined),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, DISPOSE_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}

type SharedClient = {
  client: EventStoreDBClient;
  /** Given with each append so the driver uses one unary Append call, not its shared batch stream. */
  appendCredentials: { username: string; password: string } | null;
  release(): Promise<void>;
};

/**
 * The driver sends appends over one long-lived batch stream unless an append carries
 * credentials. That stream is what its module-level table of pending appends belongs to, and
 * what a disposed client may never finish closing: appends carry the connection string's
 * credentials (ignored by an insecure connection, which takes empty ones) to use a plain
 * Append call each. A secure connection without credentials keeps the batch stream.
 */
function appendCredentialsOf(connectionString: string): { username: string; password: string } | null {
  const given = /^esdb(?:\+discover)?:\/\/([^:@/]+):([^@/]*)@/.exec(connectionString);
  if (given !== null) return { username: decodeURIComponent(given[1]!), password: decodeURIComponent(given[2]!) };
  return /[?&]tls=false(&|$)/i.test(connectionString) ? { username: '', password: '' } : null;
}

/** How long closing the last log of a client waits for the driver to end its calls. */
const DISPOSE_WAIT_MS = 2000;
/** Events per request of a scan of `$all`. */
const SCAN_PAGE = 256;
const POSITION_SHIFT = 64n;
const PREPARE_MASK = (1n << POSITION_SHIFT) - 1n;

function packPosition(position: Position): bigint {
  return (position.commit << POSITION_SHIFT) | position.prepare;
}

function unpackPosition(position: bigint): Position {
  return { commit: position >> POSITION_SHIFT, prepare: position & PREPARE_MASK };
}

/** `esdb://user:secret@host` → `esdb://host`: error messages never carry a password. */
function redact(connectionString: string): string {
  return connectionString.replace(/^(esdb(?:\+discover)?:\/\/)[^@/]*@/, '$1');
}

type ServerEvent = NonNullable<ResolvedEvent['event']>;

class EsdbLog implements EsdbEventLog {
  private closed = false;
  private readonly subscriptions = new Set<() => void>();
  private readonly inFlight = new Set<Promise<unknown>>();

  private readonly client: EventStoreDBClient;

  constructor(
    private readonly shared: SharedClient,
    readonly store: string,
    readonly namespace: string,
    private readonly hide: readonly string[],
    private readonly newId: () => string,
  ) {
    this.client = shared.client;
  }

  // --- mapping -----------------------------------------------------------------------------

  private serverStream(stream: string): string {
    return this.namespace + stream;
  }

  /** The roundlog stream of a server stream, or null when it is not one of this log's. */
  private visibleStream(serverStream: string, type: string): string | null {
    if (serverStream.startsWith('$') || type.startsWith('$') || !serverStream.startsWith(this.namespace)) return null;
    const stream = serverStream.slice(this.namespace.length);
    return stream.length === 0 || stream.startsWith('$') || this.hide.some((prefix) => stream.startsWith(prefix)) ? null : stream;
  }

  private toRecorded(event: ServerEvent): RecordedEvent | null {
    const stream = this.visibleStream(event.streamId, event.type);
    if (stream === null) return null;
    if (event.position === undefined) {
      throw new StoreRequestFailedError(this.store, 'read', `the server sent event ${event.id} of ${event.streamId} without its position`, null);
    }
    return {
      type: event.type,
      data: this.decode(event),
      stream,
      revision: event.revision,
      position: packPosition(event.position),
      id: event.id,
      timestamp: event.created,
    };
  }

  /** One byte of value encoding, then the encoded bytes. */
  private encode(data: unknown, index: number): Buffer {
    let encoded: ReturnType<typeof encodeValue>;
    try {
      encoded = encodeValue(data);
    } catch (error) {
      throw new InvalidArgumentError(`events[${index}].data`, `must be serializable (${(error as Error).message})`, data);
    }
    const bytes = Buffer.allocUnsafe(1 + encoded.bytes.length);
    bytes[0] = encoded.encoding;
    encoded.bytes.copy(bytes, 1);
    return bytes;
  }

  private decode(event: ServerEvent): unknown {
    const bytes = event.data as Uint8Array;
    if (event.isJson || !(bytes instanceof Uint8Array) || bytes.length === 0) {
      throw new StoreRequestFailedError(
        this.store,
        'read',
        `event ${event.id} (${event.type}) at revision ${event.revision} of stream ${JSON.stringify(event.streamId)} was not written by roundlog ` +
          `(roundlog writes binary events: one encoding byte, then msgpack); remove it or keep other writers out of this namespace`,
        null,
      );
    }
    try {
      return decodeValue(bytes[0]!, bytes.subarray(1));
    } catch (error) {
      throw new StoreRequestFailedError(
        this.store,
        'read',
        `event ${event.id} (${event.type}) at revision ${event.revision} of stream ${JSON.stringify(event.streamId)} cannot be decoded: ${(error as Error).message}`,
        error,
      );
    }
  }

  /** The driver's errors as roundlog's own. */
  private translate(error: unknown, operation: string, stream?: string, expected?: AppendOptions['expectedRevision']): unknown {
    if (error instanceof RoundlogError) return error;
    const type = (error as { type?: string })?.type;
    switch (type) {
      case 'wrong-expected-version': {
        const actual = (error as { actualVersion?: bigint | string }).actualVersion;
        return new WrongExpectedRevisionError(stream!, expected ?? 'any', typeof actual === 'bigint' ? actual : 'no_stream');
      }
      case 'stream-not-found':
        return new StreamNotFoundError(stream ?? '$all');
      case 'unavailable':
      case 'deadline-exceeded':
      case 'timeout':
      case 'not-leader':
        return new StoreUnavailableError(this.store, operation, error);
      case 'stream-deleted':
        return new StoreRequestFailedError(
          this.store,
          operation,
          `stream ${JSON.stringify(stream)} was deleted for good (tombstoned) on the server; its name cannot be used again`,
          error,
        );
      case 'access-denied':
        return new StoreRequestFailedError(this.store, operation, 'access denied: give credentials in the connection string (esdb://user:password@host)', error);
      default:
        return new StoreRequestFailedError(this.store, operation, (error as Error)?.message ?? String(error), error);
    }
  }

  private async run<T>(operation: string, fn: () => Promise<T>, stream?: string, expected?: AppendOptions['expectedRevision']): Promise<T> {
    if (this.closed) throw new ClosedError('EventStoreDB event log');
    const running = (async () => {
      try {
        return await fn();
      } catch (error) {
        throw this.translate(error, operation, stream, expected);
      }
    })();
    this.inFlight.add(running);
    try {
      return await running;
    } finally {
      this.inFlight.delete(running);
    }
  }

  // --- the port ----------------------------------------------------------------------------

  append(stream: string, events: readonly EventData[], options?: AppendOptions): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new ClosedError('EventStoreDB event log'));
    let expected: ReturnType<typeof expectedRevisionOf>;
    let serverEvents: ReturnType<typeof binaryEvent>[];
    try {
      checkStreamName(stream);
      checkEvents(events);
      expected = expectedRevisionOf(options);
      serverEvents = events.map((event, i) => binaryEvent({ type: event.type, data: this.encode(event.data, i), id: event.id ?? this.newId() }));
    } catch (error) {
      return Promise.reject(error);
    }
    const bytes = serverEvents.reduce((sum, e) => sum + (e.data as Uint8Array).length, 0);
    const serverExpected: AppendExpectedRevision =
      expected === 'any' ? ESDB_ANY : expected === 'no_stream' ? ESDB_NO_STREAM : expected === 'stream_exists' ? ESDB_STREAM_EXISTS : expected;
    return this.run(
      'append',
      async () => {
        let result;
        try {
          result = await this.client.appendToStream(this.serverStream(stream), serverEvents, {
            expectedRevision: serverExpected,
            ...(this.shared.appendCredentials === null ? {} : { credentials: this.shared.appendCredentials }),
          });
        } catch (error) {
          if ((error as { type?: string })?.type === 'maximum-append-size-exceeded') {
            const limit = Number((error as { maxAppendSize?: number }).maxAppendSize ?? 1_048_576);
            throw new AppendTooLargeError(stream, bytes, limit, error);
          }
          throw error;
        }
        // The response names the stream's revision; the events' positions come from reading them back.
        const next = result.nextExpectedRevision;
        const written = await this.readServerStream(stream, { forwards: true, from: next - BigInt(events.length) + 1n, maxCount: events.length });
        const first = written.find((e) => e.revision === next - BigInt(events.length) + 1n);
        const last = written.find((e) => e.revision === next);
        if (first === undefined || last === undefined) {
          throw new StoreRequestFailedError(this.store, 'append', `the events appended to ${JSON.stringify(stream)} could not be read back (was the stream deleted meanwhile?)`, null);
        }
        return { nextExpectedRevision: next, firstPosition: first.position, lastPosition: last.position };
      },
      stream,
      expected,
    );
  }

  private async readServerStream(stream: string, read: { forwards: boolean; from: bigint | 'start' | 'end'; maxCount: number }): Promise<RecordedEvent[]> {
    const out: RecordedEvent[] = [];
    if (read.maxCount === 0) return out;
    const fromRevision = read.from === 'start' ? START : read.from === 'end' ? END : read.from;
    const reader = this.client.readStream(this.serverStream(stream), {
      direction: read.forwards ? FORWARDS : BACKWARDS,
      fromRevision,
      ...(Number.isFinite(read.maxCount) ? { maxCount: BigInt(read.maxCount) } : {}),
    });
    for await (const resolved of reader) {
      if (resolved.event === undefined) continue;
      const recorded = this.toRecorded(resolved.event);
      if (recorded !== null) out.push(recorded);
    }
    return out;
  }

  /** The stream's last revision; throws the driver's stream-not-found when it has no event. */
  private async lastRevisionOf(stream: string): Promise<bigint> {
    const [last] = await this.readServerStream(stream, { forwards: false, from: 'end', maxCount: 1 });
    if (last === undefined) throw Object.assign(new Error('stream not found'), { type: 'stream-not-found' });
    return last.revision;
  }

  readStream(stream: string, options?: ReadStreamOptions): Promise<ReadStreamResult> {
    if (this.closed) return Promise.reject(new ClosedError('EventStoreDB event log'));
    let read: ReturnType<typeof normalizeReadStream>;
    try {
      checkStreamName(stream);
      read = normalizeReadStream(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.run(
      'readStream',
      async () => {
        if (!read.forwards && typeof read.from === 'bigint') {
          // Backwards from beyond the end starts at the end, as on every other adapter.
          const lastRevision = await this.lastRevisionOf(stream);
          const from = read.from > lastRevision ? 'end' : read.from;
          return { events: await this.readServerStream(stream, { ...read, from }), lastRevision };
        }
        const events = await this.readServerStream(stream, read);
        if (!read.forwards && read.from === 'end' && events.length > 0) return { events, lastRevision: events[0]!.revision };
        // Read after the events, so the revision is never older than what they show.
        return { events, lastRevision: await this.lastRevisionOf(stream) };
      },
      stream,
    );
  }

  /**
   * Every raw `$all` event from `from` (forwards: inclusive; backwards: exclusive, the server's
   * rule) in `direction`, handed to `visit` until it returns false. Reads in pages and cancels the
   * page it stops in: a read left open would hold the connection's flow-control window, and
   * every other call on the connection (appends too) would stall behind it.
   */
  private async scanAll(forwards: boolean, from: bigint | 'start' | 'end', visit: (event: ServerEvent) => boolean, page = SCAN_PAGE): Promise<void> {
    let cursor: Position | typeof START | typeof END = from === 'start' ? START : from === 'end' ? END : unpackPosition(from);
    /** Forwards, a page starts at the last event of the one before (inclusive): skip it. */
    let seen: bigint | null = null;
    for (;;) {
      const reader = this.client.readAll({ direction: forwards ? FORWARDS : BACKWARDS, fromPosition: cursor, maxCount: BigInt(page) });
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
  probe(): Promise<void> {
    return this.run('connect', () => this.scanAll(false, 'end', () => false, 1));
  }

  /** Position of the newest visible event, or null when there is none. */
  private async lastVisiblePosition(): Promise<bigint | null> {
    let last: bigint | null = null;
    await this.scanAll(false, 'end', (event) => {
      if (this.visibleStream(event.streamId, event.type) === null) return true;
      last = packPosition(event.position!);
      return false;
    }, 32);
    return last;
  }

  readAll(options?: ReadAllOptions): Promise<ReadAllResult> {
    if (this.closed) return Promise.reject(new ClosedError('EventStoreDB event log'));
    let read: ReturnType<typeof normalizeReadAll>;
    try {
      read = normalizeReadAll(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.run('readAll', async () => {
      const events: RecordedEvent[] = [];
      const take = (event: ServerEvent): boolean => {
        if (events.length >= read.maxCount) return false;
        const recorded = this.toRecorded(event);
        if (recorded !== null) events.push(recorded);
        return events.length < read.maxCount;
      };
      if (read.maxCount > 0) {
        if (!read.forwards && typeof read.from === 'bigint') {
          // The server reads backwards from a position exclusively; the port includes it.
          const from = read.from;
          await this.scanAll(true, from, (event) => {
            if (packPosition(event.position!) === from) take(event);
            return false;
          }, 1);
        }
        if (events.length < read.maxCount) await this.scanAll(read.forwards, read.from, take);
      }
      const lastPosition = !read.forwards && read.from === 'end' && events.length > 0 ? events[0]!.position : await this.lastVisiblePosition();
      return { events, lastPosition };
    });
  }

  listStreams(): Promise<ListStreamsResult> {
    return this.run('listStreams', async () => {
      const streams = new Map<string, { stream: string; lastRevision: bigint; firstPosition: bigint; lastPosition: bigint }>();
      await this.scanAll(true, 'start', (event) => {
        const stream = this.visibleStream(event.streamId, event.type);
        if (stream === null) return true;
        const position = packPosition(event.position!);
        const info = streams.get(stream);
        if (info === undefined) streams.set(stream, { stream, lastRevision: event.revision, firstPosition: position, lastPosition: position });
        else {
          info.lastRevision = event.revision;
          info.lastPosition = position;
        }
        return true;
      });
      // A soft-deleted stream keeps its events in $all until a scavenge; it is not listed.
      const listed: StreamInfo[] = [];
      for (const info of streams.values()) {
        try {
          if ((await this.lastRevisionOf(info.stream)) >= 0n) listed.push(info);
        } catch (error) {
          if ((error as { type?: string })?.type !== 'stream-not-found') throw error;
        }
      }
      return { streams: listed };
    });
  }

  subscribe(options?: SubscribeOptions): Observable<SubscriptionItem> {
    return new Observable<SubscriptionItem>((subscriber) => {
      if (this.closed) {
        subscriber.error(new ClosedError('EventStoreDB event log'));
        return;
      }
      const stream = options?.stream;
      const from = options?.from ?? 'start';
      try {
        if (stream !== undefined) checkStreamName(stream);
        if (!(from === 'start' || from === 'end' || (typeof from === 'bigint' && from >= 0n))) {
          throw new InvalidArgumentError('from', 'must be a non-negative bigint, "start" or "end"', from);
        }
      } catch (error) {
        subscriber.error(error);
        return;
      }
      let stopped = false;
      let server: { unsubscribe(): Promise<void>; destroy(): void } | null = null;
      // Items pass through one promise chain, so the caught-up item (which needs a read) keeps its place.
      let chain: Promise<void> = Promise.resolve();
      const fail = (error: unknown) => {
        if (stopped) return;
        stopped = true;
        subscriber.error(this.translate(error, 'subscribe', stream));
        void server?.unsubscribe().catch(() => undefined);
      };
      const enqueue = (step: () => Promise<void> | void) => {
        chain = chain.then(async () => {
          if (!stopped && !subscriber.closed) await step();
        }).catch(fail);
      };
      let caughtUp = false;
      const complete = () => {
        if (stopped) return;
        stopped = true;
        void server?.unsubscribe().catch(() => undefined);
        subscriber.complete();
      };
      this.subscriptions.add(complete);

      // The caught-up position: the newest of the log's last position before the subscription
      // started and the last event delivered. Never read after the fact, so no live event can be
      // at or below it.
      let lastSeen: bigint | null = null;
      let before: bigint | null = null;
      const start = async () => {
        before = await this.lastVisiblePosition();
        let subscription;
        if (stream !== undefined) {
          const fromRevision = from === 'start' || from === 0n ? START : from === 'end' ? END : (from as bigint) - 1n;
          subscription = this.client.subscribeToStream(this.serverStream(stream), { fromRevision });
        } else {
          // The server starts after a position: the one of the event before `from`, if any.
          let fromPosition: Position | typeof START | typeof END = from === 'end' ? END : START;
          if (typeof from === 'bigint') {
            await this.scanAll(false, from, (event) => {
              fromPosition = event.position!;
              return false;
            }, 1);
          }
          subscription = this.client.subscribeToAll({
            fromPosition,
            filter: this.namespace === '' ? excludeSystemEvents() : streamNameFilter({ prefixes: [this.namespace] }),
          });
        }
        if (stopped || subscriber.closed) {
          await subscription.unsubscribe().catch(() => undefined);
          return;
        }
        server = subscription;
        subscription.on('data', (resolved: ResolvedEvent) => {
          const event = resolved.event;
          if (event === undefined) return;
          enqueue(() => {
            const recorded = this.toRecorded(event);
            if (recorded === null) return;
            // A bigint `from` of $all is inclusive; the server started at the event before it.
            if (stream === undefined && typeof from === 'bigint' && recorded.position < from) return;
            if (lastSeen === null || recorded.position > lastSeen) lastSeen = recorded.position;
            subscriber.next({ kind: 'event', event: recorded });
          });
        });
        subscription.on('caughtUp', () => {
          if (caughtUp) return;
          caughtUp = true;
          enqueue(() => {
            const position = before === null ? lastSeen : lastSeen === null || before > lastSeen ? before : lastSeen;
            subscriber.next({ kind: 'caughtUp', position });
          });
        });
        subscription.on('error', (error: unknown) => enqueue(() => fail(error)));
        subscription.on('end', () => enqueue(complete));
      };
      start().catch(fail);

      return () => {
        stopped = true;
        this.subscriptions.delete(complete);
        const s = server as { unsubscribe(): Promise<void> } | null;
        void s?.unsubscribe().catch(() => undefined);
      };
    });
  }

  deleteStream(stream: string): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError('EventStoreDB event log'));
    try {
      checkStreamName(stream);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.run(
      'deleteStream',
      async () => {
        try {
          await this.client.deleteStream(this.serverStream(stream));
        } catch (error) {
          // Deleting a stream that has no event is not an error: there is nothing left to delete.
          if ((error as { type?: string })?.type === 'stream-not-found') return;
          throw error;
        }
      },
      stream,
    );
  }

  verify(): Promise<VerifyResult> {
    return this.run('verify', async () => {
      const problems: VerifyProblem[] = [];
      let eventsChecked = 0;
      let bytesChecked = 0;
      const expectedRevision = new Map<string, bigint>();
      await this.scanAll(true, 'start', (event) => {
        if (this.visibleStream(event.streamId, event.type) === null) return true;
        eventsChecked++;
        const where = `${this.store} stream ${JSON.stringify(event.streamId)}`;
        const bytes = event.data as Uint8Array;
        if (bytes instanceof Uint8Array) bytesChecked += bytes.length;
        try {
          this.decode(event);
        } catch (error) {
          problems.push({ file: where, offset: Number(event.revision), reason: (error as Error).message });
        }
        // Revisions of a stream follow each other in $all; a gap is a lost event (or a soft delete and restart).
        const expected = expectedRevision.get(event.streamId) ?? 0n;
        if (event.revision < expected) {
          problems.push({ file: where, offset: Number(event.revision), reason: `revision ${event.revision} follows revision ${expected - 1n}` });
        }
        expectedRevision.set(event.streamId, event.revision + 1n);
        return true;
      });
      return { ok: problems.length === 0, eventsChecked, bytesChecked, problems };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const complete of [...this.subscriptions]) complete();
    this.subscriptions.clear();
    await Promise.allSettled([...this.inFlight]);
    await this.shared.release();
  }
}
