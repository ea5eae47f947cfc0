/**
 * The stream blob store on the in-memory event log: the BlobStore contract of the file and memory
 * stores, plus what chunking into streams adds (append sizes, uploads without commit, damaged
 * chunks, deletion with and without a stream-deleting backend).
 */
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  BlobNotFoundError,
  BlobWriteFailedError,
  CorruptBlobError,
  LinkTargetExistsError,
} from '../../src/blobs/errors.ts';
import {
  DEFAULT_CHUNK_BYTES,
  MAX_CHUNK_BYTES,
  StreamBlobEvent,
  openStreamBlobStore,
  type BlobChunkData,
  type BlobCommittedData,
  type StreamBlobStore,
  type StreamBlobStoreOptions,
} from '../../src/blobs/streams.ts';
import { encodeValue } from '../../src/codec/values.ts';
import { ClosedError, InvalidArgumentError } from '../../src/errors.ts';
import { StreamNotFoundError } from '../../src/log/errors.ts';
import { getInMemoryEventLog } from '../../src/log/memory.ts';
import type { EventLog, ReadStreamOptions, RecordedEvent } from '../../src/log/types.ts';

const test = anyTest as TestFn<unknown>;

const root = await fs.mkdtemp(path.join(os.tmpdir(), 'roundlog-stream-blobs-'));

test.after.always(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Bytes per chunk in most tests: small, so that a few KB make several chunks. */
const CHUNK = 1000;
/** What a chunk append may carry beyond its bytes (field names, upload id, encoding byte). */
const SMALL_OVERHEAD = 256;

type Append = { stream: string; types: string[]; dataBytes: number };

/**
 * The in-memory log seen through a wrapper that forwards every call to it and records each
 * append (its events' data encoded the way the EventStoreDB adapter encodes them). `deleteStream`
 * behaves like an EventStoreDB soft delete: the stream reads as missing until it is appended to
 * again, and then shows only the new events.
 */
function observedLog(inner: EventLog = getInMemoryEventLog()) {
  const appends: Append[] = [];
  const deleted: string[] = [];
  const truncatedBefore = new Map<string, bigint>();

  const log: EventLog = {
    async append(stream, events, options) {
      const result = await inner.append(stream, events, options);
      appends.push({
        stream,
        types: events.map((event) => event.type),
        dataBytes: events.reduce((sum, event) => sum + 1 + encodeValue(event.data).bytes.length, 0),
      });
      return result;
    },
    async readStream(stream, options?: ReadStreamOptions) {
      const first = truncatedBefore.get(stream);
      if (first === undefined) return inner.readStream(stream, options);
      const { lastRevision } = await inner.readStream(stream, { direction: 'backwards', maxCount: 1 });
      if (lastRevision < first) throw new StreamNotFoundError(stream);
      if ((options?.direction ?? 'forwards') === 'forwards') {
        const from = options?.fromRevision ?? 'start';
        const fromRevision = from === 'start' ? first : from === 'end' ? from : from < first ? first : from;
        return inner.readStream(stream, { ...options, fromRevision });
      }
      const result = await inner.readStream(stream, options);
      return { ...result, events: result.events.filter((event) => event.revision >= first) };
    },
    readAll: (options) => inner.readAll(options),
    async listStreams() {
      const { streams } = await inner.listStreams();
      return { streams: streams.filter((info) => info.lastRevision >= (truncatedBefore.get(info.stream) ?? 0n)) };
    },
    subscribe: (options) => inner.subscribe(options),
    verify: () => inner.verify(),
    close: () => inner.close(),
  };

  async function deleteStream(stream: string): Promise<void> {
    deleted.push(stream);
    const result = await inner.readStream(stream, { direction: 'backwards', maxCount: 1 }).catch((error: unknown) => {
      if (error instanceof StreamNotFoundError) return null;
      throw error;
    });
    if (result !== null) truncatedBefore.set(stream, result.lastRevision + 1n);
  }

  return { log, inner, appends, deleted, deleteStream };
}

function openStore(
  t: ExecutionContext,
  options: Partial<StreamBlobStoreOptions> = {},
): { store: StreamBlobStore; observed: ReturnType<typeof observedLog> } {
  const observed = observedLog();
  const store = openStreamBlobStore({ log: observed.log, ownsLog: true, chunkBytes: CHUNK, ...options });
  t.teardown(() => store.close());
  return { store, observed };
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

async function eventsOf(log: EventLog, stream: string): Promise<RecordedEvent[]> {
  return [...(await log.readStream(stream)).events];
}

const chunkAppends = (appends: readonly Append[]) =>
  appends.filter((append) => append.types.includes(StreamBlobEvent.chunk));

test('put, get, has and delete by SHA-256, in chunk events named by a commit in the blob stream', async (t) => {
  const { store, observed } = openStore(t);
  const bytes = randomBytes(2 * CHUNK + 17);
  const hash = sha256(bytes);

  const { ref, created } = await store.put(bytes, { encoding: 'tensors/msgpack' });
  t.true(created);
  t.deepEqual(ref, { sha256: hash, bytes: bytes.length, encoding: 'tensors/msgpack' });
  t.true(await store.has(hash));
  t.true((await store.get(hash)).equals(bytes));
  t.true((await store.get(ref)).equals(bytes));
  t.is(store.fileOf(hash), null);

  t.is(store.stream(hash), `roundlog.blob-${hash}`);
  const blobEvents = await eventsOf(observed.log, store.stream(hash));
  t.deepEqual(
    blobEvents.map((event) => event.type),
    [StreamBlobEvent.committed],
  );
  const commit = blobEvents[0]!.data as BlobCommittedData;
  t.like(commit, { sha256: hash, bytes: bytes.length, chunks: 3 });
  const chunks = await eventsOf(observed.log, store.uploadStream(commit.upload));
  t.deepEqual(
    chunks.map((event) => {
      const data = event.data as BlobChunkData;
      return [event.type, data.upload, data.index, data.bytes.length];
    }),
    [
      [StreamBlobEvent.chunk, commit.upload, 0, CHUNK],
      [StreamBlobEvent.chunk, commit.upload, 1, CHUNK],
      [StreamBlobEvent.chunk, commit.upload, 2, 17],
    ],
  );

  t.deepEqual(await store.delete(hash), { deleted: true });
  t.false(await store.has(hash));
  t.deepEqual(await store.delete(hash), { deleted: false });
  const error = await t.throwsAsync(store.get(hash), { instanceOf: BlobNotFoundError });
  t.is(error?.code, 'BLOB_NOT_FOUND');
  t.is(error?.sha256, hash);
  t.is(error?.store, 'event log streams roundlog.blob-*');
});

test('the encoding defaults to raw', async (t) => {
  const { store } = openStore(t);
  t.is((await store.put(Buffer.from('x'))).ref.encoding, 'raw');
});

test('a second put of the same bytes is created: false and appends nothing', async (t) => {
  const { store, observed } = openStore(t);
  const bytes = randomBytes(3 * CHUNK + 1);
  const first = await store.put(bytes);
  t.true(first.created);
  const afterFirst = observed.appends.length;

  const second = await store.put(Buffer.from(bytes), { encoding: 'other' });
  t.false(second.created);
  t.deepEqual(second.ref, { ...first.ref, encoding: 'other' });
  t.is(observed.appends.length, afterFirst);

  // A blob that fits in one chunk is hashed before anything is written, streamed or not.
  const small = await store.put(randomBytes(CHUNK));
  const afterSmall = observed.appends.length;
  t.is(afterSmall, afterFirst + 3, 'one chunk, one commit, one index event');
  t.false((await store.putStream(Readable.from([Buffer.from(await store.get(small.ref))]))).created);
  t.is(observed.appends.length, afterSmall);

  // A longer stream is hashed only at its end: its chunks are appended, but no commit names them.
  const streamed = await store.putStream([bytes.subarray(0, 5), bytes.subarray(5)]);
  t.false(streamed.created);
  t.deepEqual(streamed.ref, first.ref);
  const late = observed.appends.slice(afterSmall);
  t.is(late.length, 4);
  t.true(late.every((append) => append.types.join() === StreamBlobEvent.chunk));
  const commits = (await eventsOf(observed.log, store.stream(first.ref.sha256))).map((event) => event.type);
  t.deepEqual(commits, [StreamBlobEvent.committed]);
  t.true((await store.get(first.ref)).equals(bytes));
});

test('stored bytes are isolated from the caller on both sides', async (t) => {
  const { store } = openStore(t);
  const bytes = Buffer.from('immutable parameters, longer than nothing');
  const { ref } = await store.put(bytes);
  bytes.fill(0);
  const got = await store.get(ref);
  t.is(got.toString(), 'immutable parameters, longer than nothing');
  got.fill(0);
  t.is((await store.get(ref)).toString(), 'immutable parameters, longer than nothing');
});

test('putStream re-chunks pieces of any size and matches put', async (t) => {
  const { store, observed } = openStore(t);
  const pieces = [
    randomBytes(3),
    randomBytes(2 * CHUNK + 500),
    randomBytes(0),
    randomBytes(CHUNK - 3),
    randomBytes(1),
    randomBytes(1234),
  ];
  const whole = Buffer.concat(pieces);

  const streamed = await store.putStream(Readable.from(pieces), { encoding: 'tensors/msgpack+lz4' });
  t.true(streamed.created);
  t.deepEqual(streamed.ref, { sha256: sha256(whole), bytes: whole.length, encoding: 'tensors/msgpack+lz4' });
  t.true((await store.get(streamed.ref)).equals(whole));
  const sizes = chunkAppends(observed.appends).map((append) => append.dataBytes);
  t.is(sizes.length, Math.ceil(whole.length / CHUNK));

  t.false((await store.putStream(pieces)).created);
  t.false((await store.put(whole)).created);
});

test('a blob of exactly a multiple of chunkBytes makes that many chunks, by put and by putStream', async (t) => {
  const { store, observed } = openStore(t);
  const bytes = randomBytes(3 * CHUNK);
  const { ref } = await store.put(bytes);
  t.is(chunkAppends(observed.appends).length, 3);
  t.true((await store.get(ref)).equals(bytes));

  const other = randomBytes(4 * CHUNK);
  const streamed = await store.putStream(
    (function* () {
      for (let offset = 0; offset < other.length; offset += CHUNK) yield other.subarray(offset, offset + CHUNK);
    })(),
  );
  t.true(streamed.created);
  t.is(chunkAppends(observed.appends).length, 3 + 4);
  t.true((await store.get(streamed.ref)).equals(other));
  const commit = (await eventsOf(observed.log, store.stream(streamed.ref.sha256)))[0]!.data as BlobCommittedData;
  t.is(commit.chunks, 4);
});

test('an empty blob is stored, read, listed and deleted like any other', async (t) => {
  const { store, observed } = openStore(t);
  const { ref, created } = await store.put(new Uint8Array(0));
  t.true(created);
  t.deepEqual(ref, { sha256: sha256(Buffer.alloc(0)), bytes: 0, encoding: 'raw' });
  t.is(chunkAppends(observed.appends).length, 0);
  t.true(await store.has(ref.sha256));
  t.is((await store.get(ref)).length, 0);
  t.false((await store.putStream([])).created);
  t.false((await store.putStream([new Uint8Array(0), new Uint8Array(0)])).created);
  t.deepEqual(await collect(store.list()), [ref.sha256]);
  t.deepEqual(await store.verify(), { ok: true, blobsChecked: 1, bytesChecked: 0, problems: [] });
  t.deepEqual(await store.delete(ref.sha256), { deleted: true });
  t.false(await store.has(ref.sha256));
});

test('every append is one chunk at most, under chunkBytes plus a small overhead', async (t) => {
  for (const chunkBytes of [CHUNK, DEFAULT_CHUNK_BYTES]) {
    const { store, observed } = openStore(t, { chunkBytes });
    const bytes = randomBytes(2 * chunkBytes + 345);
    await store.put(bytes);
    await store.putStream([randomBytes(7), randomBytes(3 * chunkBytes + 1)]);
    await store.delete(sha256(bytes));
    await store.put(bytes);

    t.true(observed.appends.length > 10);
    for (const append of observed.appends) {
      t.is(append.types.length, 1, `one event per append to ${append.stream}`);
      t.true(append.dataBytes <= chunkBytes + SMALL_OVERHEAD, `${append.dataBytes} bytes appended to ${append.stream}`);
    }
    const chunks = chunkAppends(observed.appends);
    t.is(chunks.length, 3 + 4 + 3);
    t.true(Math.max(...chunks.map((append) => append.dataBytes)) > chunkBytes, 'the sizes measured include the bytes');
  }
});

test('putStream appends each chunk as the source goes on, holding one chunk at most', async (t) => {
  const { store, observed } = openStore(t);
  const seen: number[] = [];
  async function* source() {
    for (let i = 0; i < 6; i++) {
      seen.push(chunkAppends(observed.appends).length);
      yield randomBytes(CHUNK);
    }
  }
  const { ref } = await store.putStream(source());
  // Piece i is asked for once piece i-1 fills the chunk; that chunk goes out when piece i arrives.
  t.deepEqual(seen, [0, 0, 1, 2, 3, 4]);
  t.is(chunkAppends(observed.appends).length, 6);
  t.is(ref.bytes, 6 * CHUNK);
});

test('concurrent puts of the same bytes create the blob exactly once', async (t) => {
  const { store } = openStore(t);
  const bytes = randomBytes(5 * CHUNK + 3);
  const results = await Promise.all([store.put(bytes), store.put(bytes), store.putStream([bytes]), store.put(bytes)]);
  t.is(results.filter((result) => result.created).length, 1);
  t.true((await store.get(sha256(bytes))).equals(bytes));
  t.deepEqual(await collect(store.list()), [sha256(bytes)]);
  t.deepEqual(await store.delete(sha256(bytes)), { deleted: true });
  t.false(await store.has(sha256(bytes)));
});

test('chunks no commit names are never read: has is false, get is BlobNotFoundError', async (t) => {
  const { store, observed } = openStore(t);
  const bytes = randomBytes(2 * CHUNK);
  const hash = sha256(bytes);
  // What a put that crashed before its commit leaves, in an upload stream and (hand-made) in the blob stream.
  const upload = randomUUID();
  for (const [index, stream] of [store.uploadStream(upload), store.stream(hash)].entries()) {
    const data: BlobChunkData = { upload, index, bytes: bytes.subarray(0, CHUNK) };
    await observed.log.append(stream, [{ type: StreamBlobEvent.chunk, data }]);
  }

  t.false(await store.has(hash));
  await t.throwsAsync(store.get(hash), { instanceOf: BlobNotFoundError });
  await t.throwsAsync(store.link(hash, path.join(root, randomUUID(), 'params.bin')), { instanceOf: BlobNotFoundError });
  t.deepEqual(await store.delete(hash), { deleted: false });
  t.deepEqual(await collect(store.list()), []);
  t.deepEqual(await store.verify(), { ok: true, blobsChecked: 0, bytesChecked: 0, problems: [] });

  t.true((await store.put(bytes)).created);
  t.true((await store.get(hash)).equals(bytes));
});

test('a source that fails leaves no blob', async (t) => {
  const { store, observed } = openStore(t);
  async function* failing() {
    yield randomBytes(3 * CHUNK);
    throw new Error('node disconnected');
  }
  await t.throwsAsync(store.putStream(failing()), { message: 'node disconnected' });
  t.is(chunkAppends(observed.appends).length, 2, 'the chunks already full were appended');
  t.false(observed.appends.some((append) => append.types.includes(StreamBlobEvent.committed)));
  t.deepEqual(await collect(store.list()), []);
  t.deepEqual(await store.verify(), { ok: true, blobsChecked: 0, bytesChecked: 0, problems: [] });
});

test('with a deleteStream hook, the upload of a failed putStream is removed', async (t) => {
  const observed = observedLog();
  const store = openStreamBlobStore({ log: observed.log, chunkBytes: CHUNK, deleteStream: observed.deleteStream });
  t.teardown(() => store.close());
  async function* failing() {
    yield randomBytes(2 * CHUNK);
    throw new Error('node disconnected');
  }
  await t.throwsAsync(store.putStream(failing()), { message: 'node disconnected' });
  const uploads = [...new Set(chunkAppends(observed.appends).map((append) => append.stream))];
  t.is(uploads.length, 1);
  t.deepEqual(observed.deleted, uploads);
});

/** Appends by hand a committed upload of `chunks` under the hash of `claimed`. */
async function commitByHand(store: StreamBlobStore, log: EventLog, claimed: Uint8Array, chunks: readonly Uint8Array[]) {
  const upload = randomUUID();
  for (const [index, bytes] of chunks.entries()) {
    const data: BlobChunkData = { upload, index, bytes };
    await log.append(store.uploadStream(upload), [{ type: StreamBlobEvent.chunk, data }]);
  }
  const commit: BlobCommittedData = { upload, sha256: sha256(claimed), bytes: claimed.length, chunks: chunks.length };
  await log.append(store.stream(commit.sha256), [{ type: StreamBlobEvent.committed, data: commit }]);
  await log.append(store.indexStream, [
    { type: StreamBlobEvent.indexed, data: { sha256: commit.sha256, bytes: commit.bytes } },
  ]);
  return { upload, stream: store.uploadStream(upload), sha256: commit.sha256 };
}

test(
  'a committed chunk whose bytes changed is CorruptBlobError ' + 'naming the upload stream, and verify reports it',
  async (t) => {
    const { store, observed } = openStore(t);
    const good = await store.put(randomBytes(2500));
    const bytes = randomBytes(2 * CHUNK);
    const damaged = Buffer.from(bytes);
    damaged[CHUNK + 10] = damaged[CHUNK + 10]! ^ 0xff;
    const bad = await commitByHand(store, observed.log, bytes, [damaged.subarray(0, CHUNK), damaged.subarray(CHUNK)]);

    t.true(await store.has(bad.sha256));
    const error = await t.throwsAsync(store.get(bad.sha256), { instanceOf: CorruptBlobError });
    t.is(error?.code, 'CORRUPT_BLOB');
    t.is(error?.sha256, bad.sha256);
    t.is(error?.actual, sha256(damaged));
    t.is(error?.file, bad.stream);
    t.regex(
      error?.message ?? '',
      new RegExp(`blob ${bad.sha256} is corrupt: ${bad.stream} hashes to ${sha256(damaged)}`),
    );

    const target = path.join(root, randomUUID(), 'params.bin');
    await t.throwsAsync(store.link(bad.sha256, target), { instanceOf: CorruptBlobError });
    t.deepEqual(await fs.readdir(path.dirname(target)), [], 'no target and no temp file are left');

    t.deepEqual(await store.verify(), {
      ok: false,
      blobsChecked: 2,
      bytesChecked: 2500 + 2 * CHUNK,
      problems: [{ kind: 'hash_mismatch', sha256: bad.sha256, actual: sha256(damaged), file: bad.stream }],
    });
    t.true((await store.get(good.ref)).equals(await store.get(good.ref.sha256)));
  },
);

test('a committed upload missing a chunk is corrupt for get and unreadable for verify', async (t) => {
  const { store, observed } = openStore(t);
  const bytes = randomBytes(2 * CHUNK);
  const upload = randomUUID();
  const data: BlobChunkData = { upload, index: 0, bytes: bytes.subarray(0, CHUNK) };
  await observed.log.append(store.uploadStream(upload), [{ type: StreamBlobEvent.chunk, data }]);
  const commit: BlobCommittedData = { upload, sha256: sha256(bytes), bytes: bytes.length, chunks: 2 };
  await observed.log.append(store.stream(commit.sha256), [{ type: StreamBlobEvent.committed, data: commit }]);

  const error = await t.throwsAsync(store.get(commit.sha256), { instanceOf: CorruptBlobError });
  t.is(error?.actual, sha256(bytes.subarray(0, CHUNK)));
  t.is(error?.file, store.uploadStream(upload));
  // Not in the index, yet verify finds the blob stream and checks it.
  t.deepEqual(await store.verify(), {
    ok: false,
    blobsChecked: 1,
    bytesChecked: CHUNK,
    problems: [
      {
        kind: 'unreadable',
        sha256: commit.sha256,
        file: store.uploadStream(upload),
        reason: 'found 1 of the 2 chunks committed',
      },
    ],
  });
});

test('a blob committed but not indexed (crash in between) exists, verifies, and the next put lists it', async (t) => {
  const { store, observed } = openStore(t);
  const bytes = randomBytes(CHUNK + 1);
  const upload = randomUUID();
  for (const [index, piece] of [bytes.subarray(0, CHUNK), bytes.subarray(CHUNK)].entries()) {
    const data: BlobChunkData = { upload, index, bytes: piece };
    await observed.log.append(store.uploadStream(upload), [{ type: StreamBlobEvent.chunk, data }]);
  }
  const commit: BlobCommittedData = { upload, sha256: sha256(bytes), bytes: bytes.length, chunks: 2 };
  await observed.log.append(store.stream(commit.sha256), [{ type: StreamBlobEvent.committed, data: commit }]);

  t.true(await store.has(commit.sha256));
  t.true((await store.get(commit.sha256)).equals(bytes));
  t.deepEqual(await collect(store.list()), []);
  t.deepEqual(await store.verify(), { ok: true, blobsChecked: 1, bytesChecked: bytes.length, problems: [] });

  t.false((await store.put(bytes)).created);
  t.deepEqual(await collect(store.list()), [commit.sha256]);
  t.false((await store.put(bytes)).created);
  t.is((await eventsOf(observed.log, store.indexStream)).length, 1, 'indexed once');
});

test('delete without a deleteStream hook appends a tombstone; a later put commits again', async (t) => {
  const { store, observed } = openStore(t);
  const bytes = randomBytes(2 * CHUNK + 5);
  const { ref } = await store.put(bytes);
  const kept = await store.put(randomBytes(10));

  t.deepEqual(await store.delete(ref.sha256), { deleted: true });
  const [committed, tombstone, ...rest] = await eventsOf(observed.log, store.stream(ref.sha256));
  t.is(committed?.type, StreamBlobEvent.committed);
  t.like(tombstone, { type: StreamBlobEvent.deleted, data: { sha256: ref.sha256 } });
  t.deepEqual(rest, []);
  t.false(await store.has(ref.sha256));
  await t.throwsAsync(store.get(ref), { instanceOf: BlobNotFoundError });
  t.deepEqual(await collect(store.list()), [kept.ref.sha256]);
  t.deepEqual(await store.verify(), { ok: true, blobsChecked: 1, bytesChecked: 10, problems: [] });
  t.deepEqual(await store.delete(ref.sha256), { deleted: false });

  const again = await store.put(bytes);
  t.true(again.created);
  t.true(await store.has(ref.sha256));
  t.true((await store.get(ref)).equals(bytes));
  t.deepEqual(await collect(store.list()), [kept.ref.sha256, ref.sha256].sort());
  const types = (await eventsOf(observed.log, store.stream(ref.sha256))).map((event) => event.type);
  t.deepEqual(types, [StreamBlobEvent.committed, StreamBlobEvent.deleted, StreamBlobEvent.committed]);
  const commits = (await eventsOf(observed.log, store.stream(ref.sha256))).filter(
    (event) => event.type === StreamBlobEvent.committed,
  );
  t.not(
    (commits[0]!.data as BlobCommittedData).upload,
    (commits[1]!.data as BlobCommittedData).upload,
    'the re-put is read from its own upload',
  );
  t.deepEqual(
    (await eventsOf(observed.log, store.indexStream)).map((event) => event.type),
    [StreamBlobEvent.indexed, StreamBlobEvent.indexed, StreamBlobEvent.removed, StreamBlobEvent.indexed],
  );
});

test(
  'delete with a deleteStream hook removes the blob ' + 'stream and its upload; a later put is visible again',
  async (t) => {
    const { store, observed } = openStore(t, {});
    const hooked = openStreamBlobStore({ log: observed.log, chunkBytes: CHUNK, deleteStream: observed.deleteStream });
    t.teardown(() => hooked.close());
    const bytes = randomBytes(3 * CHUNK);
    const { ref } = await hooked.put(bytes);
    const commit = (await eventsOf(observed.log, hooked.stream(ref.sha256)))[0]!.data as BlobCommittedData;

    t.deepEqual(await hooked.delete(ref.sha256), { deleted: true });
    t.deepEqual(observed.deleted, [hooked.stream(ref.sha256), hooked.uploadStream(commit.upload)]);
    t.false(
      observed.appends.some((append) => append.types.includes(StreamBlobEvent.deleted)),
      'no tombstone',
    );
    await t.throwsAsync(observed.log.readStream(hooked.uploadStream(commit.upload)), {
      instanceOf: StreamNotFoundError,
    });
    for (const view of [hooked, store]) {
      t.false(await view.has(ref.sha256));
      await t.throwsAsync(view.get(ref), { instanceOf: BlobNotFoundError });
      t.deepEqual(await collect(view.list()), []);
    }
    t.deepEqual(await hooked.delete(ref.sha256), { deleted: false });
    t.deepEqual(await hooked.verify(), { ok: true, blobsChecked: 0, bytesChecked: 0, problems: [] });

    t.true((await hooked.put(bytes)).created);
    t.true(await store.has(ref.sha256));
    t.true((await store.get(ref)).equals(bytes));
    t.deepEqual(await collect(hooked.list()), [ref.sha256]);
  },
);

test('list yields every stored hash in ascending order, and a second store on the same log sees them', async (t) => {
  const { store, observed } = openStore(t);
  const refs = await Promise.all(
    Array.from({ length: 20 }, (_, i) => store.put(Buffer.from(`blob ${i} `.repeat(i * 50)))),
  );
  const hashes = refs.map(({ ref }) => ref.sha256).sort();
  t.deepEqual(await collect(store.list()), hashes);

  const other = openStreamBlobStore({ log: observed.log, chunkBytes: CHUNK });
  t.teardown(() => other.close());
  t.deepEqual(await collect(other.list()), hashes);
  await store.delete(hashes[3]!);
  const added = await store.put(Buffer.from('one more'));
  t.deepEqual(await collect(other.list()), [...hashes.filter((_, i) => i !== 3), added.ref.sha256].sort());
  t.true((await other.get(added.ref)).equals(Buffer.from('one more')));
});

test('stores with other prefixes on one log do not see each other', async (t) => {
  const { store, observed } = openStore(t);
  const mine = openStreamBlobStore({ log: observed.log, prefix: 'mine.blob-', chunkBytes: CHUNK });
  t.teardown(() => mine.close());
  const { ref } = await mine.put(randomBytes(1500));
  t.is(mine.stream(ref.sha256), `mine.blob-${ref.sha256}`);
  t.false(await store.has(ref.sha256));
  t.deepEqual(await collect(store.list()), []);
  t.deepEqual(await store.verify(), { ok: true, blobsChecked: 0, bytesChecked: 0, problems: [] });
  t.deepEqual(await collect(mine.list()), [ref.sha256]);
});

test('link writes a durable copy, idempotently, and refuses other bytes', async (t) => {
  const { store } = openStore(t);
  const bytes = randomBytes(3 * CHUNK + 11);
  const { ref } = await store.put(bytes);
  const target = path.join(root, randomUUID(), 'Experiment_0000', 'breakpoint_0000', 'params.bin');

  t.deepEqual(await store.link(ref.sha256, target), { method: 'copy', created: true });
  t.true((await fs.readFile(target)).equals(bytes));
  t.deepEqual(await fs.readdir(path.dirname(target)), ['params.bin']);
  t.is((await fs.stat(target)).mode & 0o777, 0o444);
  t.deepEqual(await store.link(ref.sha256, target), { method: 'copy', created: false });

  const copy = path.join(path.dirname(target), 'copy.bin');
  await fs.writeFile(copy, bytes);
  t.deepEqual(await store.link(ref.sha256, copy, { sync: false }), { method: 'copy', created: false });

  const other = (await store.put(randomBytes(3 * CHUNK + 11))).ref;
  const error = await t.throwsAsync(store.link(other.sha256, target), { instanceOf: LinkTargetExistsError });
  t.is(error?.code, 'LINK_TARGET_EXISTS');
  t.is(error?.sha256, other.sha256);
  t.is(error?.target, target);
  t.true((await fs.readFile(target)).equals(bytes));

  const empty = (await store.put(new Uint8Array(0))).ref;
  const emptyTarget = path.join(path.dirname(target), 'empty.bin');
  t.deepEqual(await store.link(empty.sha256, emptyTarget), { method: 'copy', created: true });
  t.is((await fs.stat(emptyTarget)).size, 0);
  t.deepEqual((await fs.readdir(path.dirname(target))).sort(), ['copy.bin', 'empty.bin', 'params.bin']);
});

test('link of a missing blob is BlobNotFoundError and creates nothing', async (t) => {
  const { store } = openStore(t);
  const missing = sha256(Buffer.from('never stored'));
  const target = path.join(root, randomUUID(), 'params.bin');
  const error = await t.throwsAsync(store.link(missing, target), { instanceOf: BlobNotFoundError });
  t.is(error?.sha256, missing);
  await t.throwsAsync(fs.stat(path.dirname(target)), { code: 'ENOENT' });
});

test('malformed hashes, bytes, sources and options are InvalidArgumentError', async (t) => {
  const { store } = openStore(t);
  for (const bad of ['abc', 'A'.repeat(64), '../'.repeat(21) + 'a', 42]) {
    const error = await t.throwsAsync(store.get(bad as string), { instanceOf: InvalidArgumentError });
    t.regex(error?.rule ?? '', /64 lowercase hex digits/);
  }
  await t.throwsAsync(store.has('xyz'), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(store.delete('xyz'), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(store.link('xyz', path.join(root, 'x')), { instanceOf: InvalidArgumentError });
  t.throws(() => store.stream('xyz'), { instanceOf: InvalidArgumentError });
  t.throws(() => store.fileOf('xyz'), { instanceOf: InvalidArgumentError });
  t.throws(() => store.uploadStream('a/b'), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(store.put('not bytes' as unknown as Uint8Array), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(store.put(Buffer.from('x'), { encoding: '' }), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(store.putStream(['text' as unknown as Uint8Array]), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(store.putStream(42 as unknown as Uint8Array[]), { instanceOf: InvalidArgumentError });

  const log = getInMemoryEventLog();
  for (const chunkBytes of [0, -1, 1.5, MAX_CHUNK_BYTES + 1, Number.NaN]) {
    const error = t.throws(() => openStreamBlobStore({ log, chunkBytes }), { instanceOf: InvalidArgumentError });
    t.is(error?.argument, 'chunkBytes');
  }
  t.notThrows(() => openStreamBlobStore({ log, chunkBytes: MAX_CHUNK_BYTES }));
  for (const prefix of ['', '$blob-']) {
    t.throws(() => openStreamBlobStore({ log, prefix }), { instanceOf: InvalidArgumentError });
  }
  t.throws(() => openStreamBlobStore({ log: {} as EventLog }), { instanceOf: InvalidArgumentError });
  const badIds = openStreamBlobStore({ log, chunkBytes: CHUNK, newId: () => 'no/slashes' });
  await t.throwsAsync(badIds.put(randomBytes(10)), { instanceOf: InvalidArgumentError });
  t.false(await badIds.has(sha256(randomBytes(10))));
});

test('an append the log refuses is BlobWriteFailedError naming the stream, and stores nothing', async (t) => {
  const { store, observed } = openStore(t, { newId: () => 'same-upload-id' });
  await store.put(randomBytes(CHUNK + 1));
  const bytes = randomBytes(CHUNK + 2);
  const error = await t.throwsAsync(store.put(bytes), { instanceOf: BlobWriteFailedError });
  t.is(error?.file, store.uploadStream('same-upload-id'));
  t.is((error?.cause as { code?: string }).code, 'WRONG_EXPECTED_REVISION');
  t.false(await store.has(sha256(bytes)));
  t.is(observed.appends.filter((append) => append.types.includes(StreamBlobEvent.committed)).length, 1);
});

test(
  'close waits for a put in flight, then refuses new ' + 'calls; it closes the log only when the store owns it',
  async (t) => {
    const log = getInMemoryEventLog();
    const store = openStreamBlobStore({ log, chunkBytes: CHUNK });
    const bytes = randomBytes(20 * CHUNK + 1);
    const putting = store.put(bytes);
    await store.close();
    const { ref, created } = await putting;
    t.true(created);
    const error = await t.throwsAsync(store.get(ref), { instanceOf: ClosedError });
    t.is(error?.code, 'CLOSED');
    await t.throwsAsync(store.put(Buffer.from('y')), { instanceOf: ClosedError });
    await t.throwsAsync(store.verify(), { instanceOf: ClosedError });
    t.throws(() => store.list(), { instanceOf: ClosedError });

    const reopened = openStreamBlobStore({ log, ownsLog: true, chunkBytes: CHUNK });
    t.true(
      (await reopened.get(ref)).equals(bytes),
      'the log stayed open, and a new store reads what the closed one wrote',
    );
    await reopened.close();
    await t.throwsAsync(log.readAll(), { instanceOf: ClosedError });
    await reopened.close();
  },
);
