/** The file blob store on real files: atomic content-addressed puts, verified reads, hard links, recovery. */
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, promises as fs, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  BlobNotFoundError,
  BlobWriteFailedError,
  CorruptBlobError,
  LinkTargetExistsError,
} from '../../src/blobs/errors.ts';
import { openFileBlobStore, type FileBlobStore } from '../../src/blobs/file.ts';
import { ClosedError, InvalidArgumentError } from '../../src/errors.ts';

const test = anyTest as TestFn<unknown>;

const root = await fs.mkdtemp(path.join(os.tmpdir(), 'roundlog-blobs-'));
const SHM = '/dev/shm';
const shmIsOtherDevice = await fs
  .stat(SHM)
  .then((shm) => shm.isDirectory() && shm.dev !== statSync(root).dev)
  .catch(() => false);
const shmRoot = shmIsOtherDevice ? await fs.mkdtemp(path.join(SHM, 'roundlog-blobs-')) : undefined;

test.after.always(async () => {
  await fs.rm(root, { recursive: true, force: true });
  if (shmRoot !== undefined) await fs.rm(shmRoot, { recursive: true, force: true });
});

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

async function openStore(t: ExecutionContext, dir = path.join(root, randomUUID(), 'blobs')): Promise<FileBlobStore> {
  const store = await openFileBlobStore({ dir });
  t.teardown(() => store.close());
  return store;
}

test('put stores bytes under their SHA-256 in a read-only fan-out file; get, has and delete follow', async (t) => {
  const store = await openStore(t);
  const bytes = Buffer.from('aggregated parameters of round 0');
  const hash = sha256(bytes);

  const { ref, created } = await store.put(bytes, { encoding: 'tensors/msgpack' });
  t.true(created);
  t.deepEqual(ref, { sha256: hash, bytes: bytes.length, encoding: 'tensors/msgpack' });
  t.is(store.path(hash), path.join(store.dir, hash.slice(0, 2), hash.slice(2)));
  t.true((await fs.readFile(store.path(hash))).equals(bytes));
  t.is((await fs.stat(store.path(hash))).mode & 0o777, 0o444);
  t.true(await store.has(hash));
  t.true((await store.get(hash)).equals(bytes));
  t.true((await store.get(ref)).equals(bytes));
  t.deepEqual(await fs.readdir(path.join(store.dir, 'tmp')), []);

  t.deepEqual(await store.delete(hash), { deleted: true });
  t.false(await store.has(hash));
  t.deepEqual(await store.delete(hash), { deleted: false });
  const error = await t.throwsAsync(store.get(hash), { instanceOf: BlobNotFoundError });
  t.is(error?.code, 'BLOB_NOT_FOUND');
  t.is(error?.sha256, hash);
  t.is(error?.store, store.dir);
});

test('the encoding defaults to raw', async (t) => {
  const store = await openStore(t);
  t.is((await store.put(Buffer.from('x'))).ref.encoding, 'raw');
});

const secondPutWritesNothing = anyTest.macro({
  async exec(t, size: number) {
    const store = await openStore(t);
    const bytes = randomBytes(size);
    const first = await store.put(bytes);
    const before = await fs.stat(store.path(first.ref.sha256), { bigint: true });

    const second = await store.put(Buffer.from(bytes));
    t.false(second.created);
    t.deepEqual(second.ref, first.ref);
    const after = await fs.stat(store.path(first.ref.sha256), { bigint: true });
    t.is(after.ino, before.ino);
    t.is(after.mtimeNs, before.mtimeNs);
    t.is(after.nlink, 1n);
    await store.close();
    t.deepEqual(await fs.readdir(path.join(store.dir, 'tmp')), []);
  },
  title: (_, size) => `a second put of the same ${size} bytes leaves the stored file untouched`,
});

test(secondPutWritesNothing, 4096);
test(secondPutWritesNothing, 20 * 1024 * 1024 + 3);

test('a large put round-trips and hashes all of its bytes', async (t) => {
  const store = await openStore(t);
  const bytes = randomBytes(25 * 1024 * 1024 + 7);
  const { ref, created } = await store.put(bytes);
  t.true(created);
  t.is(ref.sha256, sha256(bytes));
  t.is(ref.bytes, bytes.length);
  t.true((await store.get(ref)).equals(bytes));
});

test('concurrent puts of the same bytes create the blob exactly once', async (t) => {
  const store = await openStore(t);
  const bytes = randomBytes(1000);
  const results = await Promise.all([store.put(bytes), store.put(bytes), store.put(bytes)]);
  t.is(results.filter((result) => result.created).length, 1);
  t.true((await store.get(sha256(bytes))).equals(bytes));
});

test('putStream hashes chunks as they come and matches put', async (t) => {
  const store = await openStore(t);
  const chunks = [randomBytes(3), randomBytes(9 * 1024 * 1024), randomBytes(0), randomBytes(12345)];
  const whole = Buffer.concat(chunks);

  const streamed = await store.putStream(Readable.from(chunks), { encoding: 'tensors/msgpack+lz4' });
  t.true(streamed.created);
  t.deepEqual(streamed.ref, { sha256: sha256(whole), bytes: whole.length, encoding: 'tensors/msgpack+lz4' });
  t.true((await store.get(streamed.ref)).equals(whole));

  const again = await store.putStream(chunks);
  t.false(again.created);
  t.false((await store.put(whole)).created);
});

test('a source that fails leaves no blob and no temp file', async (t) => {
  const store = await openStore(t);
  async function* failing() {
    yield randomBytes(10 * 1024 * 1024);
    throw new Error('node disconnected');
  }
  await t.throwsAsync(store.putStream(failing()), { message: 'node disconnected' });
  t.deepEqual(await fs.readdir(path.join(store.dir, 'tmp')), []);
  t.deepEqual(await collect(store.list()), []);
});

test('a put that cannot write is BlobWriteFailedError naming the file, and stores nothing', async (t) => {
  const store = await openStore(t);
  const tmp = path.join(store.dir, 'tmp');
  await fs.mkdir(store.dir, { recursive: true });
  await fs.writeFile(tmp, 'a file where the temp folder should be');
  const bytes = randomBytes(1000);
  const error = await t.throwsAsync(store.put(bytes), { instanceOf: BlobWriteFailedError });
  t.is(error?.code, 'BLOB_WRITE_FAILED');
  t.true(error?.file.startsWith(tmp + path.sep));
  t.true(['ENOTDIR', 'EEXIST'].includes(String((error?.cause as NodeJS.ErrnoException).code)));
  t.false(await store.has(sha256(bytes)));
});

test('a flipped byte makes get throw CorruptBlobError naming the blob, the actual hash and the file', async (t) => {
  const store = await openStore(t);
  const bytes = randomBytes(64 * 1024);
  const { ref } = await store.put(bytes);
  const damaged = await flipByte(store.path(ref.sha256), 1000);

  const error = await t.throwsAsync(store.get(ref), { instanceOf: CorruptBlobError });
  t.is(error?.code, 'CORRUPT_BLOB');
  t.is(error?.sha256, ref.sha256);
  t.is(error?.actual, sha256(damaged));
  t.not(error?.actual, ref.sha256);
  t.is(error?.file, store.path(ref.sha256));
  t.regex(error?.message ?? '', new RegExp(`blob ${ref.sha256} is corrupt: ${escape(store.path(ref.sha256))}`));
});

test('a truncated blob file is corrupt too', async (t) => {
  const store = await openStore(t);
  const { ref } = await store.put(randomBytes(10_000));
  await fs.chmod(store.path(ref.sha256), 0o644);
  await fs.truncate(store.path(ref.sha256), 9_999);
  const error = await t.throwsAsync(store.get(ref), { instanceOf: CorruptBlobError });
  t.is(error?.actual, sha256(await fs.readFile(store.path(ref.sha256))));
});

const damagedPutHeals = anyTest.macro({
  async exec(t, size: number, how: 'put' | 'putStream', damage: 'truncate' | 'flip') {
    const store = await openStore(t);
    const bytes = randomBytes(size);
    const { ref } = await store.put(bytes);
    const file = store.path(ref.sha256);
    const before = await fs.stat(file, { bigint: true });
    if (damage === 'truncate') {
      await fs.chmod(file, 0o644);
      await fs.truncate(file, size - 1);
      await fs.chmod(file, 0o444);
    } else await flipByte(file, 7);
    await t.throwsAsync(store.get(ref), { instanceOf: CorruptBlobError });

    // A crash of the storage cut the file; the round is run again and produces the same bytes.
    const again =
      how === 'put'
        ? await store.put(Buffer.from(bytes))
        : await store.putStream([bytes.subarray(0, 5), bytes.subarray(5)]);
    t.true(again.created, 'the damaged file does not count as the blob being stored');
    t.deepEqual(again.ref, ref);
    t.true((await store.get(ref)).equals(bytes));
    const after = await fs.stat(file, { bigint: true });
    t.not(after.ino, before.ino, 'replaced by a new file (renamed into place), not written in place');
    t.is(after.mode & 0o777n, 0o444n);
    t.true((await store.verify()).ok);
    await store.close();
    t.deepEqual(await fs.readdir(path.join(store.dir, 'tmp')), []);
  },
  title: (_, size, how, damage) =>
    `a ${how} of ${size} bytes whose stored file is damaged (${damage}) replaces it and reads back`,
});

test(damagedPutHeals, 10_000, 'put', 'truncate');
test(damagedPutHeals, 10_000, 'put', 'flip');
test(damagedPutHeals, 10_000, 'putStream', 'truncate');
test(damagedPutHeals, 9 * 1024 * 1024 + 1, 'put', 'truncate');
test(damagedPutHeals, 9 * 1024 * 1024 + 1, 'putStream', 'flip');

test('a put of bytes whose stored file is intact still writes nothing, after checking the file', async (t) => {
  const store = await openStore(t);
  const bytes = randomBytes(5000);
  const { ref } = await store.put(bytes);
  const before = await fs.stat(store.path(ref.sha256), { bigint: true });
  const results = await Promise.all([store.put(bytes), store.putStream([bytes])]);
  t.deepEqual(
    results.map((r) => r.created),
    [false, false],
  );
  const after = await fs.stat(store.path(ref.sha256), { bigint: true });
  t.is(after.ino, before.ino);
  t.is(after.mtimeNs, before.mtimeNs);
});

test('verify walks every blob and reports corruption and stray files without throwing', async (t) => {
  const store = await openStore(t);
  const good = await store.put(randomBytes(5000));
  const bad = await store.put(randomBytes(7000));
  t.deepEqual(await store.verify(), { ok: true, blobsChecked: 2, bytesChecked: 12000, problems: [] });

  const damaged = await flipByte(store.path(bad.ref.sha256), 0);
  const stray = path.join(path.dirname(store.path(good.ref.sha256)), 'notes.txt');
  await fs.writeFile(stray, 'not a blob');

  const result = await store.verify();
  t.false(result.ok);
  t.is(result.blobsChecked, 2);
  t.is(result.bytesChecked, 12000);
  t.deepEqual(
    [...result.problems].sort((a, b) => a.kind.localeCompare(b.kind)),
    [
      { kind: 'hash_mismatch', sha256: bad.ref.sha256, actual: sha256(damaged), file: store.path(bad.ref.sha256) },
      { kind: 'stray_file', file: stray },
    ],
  );
});

test('link hard-links the blob into a new folder and is idempotent', async (t) => {
  const store = await openStore(t);
  const { ref } = await store.put(randomBytes(4096));
  const target = path.join(root, randomUUID(), 'Experiment_0000', 'breakpoint_0001', 'aggregated_params.bin');

  t.deepEqual(await store.link(ref.sha256, target), { method: 'hardlink', created: true });
  const [blob, linked] = await Promise.all([fs.stat(store.path(ref.sha256)), fs.stat(target)]);
  t.is(linked.ino, blob.ino);
  t.is(linked.nlink, 2);
  t.true((await fs.readFile(target)).equals(await store.get(ref)));

  t.deepEqual(await store.link(ref.sha256, target), { method: 'hardlink', created: false });
  t.is((await fs.stat(target)).nlink, 2);
});

test('link accepts a target that already holds a copy of the bytes, and refuses other bytes', async (t) => {
  const store = await openStore(t);
  const bytes = randomBytes(2048);
  const { ref } = await store.put(bytes);
  const folder = path.join(root, randomUUID());
  await fs.mkdir(folder);

  const copy = path.join(folder, 'copy.bin');
  await fs.writeFile(copy, bytes);
  t.deepEqual(await store.link(ref.sha256, copy), { method: 'copy', created: false });

  const other = path.join(folder, 'other.bin');
  await fs.writeFile(other, randomBytes(2048));
  const error = await t.throwsAsync(store.link(ref.sha256, other), { instanceOf: LinkTargetExistsError });
  t.is(error?.code, 'LINK_TARGET_EXISTS');
  t.is(error?.sha256, ref.sha256);
  t.is(error?.target, other);
  t.is((await fs.stat(store.path(ref.sha256))).nlink, 1);
});

test('link of a missing blob is BlobNotFoundError and creates nothing', async (t) => {
  const store = await openStore(t);
  const target = path.join(root, randomUUID(), 'params.bin');
  const missing = sha256(Buffer.from('never stored'));
  const error = await t.throwsAsync(store.link(missing, target), { instanceOf: BlobNotFoundError });
  t.is(error?.sha256, missing);
  await t.throwsAsync(fs.stat(target), { code: 'ENOENT' });
});

(shmIsOtherDevice ? test : test.skip)('link copies, fsynced, when the target is on another filesystem', async (t) => {
  const store = await openStore(t);
  const bytes = randomBytes(100_000);
  const { ref } = await store.put(bytes);
  const target = path.join(shmRoot!, randomUUID(), 'params.bin');

  t.deepEqual(await store.link(ref.sha256, target), { method: 'copy', created: true });
  t.true((await fs.readFile(target)).equals(bytes));
  t.is((await fs.stat(store.path(ref.sha256))).nlink, 1);
  t.deepEqual(await fs.readdir(path.dirname(target)), ['params.bin']);
  t.deepEqual(await store.link(ref.sha256, target), { method: 'copy', created: false });
});

test('the first write removes temp files left by dead writers and keeps those of live ones', async (t) => {
  const dir = path.join(root, randomUUID(), 'blobs');
  const tmp = path.join(dir, 'tmp');
  await fs.mkdir(tmp, { recursive: true });
  const stale = [`${process.pid}-${randomUUID()}.tmp`, `${deadPid()}-${randomUUID()}.tmp`, 'garbage.tmp'];
  const live = `${process.ppid}-${randomUUID()}.tmp`;
  for (const name of [...stale, live]) await fs.writeFile(path.join(tmp, name), 'half a blob');

  const store = await openStore(t, dir);
  t.is((await fs.readdir(tmp)).length, 4, 'opening changes nothing');
  await store.put(Buffer.from('a blob'));
  t.deepEqual(await fs.readdir(tmp), [live]);
});

test('opening and reading a store create nothing: no folder, no temp folder', async (t) => {
  const missing = path.join(root, randomUUID(), 'blobs');
  const store = await openStore(t, missing);
  t.deepEqual(await collect(store.list()), []);
  t.false(await store.has('0'.repeat(64)));
  t.deepEqual((await store.verify()).problems, []);
  t.false(existsSync(missing));
  const dir = path.join(root, randomUUID(), 'blobs');
  const writer = await openStore(t, dir);
  const { ref } = await writer.put(Buffer.from('kept'));
  await fs.rm(path.join(dir, 'tmp'), { recursive: true });
  const reader = await openStore(t, dir);
  t.deepEqual(await collect(reader.list()), [ref.sha256]);
  t.true((await reader.get(ref.sha256)).equals(Buffer.from('kept')));
  t.deepEqual((await reader.verify()).problems, []);
  t.false(existsSync(path.join(dir, 'tmp')));
  await reader.put(Buffer.from('another'));
  t.true(existsSync(path.join(dir, 'tmp')));
});

test('list yields every stored hash in order', async (t) => {
  const store = await openStore(t);
  const refs = await Promise.all(Array.from({ length: 20 }, (_, i) => store.put(Buffer.from(`blob ${i}`))));
  await fs.writeFile(path.join(store.dir, 'README'), 'stray');
  t.deepEqual(await collect(store.list()), refs.map(({ ref }) => ref.sha256).sort());
});

test('malformed hashes are InvalidArgumentError', async (t) => {
  const store = await openStore(t);
  for (const bad of ['abc', 'A'.repeat(64), '../'.repeat(21) + 'a', 42]) {
    const error = await t.throwsAsync(store.get(bad as string), { instanceOf: InvalidArgumentError });
    t.regex(error?.rule ?? '', /64 lowercase hex digits/);
  }
  await t.throwsAsync(store.has('xyz'), { instanceOf: InvalidArgumentError });
  t.throws(() => store.path('xyz'), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(store.put('not bytes' as unknown as Uint8Array), { instanceOf: InvalidArgumentError });
});

test('close waits for a put in flight, then refuses new calls', async (t) => {
  const store = await openFileBlobStore({ dir: path.join(root, randomUUID(), 'blobs') });
  const bytes = randomBytes(12 * 1024 * 1024);
  const putting = store.put(bytes);
  await store.close();
  const { ref } = await putting;
  t.true((await fs.readFile(store.path(ref.sha256))).equals(bytes));
  const error = await t.throwsAsync(store.get(ref), { instanceOf: ClosedError });
  t.is(error?.code, 'CLOSED');
  t.throws(() => store.list(), { instanceOf: ClosedError });
});

test('a reopened store serves what an earlier handle stored', async (t) => {
  const dir = path.join(root, randomUUID(), 'blobs');
  const first = await openFileBlobStore({ dir });
  const { ref } = await first.put(Buffer.from('kept across restarts'));
  await first.close();
  const second = await openStore(t, dir);
  t.is((await second.get(ref)).toString(), 'kept across restarts');
});

async function flipByte(file: string, offset: number): Promise<Buffer> {
  await fs.chmod(file, 0o644);
  const bytes = await fs.readFile(file);
  bytes[offset] = bytes[offset]! ^ 0xff;
  await fs.writeFile(file, bytes);
  return bytes;
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** A pid no live process has. */
function deadPid(): number {
  for (let pid = 4_000_000; pid > 1; pid -= 7919) {
    try {
      process.kill(pid, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ESRCH') return pid;
    }
  }
  throw new Error('no free pid found');
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test('a blob changed after the store linked it is hashed again and refused on the next link', async (t) => {
  const store = await openStore(t);
  const bytes = randomBytes(10_000);
  const { ref } = await store.put(bytes);
  const dir = path.join(root, randomUUID());
  t.deepEqual(await store.link(ref.sha256, path.join(dir, 'a')), { method: 'hardlink', created: true });
  // The same size, one byte changed, the modification time set back: the change time still moves.
  const file = store.path(ref.sha256);
  const { atime, mtime } = await fs.stat(file);
  await flipByte(file, 7);
  await fs.utimes(file, atime, mtime);
  const error = await t.throwsAsync(store.link(ref.sha256, path.join(dir, 'b')), { instanceOf: CorruptBlobError });
  t.is(error?.file, file);
  t.deepEqual(await fs.readdir(dir), ['a']);
});
