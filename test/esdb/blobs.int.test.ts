/**
 * Parameters kept in EventStoreDB itself (`--blobs esdb`): the chunked-stream blob store on the
 * EventStoreDB adapter, through the real client, against a server that refuses appends over
 * 1 MiB. Blobs several times that size are stored, read back hash-checked, linked, deleted, and
 * a whole experiment runs and resumes with no blob folder at all.
 */
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { BlobNotFoundError } from '../../src/blobs/errors.ts';
import { openStreamBlobStore } from '../../src/blobs/streams.ts';
import { gc } from '../../src/projections/index.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { BLOB_STREAM_PREFIX } from '../../src/engine/store.ts';
import { AppendTooLargeError } from '../../src/log/errors.ts';
import { openEsdbEventLog } from '../../src/log/esdb/index.ts';
import { blobStoreConformance, damageStreamBlob } from '../../src/testing/index.ts';
import { freshNamespace, inProcessServer, type EsdbTarget } from '../support/esdb.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

let server: EsdbTarget;
test.before(async () => {
  server = await inProcessServer();
});
test.after.always(async () => {
  await server?.close();
  removeTempDirs();
});

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

// The contract every blob store keeps, here through the real client: a damaged upload is replaced on put.
blobStoreConformance(test, {
  name: 'streams (EventStoreDB)',
  open: async () => {
    const log = await openEsdbEventLog({ connectionString: server.connectionString, namespace: freshNamespace() });
    return openStreamBlobStore({
      log,
      ownsLog: true,
      prefix: BLOB_STREAM_PREFIX,
      chunkBytes: 1000,
      deleteStream: (s) => log.deleteStream(s),
    });
  },
  damage: damageStreamBlob,
});

test('an append over the server limit is APPEND_TOO_LARGE and writes nothing', async (t) => {
  const log = await openEsdbEventLog({ connectionString: server.connectionString, namespace: freshNamespace() });
  try {
    const error = await t.throwsAsync(() => log.append('big', [{ type: 'Big', data: randomBytes(2 * 1024 * 1024) }]), {
      instanceOf: AppendTooLargeError,
    });
    t.is(error?.code, 'APPEND_TOO_LARGE');
    t.is(error?.stream, 'big');
    t.true(error!.bytes > 2 * 1024 * 1024);
    t.is((await log.readAll()).events.length, 0);
  } finally {
    await log.close();
  }
});

test('blobs of several MiB in chunk streams: put, get hash-checked, link, list, delete, put again', async (t) => {
  const log = await openEsdbEventLog({ connectionString: server.connectionString, namespace: freshNamespace() });
  const store = openStreamBlobStore({
    log,
    ownsLog: true,
    prefix: BLOB_STREAM_PREFIX,
    deleteStream: (s) => log.deleteStream(s),
  });
  try {
    const big = randomBytes(3 * 1024 * 1024 + 17);
    const { ref, created } = await store.put(big, { encoding: 'raw' });
    t.true(created);
    t.is(ref.sha256, sha256(big));
    t.true((await store.get(ref)).equals(big));
    t.false((await store.put(big)).created, 'the same bytes again write nothing');

    const target = path.join(tempDir(), 'copy', 'params.bin');
    t.deepEqual(await store.link(ref.sha256, target), { method: 'copy', created: true });
    t.is(sha256(readFileSync(target)), ref.sha256);

    const streamed = randomBytes(1_500_000);
    const second = await store.putStream([streamed.subarray(0, 1000), streamed.subarray(1000)]);
    const listed: string[] = [];
    for await (const hash of store.list()) listed.push(hash);
    t.deepEqual(listed, [ref.sha256, second.ref.sha256].sort());
    t.true((await store.verify()).ok);

    t.deepEqual(await store.delete(ref.sha256), { deleted: true });
    t.false(await store.has(ref.sha256));
    await t.throwsAsync(() => store.get(ref), { instanceOf: BlobNotFoundError });
    t.true((await store.put(big)).created, 'a deleted blob can be stored again');
    t.true((await store.get(ref)).equals(big));
  } finally {
    await store.close();
  }
});

test(
  'an experiment with --blobs esdb: no blob folder ' + 'anywhere, rounds load their parameters from the store',
  async (t) => {
    const root = tempDir();
    const options = { root, store: server.connectionString, namespace: freshNamespace(), blobs: 'esdb' };
    const rl = await openRoundLog(options);
    const weights = new Float32Array(400_000).map((_, i) => Math.sin(i));
    try {
      const handle = await rl.createExperiment({ saveBreakpoints: true });
      await handle.recordRound({
        params: { w: { dtype: 'float32', shape: [weights.length], data: weights } },
        metrics: { loss: 1 },
      });
    } finally {
      await rl.close();
    }
    t.false(existsSync(path.join(root, 'blobs')));
    const again = await openRoundLog(options);
    try {
      const [summary] = await again.listExperiments();
      const handle = await again.openExperiment(summary!.experimentId);
      const round = await handle.loadRound(0);
      t.deepEqual(round.params.w!.data, weights);
      t.true(existsSync(path.join(root, 'experiments', summary!.folder, 'breakpoint_0000')));
    } finally {
      await again.close();
    }
  },
);

test(
  'gc with --blobs esdb deletes the parameter blobs of pruned ' +
    'rounds and reports the lengths their references record',
  async (t) => {
    const options = { root: tempDir(), store: server.connectionString, namespace: freshNamespace(), blobs: 'esdb' };
    const rl = await openRoundLog(options);
    const refs: Array<{ sha256: string; bytes: number }> = [];
    try {
      const handle = await rl.createExperiment({});
      for (let round = 0; round < 3; round++) {
        const weights = new Float32Array(1000 + round).fill(round + 1);
        const record = await handle.recordRound({
          params: { w: { dtype: 'float32', shape: [weights.length], data: weights } },
        });
        refs.push(record.params);
      }
    } finally {
      await rl.close();
    }
    const report = await gc({ ...options, retention: { keepLast: 1, keepEvery: null } });
    t.deepEqual(
      [...report.blobsDeleted].sort((a, b) => a.sha256.localeCompare(b.sha256)),
      refs
        .slice(0, 2)
        .map((r) => ({ sha256: r.sha256, bytes: r.bytes }))
        .sort((a, b) => a.sha256.localeCompare(b.sha256)),
    );
    const again = await openRoundLog(options);
    try {
      t.false(await again.blobs.has(refs[0]!.sha256));
      t.false(await again.blobs.has(refs[1]!.sha256));
      t.true(await again.blobs.has(refs[2]!.sha256));
    } finally {
      await again.close();
    }
  },
);
