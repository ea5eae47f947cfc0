/** `recordRound` refuses a metric name TensorBoard and `audit metric` cannot tell apart; nothing is recorded. */
import test from 'ava';
import { InvalidMetricNameError, openRoundLog } from '../../src/index.ts';
import { tensors } from '../support/rounds.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

test('recordRound refuses an empty metric name or one with a newline, naming it and the round', async (t) => {
  const rl = await openRoundLog({ root: tempDir() });
  try {
    const handle = await rl.createExperiment({ roundLimit: 5 });
    for (const metrics of [{ '': 2, loss: 1 }, { 'x\ny': 4 }] as Array<Record<string, number>>) {
      const error = await t.throwsAsync(handle.recordRound({ params: tensors(1), metrics }), {
        instanceOf: InvalidMetricNameError,
      });
      t.is(error?.round, 0);
      t.is(error?.experiment, handle.state.folder);
    }
    t.is(handle.state.rounds.length, 0, 'nothing recorded');
    await handle.recordRound({ params: tensors(1), metrics: { loss: 1e300 } });
    t.is(handle.state.rounds.length, 1);
  } finally {
    await rl.close();
  }
});
