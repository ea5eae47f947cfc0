/**
 * SIGINT (Ctrl-C) and SIGTERM stop `roundlog run` and `resume` cleanly: the round in flight
 * completes and commits, `RunEnded` records the signal, the lease is released (`ls` shows
 * `stopped`), the exit code is 130 / 143, and `resume` continues bit-identically to a run never
 * stopped. A second signal ends the process at once.
 */
import test from 'ava';
import path from 'node:path';
import { roundlog, roundlogJson, startRoundlog } from '../support/cli.ts';
import { killSpawned, spawnTs } from '../support/child.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

/** The example, blocked in the first round's training until a line comes on stdin (with ROUNDLOG_TEST_GATE=1). */
const GATED = 'test/experiment/gated.experiment.ts';
const ROUNDS = 4;

type Listing = Array<{
  status: string;
  roundCurrent: number;
  run: unknown;
  breakpoints: Array<{ round: number; paramsSha256: string }>;
}>;

for (const [signal, exitCode] of [
  ['SIGTERM', 143],
  ['SIGINT', 130],
] as const) {
  const title =
    `${signal} during run: the round in flight commits, RunEnded records it, ` + `exit ${exitCode}, ls shows stopped`;
  test(title, async (t) => {
    const root = tempDir();
    const child = startRoundlog(['run', GATED, '--rounds', String(ROUNDS), '--root', root], {
      ROUNDLOG_TEST_GATE: '1',
    });
    // The sync point: round 0 is in flight (its RoundStarted durable), the process blocked in training.
    await child.waitFor((l) => l.startsWith('gate '));
    child.process.kill(signal);
    child.process.stdin!.write('\n');
    const exited = await child.exited;
    t.is(exited.code, exitCode, child.stderr());
    t.regex(child.stderr(), new RegExp(`roundlog: ${signal}: stopping after the round in flight`));
    t.true(
      child.lines.some((l) => l.startsWith('round 0 (1/')),
      child.lines.join('\n'),
    );
    t.false(
      child.lines.some((l) => l.startsWith('round 1 (')),
      'no round started after the signal',
    );
    t.regex(
      child.lines.at(-1)!,
      new RegExp(`^stopped by ${signal}: 1 round completed; continue with: roundlog resume `),
    );

    const [listed] = await roundlogJson<Listing>(['ls', '--root', root]);
    t.like(listed, { status: 'stopped', roundCurrent: 1, run: null });
    const history = await roundlog(['history', 'Experiment_0000', '--root', root]);
    t.regex(history.stdout, new RegExp(`run \\S+ stopped by ${signal} after round 0`));

    // Continued to the same number of rounds: every breakpoint bit-identical to a run never stopped.
    const resumed = await roundlog(['resume', '--rounds', String(ROUNDS - 1), '--root', root]);
    t.is(resumed.code, 0, resumed.stderr);
    const straight = tempDir();
    t.is((await roundlog(['run', GATED, '--rounds', String(ROUNDS), '--root', straight])).code, 0);
    const [after] = await roundlogJson<Listing>(['ls', '--root', root]);
    const [expected] = await roundlogJson<Listing>(['ls', '--root', straight]);
    t.is(after!.roundCurrent, ROUNDS);
    t.deepEqual(
      after!.breakpoints.map((b) => [b.round, b.paramsSha256]),
      expected!.breakpoints.map((b) => [b.round, b.paramsSha256]),
    );
  });
}

test('SIGTERM during resume: stops after the round in flight, exit 143, ls shows stopped', async (t) => {
  const root = tempDir();
  t.is((await roundlog(['run', GATED, '--rounds', '1', '--root', root])).code, 0);
  const folder = path.join(root, 'experiments', 'Experiment_0000');
  const child = startRoundlog(['resume', folder, '--rounds', '3', '--root', root], { ROUNDLOG_TEST_GATE: '1' });
  await child.waitFor((l) => l.startsWith('gate '));
  child.process.kill('SIGTERM');
  child.process.stdin!.write('\n');
  t.is((await child.exited).code, 143, child.stderr());
  t.regex(child.lines.at(-1)!, /^stopped by SIGTERM: 2 rounds completed; continue with: roundlog resume /);
  const [listed] = await roundlogJson<Listing>(['ls', '--root', root]);
  t.like(listed, { status: 'stopped', roundCurrent: 2, run: null });
});

test('a second signal ends the process at once, with the signal exit code', async (t) => {
  const child = spawnTs('signals-child.ts', []);
  await child.waitFor((l) => l === 'ready');
  child.process.kill('SIGINT');
  await child.waitFor((l) => l === 'stop SIGINT');
  child.process.kill('SIGINT');
  const exited = await child.exited;
  t.is(exited.code, 130, child.stderr());
  t.regex(child.stderr(), /SIGINT again: stopping at once; the round in flight is not recorded/);
  t.regex(child.stderr(), /shows as crashed until 'roundlog resume'$/m);
});

test('a second signal names the command that continues the run, with its node processes', async (t) => {
  const command = 'roundlog resume experiments/Experiment_0000 --listen 127.0.0.1:50051 --nodes a,b';
  const child = spawnTs('signals-child.ts', [command]);
  await child.waitFor((l) => l === 'ready');
  child.process.kill('SIGTERM');
  await child.waitFor((l) => l === 'stop SIGTERM');
  child.process.kill('SIGTERM');
  const exited = await child.exited;
  t.is(exited.code, 143, child.stderr());
  t.true(child.stderr().includes(`the run shows as crashed until '${command}'`), child.stderr());
});

test('SIGTERM right after resume printed done: keeps the success: exit 0, RunEnded records no signal', async (t) => {
  const root = tempDir();
  t.is((await roundlog(['run', GATED, '--rounds', '1', '--root', root])).code, 0);
  // The child signals itself when it prints `done:`: always after the run ended, before it closed.
  const child = spawnTs('late-signal-child.ts', ['resume', '--rounds', '1', '--root', root]);
  const exited = await child.exited;
  t.is(exited.code, 0, child.stderr());
  t.is(exited.signal, null);
  t.regex(child.lines.at(-1)!, /^done: 2 rounds completed/);
  t.regex(child.stderr(), /roundlog: SIGTERM after the run ended: closing the log/);
  const [listed] = await roundlogJson<Listing>(['ls', '--root', root]);
  t.like(listed, { roundCurrent: 2, run: null });
  const history = await roundlog(['history', 'Experiment_0000', '--root', root]);
  t.regex(history.stdout, /run \S+ ended after round 1 \(2 rounds completed\)/);
  t.notRegex(history.stdout, /stopped by SIGTERM/);
});
