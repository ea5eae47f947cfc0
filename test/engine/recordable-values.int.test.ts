/**
 * What a round (or an experiment's creation, or a settings change) accepts is exactly what the log
 * and every projection can write back: anything else is refused before the commit, with a typed
 * error naming the field path, and nothing is appended.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { TensorSet } from '../../src/codec/tensors.ts';
import { decideChangeSettings } from '../../src/model/decide/index.ts';
import { UnrecordableValueError } from '../../src/model/errors.ts';
import { openRoundLog, verifyRoot } from '../../src/projections/index.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const params = (): TensorSet => ({ w: { dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) } });

test('a bigint in state is refused before the commit, naming state.optimizer.step; later rounds verify', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const run = await rl.createExperiment({ seed: 1, saveBreakpoints: true });
  const error = await t.throwsAsync(
    run.recordRound({ params: params(), state: { optimizer: { step: 1n } }, metrics: { loss: 1 } }),
    { instanceOf: UnrecordableValueError },
  );
  t.is(error?.code, 'UNRECORDABLE_VALUE');
  t.is(error?.path, 'state.optimizer.step');
  t.regex(error!.message, /state\.optimizer\.step is a bigint/);
  t.is(run.roundCurrent(), 0);
  const reopened = await rl.openExperiment(run.id);
  t.is(reopened.roundCurrent(), 0, 'nothing was committed');
  t.is(reopened.state.revision, run.state.revision);

  await run.recordRound({ params: params(), state: { optimizer: { step: '1' } }, metrics: { loss: 1 } });
  t.true(existsSync(path.join(root, 'experiments', run.created.folder, 'breakpoint_0000', 'breakpoint.json')));
  await rl.close();
  const report = await verifyRoot({ root });
  t.true(report.ok, JSON.stringify(report));
});

test('a NaN metric and a function in state are refused before the commit, naming the field', async (t) => {
  const rl = await openRoundLog({ root: tempDir() });
  const run = await rl.createExperiment({ seed: 1, saveBreakpoints: true });
  const nan = await t.throwsAsync(run.recordRound({ params: params(), metrics: { loss: Number.NaN } }), {
    instanceOf: UnrecordableValueError,
  });
  t.is(nan?.path, 'metrics.loss');
  const fn = await t.throwsAsync(run.recordRound({ params: params(), state: { schedule: [1, () => 2] } }), {
    instanceOf: UnrecordableValueError,
  });
  t.is(fn?.path, 'state.schedule[1]');
  t.is((await rl.openExperiment(run.id)).roundCurrent(), 0);
  await rl.close();
});

test('config of a new experiment and training args of a settings change are checked the same way', async (t) => {
  const rl = await openRoundLog({ root: tempDir() });
  const created = await t.throwsAsync(rl.createExperiment({ seed: 1, config: { started: new Date(0) } }), {
    instanceOf: UnrecordableValueError,
  });
  t.is(created?.path, 'config.started');
  t.deepEqual(await rl.listExperiments(), [], 'no experiment was registered');
  const run = await rl.createExperiment({ seed: 1 });
  const changed = t.throws(
    () => decideChangeSettings(run.state, { trainingArgs: { ids: new Set([1]) } }, { actor: rl.actor }),
    { instanceOf: UnrecordableValueError },
  );
  t.is(changed?.path, 'trainingArgs.ids');
  await rl.close();
});
