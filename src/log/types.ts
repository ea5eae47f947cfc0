/**
 * The EventLog port: the append-only round log every backend implements.
 *
 * Revisions number the events of one stream from 0; positions order every event of the log.
 * Both are bigints. Storage facts live on the envelope (`RecordedEvent`), never in `data`.
 */
import type { Observable } from 'rxjs';

/** A domain event as the caller hands it to the log. */
export type EventData<Type extends string = string, Data = unknown> = Readonly<{
  type: Type;
  data: Data;
  /** A UUID for the event; the log assigns one when absent. */
  id?: string;
}>;

/** An event as stored: the caller's `{ type, data }` plus the envelope the log adds. */
export type RecordedEvent<Type extends string = string, Data = unknown> = Readonly<{
  type: Type;
  data: Data;
  stream: string;
  /** 0-based index of the event in its stream. */
  revision: bigint;
  /** Position of the event in the whole log; increasing in append order. */
  position: bigint;
  id: string;
  /** When the log accepted the event. */
  timestamp: Date;
}>;

/**
 * What the stream must look like for an append to go through:
 * `'no_stream'` (it has no event yet), `'stream_exists'` (it has at least one),
 * `'any'` (no check), or the exact revision of its last event.
 */
export type ExpectedRevision = 'no_stream' | 'stream_exists' | 'any' | bigint;

export const NO_STREAM = 'no_stream' as const;
export const STREAM_EXISTS = 'stream_exists' as const;
export const ANY = 'any' as const;

export type Direction = 'forwards' | 'backwards';

export type AppendOptions = {
  /** Default `'any'`. */
  expectedRevision?: ExpectedRevision;
};

export type AppendResult = Readonly<{
  /** Revision of the last appended event: the expected revision of the next append. */
  nextExpectedRevision: bigint;
  /** Log position of the first and last appended event. */
  firstPosition: bigint;
  lastPosition: bigint;
}>;

export type ReadStreamOptions = {
  /** Default `'forwards'`. */
  direction?: Direction;
  /** Inclusive. Default `'start'` forwards and `'end'` backwards. */
  fromRevision?: bigint | 'start' | 'end';
  /** Default: no limit. */
  maxCount?: number;
};

export type ReadStreamResult = Readonly<{
  events: readonly RecordedEvent[];
  /** The stream's last revision when the read was served. */
  lastRevision: bigint;
}>;

export type ReadAllOptions = {
  /** Default `'forwards'`. */
  direction?: Direction;
  /** Inclusive. Default `'start'` forwards and `'end'` backwards. */
  fromPosition?: bigint | 'start' | 'end';
  /** Default: no limit. */
  maxCount?: number;
};

export type ReadAllResult = Readonly<{
  events: readonly RecordedEvent[];
  /** Position of the last event of the log when the read was served, or null when it is empty. */
  lastPosition: bigint | null;
}>;

export type StreamInfo = Readonly<{
  stream: string;
  lastRevision: bigint;
  firstPosition: bigint;
  lastPosition: bigint;
}>;

export type ListStreamsResult = Readonly<{ streams: readonly StreamInfo[] }>;

export type SubscribeOptions = {
  /** Follow one stream; absent, follow the whole log. */
  stream?: string;
  /**
   * Where the catch-up starts, inclusive: a revision of `stream`, or a log position when no
   * stream is given. `'start'` (default) replays everything; `'end'` delivers only new events.
   */
  from?: bigint | 'start' | 'end';
};

/**
 * What a subscription emits: every event once, in order, and one `caughtUp` item when the
 * catch-up from history has reached the live end (events after it are live).
 */
export type SubscriptionItem =
  Readonly<{ kind: 'event'; event: RecordedEvent }> | Readonly<{ kind: 'caughtUp'; position: bigint | null }>;

export type VerifyProblem = Readonly<{ file: string; offset: number; reason: string }>;

export type VerifyResult = Readonly<{
  ok: boolean;
  eventsChecked: number;
  bytesChecked: number;
  problems: readonly VerifyProblem[];
}>;

/** The port. Every adapter passes `eventLogConformance` (see `roundlog/testing`). */
export interface EventLog {
  append(stream: string, events: readonly EventData[], options?: AppendOptions): Promise<AppendResult>;
  /** Throws `StreamNotFoundError` when the stream has no event. */
  readStream(stream: string, options?: ReadStreamOptions): Promise<ReadStreamResult>;
  readAll(options?: ReadAllOptions): Promise<ReadAllResult>;
  listStreams(): Promise<ListStreamsResult>;
  subscribe(options?: SubscribeOptions): Observable<SubscriptionItem>;
  /**
   * Checks that the records of a stream before `toRevision` (default: all) are intact, without
   * decoding them; throws `CorruptLogError` at the first damaged one. Optional: an adapter whose
   * reads of a stream from a revision cannot miss damage earlier in it (a server that checks its
   * own storage) leaves it out. Readers that start from a snapshot call it.
   */
  checkStream?(stream: string, options?: { toRevision?: bigint }): Promise<void>;
  /** Walks every record and reports each problem found; never throws for a damaged record. */
  verify(): Promise<VerifyResult>;
  close(): Promise<void>;
}
