/**
 * An in-memory BlobStore for tests of higher layers. Same contract as the file store, except that
 * `link` writes a copy of the bytes (there is no blob file to hard-link).
 */
import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isReadRefusal, readRegularFileIfAny } from '../confine.ts';
import { writeStep } from '../durable.ts';
import { ClosedError, InvalidArgumentError, StorageWriteError, isSystemError } from '../errors.ts';
import { BlobNotFoundError, LinkTargetExistsError } from './errors.ts';
import { ownSource } from './snapshot.ts';
import {
  encodingOf,
  sha256Of,
  type BlobRef,
  type BlobSource,
  type BlobStore,
  type LinkOptions,
  type LinkResult,
  type PutResult,
  type VerifyResult,
} from './types.ts';

const STORE_NAME = 'memory';

export function getInMemoryBlobStore(): BlobStore {
  const blobs = new Map<string, Buffer>();
  let closed = false;

  function checkOpen(): void {
    if (closed) throw new ClosedError('in-memory blob store');
  }

  function store(bytes: Buffer, encoding: string): PutResult {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const created = !blobs.has(sha256);
    if (created) blobs.set(sha256, bytes);
    return { ref: { sha256, bytes: bytes.length, encoding }, created };
  }

  function lookup(blob: string | BlobRef, argument: string): { sha256: string; bytes: Buffer } {
    const sha256 = sha256Of(blob, argument);
    const bytes = blobs.get(sha256);
    if (bytes === undefined) throw new BlobNotFoundError(sha256, STORE_NAME);
    return { sha256, bytes };
  }

  async function link(sha256: string, targetPath: string, options?: LinkOptions): Promise<LinkResult> {
    const { bytes } = lookup(sha256, 'sha256');
    if (typeof targetPath !== 'string' || targetPath.length === 0) {
      throw new InvalidArgumentError('targetPath', 'must be a non-empty path', targetPath);
    }
    const target = path.resolve(targetPath);
    // Read bounded, and only a regular file: a target that is larger or not a file is not these bytes.
    const existing = await readRegularFileIfAny(target, 'link target', bytes.length).catch((error: unknown) => {
      if (isReadRefusal(error)) throw new LinkTargetExistsError(sha256, target);
      throw error;
    });
    if (existing !== null) {
      if (existing.equals(bytes)) return { method: 'copy', created: false };
      throw new LinkTargetExistsError(sha256, target);
    }
    await writeStep(path.dirname(target), `linking blob ${sha256}`, () =>
      fs.mkdir(path.dirname(target), { recursive: true }),
    );
    const temp = `${target}.${process.pid}-${randomUUID()}.tmp`;
    try {
      const handle = await fs.open(temp, 'wx', 0o444);
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(temp, target);
    } catch (error) {
      await fs.rm(temp, { force: true });
      throw isSystemError(error) ? new StorageWriteError(target, `copying blob ${sha256}`, error) : error;
    }
    if (options?.sync ?? true) {
      const dir = await fs.open(path.dirname(target), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    }
    return { method: 'copy', created: true };
  }

  return {
    async put(bytes, options) {
      checkOpen();
      if (!(bytes instanceof Uint8Array)) {
        throw new InvalidArgumentError('bytes', 'must be a Uint8Array or Buffer', bytes === null ? null : typeof bytes);
      }
      return store(Buffer.from(bytes), encodingOf(options));
    },
    async putStream(source: BlobSource, options) {
      checkOpen();
      const encoding = encodingOf(options);
      const chunks: Buffer[] = [];
      // Taken before the first await: changing the chunks after the call stores nothing of it.
      for await (const chunk of ownSource(source)) {
        if (!(chunk instanceof Uint8Array)) {
          throw new InvalidArgumentError(
            'source',
            'must yield Uint8Array chunks',
            chunk === null ? null : typeof chunk,
          );
        }
        chunks.push(Buffer.from(chunk));
      }
      return store(Buffer.concat(chunks), encoding);
    },
    async get(blob) {
      checkOpen();
      return Buffer.from(lookup(blob, 'blob').bytes);
    },
    fileOf(sha256) {
      sha256Of(sha256);
      return null;
    },
    async has(sha256) {
      checkOpen();
      return blobs.has(sha256Of(sha256));
    },
    async delete(sha256) {
      checkOpen();
      return { deleted: blobs.delete(sha256Of(sha256)) };
    },
    async link(sha256, targetPath, options) {
      checkOpen();
      return link(sha256, targetPath, options);
    },
    list() {
      checkOpen();
      return (async function* () {
        yield* [...blobs.keys()].sort();
      })();
    },
    async verify(): Promise<VerifyResult> {
      checkOpen();
      let bytesChecked = 0;
      for (const bytes of blobs.values()) bytesChecked += bytes.length;
      return { ok: true, blobsChecked: blobs.size, bytesChecked, problems: [] };
    },
    async close() {
      closed = true;
    },
  };
}
