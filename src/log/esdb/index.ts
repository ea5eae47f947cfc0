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
 *
 * Each operation has its module (append.ts, read.ts, subscribe.ts, verify.ts) working on the
 * state in state.ts; mapping.ts, translate.ts and client.ts hold what they share.
 */
import { randomUUID } from 'node:crypto';
import type { Observable } from 'rxjs';
import { InvalidArgumentError } from '../../errors.ts';
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
  SubscribeOptions,
  SubscriptionItem,
  VerifyResult,
} from '../types.ts';
import { append, deleteStream } from './append.ts';
import { acquireClient, redact } from './client.ts';
import { listStreams, probe, readAll, readStream } from './read.ts';
import { createState, type EsdbState } from './state.ts';
import { subscribe } from './subscribe.ts';
import { verify } from './verify.ts';

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

/**
 * Opens the log and checks that the server answers; a server that does not is a
 * `StoreUnavailableError`.
 */
export async function openEsdbEventLog(options: EsdbEventLogOptions): Promise<EsdbEventLog> {
  const { connectionString } = options;
  if (typeof connectionString !== 'string' || !/^esdb(\+discover)?:\/\//.test(connectionString)) {
    throw new InvalidArgumentError(
      'connectionString',
      'must be an EventStoreDB connection string (esdb://host:2113?tls=false)',
      connectionString,
    );
  }
  const namespace = options.namespace ?? '';
  if (typeof namespace !== 'string' || namespace.startsWith('$')) {
    throw new InvalidArgumentError('namespace', 'must be a string that does not start with "$"', namespace);
  }
  const shared = acquireClient(connectionString);
  const hide = options.hide ?? [];
  const state = createState(shared, redact(connectionString), namespace, hide, options.newId ?? randomUUID);
  const log = new EsdbLog(state);
  try {
    // One cheap read: a wrong address or a stopped server fails here, not at the first append.
    await probe(state);
  } catch (error) {
    await log.close();
    throw error;
  }
  return log;
}

class EsdbLog implements EsdbEventLog {
  readonly store: string;
  readonly namespace: string;

  constructor(private readonly state: EsdbState) {
    this.store = state.store;
    this.namespace = state.namespace;
  }

  append(stream: string, events: readonly EventData[], options?: AppendOptions): Promise<AppendResult> {
    return append(this.state, stream, events, options);
  }

  readStream(stream: string, options?: ReadStreamOptions): Promise<ReadStreamResult> {
    return readStream(this.state, stream, options);
  }

  readAll(options?: ReadAllOptions): Promise<ReadAllResult> {
    return readAll(this.state, options);
  }

  listStreams(): Promise<ListStreamsResult> {
    return listStreams(this.state);
  }

  subscribe(options?: SubscribeOptions): Observable<SubscriptionItem> {
    return subscribe(this.state, options);
  }

  deleteStream(stream: string): Promise<void> {
    return deleteStream(this.state, stream);
  }

  verify(): Promise<VerifyResult> {
    return verify(this.state);
  }

  async close(): Promise<void> {
    const state = this.state;
    if (state.closed) return;
    state.closed = true;
    for (const complete of [...state.subscriptions]) complete();
    state.subscriptions.clear();
    await Promise.allSettled([...state.inFlight]);
    await state.shared.release();
  }
}
