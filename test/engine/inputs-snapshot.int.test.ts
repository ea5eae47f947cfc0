/**
 * Every API that takes the caller's data and awaits takes its copy (or encodes it) before its first
 * await: a training loop that changes its weights, optimizer state or metrics right after the call,
 * without waiting for the promise, records the values it passed, never the changed ones.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { openFileBlobStore } from '../../src/blobs/file.ts';
import { getInMemoryBlobStore } from '../../src/blobs/memory.ts';
import { openStreamBlobStore } from '../../src/blobs/streams.ts';
import { getInMemoryEventLog } from '../../src/log/memory.ts';
import type { TensorSet } from '../../src/codec/tensors.ts';
import type { ExperimentEvent } from '../../src/model/events.ts';
import { decideChangeSettings } from '../../src/model/decide/index.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

function weights(n: number, value: number): TensorSet {
  return {
    w: { dtype: 'float32', shape: [n], data: new Float32Array(n).fill(value) },
    b: { dtype: 'float64', shape: [1], data: new Float64Array([value]) },
  };
}

test('recordRound records the parameters, state and metrics as they were when it was called', async (t) => {
  const rl = await openRoundLog({ root: tempDir() });
  const run = await rl.createExperiment({ seed: 1, saveBreakpoints: true });
  // Large enough that the parameters are written in several pieces, incompressible-ish data.
  const params = weights(300_000, 0.5);
  (params.w!.data as Float32Array).forEach((_, i, a) => (a[i] = Math.sin(i)));
  const expected = structuredClone(params);
  const state = { optimizer: { step: 1, momentum: [0.1, 0.2] } };
  const metrics = { loss: 0.25 };
  const nodes = [{ node: 'a', sampleSize: 10, metrics: { loss: 0.25 } }];
  const pending = run.recordRound({ params, state, metrics, nodes });
  // The next round of the loop starts at once: the caller's objects change before the promise resolves.
  (params.w!.data as Float32Array).fill(9);
  (params.b!.data as Float64Array)[0] = 9;
  state.optimizer.step = 2;
  state.optimizer.momentum[0] = 9;
  metrics.loss = 9;
  nodes[0]!.sampleSize = 9;
  nodes[0]!.metrics.loss = 9;
  await pending;
  const loaded = await run.loadRound(0);
  t.deepEqual(loaded.params, expected);
  t.deepEqual(loaded.state, { optimizer: { step: 1, momentum: [0.1, 0.2] } });
  t.deepEqual(loaded.metrics, { loss: 0.25 });
  t.deepEqual(loaded.record.nodes, [{ node: 'a', sampleSize: 10, metrics: { loss: 0.25 } }]);
  // The stored bytes are the blob's hash: nothing was hashed from one version and written from another.
  const report = await rl.blobs.verify();
  t.deepEqual(report.problems, []);
  await rl.close();
});

test('createExperiment records the initial parameters and config as they were when it was called', async (t) => {
  const rl = await openRoundLog({ root: tempDir() });
  const initialParams = weights(1000, 0.5);
  const config = { lr: 0.1, layers: [4, 2] };
  const pending = rl.createExperiment({ seed: 1, initialParams, config });
  (initialParams.w!.data as Float32Array).fill(9);
  config.lr = 9;
  config.layers.push(9);
  const run = await pending;
  t.deepEqual(run.created.config, { lr: 0.1, layers: [4, 2] });
  t.deepEqual(await run.tensors(run.created.initialParams!), weights(1000, 0.5));
  const reopened = await rl.openExperiment(run.id);
  t.deepEqual(reopened.created.config, { lr: 0.1, layers: [4, 2] });
  await rl.close();
});

test('ExperimentHandle.append records the events as they were when it was called', async (t) => {
  const rl = await openRoundLog({ root: tempDir() });
  const run = await rl.createExperiment({ seed: 1 });
  const trainingArgs = { epochs: 2 };
  const events = decideChangeSettings(run.state, { trainingArgs }, { actor: rl.actor }) as ExperimentEvent[];
  const pending = run.append(events);
  trainingArgs.epochs = 9;
  (events[0]!.data as unknown as { trainingArgs: { epochs: number } }).trainingArgs.epochs = 9;
  await pending;
  t.deepEqual(run.state.settings.trainingArgs, { epochs: 2 });
  const reopened = await rl.openExperiment(run.id);
  t.deepEqual(reopened.state.settings.trainingArgs, { epochs: 2 });
  await rl.close();
});

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

for (const [name, open] of [
  ['file', (dir: string) => openFileBlobStore({ dir: path.join(dir, 'blobs') })],
  ['memory', async () => getInMemoryBlobStore()],
  ['stream', async () => openStreamBlobStore({ log: getInMemoryEventLog(), chunkBytes: 256 * 1024 })],
] as const) {
  test(`the ${name} blob store stores the bytes put and streamed as they were when called`, async (t) => {
    const blobs = await open(tempDir());
    const small = Buffer.from('a small blob, hashed first');
    const large = Buffer.alloc(9 * 1024 * 1024, 1); // above the size the file store hashes before writing
    const chunks = [Buffer.alloc(5000, 2), Buffer.alloc(5000, 3)];
    const expected = [sha256(small), sha256(large), sha256(Buffer.concat(chunks))];
    const puts = [blobs.put(small), blobs.put(large), blobs.putStream(chunks)];
    small.fill(7);
    large.fill(7);
    for (const chunk of chunks) chunk.fill(7);
    const refs = (await Promise.all(puts)).map((r) => r.ref);
    t.deepEqual(
      refs.map((r) => r.sha256),
      expected,
    );
    for (const ref of refs) t.is(sha256(await blobs.get(ref)), ref.sha256);
    await blobs.close();
  });
}
