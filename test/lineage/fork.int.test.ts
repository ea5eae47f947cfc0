/** Forks through the library: lineage written with the child's creation, the parent's retention inherited. */
import test from 'ava';
import { forkExperiment } from '../../src/projections/index.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const params = (i: number) => ({ w: { dtype: 'float32' as const, shape: [2], data: new Float32Array([i, -i]) } });

test(
  'a fork is created with its ForkedFrom in one append, and ' +
    'keeps the retention policy of the round it starts from',
  async (t) => {
    const root = tempDir();
    const rl = await openRoundLog({ root });
    const parent = await rl.createExperiment({ retention: { keepLast: 3, keepEvery: null }, saveBreakpoints: true });
    for (let i = 0; i < 3; i++) await parent.recordRound({ params: params(i) });
    const fork = await forkExperiment(rl, parent.id, { round: 1 });
    const child = await rl.openExperiment(fork.childId);
    t.deepEqual(child.state.settings.retention, { keepLast: 3, keepEvery: null });
    t.is(child.roundCurrent(), 2);
    t.deepEqual((await child.loadRound(1)).params, params(1));
    const events = await rl.withReader(async (log) => (await log.readStream(child.stream)).events);
    t.deepEqual(
      events.map((e) => e.type),
      ['ExperimentCreated', 'SettingsChanged', 'ForkedFrom'],
    );
    // One append: consecutive log positions, one timestamp.
    t.deepEqual(
      events.map((e) => e.position - events[0]!.position),
      [0n, 1n, 2n],
    );
    t.true(events.every((e) => e.timestamp.getTime() === events[0]!.timestamp.getTime()));
    t.is(child.state.forkedFrom!.parentId, parent.id);
    await rl.close();
  },
);

test('a fork taken from another process does not stop the run of its parent: the next round commits', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const parent = await rl.createExperiment({ saveBreakpoints: true });
  for (let i = 0; i < 2; i++) await parent.recordRound({ params: params(i) });
  const other = await openRoundLog({ root });
  const fork = await forkExperiment(other, parent.id, { round: 0 });
  await other.close();
  // The parent's handle last saw the stream before the Forked: it folds it and goes on.
  await parent.recordRound({ params: params(2) });
  t.is(parent.roundCurrent(), 3);
  t.deepEqual(
    parent.state.forks.map((f) => f.childId),
    [fork.childId],
  );
  const events = await rl.withReader(async (log) => (await log.readStream(parent.stream)).events);
  t.deepEqual(
    events.slice(-2).map((e) => e.type),
    ['Forked', 'RoundCompleted'],
  );
  await rl.close();
});
