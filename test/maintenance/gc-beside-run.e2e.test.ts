/**
 * `gc` in one process beside an experiment running in another, on the file log: the experiment
 * finishes with all its rounds, and gc prunes while it runs. gc is made to run while each round
 * trains (its `RoundStarted` durable, nothing else of it), so every one of the experiment's commits
 * meets a `RoundsPruned` appended to its stream since it last wrote.
 */
import test from 'ava';
import path from 'node:path';
import { openFileEventLog } from '../../src/log/file/index.ts';
import type { RoundsPruned } from '../../src/model/events.ts';
import { killSpawned, spawnTs } from '../support/child.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const ROUNDS = 6;

test('gc run again and again beside a running experiment: the run finishes all its rounds and gc prunes', async (t) => {
  const root = tempDir();
  const gcProcess = spawnTs('gc-child.ts', [root, '1']);
  await gcProcess.waitFor((l) => l === 'ready');
  let gcRuns = 0;
  const isResult = (line: string) => line.startsWith('gc ') || line.startsWith('error ');
  /** Runs gc once in its process and waits for its result line. */
  const runGc = async () => {
    const n = ++gcRuns;
    gcProcess.process.stdin!.write('gc\n');
    await gcProcess.waitFor(() => gcProcess.lines.filter(isResult).length >= n);
  };
  const run = spawnTs('experiment-child.ts', ['run', root, '9', 'all', String(ROUNDS), 'gate'], (line, child) => {
    // Each round, while its nodes train: gc (twice), then the round goes on.
    if (line.startsWith('training ')) {
      void runGc()
        .then(() => runGc())
        .then(() => child.process.stdin!.write('go\n'));
    }
  });
  const status = await run.exited;
  gcProcess.process.stdin!.end();
  await gcProcess.exited;
  const report = `experiment: ${run.lines.join(' | ')}\n${run.stderr()}\ngc: ${gcProcess.lines.join(' | ')}`;
  t.is(status.code, 0, report);
  t.true(run.lines.at(-1)?.startsWith('done '), report);
  for (let r = 0; r < ROUNDS; r++) t.true(run.lines.includes(`round ${r} committed`), report);
  t.deepEqual(
    gcProcess.lines.filter((l) => l.startsWith('error')),
    [],
    report,
  );

  const log = await openFileEventLog({ dir: path.join(root, 'log'), readOnly: true });
  try {
    const id = run.lines.find((l) => l.startsWith('created '))!.split(' ')[2]!;
    const events = (await log.readStream(`experiment-${id}`)).events;
    const pruned = events
      .filter((e) => e.type === 'RoundsPruned')
      .flatMap((e) => (e.data as RoundsPruned).rounds.map((r) => r.round));
    // keepLast 1: by the time round r trains, rounds before r - 1 are pruned, by gc.
    t.deepEqual(
      [...pruned].sort((a, b) => a - b),
      [0, 1, 2, 3],
      report,
    );
    t.is(events.filter((e) => e.type === 'RoundCompleted').length, ROUNDS);
    t.true(events.some((e) => e.type === 'ExperimentFinished'));
  } finally {
    await log.close();
  }
});
