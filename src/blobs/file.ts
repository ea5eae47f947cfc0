/**
 * The file blob store: one read-only file per blob under `<dir>/<2 hex>/<62 hex>`, named by the
 * SHA-256 of its bytes. A blob is written to `<dir>/tmp/`, fsynced, then linked into place (so
 * a concurrent put of the same bytes never replaces it) and the folder fsynced. Temp files left by
 * a crashed process are removed by the first write; opening the store and reading it create nothing.
 *
 * A file's name is never taken as proof of its bytes: when a put finds a file of that name, it
 * checks its size and hash, and a file the storage cut short or changed is replaced by the new
 * bytes (temp file, fsync, rename, fsync of the folder), so doing a round again heals its blob.
 *
 * Blobs up to 8 MiB are hashed before anything is written, so putting stored bytes again writes
 * nothing. Larger blobs are hashed while they are written (with early datasyncs), which is what
 * keeps a 100 MB put near the cost of a plain write + fsync (bench/blob-put.ts); when such a blob
 * turns out to be stored already (and intact), its temp file is discarded and the stored file is
 * left untouched.
 */
import { constants as bufferConstants } from 'node:buffer';
import { createHash, randomUUID } from 'node:crypto';
import { constants as fsConstants, promises as fs, type BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ClosedError, InvalidArgumentError, StorageWriteError, isSystemError } from '../errors.ts';
import { exists, processIsAlive, syncDir, writeStep } from '../durable.ts';
import { FileTooLargeError, NotARegularFileError, fileKind } from '../confine.ts';
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

export type FileBlobStoreOptions = {
  /** Folder of the store (`<root>/blobs`); created by the first write when missing. */
  dir: string;
};

export interface FileBlobStore extends BlobStore {
  readonly dir: string;
  /** Where the blob with this hash is (or would be) stored. */
  path(sha256: string): string;
  /**
   * Temp files in `<dir>/tmp` whose writer is gone (a process killed mid-upload): what the next
   * write removes. Reading only.
   */
  staleTempFiles(): Promise<readonly StaleTempFile[]>;
  /** Removes the stale temp files (as the first write of a store does); returns those removed. */
  removeStaleTempFiles(): Promise<readonly StaleTempFile[]>;
}

/** A temp file left by a writer that is gone: its path, size and the writer's pid (null when the name has none). */
export type StaleTempFile = Readonly<{ file: string; bytes: number; pid: number | null }>;

const TMP_DIR = 'tmp';
const FAN_OUT = /^[0-9a-f]{2}$/;
const REST_OF_HASH = /^[0-9a-f]{62}$/;
const TEMP_NAME = /^(\d+)-[0-9a-f-]{36}\.tmp$/;
/** Bytes per write call: small enough that hashing and writing overlap well (bench/blob-put.ts). */
const WRITE_CHUNK_BYTES = 2 * 1024 * 1024;
/** A datasync is started after this many bytes, so the final fsync has little left to flush. */
const SYNC_EVERY_BYTES = 8 * 1024 * 1024;
const READ_CHUNK_BYTES = 8 * 1024 * 1024;
/** Up to this size a put hashes first and writes nothing when the blob exists. */
const HASH_FIRST_MAX_BYTES = 8 * 1024 * 1024;
const BLOB_MODE = 0o444;

/** Temp files being written by stores of this process; every other temp file of this pid is stale. */
const liveTempFiles = new Set<string>();

export async function openFileBlobStore(options: FileBlobStoreOptions): Promise<FileBlobStore> {
  if (typeof options?.dir !== 'string' || options.dir.length === 0) {
    throw new InvalidArgumentError('dir', 'must be a non-empty path', options?.dir);
  }
  const dir = path.resolve(options.dir);
  const tmpDir = path.join(dir, TMP_DIR);
  /**
   * The temp folder is made (and cleared of stale temp files) by the first write, not at open: a
   * store opened only to read leaves the folder as it found it.
   */
  let tmpReady: Promise<void> | null = null;
  function prepareTmpDir(): Promise<void> {
    tmpReady ??= (async () => {
      await fs.mkdir(tmpDir, { recursive: true });
      await removeStaleTempFiles(tmpDir);
    })();
    tmpReady.catch(() => {
      tmpReady = null;
    });
    return tmpReady;
  }

  const knownFanOut = new Set<string>();
  /**
   * Blob files this store wrote or hashed, by hash: the file's device, inode, size, mtime and ctime
   * then. A file that still has all five holds the bytes that were hashed (a write, a truncate, a
   * chmod, a new link or a rename over the name each change one), so `link` does not read it again;
   * any other file is re-hashed before it is linked. (Hashing again at once would read the page
   * cache, not the disk, and prove nothing more.)
   */
  const checked = new Map<string, string>();

  async function remember(sha256: string, file: string): Promise<void> {
    const stats = await fs.stat(file, { bigint: true }).catch(() => null);
    if (stats !== null) checked.set(sha256, signature(stats));
  }

  /** `holdsBlob` for the blob's own file, remembered when it holds the blob. */
  async function holdsOwnBlob(sha256: string, bytes: number): Promise<boolean> {
    const file = blobPath(sha256);
    if (!(await holdsBlob(file, sha256, bytes))) return false;
    await remember(sha256, file);
    return true;
  }
  const inFlight = new Set<Promise<unknown>>();
  let closed = false;

  function track<T>(operation: () => Promise<T>): Promise<T> {
    if (closed) return Promise.reject(new ClosedError(`blob store at ${dir}`));
    const promise = operation();
    inFlight.add(promise);
    const forget = () => inFlight.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  /** Work that no caller waits for, except `close`; its failures are ignored. */
  function inBackground(work: Promise<unknown>): void {
    const promise = work.catch(() => {});
    inFlight.add(promise);
    promise.then(() => inFlight.delete(promise));
  }

  function blobPath(sha256: string): string {
    return path.join(dir, sha256.slice(0, 2), sha256.slice(2));
  }

  async function put(bytes: Uint8Array, options?: PutOptions): Promise<PutResult> {
    if (!(bytes instanceof Uint8Array)) {
      throw new InvalidArgumentError('bytes', 'must be a Uint8Array or Buffer', bytes === null ? null : typeof bytes);
    }
    const encoding = encodingOf(options);
    const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (view.length > HASH_FIRST_MAX_BYTES) return store([view], null, encoding);
    const sha256 = createHash('sha256').update(view).digest('hex');
    if (await holdsOwnBlob(sha256, view.length)) {
      return { ref: { sha256, bytes: view.length, encoding }, created: false };
    }
    return store([view], sha256, encoding);
  }

  async function store(source: BlobSource, knownSha256: string | null, encoding: string): Promise<PutResult> {
    const { sha256, bytes, tempFile } = await writeTemp(source, knownSha256);
    const ref = { sha256, bytes, encoding };
    if (tempFile === null) return { ref, created: false };
    return { ref, created: await commit(tempFile, sha256, bytes) };
  }

  /**
   * Writes `source` to a new temp file, hashing it on the way unless its hash is known. When a
   * blob with that hash exists by then, the temp file is deleted (`tempFile: null`); otherwise it
   * is fsynced and kept for `commit`.
   */
  async function writeTemp(
    source: BlobSource,
    knownSha256: string | null,
  ): Promise<{ sha256: string; bytes: number; tempFile: string | null }> {
    const file = path.join(tmpDir, `${process.pid}-${randomUUID()}.tmp`);
    await prepareTmpDir().catch(writeFailed(file));
    const hash = knownSha256 === null ? createHash('sha256') : null;
    liveTempFiles.add(file);
    let handle: FileHandle | undefined;
    try {
      handle = await fs.open(file, 'wx', BLOB_MODE).catch(writeFailed(file));
      const target = handle;
      let position = 0;
      let unsynced = 0;
      let batch: Buffer[] = [];
      let batchBytes = 0;
      let writing: Promise<void> = Promise.resolve();
      let syncing: Promise<void> = Promise.resolve();
      const flush = async () => {
        await writing;
        writing = writeAll(target, batch, position).catch(writeFailed(file));
        writing.catch(() => {});
        position += batchBytes;
        unsynced += batchBytes;
        batch = [];
        batchBytes = 0;
        if (unsynced >= SYNC_EVERY_BYTES) {
          unsynced = 0;
          const written = writing;
          syncing = syncing
            .then(() => written)
            .then(() => target.datasync())
            .catch(writeFailed(file));
          syncing.catch(() => {});
        }
      };
      for await (const chunk of source) {
        if (!(chunk instanceof Uint8Array)) {
          throw new InvalidArgumentError(
            'source',
            'must yield Uint8Array chunks',
            chunk === null ? null : typeof chunk,
          );
        }
        const view = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        // Large chunks go out in pieces, so that each piece is hashed while the previous one is written.
        for (let offset = 0; offset < view.length;) {
          const piece = view.subarray(offset, offset + WRITE_CHUNK_BYTES - batchBytes);
          offset += piece.length;
          hash?.update(piece);
          batch.push(piece);
          batchBytes += piece.length;
          if (batchBytes >= WRITE_CHUNK_BYTES) await flush();
        }
      }
      if (batchBytes > 0) await flush();
      const sha256 = knownSha256 ?? hash!.digest('hex');
      await writing;
      if (await holdsOwnBlob(sha256, position)) {
        // Nothing waits for the temp file to go: closing it waits for its datasyncs, and freeing
        // its blocks takes a while. close() of the store still waits for it.
        inBackground(target.close().finally(() => discardTemp(file)));
        handle = undefined;
        return { sha256, bytes: position, tempFile: null };
      }
      await syncing;
      await target.sync().catch(writeFailed(file));
      await target.close().catch(writeFailed(file));
      handle = undefined;
      return { sha256, bytes: position, tempFile: file };
    } catch (error) {
      await handle?.close().catch(() => {});
      await discardTemp(file);
      throw error;
    }
  }

  /**
   * Links the fsynced temp file into place; false when the blob was already there. A file of that
   * name that does not hold the blob's bytes (cut short or changed by the storage) is replaced by
   * the temp file, atomically (rename), never trusted.
   */
  async function commit(tempFile: string, sha256: string, bytes: number): Promise<boolean> {
    const file = blobPath(sha256);
    let holds = false;
    try {
      await ensureFanOut(sha256.slice(0, 2));
      let created = true;
      try {
        await fs.link(tempFile, file);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') {
          if (await holdsBlob(file, sha256, bytes)) created = false;
          else await fs.rename(tempFile, file);
        } else if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') await fs.rename(tempFile, file);
        else throw error;
      }
      if (created) await syncDir(path.dirname(file));
      holds = true;
      return created;
    } catch (error) {
      throw new BlobWriteFailedError(file, error);
    } finally {
      await discardTemp(tempFile);
      // After the temp name is gone: removing it changed the file's link count, hence its ctime.
      if (holds) await remember(sha256, file);
    }
  }

  async function ensureFanOut(prefix: string): Promise<void> {
    if (knownFanOut.has(prefix)) return;
    if ((await fs.mkdir(path.join(dir, prefix), { recursive: true })) !== undefined) await syncDir(dir);
    knownFanOut.add(prefix);
  }

  async function get(blob: string | BlobRef): Promise<Buffer> {
    const sha256 = sha256Of(blob, 'blob');
    const file = blobPath(sha256);
    const handle = await openBlob(sha256, file);
    try {
      // Only a regular file, and at most the size its reference records (or a buffer's limit):
      // a blob file replaced by a device or a huge file is refused before anything is allocated.
      const stats = await handle.stat();
      if (!stats.isFile()) throw new NotARegularFileError(file, fileKind(stats), `blob ${sha256}`);
      const maxBytes = typeof blob === 'string' ? bufferConstants.MAX_LENGTH : blob.bytes;
      if (stats.size > maxBytes) throw new FileTooLargeError(file, stats.size, maxBytes, `blob ${sha256}`);
      const { size } = stats;
      const bytes = Buffer.allocUnsafeSlow(size);
      const hash = createHash('sha256');
      let position = 0;
      let reading = readInto(handle, bytes, position);
      while (position < size) {
        const read = await reading;
        if (read === 0) break;
        const next = position + read;
        reading = readInto(handle, bytes, next);
        hash.update(bytes.subarray(position, next));
        position = next;
      }
      const actual = hash.digest('hex');
      if (position !== size || actual !== sha256) throw new CorruptBlobError(sha256, actual, file);
      return bytes;
    } finally {
      await handle.close();
    }
  }

  async function openBlob(sha256: string, file: string): Promise<FileHandle> {
    try {
      // Not through a symlink, and never blocking on a FIFO.
      return await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new BlobNotFoundError(sha256, dir);
      if (code === 'ELOOP') throw new NotARegularFileError(file, 'symbolic link', `blob ${sha256}`);
      throw error;
    }
  }

  async function link(sha256: string, targetPath: string, options?: LinkOptions): Promise<LinkResult> {
    sha256Of(sha256);
    if (typeof targetPath !== 'string' || targetPath.length === 0) {
      throw new InvalidArgumentError('targetPath', 'must be a non-empty path', targetPath);
    }
    const sync = options?.sync ?? true;
    const source = blobPath(sha256);
    const target = path.resolve(targetPath);
    const targetDir = path.dirname(target);
    // The file's name is no proof of its bytes: a blob the storage damaged is never linked or copied.
    await checkBlobFile(sha256, source);
    const operation = `linking blob ${sha256}`;
    await writeStep(targetDir, operation, () => fs.mkdir(targetDir, { recursive: true }));
    let method: LinkResult['method'] = 'hardlink';
    try {
      await fs.link(source, target);
      // The new link changed the file's ctime (its link count), not its bytes, checked just above.
      await remember(sha256, source);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return { method: await existingLinkMethod(sha256, source, target), created: false };
      if (code !== 'EXDEV') throw isSystemError(error) ? new StorageWriteError(target, operation, error) : error;
      method = 'copy';
      await writeStep(target, `copying blob ${sha256}`, () => copyDurably(source, target));
    }
    if (sync) await writeStep(targetDir, operation, () => syncDir(targetDir));
    return { method, created: true };
  }

  /**
   * Re-hashes the blob's file (unless this store hashed it and it is unchanged since, see
   * `checked`): `BlobNotFoundError` when it is missing, `NotARegularFileError` when it is not a
   * plain file, `CorruptBlobError` when its bytes do not hash to its name.
   */
  async function checkBlobFile(sha256: string, file: string): Promise<void> {
    const handle = await openBlob(sha256, file);
    try {
      const stats = await handle.stat({ bigint: true });
      if (!stats.isFile()) throw new NotARegularFileError(file, fileKind(stats), `blob ${sha256}`);
      if (checked.get(sha256) === signature(stats)) return;
      const actual = await hashHandle(handle);
      if (actual !== sha256) {
        checked.delete(sha256);
        throw new CorruptBlobError(sha256, actual, file);
      }
      checked.set(sha256, signature(stats));
    } finally {
      await handle.close();
    }
  }

  async function existingLinkMethod(sha256: string, source: string, target: string): Promise<LinkResult['method']> {
    const [blob, existing] = await Promise.all([fs.stat(source), fs.stat(target)]);
    if (blob.dev === existing.dev && blob.ino === existing.ino) return 'hardlink';
    if (existing.isFile() && existing.size === blob.size && (await hashFile(target)) === sha256) return 'copy';
    throw new LinkTargetExistsError(sha256, target);
  }

  async function copyDurably(source: string, target: string): Promise<void> {
    const temp = `${target}.${process.pid}-${randomUUID()}.tmp`;
    try {
      await fs.copyFile(source, temp, fsConstants.COPYFILE_EXCL);
      const handle = await fs.open(temp, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(temp, target);
    } catch (error) {
      await fs.rm(temp, { force: true });
      throw error;
    }
  }

  async function has(sha256: string): Promise<boolean> {
    return exists(blobPath(sha256Of(sha256)));
  }

  async function remove(sha256: string): Promise<DeleteResult> {
    checked.delete(sha256Of(sha256));
    try {
      await fs.unlink(blobPath(sha256Of(sha256)));
      return { deleted: true };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { deleted: false };
      throw error;
    }
  }

  async function* list(): AsyncGenerator<string> {
    for (const prefix of await sortedNames(dir)) {
      if (!FAN_OUT.test(prefix)) continue;
      for (const rest of await sortedNames(path.join(dir, prefix))) {
        if (REST_OF_HASH.test(rest)) yield prefix + rest;
      }
    }
  }

  async function verify(): Promise<VerifyResult> {
    const problems: BlobProblem[] = [];
    let blobsChecked = 0;
    let bytesChecked = 0;
    for (const prefix of await sortedNames(dir)) {
      const folder = path.join(dir, prefix);
      if (prefix === TMP_DIR) continue;
      if (!FAN_OUT.test(prefix)) {
        problems.push({ kind: 'stray_file', file: folder });
        continue;
      }
      for (const rest of await sortedNames(folder)) {
        const file = path.join(folder, rest);
        if (!REST_OF_HASH.test(rest)) {
          problems.push({ kind: 'stray_file', file });
          continue;
        }
        const sha256 = prefix + rest;
        blobsChecked++;
        try {
          const { size } = await fs.stat(file);
          const actual = await hashFile(file);
          bytesChecked += size;
          if (actual !== sha256) problems.push({ kind: 'hash_mismatch', sha256, actual, file });
        } catch (error) {
          problems.push({ kind: 'unreadable', sha256, file, reason: (error as Error).message });
        }
      }
    }
    return { ok: problems.length === 0, blobsChecked, bytesChecked, problems };
  }

  const fileOf = (sha256: string) => blobPath(sha256Of(sha256));
  return {
    dir,
    staleTempFiles: () => staleTempFiles(tmpDir),
    removeStaleTempFiles: () => removeStaleTempFiles(tmpDir),
    path: fileOf,
    fileOf,
    // The caller's bytes are copied before the first await: changing them after the call stores nothing of it.
    put: (bytes, options) => track(async () => put(ownBytes(bytes), options)),
    putStream: (source, options) => track(async () => store(ownSource(source), null, encodingOf(options))),
    get: (blob) => track(() => get(blob)),
    has: (sha256) => track(() => has(sha256)),
    delete: (sha256) => track(() => remove(sha256)),
    link: (sha256, targetPath, options) => track(() => link(sha256, targetPath, options)),
    list: () => {
      if (closed) throw new ClosedError(`blob store at ${dir}`);
      return list();
    },
    verify: () => track(verify),
    close: async () => {
      closed = true;
      while (inFlight.size > 0) await Promise.allSettled(inFlight);
    },
  };
}

async function writeAll(handle: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  let pending = buffers;
  while (pending.length > 0) {
    let { bytesWritten } = await handle.writev(pending, position);
    position += bytesWritten;
    const rest: Buffer[] = [];
    for (const buffer of pending) {
      if (bytesWritten >= buffer.length) bytesWritten -= buffer.length;
      else {
        rest.push(buffer.subarray(bytesWritten));
        bytesWritten = 0;
      }
    }
    pending = rest;
  }
}

function signature(stats: BigIntStats): string {
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`;
}

async function readInto(handle: FileHandle, bytes: Buffer, position: number): Promise<number> {
  if (position >= bytes.length) return 0;
  const { bytesRead } = await handle.read(
    bytes,
    position,
    Math.min(READ_CHUNK_BYTES, bytes.length - position),
    position,
  );
  return bytesRead;
}

/**
 * Whether `file` holds the blob: it exists, has the blob's size and hashes to its name. A store
 * relies on a file only after this check; a missing or damaged file is written again.
 */
async function holdsBlob(file: string, sha256: string, bytes: number): Promise<boolean> {
  try {
    const stat = await fs.stat(file);
    return stat.isFile() && stat.size === bytes && (await hashFile(file)) === sha256;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

async function hashFile(file: string): Promise<string> {
  const handle = await fs.open(file, 'r');
  try {
    return await hashHandle(handle);
  } finally {
    await handle.close();
  }
}

async function hashHandle(handle: FileHandle): Promise<string> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  for (let position = 0; ;) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  return hash.digest('hex');
}

/** Best effort: a temp file that cannot be removed now is removed at the next open. */
async function discardTemp(file: string): Promise<void> {
  liveTempFiles.delete(file);
  await fs.rm(file, { force: true }).catch(() => {});
}

async function sortedNames(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir)).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/**
 * The temp files of `tmpDir` whose writer is gone: a dead process, or this one when no store of it
 * owns the file. None when the folder does not exist.
 */
async function staleTempFiles(tmpDir: string): Promise<StaleTempFile[]> {
  const stale: StaleTempFile[] = [];
  for (const name of await sortedNames(tmpDir)) {
    const file = path.join(tmpDir, name);
    const match = TEMP_NAME.exec(name);
    const pid = match === null ? Number.NaN : Number(match[1]);
    const ownedByLiveWriter = pid === process.pid ? liveTempFiles.has(file) : processIsAlive(pid);
    if (ownedByLiveWriter) continue;
    const bytes = await fs.lstat(file).then(
      (stat) => stat.size,
      () => null,
    );
    if (bytes !== null) stale.push({ file, bytes, pid: Number.isSafeInteger(pid) ? pid : null });
  }
  return stale;
}

/** Removes the temp files whose writer is gone (`staleTempFiles`); returns them. */
async function removeStaleTempFiles(tmpDir: string): Promise<StaleTempFile[]> {
  const stale = await staleTempFiles(tmpDir);
  for (const { file } of stale) await fs.rm(file, { force: true, recursive: true });
  return stale;
}

function writeFailed(file: string): (error: unknown) => never {
  return (error) => {
    throw error instanceof BlobWriteFailedError ? error : new BlobWriteFailedError(file, error);
  };
}
