/** Typed errors raised by every BlobStore adapter. */
import { RoundlogError, formatValue } from '../errors.ts';

/** No blob has this hash. */
export class BlobNotFoundError extends RoundlogError {
  readonly code = 'BLOB_NOT_FOUND' as const;
  constructor(
    readonly sha256: string,
    /** The store's folder, or `'memory'`. */
    readonly store: string,
  ) {
    super(
      `blob ${sha256} is not in the blob store at ${store}; it was never stored there or was deleted ` +
        `by retention: rebuild it from the node or breakpoint that produced it, or point at the right store ` +
        `(the --root or --blobs of the roundlog command)`,
    );
  }
}

/** The stored bytes no longer hash to the blob's name. */
export class CorruptBlobError extends RoundlogError {
  readonly code = 'CORRUPT_BLOB' as const;
  constructor(
    readonly sha256: string,
    /** SHA-256 of the bytes found. */
    readonly actual: string,
    readonly file: string,
  ) {
    super(
      `blob ${sha256} is corrupt: ${file} hashes to ${actual}. Its bytes were changed after they were ` +
        `written: putting the same bytes again replaces the file (run the round again), and ` +
        `roundlog verify --repair heals it from a breakpoint folder that holds a copy (a hard link shares the ` +
        `damage) and names every other damage`,
    );
  }
}

/** `link` was asked to write a path that already holds different bytes. */
export class LinkTargetExistsError extends RoundlogError {
  readonly code = 'LINK_TARGET_EXISTS' as const;
  constructor(
    readonly sha256: string,
    readonly target: string,
  ) {
    super(
      `cannot link blob ${sha256} to ${target}: that path already exists with other contents; ` +
        `blob links never overwrite: remove the file or choose another path`,
    );
  }
}

/** Storing a blob failed; nothing was stored under its hash. */
export class BlobWriteFailedError extends RoundlogError {
  readonly code = 'BLOB_WRITE_FAILED' as const;
  constructor(
    readonly file: string,
    cause: unknown,
  ) {
    super(
      `writing blob file ${file} failed (${(cause as Error)?.message ?? formatValue(cause)}); ` +
        `the blob was not stored: free disk space or fix permissions, then put it again`,
      { cause },
    );
  }
}
