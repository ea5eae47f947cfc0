/** Options and handle type of the embedded file log. */
import type { EventLog } from '../types.ts';

export type FileEventLogOptions = {
  /** Folder of the log (`<root>/log`); created when missing unless `readOnly`. */
  dir: string;
  /**
   * Open without the writer lock: reads and subscriptions only, alongside a writer in another
   * process. Default false.
   */
  readOnly?: boolean;
  /** A segment is sealed and a new one started past this size. Default 16 MiB. */
  segmentBytes?: number;
  /** Event values of at least this many msgpack bytes are lz4-compressed. Default 4096. */
  compressThreshold?: number;
  /** Receives warnings such as a torn tail truncated on open. Default: `process.emitWarning`. */
  onWarning?: (warning: FileLogWarning) => void;
  /** Injected clock for event timestamps. Default `() => new Date()`. */
  clock?: () => Date;
  /** Injected id source for events given without an id. Default `crypto.randomUUID`. */
  newId?: () => string;
  /**
   * When another process holds the writer lock, keep trying this long before failing with
   * `LogLockedError`. Default 0: fail at once.
   */
  lockWaitMs?: number;
  /** How often a read-only follower looks for new records, in ms. Default 50. */
  pollIntervalMs?: number;
  /**
   * Writer only: cut off non-zero bytes found in the zero-filled space after the data of the last
   * segment (warning `TAIL_REPAIRED`) instead of refusing to open with `StrayTailBytesError`.
   * Default false.
   */
  repairTail?: boolean;
  /**
   * Writer only: write every segment's index file (`.idx`, a cache of the record offsets) again
   * from the segment's records, whatever it held: what `roundlog verify --repair` does with an
   * index `verify` names as damaged. Default false.
   */
  rebuildIndexes?: boolean;
};

export type FileLogWarning = Readonly<{
  code: 'TORN_TAIL_TRUNCATED' | 'INDEX_REBUILT' | 'STALE_LOCK_RECLAIMED' | 'STRAY_TAIL_BYTES' | 'TAIL_REPAIRED';
  message: string;
  file: string;
  /** For `TORN_TAIL_TRUNCATED` and `TAIL_REPAIRED`: bytes dropped from the end of `file`. */
  bytesDropped?: number;
}>;

/** Counters since open, for tests and benchmarks. */
export type FileLogStats = Readonly<{
  appends: number;
  events: number;
  /** Group commits: one write and one fdatasync each. */
  flushes: number;
  segments: number;
}>;

export interface FileEventLog extends EventLog {
  readonly dir: string;
  readonly readOnly: boolean;
  stats(): FileLogStats;
}
