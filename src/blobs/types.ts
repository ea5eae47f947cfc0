/**
 * The BlobStore port: large immutable payloads (model parameters) addressed by the SHA-256 of
 * their bytes. Events carry `BlobRef`s, never the bytes. Also the argument checks every adapter
 * shares.
 */
import { InvalidArgumentError } from '../errors.ts';

/** What an event records about a blob. */
export type BlobRef = Readonly<{
  /** SHA-256 of the stored bytes, 64 lowercase hex digits. */
  sha256: string;
  /** Length of the stored bytes. */
  bytes: number;
  /** How to decode the bytes (e.g. `'tensors/safetensors'`); `'raw'` for bytes as they are. */
  encoding: string;
}>;

export const RAW_ENCODING = 'raw';

export type PutOptions = {
  /** Recorded in the returned ref; the store keeps bytes only. Default `'raw'`. */
  encoding?: string;
};

export type PutResult = Readonly<{
  ref: BlobRef;
  /** False when the store already held these bytes: nothing was written. */
  created: boolean;
}>;

/** A blob's bytes as an iterable of chunks (a `Readable`, a generator…). */
export type BlobSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export type DeleteResult = Readonly<{
  /** False when no blob had that hash. */
  deleted: boolean;
}>;

export type LinkOptions = {
  /** Fsync the target's folder so the new name survives a crash. Default true. */
  sync?: boolean;
};

export type LinkResult = Readonly<{
  /**
   * `'hardlink'`: the target is the blob's own file (no byte stored twice). `'copy'`: the target
   * is a copy, because it is on another filesystem (or the store keeps no files).
   */
  method: 'hardlink' | 'copy';
  /** False when the target already held the blob's bytes. */
  created: boolean;
}>;

export type BlobProblem = Readonly<
  | { kind: 'hash_mismatch'; sha256: string; actual: string; file: string }
  | { kind: 'unreadable'; sha256: string; file: string; reason: string }
  | { kind: 'stray_file'; file: string }
>;

export type VerifyResult = Readonly<{
  ok: boolean;
  blobsChecked: number;
  bytesChecked: number;
  problems: readonly BlobProblem[];
}>;

/** The port. Every adapter behaves the same for the operations it shares. */
export interface BlobStore {
  /**
   * Stores `bytes` under their SHA-256, durably before it resolves. A put of bytes already stored
   * leaves the stored blob untouched and reports `created: false`. The bytes are copied when it is
   * called: the caller may change or reuse them at once, without waiting for the promise.
   */
  put(bytes: Uint8Array, options?: PutOptions): Promise<PutResult>;
  /**
   * Like `put`, for bytes that arrive in chunks (e.g. `encodeSafetensorsChunks`); they are hashed as
   * they are written. The chunks of an iterable (an array of buffers) are copied when it is called,
   * those of an async iterable as each arrives: the caller may change or reuse a chunk at once.
   */
  putStream(source: BlobSource, options?: PutOptions): Promise<PutResult>;
  /**
   * The blob's bytes, checked against their hash. Throws `BlobNotFoundError` when absent and
   * `CorruptBlobError` when the stored bytes no longer match the hash.
   */
  get(blob: string | BlobRef): Promise<Buffer>;
  has(sha256: string): Promise<boolean>;
  delete(sha256: string): Promise<DeleteResult>;
  /**
   * Makes `targetPath` hold the blob's bytes (parent folders created), by hard link when
   * possible. Succeeds without change when the target already holds those bytes; throws
   * `LinkTargetExistsError` when it holds other bytes. The stored bytes are checked against their
   * hash first (or as they are copied): a damaged blob is `CorruptBlobError`, and nothing is left
   * at `targetPath`.
   */
  link(sha256: string, targetPath: string, options?: LinkOptions): Promise<LinkResult>;
  /**
   * The file that holds (or would hold) the blob's bytes, for a store that keeps each blob as a
   * file; null for a store that does not (in memory, in streams).
   */
  fileOf(sha256: string): string | null;
  /** Hashes of every stored blob, in ascending order. */
  list(): AsyncIterable<string>;
  /** Re-hashes every blob and reports each problem found; never throws for a damaged blob. */
  verify(): Promise<VerifyResult>;
  /** Waits for operations in flight; later calls throw `ClosedError`. */
  close(): Promise<void>;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** The hash named by a `get`-style argument; throws `InvalidArgumentError` unless it is 64 lowercase hex digits. */
export function sha256Of(blob: string | BlobRef, argument = 'sha256'): string {
  const sha256 = typeof blob === 'object' && blob !== null ? blob.sha256 : blob;
  if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256)) {
    throw new InvalidArgumentError(argument, 'must be a SHA-256 of 64 lowercase hex digits (or a BlobRef)', sha256);
  }
  return sha256;
}

export function encodingOf(options: PutOptions | undefined): string {
  const encoding = options?.encoding ?? RAW_ENCODING;
  if (typeof encoding !== 'string' || encoding.length === 0) {
    throw new InvalidArgumentError('encoding', 'must be a non-empty string', encoding);
  }
  return encoding;
}
