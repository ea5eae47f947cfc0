/**
 * A wire-level EventStoreDB stand-in for tests: an in-process gRPC server (`@grpc/grpc-js`) that
 * serves the `Streams` and `ServerFeatures` services with the service definitions generated into
 * `@eventstore/db-client/generated/`, so the real client (`@eventstore/db-client` 6.2.1) talks to
 * it unchanged over `esdb://127.0.0.1:PORT?tls=false`. It mimics a single insecure 24.x node
 * (it reports version 24.10.0):
 * `ServerFeatures.GetSupportedMethods` advertises `Streams.Read` (features `position`, `events`),
 * `Streams.Append`, `Streams.Delete`, `Streams.Tombstone`, `Streams.BatchAppend`
 * (`deadline_duration`) and itself, so `appendToStream` uses `BatchAppend` like against a real
 * server (and `Append` when the call carries credentials). Subscriptions send the confirmation,
 * the history, the `caughtUp` message and then live events, as 24.x servers do (a subscription to
 * a stream that does not exist yet is caught up at once and gets the stream's events live).
 *
 * What it does like the server: one global log with commit == prepare for every event; per-stream
 * revisions from 0; the server's commit check (expected revision any / no_stream / stream_exists /
 * exact, event-id idempotency, appends are all-or-nothing); the append size limit (data + metadata
 * + 2 bytes per event-type character, default 1 MiB, as `MaximumAppendSizeExceeded` on BatchAppend
 * and the `maximum-append-size-exceeded` status on Append); `StreamNotFound` for missing and
 * soft-deleted streams; soft delete as a `$metadata` event `{"$tb": 2⁶³-1}` in `$$stream`, later
 * appends continuing the revisions and rewriting `$tb` to the first new revision; tombstones as a
 * `$streamDeleted` event at revision 2⁶³-1 after which every write, read and subscription of the
 * stream (and of its metastream) fails with stream-deleted; stream metadata as the last JSON
 * `$metadata` event of `$$stream`, whose `$tb`, `$maxCount` and `$maxAge` hide events from stream
 * reads and stream-subscription catch-up (not from `$all`, as before a scavenge); metastreams keep
 * only their last event visible; `$all` reads forwards from a position inclusive, backwards
 * exclusive, subscriptions from a position or revision exclusive; server-side filters (regex or
 * prefixes, on stream name or event type) on `$all` subscriptions and reads, with checkpoints.
 *
 * Deviations from a real EventStoreDB:
 * - memory only: nothing is persisted, every server starts empty (plus the startup system events);
 * - one node: no cluster, gossip, elections, leader/follower or `requires-leader` handling (the
 *   Gossip, Cluster, Operations, Monitoring, Users, Projections and PersistentSubscriptions
 *   services are not served, so `esdb+discover://` connections and those client APIs fail);
 * - insecure only: no TLS, no authentication, no ACLs (`$acl` metadata and credentials are ignored);
 * - no scavenging, no `$maxAge`/`$maxCount`/`$tb` effect on `$all`, no chunk files or caches
 *   (event-id idempotency remembers every id, the server's cache is bounded);
 * - `$all` reads and subscriptions do not hide events of streams the caller may not read (no ACLs),
 *   and there are no transactions: every append is one commit;
 * - positions are synthetic: a byte offset grown by an approximate record size per event, starting
 *   at 128; commit == prepare for every event; the append result's position is its last event's;
 * - the startup system events are a small fixed set (`$settings`, `$user-admin`, `$users`), not
 *   what a real node writes (epochs, `$scavenges`, projections, statistics streams, …);
 * - no link events and no `$by_category`/`$et-`/`$ce-` system projections: `resolveLinks` is
 *   accepted and has no effect;
 * - BatchAppend deadlines are ignored (a real server times writes out); write timeouts, "server not
 *   ready", "too busy" and not-leader answers never happen;
 * - subscriptions are never dropped as too slow and never send `fellBehind`; a filtered `$all`
 *   subscription sends a checkpoint after every `checkpointInterval × maxSearchWindow` (default
 *   window 32) events considered, at the position of the event completing the interval, plus one
 *   at the end of the catch-up (the server counts per read page in catch-up, so its catch-up
 *   checkpoints can fall elsewhere);
 * - a 23.10 node sends no `caughtUp` to a subscription on a stream that does not exist yet until
 *   the stream gets events; this server does as 24.x nodes do (caught up at once);
 * - a subscription to a tombstoned stream fails with stream-deleted right after the confirmation,
 *   whatever its start (from `end`, a real node may report it caught up instead);
 * - `ReadResp` never carries `first_stream_position`/`last_stream_position` (only sent to clients
 *   asking for compatibility level ≥ 1, which this client never does).
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import type * as StreamsGrpcModule from '@eventstore/db-client/generated/streams_grpc_pb.js';
import type * as StreamsPbModule from '@eventstore/db-client/generated/streams_pb.js';
import type * as SharedPbModule from '@eventstore/db-client/generated/shared_pb.js';
import type * as StatusPbModule from '@eventstore/db-client/generated/status_pb.js';
import type * as FeaturesPbModule from '@eventstore/db-client/generated/serverfeatures_pb.js';
import type * as FeaturesGrpcModule from '@eventstore/db-client/generated/serverfeatures_grpc_pb.js';
import type * as AnyPbModule from 'google-protobuf/google/protobuf/any_pb.js';
import type * as EmptyPbModule from 'google-protobuf/google/protobuf/empty_pb.js';

export type TestServerOptions = {
  /** Largest accepted append, counted like the server (data + metadata + 2 × type length). Default 1_048_576. */
  maxAppendSize?: number;
  /**
   * Default true: a few system events (`$`-prefixed types in `$`-prefixed streams) are in `$all`
   * from the start, like on a real node, so clients must filter them. `$metadata` events written
   * by `setStreamMetadata`/`deleteStream` and `$streamDeleted` tombstones are real writes and are
   * in `$all` either way.
   */
  systemEvents?: boolean;
};

export type TestServer = {
  port: number;
  /** `esdb://127.0.0.1:PORT?tls=false` */
  connectionString: string;
  /** Forcibly ends all open calls (subscriptions included) and shuts the server down. */
  close(): Promise<void>;
};

// The client's own generated code (CommonJS): the same module instances the client loads.
const require = createRequire(import.meta.url);
const streamsGrpc: typeof StreamsGrpcModule = require('@eventstore/db-client/generated/streams_grpc_pb.js');
const pb: typeof StreamsPbModule = require('@eventstore/db-client/generated/streams_pb.js');
const shared: typeof SharedPbModule = require('@eventstore/db-client/generated/shared_pb.js');
const statusPb: typeof StatusPbModule = require('@eventstore/db-client/generated/status_pb.js');
const featuresPb: typeof FeaturesPbModule = require('@eventstore/db-client/generated/serverfeatures_pb.js');
const featuresGrpc: typeof FeaturesGrpcModule = require('@eventstore/db-client/generated/serverfeatures_grpc_pb.js');
const anyPb: typeof AnyPbModule = require('google-protobuf/google/protobuf/any_pb.js');
const emptyPb: typeof EmptyPbModule = require('google-protobuf/google/protobuf/empty_pb.js');

type ReadReq = StreamsPbModule.ReadReq;
type ReadResp = StreamsPbModule.ReadResp;
type AppendReq = StreamsPbModule.AppendReq;
type AppendResp = StreamsPbModule.AppendResp;
type BatchAppendReq = StreamsPbModule.BatchAppendReq;
type BatchAppendResp = StreamsPbModule.BatchAppendResp;
type DeleteReq = StreamsPbModule.DeleteReq;
type DeleteResp = StreamsPbModule.DeleteResp;
type TombstoneReq = StreamsPbModule.TombstoneReq;
type TombstoneResp = StreamsPbModule.TombstoneResp;

const SERVER_VERSION = '24.10.0';
const DEFAULT_MAX_APPEND_SIZE = 1_048_576;
/** EventNumber.DeletedStream: a tombstone's revision, and the `$tb` of a soft-deleted stream. */
const DELETED_STREAM = 9_223_372_036_854_775_807n;
const TICKS_PER_MS = 10_000n;
const MAX_MESSAGE_SIZE = 16 * 1024 * 1024;
/** ReadBatchSize of the server: the default max search window of filtered subscriptions. */
const DEFAULT_SEARCH_WINDOW = 32;
/** The log starts after a fake chunk header, so no event sits at position 0. */
const FIRST_POSITION = 128n;
/** Rough size of a prepare record around its stream name, type, data and metadata. */
const RECORD_OVERHEAD = 100n;
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// Rich-error codes of google.rpc.Code, as the server puts them in BatchAppendResp.error.
const CODE_UNKNOWN = 2;
const CODE_INVALID_ARGUMENT = 3;
const CODE_NOT_FOUND = 5;
const CODE_ALREADY_EXISTS = 6;

// ---------------------------------------------------------------------------------------------
// The store

type StoredEvent = {
  stream: string;
  revision: bigint;
  id: string;
  type: string;
  isJson: boolean;
  data: Uint8Array;
  metadata: Uint8Array;
  /** .NET ticks (100 ns) since the Unix epoch, as the server encodes `created`. */
  created: bigint;
  /** Commit and prepare position (always equal here). */
  position: bigint;
};

type ProposedEvent = { id: string; type: string; isJson: boolean; data: Uint8Array; metadata: Uint8Array };

type StreamState = { events: StoredEvent[]; tombstoned: boolean };

type Expected =
  { kind: 'any' } | { kind: 'no_stream' } | { kind: 'stream_exists' } | { kind: 'revision'; revision: bigint };

type CommitCheck =
  | { decision: 'ok'; current: bigint; softDeleted: boolean }
  | { decision: 'wrong'; current: bigint }
  | { decision: 'deleted' }
  | { decision: 'idempotent'; last: StoredEvent };

type WriteOutcome =
  | { kind: 'written'; lastRevision: bigint; position: bigint }
  | { kind: 'wrong'; current: bigint }
  | { kind: 'deleted' };

type StreamRead = { kind: 'deleted' } | { kind: 'none' } | { kind: 'ok'; events: StoredEvent[] };

type Listener = (written: readonly StoredEvent[]) => void;

const isMetastream = (stream: string) => stream.startsWith('$$');
const metastreamOf = (stream: string) => `$$${stream}`;
const originalOf = (metastream: string) => metastream.slice(2);
const utf8 = (text: string) => new TextEncoder().encode(text);
const expectedVersionOf = (expected: Expected): bigint =>
  expected.kind === 'any'
    ? -2n
    : expected.kind === 'no_stream'
      ? -1n
      : expected.kind === 'stream_exists'
        ? -4n
        : expected.revision;

class Store {
  readonly log: StoredEvent[] = [];
  private readonly streams = new Map<string, StreamState>();
  private readonly ids = new Map<string, StoredEvent>();
  private readonly listeners = new Set<Listener>();
  private nextPosition = FIRST_POSITION;

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  lastRevision(stream: string): bigint {
    const state = this.streams.get(stream);
    return state === undefined ? -1n : BigInt(state.events.length - 1);
  }

  isTombstoned(stream: string): boolean {
    if (this.streams.get(stream)?.tombstoned === true) return true;
    return isMetastream(stream) && this.streams.get(originalOf(stream))?.tombstoned === true;
  }

  /** The parsed JSON of the last `$$stream` event (`{}` when absent or not a JSON object). */
  metadataOf(stream: string): Record<string, unknown> {
    if (isMetastream(stream)) return { $maxCount: 1 };
    const last = this.streams.get(metastreamOf(stream))?.events.at(-1);
    if (last === undefined) return {};
    try {
      const parsed: unknown = JSON.parse(new TextDecoder().decode(last.data));
      return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
        ? (parsed as Record<string, unknown>)
        : {};
    } catch {
      return {};
    }
  }

  isSoftDeleted(stream: string): boolean {
    const tb = this.metadataOf(stream)['$tb'];
    return typeof tb === 'number' && tb >= 2 ** 63;
  }

  /** What a stream read sees: stream-deleted, no stream, or the events its metadata leaves visible. */
  readStream(stream: string): StreamRead {
    if (this.isTombstoned(stream)) return { kind: 'deleted' };
    const events = this.streams.get(stream)?.events ?? [];
    if (events.length === 0 || this.isSoftDeleted(stream)) return { kind: 'none' };
    const meta = this.metadataOf(stream);
    const last = BigInt(events.length - 1);
    let from = 0n;
    const tb = meta['$tb'];
    if (typeof tb === 'number' && Number.isFinite(tb) && tb > 0) from = BigInt(Math.floor(tb));
    const maxCount = meta['$maxCount'];
    if (typeof maxCount === 'number' && Number.isFinite(maxCount) && maxCount >= 1) {
      const fromCount = last - BigInt(Math.floor(maxCount)) + 1n;
      if (fromCount > from) from = fromCount;
    }
    let visible = from > last ? [] : events.slice(Number(from));
    const maxAge = meta['$maxAge'];
    if (typeof maxAge === 'number' && Number.isFinite(maxAge) && maxAge >= 1) {
      const oldest = BigInt(Date.now()) * TICKS_PER_MS - BigInt(Math.floor(maxAge)) * 1000n * TICKS_PER_MS;
      visible = visible.filter((e) => e.created >= oldest);
    }
    return { kind: 'ok', events: visible };
  }

  /**
   * Index in the log of the first event at or after the position `(commit, prepare)`, positions
   * comparing commit first, then prepare (an event's pair is `(position, position)`).
   */
  indexAtOrAfter(commit: bigint, prepare: bigint): number {
    const before = (p: bigint) => p < commit || (p === commit && p < prepare);
    let lo = 0;
    let hi = this.log.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(this.log[mid]!.position)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index in the log of the first event strictly after the position `(commit, prepare)`. */
  indexAfter(commit: bigint, prepare: bigint): number {
    const atOrBefore = (p: bigint) => p < commit || (p === commit && p <= prepare);
    let lo = 0;
    let hi = this.log.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (atOrBefore(this.log[mid]!.position)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The server's commit check (IndexWriter.CheckCommit) on the current state. */
  private check(stream: string, expected: Expected, ids: readonly string[]): CommitCheck {
    if (this.isTombstoned(stream)) return { decision: 'deleted' };
    const events = this.streams.get(stream)?.events ?? [];
    const current = BigInt(events.length - 1);
    if (expected.kind === 'stream_exists') {
      if (this.isSoftDeleted(stream)) return { decision: 'deleted' };
      if (current < 0n && this.lastRevision(metastreamOf(stream)) < 0n) return { decision: 'wrong', current };
    }
    if (expected.kind === 'any' || expected.kind === 'stream_exists') {
      if (ids.length === 0) return { decision: 'ok', current, softDeleted: this.isSoftDeleted(stream) };
      let last: StoredEvent | undefined;
      for (const [i, id] of ids.entries()) {
        const known = this.ids.get(id);
        if (known === undefined || known.stream !== stream) {
          return i === 0
            ? { decision: 'ok', current, softDeleted: this.isSoftDeleted(stream) }
            : { decision: 'wrong', current };
        }
        last = known;
      }
      return { decision: 'idempotent', last: last! };
    }
    const expectedRevision = expected.kind === 'no_stream' ? -1n : expected.revision;
    if (expectedRevision < current) {
      let revision = expectedRevision;
      for (const id of ids) {
        revision += 1n;
        if (events[Number(revision)]?.id === id) continue;
        if (revision !== expectedRevision + 1n) return { decision: 'wrong', current };
        if (expected.kind === 'no_stream' && this.isSoftDeleted(stream))
          return { decision: 'ok', current, softDeleted: true };
        return { decision: 'wrong', current };
      }
      if (revision === expectedRevision) return { decision: 'wrong', current };
      return { decision: 'idempotent', last: events[Number(revision)]! };
    }
    if (expectedRevision > current) return { decision: 'wrong', current };
    return { decision: 'ok', current, softDeleted: this.isSoftDeleted(stream) };
  }

  private record(stream: string, revision: bigint, event: ProposedEvent, created: bigint): StoredEvent {
    const stored: StoredEvent = { stream, revision, ...event, created, position: this.nextPosition };
    this.nextPosition +=
      RECORD_OVERHEAD +
      BigInt(utf8(stream).length + utf8(event.type).length + event.data.length + event.metadata.length);
    let state = this.streams.get(stream);
    if (state === undefined) this.streams.set(stream, (state = { events: [], tombstoned: false }));
    if (revision === DELETED_STREAM) state.tombstoned = true;
    else state.events.push(stored);
    this.log.push(stored);
    this.ids.set(stored.id, stored);
    return stored;
  }

  private publish(written: readonly StoredEvent[]) {
    if (written.length === 0) return;
    for (const listener of [...this.listeners]) listener(written);
  }

  private writeMetadata(stream: string, json: string, created: bigint): StoredEvent {
    const meta = metastreamOf(stream);
    const data = utf8(json);
    return this.record(
      meta,
      this.lastRevision(meta) + 1n,
      { id: randomUUID(), type: '$metadata', isJson: true, data, metadata: new Uint8Array() },
      created,
    );
  }

  /** StorageWriterService.SoftUndeleteStream: the stream's raw metadata with `$tb` set to `recreateFrom`. */
  private softUndelete(stream: string, recreateFrom: bigint, created: bigint): StoredEvent[] {
    const last = this.streams.get(metastreamOf(stream))?.events.at(-1);
    if (last === undefined) return [];
    let raw: unknown;
    try {
      raw = JSON.parse(new TextDecoder().decode(last.data));
    } catch {
      return [];
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return [];
    const updated = { ...(raw as Record<string, unknown>), $tb: Number(recreateFrom) };
    return [this.writeMetadata(stream, JSON.stringify(updated), created)];
  }

  /** Appends `events` atomically after the commit check; publishes what it wrote. */
  append(stream: string, expected: Expected, events: readonly ProposedEvent[]): WriteOutcome {
    const check = this.check(
      stream,
      expected,
      events.map((e) => e.id),
    );
    if (check.decision === 'deleted') return { kind: 'deleted' };
    if (check.decision === 'wrong') return { kind: 'wrong', current: check.current };
    if (check.decision === 'idempotent')
      return { kind: 'written', lastRevision: check.last.revision, position: check.last.position };
    // Checked before the write, as the server does: a write to the metastream of a soft-deleted
    // stream undeletes that stream.
    const undeleteOriginal = isMetastream(stream) && this.isSoftDeleted(originalOf(stream));
    const created = BigInt(Date.now()) * TICKS_PER_MS;
    const written = events.map((event, i) => this.record(stream, check.current + 1n + BigInt(i), event, created));
    const extra: StoredEvent[] = [];
    if (check.softDeleted) extra.push(...this.softUndelete(stream, check.current + 1n, created));
    if (undeleteOriginal) {
      const original = originalOf(stream);
      extra.push(...this.softUndelete(original, this.lastRevision(original) + 1n, created));
    }
    this.publish([...written, ...extra]);
    const last = written.at(-1);
    return last === undefined
      ? { kind: 'written', lastRevision: check.current, position: this.nextPosition }
      : { kind: 'written', lastRevision: last.revision, position: last.position };
  }

  /** Soft delete: `$tb` = DeletedStream in the stream's metadata (the rest of the metadata is dropped). */
  softDelete(stream: string, expected: Expected): WriteOutcome {
    const check = this.check(stream, expected, [randomUUID()]);
    if (check.decision === 'deleted') return { kind: 'deleted' };
    if (check.decision === 'wrong') return { kind: 'wrong', current: check.current };
    if (check.decision === 'idempotent')
      return { kind: 'written', lastRevision: check.last.revision, position: check.last.position };
    if (check.current < 0n && this.lastRevision(metastreamOf(stream)) < 0n) return { kind: 'wrong', current: -1n };
    const written = this.writeMetadata(stream, `{"$tb":${DELETED_STREAM}}`, BigInt(Date.now()) * TICKS_PER_MS);
    this.publish([written]);
    return { kind: 'written', lastRevision: check.current, position: written.position };
  }

  /** Hard delete: a `$streamDeleted` event at revision DeletedStream; the stream is gone for good. */
  tombstone(stream: string, expected: Expected): WriteOutcome {
    const check = this.check(stream, expected, [randomUUID()]);
    if (check.decision === 'deleted') return { kind: 'deleted' };
    if (check.decision === 'wrong') return { kind: 'wrong', current: check.current };
    if (check.decision === 'idempotent')
      return { kind: 'written', lastRevision: check.last.revision, position: check.last.position };
    const event: ProposedEvent = {
      id: randomUUID(),
      type: '$streamDeleted',
      isJson: false,
      data: new Uint8Array(),
      metadata: new Uint8Array(),
    };
    const written = this.record(stream, DELETED_STREAM, event, BigInt(Date.now()) * TICKS_PER_MS);
    this.publish([written]);
    return { kind: 'written', lastRevision: DELETED_STREAM, position: written.position };
  }

  /** The startup system events: a stand-in for what a fresh node writes. */
  writeSystemEvents() {
    const created = BigInt(Date.now()) * TICKS_PER_MS;
    const json = (value: unknown) => utf8(JSON.stringify(value));
    const system = (stream: string, type: string, data: Uint8Array) =>
      this.record(
        stream,
        this.lastRevision(stream) + 1n,
        { id: randomUUID(), type, isJson: true, data, metadata: new Uint8Array() },
        created,
      );
    const acl = (role: string) => ({ $r: role, $w: role, $d: role, $mr: role, $mw: role });
    system('$settings', '$settings', json({ $userStreamAcl: acl('$all'), $systemStreamAcl: acl('$admins') }));
    system(
      '$user-admin',
      '$user',
      json({ loginName: 'admin', fullName: 'Event Store Administrator', groups: ['$admins'] }),
    );
    system('$users', '$UserCreated', utf8('admin'));
  }
}

// ---------------------------------------------------------------------------------------------
// Errors as the server sends them

/** An RpcException of the server: a status with `exception`-keyed trailers the client maps to its errors. */
class RpcFailure extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
    readonly trailers: Record<string, string> = {},
  ) {
    super(details);
  }

  toServiceError(): grpc.ServerErrorResponse {
    const metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(this.trailers)) metadata.set(key, value);
    return Object.assign(new Error(this.details), { code: this.code, details: this.details, metadata });
  }
}

const streamDeletedFailure = (stream: string) =>
  new RpcFailure(grpc.status.FAILED_PRECONDITION, `Event stream '${stream}' is deleted.`, {
    exception: 'stream-deleted',
    'stream-name': stream,
  });

const wrongExpectedVersionFailure = (operation: string, stream: string, expected: bigint, actual: bigint) =>
  new RpcFailure(
    grpc.status.FAILED_PRECONDITION,
    `${operation} failed due to WrongExpectedVersion. ` +
      `Stream: ${stream}, Expected version: ${expected}, Actual version: ${actual}`,
    {
      exception: 'wrong-expected-version',
      'stream-name': stream,
      'expected-version': expected.toString(),
      'actual-version': actual.toString(),
    },
  );

const maxAppendSizeFailure = (max: number) =>
  new RpcFailure(grpc.status.INVALID_ARGUMENT, `Maximum Append Size of ${max} Exceeded.`, {
    exception: 'maximum-append-size-exceeded',
    'maximum-append-size': String(max),
  });

const missingMetadataFailure = (property: string) =>
  new RpcFailure(grpc.status.INVALID_ARGUMENT, `Required Metadata Property '${property}' is missing`, {
    exception: 'missing-required-metadata-property',
    'required-metadata-properties': 'type,content-type',
  });

const badRequest = (message: string) => new RpcFailure(grpc.status.INVALID_ARGUMENT, message);

const toServiceError = (error: unknown): grpc.ServerErrorResponse =>
  error instanceof RpcFailure
    ? error.toServiceError()
    : new RpcFailure(grpc.status.UNKNOWN, 'Exception was thrown by handler.').toServiceError();

/** A google.rpc.Status with one packed detail message, as BatchAppendResp.error carries it. */
function richStatus(
  code: number,
  message: string,
  detail: { serializeBinary(): Uint8Array },
  typeName: string,
): StatusPbModule.Status {
  const any = new anyPb.Any();
  any.pack(detail.serializeBinary(), typeName);
  const status = new statusPb.Status();
  status.setCode(code as StatusPbModule.Status.AsObject['code']);
  status.setMessage(message);
  status.setDetails(any);
  return status;
}

// ---------------------------------------------------------------------------------------------
// Message helpers

function streamNameOf(identifier: SharedPbModule.StreamIdentifier | undefined): string {
  if (identifier === undefined) throw badRequest('Required field StreamIdentifier not set.');
  return Buffer.from(identifier.getStreamName_asU8()).toString('utf8');
}

function streamIdentifier(stream: string): SharedPbModule.StreamIdentifier {
  const identifier = new shared.StreamIdentifier();
  identifier.setStreamName(utf8(stream));
  return identifier;
}

function uuidOf(uuid: SharedPbModule.UUID | undefined): string {
  if (uuid === undefined) throw badRequest('Required field Id not set.');
  let text: string;
  if (uuid.hasStructured()) {
    const structured = uuid.getStructured()!;
    const hex = (bits: string) => BigInt.asUintN(64, BigInt(bits)).toString(16).padStart(16, '0');
    text = hex(structured.getMostSignificantBits()) + hex(structured.getLeastSignificantBits());
  } else {
    text = uuid
      .getString()
      .trim()
      .toLowerCase()
      .replace(/^\{(.*)\}$/, '$1');
  }
  if (/^[0-9a-f]{32}$/.test(text))
    text = `${text.slice(0, 8)}-${text.slice(8, 12)}-${text.slice(12, 16)}-${text.slice(16, 20)}-${text.slice(20)}`;
  if (!UUID_PATTERN.test(text)) throw new RpcFailure(grpc.status.UNKNOWN, 'Exception was thrown by handler.');
  return text;
}

function uuidMessage(id: string, structured: boolean): SharedPbModule.UUID {
  const uuid = new shared.UUID();
  if (!structured) {
    uuid.setString(id);
    return uuid;
  }
  const hex = id.replaceAll('-', '');
  const bits = new shared.UUID.Structured();
  bits.setMostSignificantBits(BigInt.asIntN(64, BigInt(`0x${hex.slice(0, 16)}`)).toString());
  bits.setLeastSignificantBits(BigInt.asIntN(64, BigInt(`0x${hex.slice(16)}`)).toString());
  uuid.setStructured(bits);
  return uuid;
}

type ProposedMessage = StreamsPbModule.AppendReq.ProposedMessage | StreamsPbModule.BatchAppendReq.ProposedMessage;

function proposedEvent(message: ProposedMessage): ProposedEvent {
  const map = message.getMetadataMap();
  const type = map.get('type');
  if (type === undefined) throw missingMetadataFailure('type');
  const contentType = map.get('content-type');
  if (contentType === undefined) throw missingMetadataFailure('content-type');
  if (type === '') throw badRequest('Empty eventType provided.');
  return {
    id: uuidOf(message.getId()),
    type,
    isJson: contentType === 'application/json',
    data: Uint8Array.from(message.getData_asU8()),
    metadata: Uint8Array.from(message.getCustomMetadata_asU8()),
  };
}

/** Event.SizeOnDisk of the server: what counts against the append size limit. */
const sizeOnDisk = (event: ProposedEvent) => event.data.length + event.metadata.length + event.type.length * 2;

function readEvent(event: StoredEvent, structured: boolean): ReadResp {
  const recorded = new pb.ReadResp.ReadEvent.RecordedEvent();
  recorded.setId(uuidMessage(event.id, structured));
  recorded.setStreamIdentifier(streamIdentifier(event.stream));
  recorded.setStreamRevision(event.revision.toString());
  recorded.setPreparePosition(event.position.toString());
  recorded.setCommitPosition(event.position.toString());
  const metadata = recorded.getMetadataMap();
  metadata.set('type', event.type);
  metadata.set('created', event.created.toString());
  metadata.set('content-type', event.isJson ? 'application/json' : 'application/octet-stream');
  recorded.setData(event.data);
  recorded.setCustomMetadata(event.metadata);
  const read = new pb.ReadResp.ReadEvent();
  read.setEvent(recorded);
  read.setCommitPosition(event.position.toString());
  const resp = new pb.ReadResp();
  resp.setEvent(read);
  return resp;
}

function confirmation(): ReadResp {
  const resp = new pb.ReadResp();
  const confirmed = new pb.ReadResp.SubscriptionConfirmation();
  confirmed.setSubscriptionId(randomUUID());
  resp.setConfirmation(confirmed);
  return resp;
}

function caughtUp(): ReadResp {
  const resp = new pb.ReadResp();
  resp.setCaughtUp(new pb.ReadResp.CaughtUp());
  return resp;
}

function checkpointMessage(position: bigint): ReadResp {
  const resp = new pb.ReadResp();
  const point = new pb.ReadResp.Checkpoint();
  point.setCommitPosition(position.toString());
  point.setPreparePosition(position.toString());
  resp.setCheckpoint(point);
  return resp;
}

function streamNotFound(stream: string): ReadResp {
  const resp = new pb.ReadResp();
  const missing = new pb.ReadResp.StreamNotFound();
  missing.setStreamIdentifier(streamIdentifier(stream));
  resp.setStreamNotFound(missing);
  return resp;
}

type ExpectedSource = {
  hasAny(): boolean;
  hasNoStream(): boolean;
  hasStreamExists(): boolean;
};

function expectedOf(options: ExpectedSource, revision: () => string | undefined): Expected {
  if (options.hasAny()) return { kind: 'any' };
  if (options.hasNoStream()) return { kind: 'no_stream' };
  if (options.hasStreamExists()) return { kind: 'stream_exists' };
  const value = revision();
  if (value === undefined) throw badRequest('Expected stream revision not set.');
  return { kind: 'revision', revision: BigInt(value) };
}

type EventFilter = {
  matches(event: StoredEvent): boolean;
  /** Events considered between two checkpoints. */
  checkpointInterval: number;
};

function filterOf(options: StreamsPbModule.ReadReq.Options): EventFilter | null {
  if (!options.hasFilter()) return null;
  const filter = options.getFilter()!;
  const onStream = filter.hasStreamIdentifier();
  const expression = onStream ? filter.getStreamIdentifier() : filter.getEventType();
  if (expression === undefined) throw badRequest('Filter expression not set.');
  const regex = expression.getRegex();
  const prefixes = expression.getPrefixList();
  const test: (value: string) => boolean =
    regex !== ''
      ? (
          (pattern) => (value) =>
            pattern.test(value)
        )(new RegExp(regex))
      : (value) => prefixes.some((prefix) => value.startsWith(prefix));
  const window = filter.hasMax() ? filter.getMax() : DEFAULT_SEARCH_WINDOW;
  const multiplier = filter.getCheckpointintervalmultiplier();
  if (multiplier <= 0 || window <= 0)
    throw badRequest('CheckpointIntervalMultiplier and MaxSearchWindow must be positive.');
  return { matches: (event) => test(onStream ? event.stream : event.type), checkpointInterval: multiplier * window };
}

// ---------------------------------------------------------------------------------------------
// Streams.Read

type ReadCall = grpc.ServerWritableStream<ReadReq, ReadResp>;

/** One open Read call (read or subscription): writes until the call ends, then stops. */
class ReadSession {
  private open = true;
  private cleanups: Array<() => void> = [];

  constructor(
    readonly call: ReadCall,
    private readonly sessions: Set<ReadSession>,
  ) {
    sessions.add(this);
    const stop = () => this.dispose();
    call.on('cancelled', stop);
    call.on('close', stop);
    call.on('finish', stop);
    call.on('error', stop);
  }

  get isOpen() {
    return this.open && !this.call.cancelled;
  }

  onDispose(cleanup: () => void) {
    if (this.open) this.cleanups.push(cleanup);
    else cleanup();
  }

  write(resp: ReadResp) {
    if (this.isOpen) this.call.write(resp);
  }

  end() {
    if (!this.isOpen) return;
    this.dispose();
    this.call.end();
  }

  fail(error: unknown) {
    if (!this.isOpen) return;
    this.dispose();
    this.call.emit('error', toServiceError(error));
  }

  dispose() {
    if (!this.open) return;
    this.open = false;
    this.sessions.delete(this);
    for (const cleanup of this.cleanups.splice(0)) cleanup();
  }
}

function handleRead(store: Store, sessions: Set<ReadSession>, call: ReadCall) {
  const session = new ReadSession(call, sessions);
  try {
    const options = call.request.getOptions();
    if (options === undefined) throw badRequest('Required field Options not set.');
    const structured = options.getUuidOption()?.hasStructured() === true;
    const filter = filterOf(options);
    if (options.hasSubscription()) {
      if (options.getReadDirection() !== 0) throw badRequest('Subscriptions read forwards only.');
      if (options.hasAll()) subscribeToAll(store, session, options.getAll()!, filter, structured);
      else if (options.hasStream()) subscribeToStream(store, session, options.getStream()!, structured);
      else throw badRequest('Required field Stream or All not set.');
      return;
    }
    const count = BigInt(options.getCount() || '0');
    const forwards = options.getReadDirection() === 0;
    if (options.hasAll()) readAll(store, session, options.getAll()!, forwards, count, filter, structured);
    else if (options.hasStream()) readStream(store, session, options.getStream()!, forwards, count, structured);
    else throw badRequest('Required field Stream or All not set.');
  } catch (error) {
    session.fail(error);
  }
}

function readStream(
  store: Store,
  session: ReadSession,
  options: StreamsPbModule.ReadReq.Options.StreamOptions,
  forwards: boolean,
  count: bigint,
  structured: boolean,
) {
  const stream = streamNameOf(options.getStreamIdentifier());
  const read = store.readStream(stream);
  if (read.kind === 'deleted') throw streamDeletedFailure(stream);
  if (read.kind === 'none') {
    session.write(streamNotFound(stream));
    session.end();
    return;
  }
  let events: StoredEvent[];
  if (forwards) {
    const from = options.hasRevision() ? BigInt(options.getRevision()) : options.hasEnd() ? DELETED_STREAM : 0n;
    events = read.events.filter((e) => e.revision >= from);
  } else {
    const from = options.hasRevision() ? BigInt(options.getRevision()) : options.hasStart() ? 0n : DELETED_STREAM;
    events = read.events.filter((e) => e.revision <= from).reverse();
  }
  let sent = 0n;
  for (const event of events) {
    if (sent >= count) break;
    session.write(readEvent(event, structured));
    sent += 1n;
  }
  session.end();
}

function readAll(
  store: Store,
  session: ReadSession,
  options: StreamsPbModule.ReadReq.Options.AllOptions,
  forwards: boolean,
  count: bigint,
  filter: EventFilter | null,
  structured: boolean,
) {
  const log = store.log;
  const grpcPosition = options.hasPosition() ? options.getPosition()! : null;
  const position =
    grpcPosition === null
      ? null
      : ([BigInt(grpcPosition.getCommitPosition()), BigInt(grpcPosition.getPreparePosition())] as const);
  let sent = 0n;
  const visit = (event: StoredEvent) => {
    if (filter !== null && !filter.matches(event)) return true;
    if (sent >= count) return false;
    session.write(readEvent(event, structured));
    sent += 1n;
    return true;
  };
  if (forwards) {
    // From a position: events at or after it; `end` forwards reads nothing.
    const start = options.hasEnd() ? log.length : position === null ? 0 : store.indexAtOrAfter(...position);
    for (let i = start; i < log.length; i++) if (!visit(log[i]!)) break;
  } else {
    // From a position: events strictly before it; `start` backwards reads nothing.
    const start = options.hasStart() ? -1 : position === null ? log.length - 1 : store.indexAtOrAfter(...position) - 1;
    for (let i = start; i >= 0; i--) if (!visit(log[i]!)) break;
  }
  session.end();
}

/**
 * A catch-up subscription to a stream, as 24.x servers run it: the confirmation; then, when the
 * start lies before the stream's last revision, the visible events after it (like a stream read);
 * then `caughtUp`; then live events after the last one sent. A stream that does not exist (or is
 * soft-deleted) is caught up at once and its first events arrive live. A tombstone fails the call
 * with stream-deleted (live, after delivering the `$streamDeleted` event, as the server does).
 */
function subscribeToStream(
  store: Store,
  session: ReadSession,
  options: StreamsPbModule.ReadReq.Options.StreamOptions,
  structured: boolean,
) {
  const stream = streamNameOf(options.getStreamIdentifier());
  session.write(confirmation());
  if (store.isTombstoned(stream)) throw streamDeletedFailure(stream);
  const last = store.lastRevision(stream);
  // The revision last sent on (or to start after): events after it are sent.
  let checkpoint = options.hasEnd() ? last : options.hasRevision() ? BigInt(options.getRevision()) : -1n;
  if (checkpoint < last) {
    const read = store.readStream(stream);
    if (read.kind === 'ok') {
      for (const event of read.events) {
        if (event.revision <= checkpoint) continue;
        session.write(readEvent(event, structured));
        checkpoint = event.revision;
      }
    }
  }
  session.write(caughtUp());
  const unsubscribe = store.subscribe((written) => {
    for (const event of written) {
      if (event.stream !== stream || event.revision <= checkpoint) continue;
      session.write(readEvent(event, structured));
      checkpoint = event.revision;
      if (event.type === '$streamDeleted') {
        session.fail(streamDeletedFailure(stream));
        return;
      }
    }
  });
  session.onDispose(unsubscribe);
}

/**
 * A catch-up subscription to `$all`, as 24.x servers run it: the confirmation; the events after the
 * start position when it lies before the last event; `caughtUp`; then live events. With a filter,
 * every event considered counts towards the checkpoint interval (multiplier × max search window):
 * a checkpoint at the position of the event that completes an interval, one more at the end of the
 * catch-up, and the count starts again from zero live.
 */
function subscribeToAll(
  store: Store,
  session: ReadSession,
  options: StreamsPbModule.ReadReq.Options.AllOptions,
  filter: EventFilter | null,
  structured: boolean,
) {
  const log = store.log;
  let considered = 0;
  const consider = (event: StoredEvent) => {
    if (filter === null || filter.matches(event)) session.write(readEvent(event, structured));
    if (filter === null) return;
    considered += 1;
    if (considered >= filter.checkpointInterval) {
      considered = 0;
      session.write(checkpointMessage(event.position));
    }
  };

  session.write(confirmation());
  const position = options.hasPosition() ? options.getPosition()! : null;
  const start = options.hasEnd()
    ? log.length
    : position === null
      ? 0
      : store.indexAfter(BigInt(position.getCommitPosition()), BigInt(position.getPreparePosition()));
  if (start < log.length) {
    for (let i = start; i < log.length; i++) consider(log[i]!);
    if (filter !== null && considered > 0) session.write(checkpointMessage(log.at(-1)!.position));
  }
  considered = 0;
  session.write(caughtUp());
  const unsubscribe = store.subscribe((written) => {
    for (const event of written) consider(event);
  });
  session.onDispose(unsubscribe);
}

// ---------------------------------------------------------------------------------------------
// Streams.Append, Streams.BatchAppend, Streams.Delete, Streams.Tombstone

function appendResponse(outcome: WriteOutcome, expected: Expected, stream: string): AppendResp {
  if (outcome.kind === 'deleted') throw streamDeletedFailure(stream);
  const resp = new pb.AppendResp();
  if (outcome.kind === 'wrong') {
    const wrong = new pb.AppendResp.WrongExpectedVersion();
    if (outcome.current < 0n) wrong.setCurrentNoStream(new shared.Empty());
    else wrong.setCurrentRevision(outcome.current.toString());
    if (expected.kind === 'any') wrong.setExpectedAny(new shared.Empty());
    else if (expected.kind === 'no_stream') wrong.setExpectedNoStream(new shared.Empty());
    else if (expected.kind === 'stream_exists') wrong.setExpectedStreamExists(new shared.Empty());
    else wrong.setExpectedRevision(expected.revision.toString());
    resp.setWrongExpectedVersion(wrong);
    return resp;
  }
  const success = new pb.AppendResp.Success();
  if (outcome.lastRevision < 0n) success.setNoStream(new shared.Empty());
  else success.setCurrentRevision(outcome.lastRevision.toString());
  const position = new pb.AppendResp.Position();
  position.setCommitPosition(outcome.position.toString());
  position.setPreparePosition(outcome.position.toString());
  success.setPosition(position);
  resp.setSuccess(success);
  return resp;
}

function handleAppend(
  store: Store,
  maxAppendSize: number,
  call: grpc.ServerReadableStream<AppendReq, AppendResp>,
  callback: grpc.sendUnaryData<AppendResp>,
) {
  let header: { stream: string; expected: Expected } | null = null;
  const events: ProposedEvent[] = [];
  let size = 0;
  let done = false;
  const finish = (error: unknown, resp?: AppendResp) => {
    if (done) return;
    done = true;
    if (error === null) callback(null, resp);
    else callback(toServiceError(error));
  };
  call.on('data', (req: AppendReq) => {
    if (done) return;
    try {
      if (header === null) {
        const options = req.getOptions();
        if (options === undefined) throw badRequest('The first AppendReq must carry the options.');
        header = {
          stream: streamNameOf(options.getStreamIdentifier()),
          expected: expectedOf(options, () => (options.hasRevision() ? options.getRevision() : undefined)),
        };
        return;
      }
      const message = req.getProposedMessage();
      if (message === undefined) throw badRequest('AppendReq after the options must carry a proposed message.');
      const event = proposedEvent(message);
      size += sizeOnDisk(event);
      if (size > maxAppendSize) throw maxAppendSizeFailure(maxAppendSize);
      events.push(event);
    } catch (error) {
      finish(error);
    }
  });
  call.on('end', () => {
    if (done) return;
    try {
      if (header === null) throw badRequest('Empty append request.');
      finish(
        null,
        appendResponse(store.append(header.stream, header.expected, events), header.expected, header.stream),
      );
    } catch (error) {
      finish(error);
    }
  });
  call.on('error', () => {
    done = true;
  });
}

function batchAppendResponse(correlation: SharedPbModule.UUID | undefined, stream: string): BatchAppendResp {
  const resp = new pb.BatchAppendResp();
  if (correlation !== undefined) resp.setCorrelationId(correlation);
  resp.setStreamIdentifier(streamIdentifier(stream));
  return resp;
}

function batchOutcome(outcome: WriteOutcome, expected: Expected, stream: string, resp: BatchAppendResp) {
  if (outcome.kind === 'deleted') {
    const detail = new shared.StreamDeleted();
    detail.setStreamIdentifier(streamIdentifier(stream));
    resp.setError(richStatus(CODE_NOT_FOUND, 'StreamDeleted', detail, 'event_store.client.StreamDeleted'));
    return;
  }
  if (outcome.kind === 'wrong') {
    const detail = new shared.WrongExpectedVersion();
    if (outcome.current < 0n) detail.setCurrentNoStream(new emptyPb.Empty());
    else detail.setCurrentStreamRevision(outcome.current.toString());
    if (expected.kind === 'any') detail.setExpectedAny(new emptyPb.Empty());
    else if (expected.kind === 'no_stream') detail.setExpectedNoStream(new emptyPb.Empty());
    else if (expected.kind === 'stream_exists') detail.setExpectedStreamExists(new emptyPb.Empty());
    else detail.setExpectedStreamPosition(expected.revision.toString());
    resp.setError(
      richStatus(CODE_ALREADY_EXISTS, 'WrongExpectedVersion', detail, 'event_store.client.WrongExpectedVersion'),
    );
    return;
  }
  const success = new pb.BatchAppendResp.Success();
  if (outcome.lastRevision < 0n) success.setNoStream(new emptyPb.Empty());
  else success.setCurrentRevision(outcome.lastRevision.toString());
  const position = new shared.AllStreamPosition();
  position.setCommitPosition(outcome.position.toString());
  position.setPreparePosition(outcome.position.toString());
  success.setPosition(position);
  resp.setSuccess(success);
}

function handleBatchAppend(
  store: Store,
  maxAppendSize: number,
  call: grpc.ServerDuplexStream<BatchAppendReq, BatchAppendResp>,
) {
  type Pending = { stream: string; expected: Expected; events: ProposedEvent[]; size: number };
  const pending = new Map<string, Pending>();
  let open = true;
  const send = (resp: BatchAppendResp) => {
    if (open && !call.cancelled) call.write(resp);
  };
  call.on('data', (req: BatchAppendReq) => {
    const correlation = req.getCorrelationId();
    let stream = '';
    try {
      const correlationId = uuidOf(correlation);
      const options = req.getOptions();
      if (options !== undefined) {
        stream = streamNameOf(options.getStreamIdentifier());
        if (!pending.has(correlationId)) {
          const expected = expectedOf(options, () =>
            options.hasStreamPosition() ? options.getStreamPosition() : undefined,
          );
          pending.set(correlationId, { stream, expected, events: [], size: 0 });
        }
      }
      const write = pending.get(correlationId);
      if (write === undefined) return;
      stream = write.stream;
      for (const message of req.getProposedMessagesList()) {
        const event = proposedEvent(message);
        write.size += sizeOnDisk(event);
        write.events.push(event);
      }
      if (write.size > maxAppendSize) {
        pending.delete(correlationId);
        const detail = new shared.MaximumAppendSizeExceeded();
        detail.setMaxappendsize(maxAppendSize);
        const resp = batchAppendResponse(correlation, write.stream);
        resp.setError(
          richStatus(
            CODE_INVALID_ARGUMENT,
            'MaximumAppendSizeExceeded',
            detail,
            'event_store.client.MaximumAppendSizeExceeded',
          ),
        );
        send(resp);
        return;
      }
      if (!req.getIsFinal()) return;
      pending.delete(correlationId);
      const resp = batchAppendResponse(correlation, write.stream);
      batchOutcome(store.append(write.stream, write.expected, write.events), write.expected, write.stream, resp);
      send(resp);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const detail = new shared.BadRequest();
      detail.setMessage(message);
      const resp = batchAppendResponse(correlation, stream);
      resp.setError(
        richStatus(
          error instanceof RpcFailure && error.code === grpc.status.UNKNOWN ? CODE_UNKNOWN : CODE_INVALID_ARGUMENT,
          'BadRequest',
          detail,
          'event_store.client.BadRequest',
        ),
      );
      send(resp);
    }
  });
  call.on('end', () => {
    if (!open) return;
    open = false;
    call.end();
  });
  const stop = () => {
    open = false;
  };
  call.on('cancelled', stop);
  call.on('error', stop);
}

function deleteOutcome(outcome: WriteOutcome, stream: string, expected: Expected): bigint {
  if (outcome.kind === 'deleted') throw streamDeletedFailure(stream);
  if (outcome.kind === 'wrong')
    throw wrongExpectedVersionFailure('Delete', stream, expectedVersionOf(expected), outcome.current);
  return outcome.position;
}

function handleDelete(
  store: Store,
  call: grpc.ServerUnaryCall<DeleteReq, DeleteResp>,
  callback: grpc.sendUnaryData<DeleteResp>,
) {
  try {
    const options = call.request.getOptions();
    if (options === undefined) throw badRequest('Required field Options not set.');
    const stream = streamNameOf(options.getStreamIdentifier());
    const expected = expectedOf(options, () => (options.hasRevision() ? options.getRevision() : undefined));
    const position = deleteOutcome(store.softDelete(stream, expected), stream, expected);
    const resp = new pb.DeleteResp();
    const grpcPosition = new pb.DeleteResp.Position();
    grpcPosition.setCommitPosition(position.toString());
    grpcPosition.setPreparePosition(position.toString());
    resp.setPosition(grpcPosition);
    callback(null, resp);
  } catch (error) {
    callback(toServiceError(error));
  }
}

function handleTombstone(
  store: Store,
  call: grpc.ServerUnaryCall<TombstoneReq, TombstoneResp>,
  callback: grpc.sendUnaryData<TombstoneResp>,
) {
  try {
    const options = call.request.getOptions();
    if (options === undefined) throw badRequest('Required field Options not set.');
    const stream = streamNameOf(options.getStreamIdentifier());
    const expected = expectedOf(options, () => (options.hasRevision() ? options.getRevision() : undefined));
    const position = deleteOutcome(store.tombstone(stream, expected), stream, expected);
    const resp = new pb.TombstoneResp();
    const grpcPosition = new pb.TombstoneResp.Position();
    grpcPosition.setCommitPosition(position.toString());
    grpcPosition.setPreparePosition(position.toString());
    resp.setPosition(grpcPosition);
    callback(null, resp);
  } catch (error) {
    callback(toServiceError(error));
  }
}

// ---------------------------------------------------------------------------------------------
// ServerFeatures

function supportedMethods(): FeaturesPbModule.SupportedMethods {
  const method = (service: string, name: string, features: string[] = []) => {
    const supported = new featuresPb.SupportedMethod();
    supported.setServiceName(service.toLowerCase());
    supported.setMethodName(name.toLowerCase());
    supported.setFeaturesList(features);
    return supported;
  };
  const streams = 'event_store.client.streams.Streams';
  const result = new featuresPb.SupportedMethods();
  result.setEventStoreServerVersion(SERVER_VERSION);
  result.setMethodsList([
    method(streams, 'Read', ['position', 'events']),
    method(streams, 'Append'),
    method(streams, 'Delete'),
    method(streams, 'Tombstone'),
    method(streams, 'BatchAppend', ['deadline_duration']),
    method('event_store.client.server_features.ServerFeatures', 'GetSupportedMethods'),
  ]);
  return result;
}

// ---------------------------------------------------------------------------------------------
// The server

/** Starts a server on 127.0.0.1 (a free port) and resolves once it listens. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const maxAppendSize = options.maxAppendSize ?? DEFAULT_MAX_APPEND_SIZE;
  const store = new Store();
  if (options.systemEvents ?? true) store.writeSystemEvents();
  const sessions = new Set<ReadSession>();

  // Like the server's Kestrel setup: gRPC messages up to the largest log record (16 MiB), so an
  // oversized append meets the append size check, not the transport's 4 MiB default.
  const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_MESSAGE_SIZE });
  const streams: StreamsGrpcModule.IStreamsServer = {
    read: (call) => handleRead(store, sessions, call),
    append: (call, callback) => handleAppend(store, maxAppendSize, call, callback),
    delete: (call, callback) => handleDelete(store, call, callback),
    tombstone: (call, callback) => handleTombstone(store, call, callback),
    batchAppend: (call) => handleBatchAppend(store, maxAppendSize, call),
  };
  server.addService(streamsGrpc.StreamsService, streams);
  const features: FeaturesGrpcModule.IServerFeaturesServer = {
    getSupportedMethods: (_call, callback) => callback(null, supportedMethods()),
  };
  server.addService(featuresGrpc.ServerFeaturesService, features);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  let closed: Promise<void> | null = null;
  return {
    port,
    connectionString: `esdb://127.0.0.1:${port}?tls=false`,
    close() {
      closed ??= (async () => {
        for (const session of [...sessions]) session.dispose();
        server.forceShutdown();
      })();
      return closed;
    },
  };
}
