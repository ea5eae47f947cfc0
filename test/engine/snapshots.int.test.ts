/**
 * Experiment snapshots: opening replays only the events after one, and a snapshot that does not check out is
 * ignored.
 */
import test from 'ava';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openRoundLog } from '../../src/projections/index.ts';
import { readSnapshot, snapshotFile, writeSnapshot } from '../../src/engine/snapshots.ts';
import { replay } from '../../src/model/state.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const params = (i: number) => ({
  w: { dtype: 'float32' as const, shape: [3], data: new Float32Array([i, i + 1, i + 2]) },
});

async function fullReplay(root: string, stream: string) {
  const rl = await openRoundLog({ root });
  try {
    return replay(await rl.withReader(async (log) => (await log.readStream(stream)).events));
  } finally {
    await rl.close();
  }
}

test('a snapshot is written every 100 events; opening from it gives the state a full replay gives', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const experiment = await rl.createExperiment({ config: { name: 'real' } });
  for (let i = 0; i < 130; i++) await experiment.recordRound({ params: params(i), metrics: { loss: 1 / (i + 1) } });
  const snapshot = await readSnapshot(root, experiment.id, experiment.stream);
  t.truthy(snapshot, 'written once the history passed 100 events');
  t.true(snapshot!.revision >= 99n && snapshot!.revision < 130n);
  const reopened = await rl.openExperiment(experiment.id);
  t.deepEqual(reopened.state, await fullReplay(root, experiment.stream));
  t.is(reopened.roundCurrent(), 130);
  t.deepEqual((await reopened.loadRound(129)).params, params(129));
  await rl.close();
});

test('opening uses the snapshot (a doctored one shows through) only while it checks out against the log', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const experiment = await rl.createExperiment({ config: { name: 'real' } });
  for (let i = 0; i < 3; i++) await experiment.recordRound({ params: params(i) });
  const { revision, position } = experiment.state;
  const doctored = { ...experiment.state, created: { ...experiment.created, config: { name: 'from the snapshot' } } };
  await writeSnapshot(root, experiment.id, { stream: experiment.stream, revision, position, state: doctored });
  await experiment.recordRound({ params: params(3) });
  const fromSnapshot = await rl.openExperiment(experiment.id);
  t.deepEqual(fromSnapshot.created.config, { name: 'from the snapshot' }, 'the snapshot was used');
  t.is(fromSnapshot.roundCurrent(), 4, 'and the events after it were replayed');

  // A snapshot that names another log position for its revision is not of this history: ignored.
  await writeSnapshot(root, experiment.id, {
    stream: experiment.stream,
    revision,
    position: position + 1n,
    state: doctored,
  });
  t.deepEqual((await rl.openExperiment(experiment.id)).created.config, { name: 'real' });

  // A damaged snapshot file is ignored too.
  await writeSnapshot(root, experiment.id, { stream: experiment.stream, revision, position, state: doctored });
  const file = snapshotFile(root, experiment.id);
  const bytes = readFileSync(file);
  bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0xff;
  writeFileSync(file, bytes);
  const reopened = await rl.openExperiment(experiment.id);
  t.deepEqual(reopened.created.config, { name: 'real' });
  t.deepEqual(reopened.state, await fullReplay(root, experiment.stream));
  await rl.close();
});

test('a snapshot of another shape of the state (another release) is ignored', async (t) => {
  const { Packr } = await import('msgpackr');
  const { crc32c } = await import('../../src/log/file/crc32c.ts');
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const experiment = await rl.createExperiment({ config: { name: 'real' } });
  await experiment.recordRound({ params: params(0) });
  const { revision, position } = experiment.state;
  // What an older release would have written: its own state shape, here without `forks`.
  const { forks: _forks, ...older } = {
    ...experiment.state,
    created: { ...experiment.created, config: { name: 'old shape' } },
  };
  const body = new Packr({ useRecords: true, moreTypes: true, int64AsType: 'bigint' }).pack({
    v: 2,
    shape: 1,
    stream: experiment.stream,
    revision,
    position,
    state: older,
  });
  const frame = Buffer.alloc(8 + body.length);
  frame.writeUInt32LE(body.length, 0);
  frame.writeUInt32LE(crc32c(body), 4);
  body.copy(frame, 8);
  mkdirSync(path.dirname(snapshotFile(root, experiment.id)), { recursive: true });
  writeFileSync(snapshotFile(root, experiment.id), frame);
  const reopened = await rl.openExperiment(experiment.id);
  t.deepEqual(reopened.created.config, { name: 'real' });
  t.deepEqual(reopened.state.forks, []);
  await rl.close();
});
