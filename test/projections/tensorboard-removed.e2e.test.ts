/**
 * `rm -rf <experiment>/tensorboard` while an experiment records rounds and `project --follow` runs
 * beside it (a user wanting the files written again): the follower never dies (a file removed
 * between being found and being opened is missing, not an error), and once the removals stop the
 * files are what the log gives.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { openRoundLog, verifyRoot, type ProjectionUpdate } from '../../src/projections/index.ts';
import { roundlogJson, startRoundlog } from '../support/cli.ts';
import { tensors } from '../support/rounds.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { killSpawned } from '../support/child.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

test('tensorboard/ removed again and again while a run records and a follower projects: it lives on', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const handle = await rl.createExperiment({ roundLimit: 100, saveBreakpoints: true });
  await handle.recordRound({ params: tensors(0), metrics: { loss: 1 } });
  const follower = startRoundlog(['project', '--follow', '--json', '--root', root]);
  t.teardown(() => {
    if (follower.process.exitCode === null && follower.process.signalCode === null) follower.process.kill('SIGKILL');
  });
  await follower.waitFor((l) => (JSON.parse(l) as ProjectionUpdate).kind === 'caughtUp');
  const tensorboard = path.join(root, 'experiments', handle.state.folder, 'tensorboard');
  // Another process removes the folder as fast as it can, in parallel with both projectors.
  const remover = spawn('sh', ['-c', `while :; do rm -rf '${tensorboard}'; done`], { stdio: 'ignore' });
  try {
    for (let r = 1; r < 40; r++) await handle.recordRound({ params: tensors(r), metrics: { loss: 1 / (r + 1) } });
  } finally {
    remover.kill('SIGKILL');
    await once(remover, 'exit');
  }
  await handle.recordRound({ params: tensors(40), metrics: { loss: 0 } });
  const last = handle.state.rounds[40]!.position;
  await rl.close();
  await follower.waitFor((l) => {
    const update = JSON.parse(l) as ProjectionUpdate & { position?: string };
    return update.kind === 'projected' && BigInt(update.position!) >= last;
  });
  t.is(follower.process.exitCode, null, `the follower is still running: ${follower.stderr()}`);
  follower.process.kill('SIGINT');
  const { code } = await follower.exited;
  t.is(code, 0, follower.stderr());
  t.notRegex(follower.stderr(), /unexpected error/);

  const projected = await roundlogJson<{ ok: boolean }>(['project', '--root', root]);
  t.true(projected.ok);
  const verified = await verifyRoot({ root });
  t.true(verified.ok, JSON.stringify(verified.views));
  t.deepEqual(verified.lag, []);
});
