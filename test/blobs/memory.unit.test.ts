/** The in-memory blob store used by tests of higher layers: the same contract as the file store. */
import test from 'ava';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BlobNotFoundError, LinkTargetExistsError } from '../../src/blobs/errors.ts';
import { getInMemoryBlobStore } from '../../src/blobs/memory.ts';
import { ClosedError, InvalidArgumentError } from '../../src/errors.ts';

const root = await fs.mkdtemp(path.join(os.tmpdir(), 'roundlog-memory-blobs-'));

test.after.always(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

test('put, get, has and delete by SHA-256', async (t) => {
  const store = getInMemoryBlobStore();
  const bytes = Buffer.from('node-a parameters');
  const { ref, created } = await store.put(bytes, { encoding: 'tensors/msgpack' });
  t.true(created);
  t.deepEqual(ref, { sha256: sha256(bytes), bytes: bytes.length, encoding: 'tensors/msgpack' });
  t.true(await store.has(ref.sha256));
  t.true((await store.get(ref)).equals(bytes));
  t.true((await store.get(ref.sha256)).equals(bytes));

  t.deepEqual(await store.delete(ref.sha256), { deleted: true });
  t.false(await store.has(ref.sha256));
  t.deepEqual(await store.delete(ref.sha256), { deleted: false });
  const error = await t.throwsAsync(store.get(ref), { instanceOf: BlobNotFoundError });
  t.is(error?.sha256, ref.sha256);
  t.is(error?.store, 'memory');
});

test('a second put of the same bytes is not created again; the encoding defaults to raw', async (t) => {
  const store = getInMemoryBlobStore();
  const bytes = randomBytes(100);
  t.true((await store.put(bytes)).created);
  const second = await store.put(Buffer.from(bytes));
  t.false(second.created);
  t.is(second.ref.encoding, 'raw');
});

test('stored bytes are isolated from the caller on both sides', async (t) => {
  const store = getInMemoryBlobStore();
  const bytes = Buffer.from('immutable');
  const { ref } = await store.put(bytes);
  bytes.fill(0);
  const got = await store.get(ref);
  t.is(got.toString(), 'immutable');
  got.fill(0);
  t.is((await store.get(ref)).toString(), 'immutable');
});

test('putStream concatenates chunks and matches put', async (t) => {
  const store = getInMemoryBlobStore();
  const chunks = [Buffer.from('round '), Buffer.from('log')];
  const { ref, created } = await store.putStream(chunks, { encoding: 'raw' });
  t.true(created);
  t.is(ref.sha256, sha256(Buffer.from('round log')));
  t.false((await store.put(Buffer.from('round log'))).created);
});

test('list yields stored hashes in order and verify counts them', async (t) => {
  const store = getInMemoryBlobStore();
  const refs = await Promise.all(['a', 'bb', 'ccc'].map((text) => store.put(Buffer.from(text))));
  const listed: string[] = [];
  for await (const hash of store.list()) listed.push(hash);
  t.deepEqual(listed, refs.map(({ ref }) => ref.sha256).sort());
  t.deepEqual(await store.verify(), { ok: true, blobsChecked: 3, bytesChecked: 6, problems: [] });
});

test('link writes a copy of the bytes, idempotently, and refuses other bytes', async (t) => {
  const store = getInMemoryBlobStore();
  const bytes = randomBytes(512);
  const { ref } = await store.put(bytes);
  const target = path.join(root, randomUUID(), 'breakpoint_0000', 'params.bin');

  t.deepEqual(await store.link(ref.sha256, target), { method: 'copy', created: true });
  t.true((await fs.readFile(target)).equals(bytes));
  t.deepEqual(await fs.readdir(path.dirname(target)), ['params.bin']);
  t.deepEqual(await store.link(ref.sha256, target), { method: 'copy', created: false });

  const other = (await store.put(randomBytes(512))).ref;
  const error = await t.throwsAsync(store.link(other.sha256, target), { instanceOf: LinkTargetExistsError });
  t.is(error?.target, target);
  t.true((await fs.readFile(target)).equals(bytes));
});

test('link of a missing blob is BlobNotFoundError', async (t) => {
  const store = getInMemoryBlobStore();
  const missing = sha256(Buffer.from('nothing'));
  const target = path.join(root, randomUUID(), 'params.bin');
  await t.throwsAsync(store.link(missing, target), { instanceOf: BlobNotFoundError });
  await t.throwsAsync(fs.stat(target), { code: 'ENOENT' });
});

test('malformed hashes and bytes are InvalidArgumentError', async (t) => {
  const store = getInMemoryBlobStore();
  await t.throwsAsync(store.get('ABC'), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(store.has('0'.repeat(63)), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(store.put([1, 2] as unknown as Uint8Array), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(store.put(Buffer.from('x'), { encoding: '' }), { instanceOf: InvalidArgumentError });
});

test('a closed store refuses calls', async (t) => {
  const store = getInMemoryBlobStore();
  const { ref } = await store.put(Buffer.from('x'));
  await store.close();
  await t.throwsAsync(store.get(ref), { instanceOf: ClosedError });
  await t.throwsAsync(store.put(Buffer.from('y')), { instanceOf: ClosedError });
});
