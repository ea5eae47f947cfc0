/**
 * `recordRound`, the entry the library, the CLI and the server share, refuses a round past the
 * experiment's round limit before it stores the parameters; raising the limit lets it continue.
 */
import test from 'ava';
import type { TensorSet } from '../../src/codec/tensors.ts';
import { decideChangeSettings } from '../../src/model/decide/index.ts';
import { RoundLimitReachedError } from '../../src/model/errors.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const params = (x: number): TensorSet => ({ w: { dtype: 'float32', shape: [1], data: new Float32Array([x]) } });

test('a round limit of 3 records 3 rounds and refuses the fourth, until the limit is raised', async (t) => {
  const rl = await openRoundLog({ root: tempDir() });
  try {
    const run = await rl.createExperiment({ seed: 1, roundLimit: 3 });
    for (let round = 0; round < 3; round++) await run.recordRound({ params: params(round), metrics: { loss: 1 } });
    const error = await t.throwsAsync(run.recordRound({ params: params(99), metrics: { loss: 1 } }), {
      instanceOf: RoundLimitReachedError,
    });
    t.is(error?.code, 'ROUND_LIMIT_REACHED');
    t.like(error, { experiment: run.state.folder, round: 3, roundLimit: 3 });
    t.is(run.roundCurrent(), 3);
    const reopened = await rl.openExperiment(run.state.folder);
    t.is(reopened.roundCurrent(), 3);

    await run.append(decideChangeSettings(run.state, { roundLimit: 4 }, { actor: rl.actor }));
    await run.recordRound({ params: params(3), metrics: { loss: 1 } });
    t.is(run.roundCurrent(), 4);
  } finally {
    await rl.close();
  }
});
