/** Typed errors raised by every EventLog adapter. */
import { RoundlogError, formatValue, shownText } from '../errors.ts';
import type { ExpectedRevision } from './types.ts';

/** The stream's current revision differs from the one the append expected. */
export class WrongExpectedRevisionError extends RoundlogError {
  readonly code = 'WRONG_EXPECTED_REVISION' as const;
  constructor(
    readonly stream: string,
    readonly expected: ExpectedRevision,
    /** The stream's last revision, or `'no_stream'` when it has no event. */
    readonly actual: bigint | 'no_stream',
    /** Why, when it is not only the revision: a retry whose event ids match the stored ones in part. */
    readonly detail?: string,
  ) {
    super(
      `append to stream ${JSON.stringify(stream)} expected ${describeExpected(expected)} ` +
        `but the stream ${actual === 'no_stream' ? 'does not exist' : `is at revision ${actual}`}` +
        (detail === undefined
          ? '; another writer got there first: read the stream again and retry with its current revision'
          : ` and ${detail}; read the stream to see what is stored`),
    );
  }
}

/** A read asked for a stream that has no event. */
export class StreamNotFoundError extends RoundlogError {
  readonly code = 'STREAM_NOT_FOUND' as const;
  constructor(readonly stream: string) {
    super(`stream ${shownText(stream)} does not exist in this log (no event was ever appended to it)`);
  }
}

/** The bytes of the log are not what was written: a failed checksum, a bad header, a gap. */
export class CorruptLogError extends RoundlogError {
  readonly code = 'CORRUPT_LOG' as const;
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(
      `corrupt log record in ${file} at byte offset ${offset}: ${reason}. ` +
        `Committed records are never skipped silently; restore this file from a backup, ` +
        `or run 'roundlog verify' to list every damaged record`,
    );
  }
}

/**
 * Non-zero bytes in the zero-filled space after the end of a segment's data. They are no record
 * and no committed record is damaged; a writer refuses to open over them unless asked to repair.
 */
export class StrayTailBytesError extends RoundlogError {
  readonly code = 'STRAY_TAIL_BYTES' as const;
  constructor(
    readonly file: string,
    /** Byte offset of the first non-zero byte. */
    readonly offset: number,
    /** Byte offset where the segment's data ends (its last committed record ends there). */
    readonly dataEnd: number,
    /** From the first to the last non-zero byte. */
    readonly bytes: number,
    /** Committed records of the whole log, all intact. */
    readonly records: number,
  ) {
    super(
      `${file} holds non-zero bytes at byte offset ${offset} (${bytes} bytes up to the last one) in the ` +
        `zero-filled space after the end of its data at byte ${dataEnd}; they are no record and nothing ` +
        `committed is damaged (the log's ${records} records, up to byte ${dataEnd}, are intact and read normally), ` +
        `but a writer does not append beside bytes it did not write: run 'roundlog verify --repair-tail' ` +
        `(or open the log with repairTail: true) to cut them off the segment, after copying the file if you ` +
        `want to keep them`,
    );
  }
}

/** Another live process holds the writer lock of this log. */
export class LogLockedError extends RoundlogError {
  readonly code = 'LOG_LOCKED' as const;
  constructor(
    readonly lockFile: string,
    readonly pid: number,
    readonly host: string,
    readonly since: string,
  ) {
    super(
      `log is locked by process ${pid} on host ${host} since ${since} (lock file ${lockFile}); ` +
        `only one writer may append at a time: stop that process, open the log read-only, ` +
        `or, if that process is gone and the host is another machine, delete the lock file`,
    );
  }
}

/** The log failed to make an append durable; it refuses further appends until reopened. */
export class LogWriteFailedError extends RoundlogError {
  readonly code = 'LOG_WRITE_FAILED' as const;
  constructor(
    readonly file: string,
    cause: unknown,
  ) {
    super(
      `writing to ${file} failed (${(cause as Error)?.message ?? formatValue(cause)}); ` +
        `appends that were not acknowledged are not committed; close and reopen the log to continue`,
      { cause },
    );
  }
}

/** A read-only handle was asked to write. */
export class LogReadOnlyError extends RoundlogError {
  readonly code = 'LOG_READ_ONLY' as const;
  constructor(readonly dir: string) {
    super(`the log at ${dir} was opened read-only; open it with readOnly: false to append`);
  }
}

function describeExpected(expected: ExpectedRevision): string {
  switch (expected) {
    case 'no_stream':
      return 'no stream';
    case 'stream_exists':
      return 'an existing stream';
    case 'any':
      return 'any revision';
    default:
      return `revision ${expected}`;
  }
}

/** An append was bigger than the store accepts in one request (EventStoreDB: 1 MiB by default). */
export class AppendTooLargeError extends RoundlogError {
  readonly code = 'APPEND_TOO_LARGE' as const;
  constructor(
    readonly stream: string,
    readonly bytes: number,
    readonly limit: number,
    cause?: unknown,
  ) {
    super(
      `append to stream ${JSON.stringify(stream)} of ${bytes} bytes ` +
        `is over the store's limit of ${limit} bytes per append; ` +
        `nothing was written: keep large payloads (parameters) in the blob store and reference them, ` +
        `or raise the server's MaxAppendSize`,
      { cause },
    );
  }
}

/** The store's server could not be reached, or did not answer in time. Nothing is known to be written. */
export class StoreUnavailableError extends RoundlogError {
  readonly code = 'STORE_UNAVAILABLE' as const;
  constructor(
    /** The connection string, without credentials. */
    readonly store: string,
    readonly operation: string,
    cause: unknown,
  ) {
    super(
      `${operation} failed: the store at ${store} is unreachable ` +
        `(${(cause as Error)?.message ?? formatValue(cause)}); ` +
        `check that the server runs and the connection string (--store or ROUNDLOG_STORE) names it; ` +
        `an append that failed this way may or may not be committed: read the stream before retrying`,
      { cause },
    );
  }
}

/** The store's server refused or failed a request for a reason roundlog has no better error for. */
export class StoreRequestFailedError extends RoundlogError {
  readonly code = 'STORE_REQUEST_FAILED' as const;
  constructor(
    readonly store: string,
    readonly operation: string,
    readonly reason: string,
    cause: unknown,
  ) {
    super(`${operation} on the store at ${store} failed: ${reason}`, { cause });
  }
}
