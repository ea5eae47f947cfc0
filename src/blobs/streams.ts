/**
 * A BlobStore kept in streams of an EventLog, for backends that hold no files (EventStoreDB, whose
 * server refuses appends over 1 MiB). Works on any EventLog adapter; blob bytes travel as
 * `Uint8Array` event data, so the log must keep typed arrays (see `typedArrays` of the
 * conformance suite).
 *
 * Layout, for a store with prefix `p` (default `'roundlog.blob-'`):
 *
 * - `p` + `upload-<id>`: one stream per upload, one `BlobChunk { upload, index, bytes }` event per
 *   chunk of at most `chunkBytes`, each its own append, chunk `i` at revision `i` (appended with
 *   that exact expected revision, so an upload stream has a single writer and no gap or duplicate).
 *   Chunks go to their own stream, not to the blob's, because `putStream` learns the blob's hash
 *   only after its last byte, and must not hold the whole blob to wait for it.
 * - `p` + `<sha256>`: the blob stream, small: `BlobCommitted { upload, sha256, bytes, chunks }` once
 *   the upload's chunks are all appended, and `BlobDeleted { sha256 }` tombstones. A blob exists
 *   when a commit follows the last tombstone; the first such commit is the one read, until a later
 *   commit says it `replaces` that one's upload (see below). An upload no commit names (a crash
 *   mid-put, a failed source) is never read.
 * - `p` + `index`: `BlobIndexed { sha256, bytes }` after each commit that created a blob and
 *   `BlobRemoved { sha256 }` before each delete, so `list()` folds one stream instead of scanning
 *   the log. The fold is kept per store and extended from where it stopped.
 *
 * Crashes between steps leave one kind of gap only: a blob that exists (its blob stream says so,
 * and `has`/`get`/`link`/`delete` read the blob stream, never the index) but that `list()` does not
 * yield. The next `put` of the same bytes re-indexes it, and `verify()` checks it without reporting
 * a problem (it walks the blob streams `listStreams()` finds as well as the listed ones).
 *
 * A commit is never taken as proof of its bytes: when a put finds the blob committed, it reads the
 * committed upload back (every chunk there, in order, hashing to the blob's name) before reporting
 * `created: false`. An upload that does not verify (chunks lost or changed in the backend) is
 * replaced: the put uploads its bytes again and commits them with `replaces: <damaged upload>`,
 * which makes the new upload the one read (the damaged upload streams are removed when the backend
 * can), so doing a round again heals its blob, as in the file store.
 *
 * Concurrent puts of the same bytes may each commit their own upload; the commit that made the
 * blob exist reports `created: true`, the others `false` (each reads the blob stream back), and
 * readers use the first. `delete` without a `deleteStream` hook only appends a tombstone (the
 * bytes stay in the log); with the hook, it removes the blob stream and the upload streams its
 * commits name. The hook must be a soft delete (EventStoreDB: a later append recreates the stream),
 * since a later put of the same bytes appends to the blob stream again.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { syncDir } from '../durable.ts';
import { ClosedError, InvalidArgumentError } from '../errors.ts';
import type { EventLog, RecordedEvent } from '../log/types.ts';
import { BlobNotFoundError, BlobWriteFailedError, CorruptBlobError, LinkTargetExistsError } from './errors.ts';
import { ownBytes, ownSource } from './snapshot.ts';
import {
  encodingOf,
  sha256Of,
  type BlobProblem,
  type BlobRef,
  type BlobSource,
  type BlobStore,
  type DeleteResult,
  type LinkOptions,
  type LinkResult,
  type PutOptions,
  type PutResult,
  type VerifyResult,
} from './types.ts';

/** Event types this store writes. */
export const StreamBlobEvent = {
  chunk: 'BlobChunk',
  committed: 'BlobCommitted',
  deleted: 'BlobDeleted',
  indexed: 'BlobIndexed',
  removed: 'BlobRemoved',
} as const;

export type BlobChunkData = { upload: string; index: number; bytes: Uint8Array };
export type BlobCommittedData = {
  upload: string;
  sha256: string;
  bytes: number;
  chunks: number;
  /** The upload this commit replaces because it did not verify; absent for a first commit. */
  replaces?: string;
};
export type BlobDeletedData = { sha256: string };
export type BlobIndexedData = { sha256: string; bytes: number };
export type BlobRemovedData = { sha256: string };

/** Room kept in each chunk append for everything but the chunk's bytes (field names, upload id, envelope). */
export const CHUNK_OVERHEAD_BYTES = 1024;
/** Largest `chunkBytes`: a chunk append stays under 1 MB, below EventStoreDB's 1 MiB append limit. */
export const MAX_CHUNK_BYTES = 1_000_000 - CHUNK_OVERHEAD_BYTES;
export const DEFAULT_CHUNK_BYTES = 512 * 1024;
export const DEFAULT_BLOB_STREAM_PREFIX = 'roundlog.blob-';

export type StreamBlobStoreOptions = {
  /** Not closed by the store's `close()` unless `ownsLog`. */
  log: EventLog;
  ownsLog?: boolean;
  /** Bytes of blob data per chunk event; each chunk is one append. Default 512 KiB; 1 to `MAX_CHUNK_BYTES`. */
  chunkBytes?: number;
  /** Stream name prefix for this store's streams. Default `'roundlog.blob-'`. */
  prefix?: string;
  /**
   * Removes a whole stream when the backend can (EventStoreDB soft delete: appending again must
   * recreate it). Absent, `delete()` only records the deletion.
   */
  deleteStream?: (stream: string) => Promise<void>;
  /** Id of each upload; part of a stream name: 1 to 128 of `A-Z a-z 0-9 . _ -`. Default `crypto.randomUUID`. */
  newId?: () => string;
};

export interface StreamBlobStore extends BlobStore {
  readonly log: EventLog;
  readonly prefix: string;
  readonly chunkBytes: number;
  /** The stream folded by `list()`. */
  readonly indexStream: string;
  /** The stream of the blob with this hash (commits and tombstones). */
  stream(sha256: string): string;
  /** The stream holding the chunks of an upload. */
  uploadStream(upload: string): string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const UPLOAD_ID = /^[A-Za-z0-9._-]{1,128}$/;
const MAX_PREFIX_LENGTH = 512;
/** Events per read of a blob stream or of the index (small events). */
const SMALL_EVENTS_PAGE = 256;
/** About this many bytes of chunks per read of an upload stream. */
const UPLOAD_PAGE_BYTES = 8 * 1024 * 1024;
const LINK_MODE = 0o444;

type Commit = BlobCommittedData & { revision: bigint };

type BlobState = {
  /** The commit readers use: the first after the last tombstone, or the last that replaced it. */
  live: Commit | null;
  /** Uploads of every commit in the stream. */
  uploads: Commit[];
  /** Uploads whose commit made the blob exist (no live commit before it) or replaced the live one. */
  creators: Set<string>;
};

type UploadRead = {
  /** SHA-256 of the bytes found. */
  actual: string;
  bytes: number;
  /** What is structurally wrong with the upload, or null. */
  damage: string | null;
};

type UploadWriter = {
  readonly id: string;
  readonly stream: string;
  chunks: number;
  append(bytes: Uint8Array): Promise<void>;
};

export function openStreamBlobStore(options: StreamBlobStoreOptions): StreamBlobStore {
  const { log, ownsLog, chunkBytes, prefix, deleteStream, newId } = checkOptions(options);
  const where = `event log streams ${prefix}*`;
  const indexStream = `${prefix}index`;
  const uploadPage = Math.max(1, Math.floor(UPLOAD_PAGE_BYTES / chunkBytes));

  const inFlight = new Set<Promise<unknown>>();
  let closed = false;
  let logClosed = false;

  /** The fold of the index stream so far: hash → bytes. */
  const indexed = new Map<string, number>();
  let indexFrom: bigint | 'start' = 'start';
  let indexing: Promise<unknown> = Promise.resolve();

  function track<T>(operation: () => Promise<T>): Promise<T> {
    if (closed) return Promise.reject(new ClosedError(`blob store on ${where}`));
    const promise = operation();
    inFlight.add(promise);
    const forget = () => inFlight.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  const blobStream = (sha256: string) => `${prefix}${sha256}`;
  const uploadStream = (upload: string) => `${prefix}upload-${upload}`;

  /** Every event of `stream` from `from` on, read in pages; nothing when the stream does not exist. */
  async function* readForward(
    stream: string,
    page: number,
    from: bigint | 'start' = 'start',
  ): AsyncGenerator<RecordedEvent> {
    for (let next = from; ;) {
      let result;
      try {
        result = await log.readStream(stream, { fromRevision: next, maxCount: page });
      } catch (error) {
        if ((error as { code?: unknown })?.code === 'STREAM_NOT_FOUND') return;
        throw error;
      }
      yield* result.events;
      const last = result.events.at(-1);
      if (last === undefined || last.revision >= result.lastRevision) return;
      next = last.revision + 1n;
    }
  }

  async function readBlobStream(sha256: string): Promise<BlobState> {
    const state: BlobState = { live: null, uploads: [], creators: new Set() };
    for await (const event of readForward(blobStream(sha256), SMALL_EVENTS_PAGE)) {
      if (event.type === StreamBlobEvent.deleted) {
        state.live = null;
      } else if (event.type === StreamBlobEvent.committed) {
        const commit = commitOf(event, sha256);
        if (commit === null) continue;
        state.uploads.push(commit);
        if (state.live === null || (commit.replaces !== undefined && commit.replaces === state.live.upload)) {
          state.live = commit;
          state.creators.add(commit.upload);
        }
      }
    }
    return state;
  }

  /** The index folded up to its current end. Calls are serialized; each reads only what is new. */
  function readIndex(): Promise<ReadonlyMap<string, number>> {
    const task = indexing
      .catch(() => {})
      .then(async () => {
        for await (const event of readForward(indexStream, SMALL_EVENTS_PAGE, indexFrom)) {
          indexFrom = event.revision + 1n;
          const data = event.data as Partial<BlobIndexedData> | null;
          if (
            typeof data !== 'object' ||
            data === null ||
            typeof data.sha256 !== 'string' ||
            !SHA256_HEX.test(data.sha256)
          ) {
            continue;
          }
          if (event.type === StreamBlobEvent.indexed) indexed.set(data.sha256, Number(data.bytes));
          else if (event.type === StreamBlobEvent.removed) indexed.delete(data.sha256);
        }
        return indexed;
      });
    indexing = task;
    return task;
  }

  async function appendIndex(
    type: typeof StreamBlobEvent.indexed | typeof StreamBlobEvent.removed,
    data: BlobIndexedData | BlobRemovedData,
  ) {
    await log.append(indexStream, [{ type, data }]);
  }

  /** Lists a blob that exists but is missing from the index (a crash between commit and index). */
  async function ensureIndexed(sha256: string, bytes: number): Promise<void> {
    if (!(await readIndex()).has(sha256)) await appendIndex(StreamBlobEvent.indexed, { sha256, bytes });
  }

  function newUpload(): UploadWriter {
    const id = newId();
    if (typeof id !== 'string' || !UPLOAD_ID.test(id)) {
      throw new InvalidArgumentError('newId()', 'must return 1 to 128 characters of A-Z a-z 0-9 . _ -', id);
    }
    const stream = uploadStream(id);
    const upload: UploadWriter = {
      id,
      stream,
      chunks: 0,
      async append(bytes) {
        const index = upload.chunks;
        const data: BlobChunkData = { upload: id, index, bytes };
        try {
          await log.append(stream, [{ type: StreamBlobEvent.chunk, data }], {
            expectedRevision: index === 0 ? 'no_stream' : BigInt(index - 1),
          });
        } catch (error) {
          throw new BlobWriteFailedError(stream, error);
        }
        upload.chunks++;
      },
    };
    return upload;
  }

  /** Best effort: an upload no commit names is never read; with a hook it is also removed. */
  async function discard(upload: UploadWriter): Promise<void> {
    if (deleteStream !== undefined && upload.chunks > 0) await deleteStream(upload.stream).catch(() => {});
  }

  /**
   * Whether a committed upload holds the blob: every chunk there, in order, `bytes` in all, hashing
   * to `sha256`. A store relies on an existing upload only after this check.
   */
  async function holdsUpload(live: Commit, sha256: string, bytes: number): Promise<boolean> {
    if (live.bytes !== bytes) return false;
    const read = await readUpload(live, () => {});
    return read.damage === null && read.actual === sha256;
  }

  /**
   * Commits a fully appended upload, unless the blob exists intact by now; a live upload that does
   * not verify is replaced by this one. True when this commit made the blob exist or replaced a
   * damaged upload; then the blob is indexed.
   */
  async function commit(sha256: string, upload: UploadWriter, bytes: number): Promise<boolean> {
    const { live } = await readBlobStream(sha256);
    if (live !== null && (await holdsUpload(live, sha256, bytes))) {
      await discard(upload);
      await ensureIndexed(sha256, bytes);
      return false;
    }
    const stream = blobStream(sha256);
    const data: BlobCommittedData = {
      upload: upload.id,
      sha256,
      bytes,
      chunks: upload.chunks,
      ...(live === null ? {} : { replaces: live.upload }),
    };
    try {
      await log.append(stream, [{ type: StreamBlobEvent.committed, data }]);
    } catch (error) {
      await discard(upload);
      throw new BlobWriteFailedError(stream, error);
    }
    // Another put of the same bytes may have committed meanwhile; the first commit wins.
    const created = (await readBlobStream(sha256)).creators.has(upload.id);
    if (created && live === null) await appendIndex(StreamBlobEvent.indexed, { sha256, bytes });
    else await ensureIndexed(sha256, bytes);
    // The damaged upload no commit reads any more: removing it is cleanup, like a crashed put's.
    if (created && live !== null && live.chunks > 0 && deleteStream !== undefined)
      await deleteStream(uploadStream(live.upload)).catch(() => {});
    return created;
  }

  async function put(bytes: Uint8Array, options?: PutOptions): Promise<PutResult> {
    if (!(bytes instanceof Uint8Array)) {
      throw new InvalidArgumentError('bytes', 'must be a Uint8Array or Buffer', bytes === null ? null : typeof bytes);
    }
    const encoding = encodingOf(options);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const ref: BlobRef = { sha256, bytes: bytes.byteLength, encoding };
    const { live } = await readBlobStream(sha256);
    if (live !== null && (await holdsUpload(live, sha256, bytes.byteLength))) {
      await ensureIndexed(sha256, bytes.byteLength);
      return { ref, created: false };
    }
    const upload = newUpload();
    try {
      for (let offset = 0; offset < bytes.byteLength; offset += chunkBytes) {
        // A copy with its own buffer: a view would make a structured-cloning log copy all of `bytes`.
        await upload.append(bytes.slice(offset, offset + chunkBytes));
      }
    } catch (error) {
      await discard(upload);
      throw error;
    }
    return { ref, created: await commit(sha256, upload, bytes.byteLength) };
  }

  /**
   * Re-chunks the source to `chunkBytes`, hashing as it goes, and appends each full chunk once the
   * next byte arrives: at most one chunk is held. A blob that fits in one chunk is therefore known
   * (hashed) before anything is written, and nothing is written when it is already stored.
   */
  async function putStream(source: BlobSource, options?: PutOptions): Promise<PutResult> {
    const encoding = encodingOf(options);
    if (
      source === null ||
      typeof source !== 'object' ||
      !(Symbol.asyncIterator in source || Symbol.iterator in source)
    ) {
      throw new InvalidArgumentError('source', 'must be an iterable or async iterable of Uint8Array chunks', source);
    }
    const hash = createHash('sha256');
    let chunk = new Uint8Array(chunkBytes);
    let fill = 0;
    let total = 0;
    let upload: UploadWriter | null = null;
    try {
      for await (const piece of source) {
        if (!(piece instanceof Uint8Array)) {
          throw new InvalidArgumentError(
            'source',
            'must yield Uint8Array chunks',
            piece === null ? null : typeof piece,
          );
        }
        hash.update(piece);
        total += piece.byteLength;
        for (let offset = 0; offset < piece.byteLength;) {
          if (fill === chunkBytes) {
            upload ??= newUpload();
            await upload.append(chunk);
            chunk = new Uint8Array(chunkBytes);
            fill = 0;
          }
          const take = Math.min(chunkBytes - fill, piece.byteLength - offset);
          chunk.set(piece.subarray(offset, offset + take), fill);
          fill += take;
          offset += take;
        }
      }
      const sha256 = hash.digest('hex');
      const ref: BlobRef = { sha256, bytes: total, encoding };
      if (upload === null) {
        const { live } = await readBlobStream(sha256);
        if (live !== null && (await holdsUpload(live, sha256, total))) {
          await ensureIndexed(sha256, total);
          return { ref, created: false };
        }
        upload = newUpload();
      }
      if (fill > 0) await upload.append(fill === chunkBytes ? chunk : chunk.slice(0, fill));
      return { ref, created: await commit(sha256, upload, total) };
    } catch (error) {
      if (upload !== null) await discard(upload);
      throw error;
    }
  }

  /**
   * Reads the chunks of a committed upload in order, hashing them and handing each to `onChunk`.
   * Structural damage (a missing, foreign or surplus chunk, a wrong length) is returned, not thrown.
   */
  async function readUpload(commit: Commit, onChunk: (bytes: Uint8Array) => unknown): Promise<UploadRead> {
    const hash = createHash('sha256');
    let index = 0;
    let total = 0;
    let damage: string | null = null;
    if (commit.chunks > 0) {
      for await (const event of readForward(uploadStream(commit.upload), uploadPage)) {
        if (index >= commit.chunks) break;
        const data = event.data as Partial<BlobChunkData> | null;
        if (
          event.type !== StreamBlobEvent.chunk ||
          typeof data !== 'object' ||
          data === null ||
          data.upload !== commit.upload ||
          data.index !== index ||
          !(data.bytes instanceof Uint8Array)
        ) {
          damage =
            `the event at revision ${event.revision} is not chunk ${index} ` + `of upload ${commit.upload} with bytes`;
          break;
        }
        if (total + data.bytes.byteLength > commit.bytes) {
          damage = `the chunks hold more than the ${commit.bytes} bytes committed`;
          break;
        }
        hash.update(data.bytes);
        total += data.bytes.byteLength;
        await onChunk(data.bytes);
        index++;
      }
    }
    if (damage === null && index < commit.chunks) damage = `found ${index} of the ${commit.chunks} chunks committed`;
    if (damage === null && total !== commit.bytes) damage = `the chunks hold ${total} bytes, ${commit.bytes} committed`;
    return { actual: hash.digest('hex'), bytes: total, damage };
  }

  async function liveCommit(sha256: string): Promise<Commit> {
    const { live } = await readBlobStream(sha256);
    if (live === null) throw new BlobNotFoundError(sha256, where);
    return live;
  }

  async function get(blob: string | BlobRef): Promise<Buffer> {
    const sha256 = sha256Of(blob, 'blob');
    const live = await liveCommit(sha256);
    const chunks: Uint8Array[] = [];
    const read = await readUpload(live, (bytes) => chunks.push(bytes));
    if (read.damage !== null || read.actual !== sha256) {
      throw new CorruptBlobError(sha256, read.actual, uploadStream(live.upload));
    }
    return Buffer.concat(chunks, read.bytes);
  }

  async function has(sha256: string): Promise<boolean> {
    return (await readBlobStream(sha256Of(sha256))).live !== null;
  }

  async function remove(sha256: string): Promise<DeleteResult> {
    sha256Of(sha256);
    const state = await readBlobStream(sha256);
    if (state.live === null) {
      // Listed but gone: a delete that raced a put; set the index right.
      if ((await readIndex()).has(sha256)) await appendIndex(StreamBlobEvent.removed, { sha256 });
      return { deleted: false };
    }
    // Unlisted first: a crash before the next step leaves a blob that exists but is not listed.
    await appendIndex(StreamBlobEvent.removed, { sha256 });
    if (deleteStream === undefined) {
      const data: BlobDeletedData = { sha256 };
      await log.append(blobStream(sha256), [{ type: StreamBlobEvent.deleted, data }]);
    } else {
      await deleteStream(blobStream(sha256));
      // No commit names these uploads any more: removing them is cleanup, and a failure leaves
      // unread streams, like a crashed put.
      for (const upload of state.uploads) {
        if (upload.chunks > 0) await deleteStream(uploadStream(upload.upload)).catch(() => {});
      }
    }
    return { deleted: true };
  }

  async function link(sha256: string, targetPath: string, options?: LinkOptions): Promise<LinkResult> {
    sha256Of(sha256);
    if (typeof targetPath !== 'string' || targetPath.length === 0) {
      throw new InvalidArgumentError('targetPath', 'must be a non-empty path', targetPath);
    }
    const sync = options?.sync ?? true;
    const live = await liveCommit(sha256);
    const target = path.resolve(targetPath);
    const targetDir = path.dirname(target);
    if (await holdsBlob(target, sha256, live.bytes)) return { method: 'copy', created: false };

    await fs.mkdir(targetDir, { recursive: true });
    const temp = `${target}.${process.pid}-${randomUUID()}.tmp`;
    try {
      const handle = await fs.open(temp, 'wx', LINK_MODE);
      try {
        let position = 0;
        const read = await readUpload(live, async (bytes) => {
          position = await writeAll(handle, bytes, position);
        });
        if (read.damage !== null || read.actual !== sha256) {
          throw new CorruptBlobError(sha256, read.actual, uploadStream(live.upload));
        }
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(temp, target);
    } catch (error) {
      await fs.rm(temp, { force: true });
      throw error;
    }
    if (sync) await syncDir(targetDir);
    return { method: 'copy', created: true };
  }

  /** Whether `target` holds the blob's bytes; false when it does not exist; throws when it holds others. */
  async function holdsBlob(target: string, sha256: string, bytes: number): Promise<boolean> {
    let stat;
    try {
      stat = await fs.stat(target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
    if (stat.isFile() && stat.size === bytes && (await hashFile(target)) === sha256) return true;
    throw new LinkTargetExistsError(sha256, target);
  }

  async function* list(): AsyncGenerator<string> {
    yield* [...(await readIndex()).keys()].sort();
  }

  async function verify(): Promise<VerifyResult> {
    const problems: BlobProblem[] = [];
    let blobsChecked = 0;
    let bytesChecked = 0;
    // The listed blobs, and blob streams the index misses (a crash between commit and index).
    const hashes = new Set((await readIndex()).keys());
    for (const { stream } of (await log.listStreams()).streams) {
      const name = stream.startsWith(prefix) ? stream.slice(prefix.length) : '';
      if (SHA256_HEX.test(name)) hashes.add(name);
    }
    for (const sha256 of [...hashes].sort()) {
      let file = blobStream(sha256);
      try {
        const { live } = await readBlobStream(sha256);
        if (live === null) continue;
        blobsChecked++;
        file = uploadStream(live.upload);
        const read = await readUpload(live, () => {});
        bytesChecked += read.bytes;
        if (read.damage !== null) problems.push({ kind: 'unreadable', sha256, file, reason: read.damage });
        else if (read.actual !== sha256) problems.push({ kind: 'hash_mismatch', sha256, actual: read.actual, file });
      } catch (error) {
        problems.push({ kind: 'unreadable', sha256, file, reason: (error as Error)?.message ?? String(error) });
      }
    }
    return { ok: problems.length === 0, blobsChecked, bytesChecked, problems };
  }

  return {
    log,
    prefix,
    chunkBytes,
    indexStream,
    stream: (sha256) => blobStream(sha256Of(sha256)),
    uploadStream: (upload) => {
      if (typeof upload !== 'string' || !UPLOAD_ID.test(upload)) {
        throw new InvalidArgumentError('upload', 'must be 1 to 128 characters of A-Z a-z 0-9 . _ -', upload);
      }
      return uploadStream(upload);
    },
    fileOf: (sha256) => {
      sha256Of(sha256);
      return null;
    },
    // The caller's bytes are copied before the first await: changing them after the call stores nothing of it.
    put: (bytes, options) => track(async () => put(ownBytes(bytes), options)),
    putStream: (source, options) => track(async () => putStream(ownSource(source), options)),
    get: (blob) => track(() => get(blob)),
    has: (sha256) => track(() => has(sha256)),
    delete: (sha256) => track(() => remove(sha256)),
    link: (sha256, targetPath, options) => track(() => link(sha256, targetPath, options)),
    list: () => {
      if (closed) throw new ClosedError(`blob store on ${where}`);
      return list();
    },
    verify: () => track(verify),
    close: async () => {
      closed = true;
      while (inFlight.size > 0) await Promise.allSettled(inFlight);
      if (ownsLog && !logClosed) {
        logClosed = true;
        await log.close();
      }
    },
  };
}

/** The commit an event records, or null when it is not a well-formed commit of this blob. */
function commitOf(event: RecordedEvent, sha256: string): Commit | null {
  const data = event.data as Partial<BlobCommittedData> | null;
  if (typeof data !== 'object' || data === null) return null;
  const { upload, bytes, chunks, replaces } = data;
  if (data.sha256 !== sha256 || typeof upload !== 'string' || !UPLOAD_ID.test(upload)) return null;
  if (!Number.isSafeInteger(bytes) || bytes! < 0 || !Number.isSafeInteger(chunks) || chunks! < 0) return null;
  const commit: Commit = { upload, sha256, bytes: bytes!, chunks: chunks!, revision: event.revision };
  if (typeof replaces === 'string' && UPLOAD_ID.test(replaces)) commit.replaces = replaces;
  return commit;
}

function checkOptions(options: StreamBlobStoreOptions): Required<Omit<StreamBlobStoreOptions, 'deleteStream'>> & {
  deleteStream: ((stream: string) => Promise<void>) | undefined;
} {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('options', 'must be an object with a log', options);
  }
  const { log } = options;
  if (
    typeof log !== 'object' ||
    log === null ||
    typeof log.append !== 'function' ||
    typeof log.readStream !== 'function'
  ) {
    throw new InvalidArgumentError('log', 'must be an EventLog', log === null ? null : typeof log);
  }
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0 || chunkBytes > MAX_CHUNK_BYTES) {
    throw new InvalidArgumentError('chunkBytes', `must be an integer from 1 to ${MAX_CHUNK_BYTES}`, chunkBytes);
  }
  const prefix = options.prefix ?? DEFAULT_BLOB_STREAM_PREFIX;
  if (
    typeof prefix !== 'string' ||
    prefix.length === 0 ||
    prefix.length > MAX_PREFIX_LENGTH ||
    prefix.startsWith('$')
  ) {
    throw new InvalidArgumentError(
      'prefix',
      `must be 1 to ${MAX_PREFIX_LENGTH} characters, not starting with "$"`,
      prefix,
    );
  }
  const { deleteStream } = options;
  if (deleteStream !== undefined && typeof deleteStream !== 'function') {
    throw new InvalidArgumentError('deleteStream', 'must be a function when given', typeof deleteStream);
  }
  const newId = options.newId ?? randomUUID;
  if (typeof newId !== 'function')
    throw new InvalidArgumentError('newId', 'must be a function when given', typeof newId);
  return { log, ownsLog: options.ownsLog ?? false, chunkBytes, prefix, deleteStream, newId };
}

async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<number> {
  for (let offset = 0; offset < bytes.byteLength;) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.byteLength - offset, position);
    offset += bytesWritten;
    position += bytesWritten;
  }
  return position;
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const piece of createReadStream(file)) hash.update(piece as Buffer);
  return hash.digest('hex');
}
