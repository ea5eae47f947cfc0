/** The low-level round log API on a real root: experiments, rounds, state at any round, concurrency. */
import test from 'ava';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import type { TensorSet } from '../../src/codec/tensors.ts';
import {
  ConcurrentModificationError,
  ExperimentNotFoundError,
  FolderNameReservedError,
  RoundNotFoundError,
} from '../../src/model/errors.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

function params(round: number): TensorSet {
  const weights = new Float32Array(1000);
  for (let i = 0; i < weights.length; i++) weights[i] = Math.sin(i * (round + 1)) / (round + 1);
  return {
    weights: { dtype: 'float32', shape: [10, 100], data: weights },
    bias: { dtype: 'float64', shape: [1], data: new Float64Array([round * 0.5]) },
  };
}

test(
  'a training loop records rounds and, in a new round log, ' +
    'gets back the state at the last or any round bit for bit',
  async (t) => {
    const root = tempDir();
    const rl = await openRoundLog({ root });
    const experiment = await rl.createExperiment({ seed: 7, roundLimit: 5, config: { lr: 0.1 } });
    t.is(experiment.created.folder, 'Experiment_0000');
    t.is(experiment.roundCurrent(), 0);
    for (let round = 0; round < 3; round++) {
      const record = await experiment.recordRound({
        params: params(round),
        state: { optimizer: { step: round + 1 } },
        metrics: { loss: 1 / (round + 1) },
      });
      t.is(record.round, round);
    }
    t.is(experiment.roundCurrent(), 3);
    await rl.close();

    const again = await openRoundLog({ root });
    const reopened = await again.openExperiment('Experiment_0000');
    t.is(reopened.roundCurrent(), 3);
    t.is(reopened.id, experiment.id);
    t.deepEqual(reopened.created.config, { lr: 0.1 });
    const last = await reopened.loadRound();
    t.is(last.round, 2);
    t.deepEqual(last.params, params(2));
    t.deepEqual(last.state, { optimizer: { step: 3 } });
    t.deepEqual(last.metrics, { loss: 1 / 3 });
    t.is(last.settings.roundLimit, 5);
    const first = await reopened.loadRound(0);
    t.deepEqual(first.params, params(0));
    await t.throwsAsync(reopened.loadRound(3), { instanceOf: RoundNotFoundError });
    // Opened by id and by stream name too.
    t.is((await again.openExperiment(experiment.id)).roundCurrent(), 3);
    t.is((await again.openExperiment(experiment.stream)).roundCurrent(), 3);
    await t.throwsAsync(again.openExperiment('Experiment_0042'), { instanceOf: ExperimentNotFoundError });
    await again.close();
  },
);

test(
  'experiment numbers come from the log: deleting the ' + 'experiments folder never makes two experiments share one',
  async (t) => {
    const root = tempDir();
    const rl = await openRoundLog({ root });
    const a = await rl.createExperiment();
    const b = await rl.createExperiment();
    rmSync(path.join(root, 'experiments'), { recursive: true, force: true });
    const c = await rl.createExperiment();
    t.deepEqual(
      [a, b, c].map((e) => [e.created.number, e.created.folder]),
      [
        [0, 'Experiment_0000'],
        [1, 'Experiment_0001'],
        [2, 'Experiment_0002'],
      ],
    );
    t.deepEqual(
      (await rl.listExperiments()).map((e) => e.folder),
      ['Experiment_0000', 'Experiment_0001', 'Experiment_0002'],
    );
    await rl.close();
  },
);

test(
  'two handles on one experiment: the second to record a round ' +
    'gets ConcurrentModificationError, and nothing interleaves',
  async (t) => {
    const root = tempDir();
    const rl = await openRoundLog({ root });
    const created = await rl.createExperiment();
    const first = await rl.openExperiment(created.id);
    const second = await rl.openExperiment(created.id);
    await first.recordRound({ params: params(0) });
    const error = await t.throwsAsync(second.recordRound({ params: params(9) }), {
      instanceOf: ConcurrentModificationError,
    });
    t.is(error!.code, 'CONCURRENT_MODIFICATION');
    const fresh = await rl.openExperiment(created.id);
    t.is(fresh.roundCurrent(), 1);
    t.deepEqual((await fresh.loadRound(0)).params, params(0));
    await rl.close();
  },
);

test(
  'a round recorded with a breakpoint gets its folder, with ' +
    'the parameters hard-linked and the state in breakpoint.json',
  async (t) => {
    const root = tempDir();
    const rl = await openRoundLog({ root });
    const experiment = await rl.createExperiment({ saveBreakpoints: true });
    await experiment.recordRound({ params: params(0), state: { step: 1 } });
    await experiment.recordRound({ params: params(1), state: { step: 2 }, breakpoint: false });
    const dir = path.join(root, 'experiments', 'Experiment_0000');
    t.deepEqual(readdirSync(dir), ['breakpoint_0000']);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'breakpoint_0000', 'breakpoint.json'), 'utf8'));
    t.deepEqual(manifest.state, { step: 1 });
    t.is(statSync(path.join(dir, 'breakpoint_0000', 'params.safetensors')).nlink, 2);
    await rl.close();
  },
);

test('an experiment opens by the path of its folder or of one of its breakpoints, even after a rename', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const experiment = await rl.createExperiment({ saveBreakpoints: true });
  await experiment.recordRound({ params: params(0) });
  const experiments = path.join(root, 'experiments');
  renameSync(path.join(experiments, 'Experiment_0000'), path.join(experiments, 'renamed'));
  t.is((await rl.openExperiment(path.join(experiments, 'renamed'))).id, experiment.id);
  t.is((await rl.openExperiment(path.join(experiments, 'renamed', 'breakpoint_0000'))).id, experiment.id);
  await t.throwsAsync(rl.openExperiment(path.join(root, 'nowhere', 'Experiment_0042')), {
    instanceOf: ExperimentNotFoundError,
  });
  await rl.close();
});

test('createExperiment refuses a chosen Experiment_<digits> folder, storing nothing', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  try {
    await rl.createExperiment({ seed: 1 });
    for (const folder of ['Experiment_0001', 'Experiment_0005', 'Experiment_5']) {
      const error = await t.throwsAsync(rl.createExperiment({ folder, initialParams: params(0) }), {
        instanceOf: FolderNameReservedError,
      });
      t.like(error, { code: 'FOLDER_NAME_RESERVED', option: 'folder', folder });
    }
    t.is((await rl.listExperiments()).length, 1);
    // No parameters stored: the blob folder, made when a blob is first written, is not there.
    t.false(existsSync(path.join(root, 'blobs')));
    const next = await rl.createExperiment({ seed: 2, folder: 'mine' });
    t.is(next.created.folder, 'mine');
  } finally {
    await rl.close();
  }
});
