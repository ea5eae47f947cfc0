/**
 * The BlobStore conformance suite: ava tests every blob store adapter's test file runs, so every
 * backend keeps the same contract where it matters most: a store never takes an existing copy of a
 * blob as proof of its bytes.
 *
 *   blobStoreConformance(test, { name: 'file', open, damage: damageFileBlob });
 *
 * `damage` leaves the store holding a damaged copy of some bytes (cut short, or one byte changed)
 * under their hash, the way the backend's storage can lose them; the helpers below do it for the
 * file store (the blob file) and the stream store (a committed upload whose chunks are short or
 * changed).
 */
import type { ExecutionContext, TestFn } from 'ava';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CorruptBlobError } from '../blobs/errors.ts';
import type { FileBlobStore } from '../blobs/file.ts';
import { StreamBlobEvent, type BlobChunkData, type BlobCommittedData, type StreamBlobStore } from '../blobs/streams.ts';
import type { BlobStore } from '../blobs/types.ts';

export type BlobDamage = 'truncate' | 'flip';

export type BlobStoreConformanceAdapter<S extends BlobStore = BlobStore> = Readonly<{
  /** Prefix of every test title. */
  name: string;
  /** A fresh, empty store. The suite closes it at the end of each test. */
  open(): Promise<S>;
  /** Leaves `store` holding a damaged copy of `bytes` under their hash: cut short, or one byte changed. */
  damage(store: S, bytes: Buffer, how: BlobDamage): Promise<void>;
}>;

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

export function blobStoreConformance<Context, S extends BlobStore>(
  test: TestFn<Context>,
  adapter: BlobStoreConformanceAdapter<S>,
): void {
  const open = async (t: ExecutionContext<unknown>): Promise<S> => {
    const store = await adapter.open();
    t.teardown(() => store.close());
    return store;
  };

  for (const how of ['truncate', 'flip'] as const) {
    for (const put of ['put', 'putStream'] as const) {
      test(`${adapter.name}: a ${put} of bytes whose stored copy is damaged (${how}) replaces it`, async (t) => {
        const store = await open(t);
        const bytes = randomBytes(10_000);
        await adapter.damage(store, bytes, how);
        await t.throwsAsync(store.get(sha256(bytes)), { instanceOf: CorruptBlobError }, 'the copy is damaged');
        t.false((await store.verify()).ok, 'verify sees the damaged copy');

        // The round is run again and produces the same bytes.
        const again =
          put === 'put'
            ? await store.put(Buffer.from(bytes))
            : await store.putStream([bytes.subarray(0, 7), bytes.subarray(7)]);
        t.true(again.created, 'the damaged copy does not count as the blob being stored');
        t.is(again.ref.sha256, sha256(bytes));
        t.true((await store.get(again.ref)).equals(bytes));
        t.true(await store.has(again.ref.sha256));
        const verified = await store.verify();
        t.deepEqual(verified.problems, []);
        t.true(verified.ok);
        const listed: string[] = [];
        for await (const hash of store.list()) listed.push(hash);
        t.deepEqual(listed, [again.ref.sha256]);
        t.false((await store.put(bytes)).created, 'once healed, the same bytes again write nothing');
      });
    }
  }

  for (const how of ['truncate', 'flip'] as const) {
    test(`${adapter.name}: link of a blob whose stored copy is damaged (${how}) is CorruptBlobError`, async (t) => {
      const store = await open(t);
      const bytes = randomBytes(10_000);
      await adapter.damage(store, bytes, how);
      const folder = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'roundlog-link-')), 'breakpoint');
      t.teardown(() => fs.rm(path.dirname(folder), { recursive: true, force: true }));
      const error = await t.throwsAsync(store.link(sha256(bytes), path.join(folder, 'params')), {
        instanceOf: CorruptBlobError,
      });
      t.is(error?.sha256, sha256(bytes));
      t.deepEqual(await fs.readdir(folder).catch(() => []), [], 'nothing is left where the link was to go');
    });
  }

  test(`${adapter.name}: a put of bytes whose stored copy is intact is created: false`, async (t) => {
    const store = await open(t);
    const bytes = randomBytes(5000);
    t.true((await store.put(bytes)).created);
    const results = await Promise.all([store.put(bytes), store.putStream([bytes])]);
    t.deepEqual(
      results.map((r) => r.created),
      [false, false],
    );
    t.true((await store.get(sha256(bytes))).equals(bytes));
  });
}

/** Damages the file of `bytes` in a file store (stored first): cut short by one byte, or one byte flipped. */
export async function damageFileBlob(store: FileBlobStore, bytes: Buffer, how: BlobDamage): Promise<void> {
  const { ref } = await store.put(bytes);
  const file = store.path(ref.sha256);
  await fs.chmod(file, 0o644);
  if (how === 'truncate') await fs.truncate(file, bytes.length - 1);
  else {
    const handle = await fs.open(file, 'r+');
    try {
      const one = Buffer.alloc(1);
      await handle.read(one, 0, 1, 7);
      one[0] = one[0]! ^ 0xff;
      await handle.write(one, 0, 1, 7);
    } finally {
      await handle.close();
    }
  }
  await fs.chmod(file, 0o444);
}

/**
 * Commits `bytes` in a stream store as an upload whose chunks the backend lost the end of
 * (`truncate`: the last chunk is missing) or changed (`flip`: one byte of the first chunk), with
 * plain appends to the store's log, as a first commit of the blob.
 */
export async function damageStreamBlob(store: StreamBlobStore, bytes: Buffer, how: BlobDamage): Promise<void> {
  const upload = randomUUID();
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += store.chunkBytes) {
    pieces.push(Buffer.from(bytes.subarray(offset, offset + store.chunkBytes)));
  }
  const chunks = pieces.length;
  if (how === 'truncate') pieces.pop();
  else pieces[0]![0] = pieces[0]![0]! ^ 0xff;
  for (const [index, piece] of pieces.entries()) {
    const data: BlobChunkData = { upload, index, bytes: piece };
    await store.log.append(store.uploadStream(upload), [{ type: StreamBlobEvent.chunk, data }]);
  }
  const commit: BlobCommittedData = { upload, sha256: sha256(bytes), bytes: bytes.length, chunks };
  await store.log.append(store.stream(commit.sha256), [{ type: StreamBlobEvent.committed, data: commit }]);
  await store.log.append(store.indexStream, [
    { type: StreamBlobEvent.indexed, data: { sha256: commit.sha256, bytes: commit.bytes } },
  ]);
}
