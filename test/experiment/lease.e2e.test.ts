/**
 * Status and the run lease with real processes: a live child runs its experiment (`running`, a
 * second resume refused naming its pid, host and start; `--take-over` recorded, after which the
 * child stops at its next commit); a SIGKILLed child's experiment is `crashed`; a child whose
 * training throws leaves a `failed` experiment whose code and message `ls`, `history` and `audit`
 * show.
 */
import test, { type ExecutionContext } from 'ava';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { syntheticClinicalFederation } from '../../examples/logistic-regression/data.ts';
import { Experiment } from '../../src/federated/experiment.ts';
import { ExperimentRunningError } from '../../src/model/errors.ts';
import type { ExperimentListing } from '../../src/cli/experiments.ts';
import { killSpawned, spawnTs, type Child } from '../support/child.ts';
import { roundlog, roundlogJson } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const WORKSPACE = fileURLToPath(new URL('../..', import.meta.url));
const federation = syntheticClinicalFederation({ seed: 11 });

/** Starts the example in a child that stops, alive, while round `round` trains (after its `RoundStarted`). */
async function runningChild(t: ExecutionContext, root: string, round: number): Promise<Child> {
  const child = spawnTs('experiment-child.ts', ['run', root, '4', 'all', '6', 'gate'], (line, c) => {
    const at = /^training (\d+) /.exec(line);
    if (at !== null && Number(at[1]) < round) c.process.stdin!.write('go\n');
  });
  t.teardown(() => {
    if (child.process.exitCode === null) child.process.kill('SIGKILL');
  });
  await child.waitFor((l) => l.startsWith(`training ${round} `));
  return child;
}

const ls = (root: string) => roundlogJson<ExperimentListing[]>(['ls', '--root', root]);

test('a live run is running, and a second resume is refused naming its owner; --take-over is recorded', async (t) => {
  const root = tempDir();
  const child = await runningChild(t, root, 2);
  const [listing] = await ls(root);
  t.is(listing!.status, 'running');
  t.like(listing!.run, { owner: { pid: child.process.pid, host: os.hostname() } });

  // The library and the CLI refuse, naming the process.
  const load = (takeOver: boolean) =>
    Experiment.loadBreakpoint(undefined, { root, federation, workspace: WORKSPACE, takeOver });
  const refused = await t.throwsAsync(load(false), { instanceOf: ExperimentRunningError });
  t.is(refused.owner.pid, child.process.pid!);
  t.regex(refused.message, new RegExp(`process ${child.process.pid} on host ${os.hostname()}.*--take-over`));
  const cli = await roundlog(['resume', '--root', root, path.join(root, 'experiments', listing!.folder)]);
  t.not(cli.code, 0);
  t.regex(cli.stderr, new RegExp(`EXPERIMENT_RUNNING|process ${child.process.pid} on host`));
  // A rewind under a live run is refused the same way (the run would die at its next commit).
  const rewind = await roundlog(['rewind', listing!.folder, '--round', '0', '--reason', 'test', '--root', root]);
  t.not(rewind.code, 0);
  t.regex(rewind.stderr, new RegExp(`process ${child.process.pid} on host`));
  t.is((await ls(root))[0]!.status, 'running', 'a refused resume or rewind changes nothing');

  // Taken over: recorded, and the child, still blocked in round 2, stops at its next commit.
  const taker = await load(true);
  try {
    t.is(taker.roundCurrent(), 2);
    const history = await roundlog(['history', '--root', root, listing!.folder]);
    t.regex(history.stdout, new RegExp(`took over run \\S+ of \\S+ \\(pid ${child.process.pid}`));
    child.process.stdin!.write('go\n');
    await child.exited;
    t.regex(child.lines.at(-1)!, /^error CONCURRENT_MODIFICATION/);
    const [after] = await ls(root);
    t.is(after!.status, 'running');
    t.is(after!.run!.owner.pid, process.pid);
    await taker.runOnce();
    t.is(taker.roundCurrent(), 3);
  } finally {
    await taker.close();
  }
  t.is((await ls(root))[0]!.status, 'stopped');
});

test('a SIGKILLed run is crashed, and resuming it needs no take-over', async (t) => {
  const root = tempDir();
  const child = await runningChild(t, root, 1);
  t.is((await ls(root))[0]!.status, 'running');
  child.process.kill('SIGKILL');
  await child.exited;
  const [listing] = await ls(root);
  t.is(listing!.status, 'crashed');
  t.is(listing!.run!.owner.pid, child.process.pid!, 'the crashed run names its process');
  const text = await roundlog(['ls', '--root', root]);
  t.regex(text.stdout, /crashed/);
  t.regex(text.stdout, new RegExp(`process gone\\) \\S+ pid ${child.process.pid}`));
  const exp = await Experiment.loadBreakpoint(undefined, { root, federation, workspace: WORKSPACE });
  try {
    t.is(exp.roundCurrent(), 1);
    t.is((await ls(root))[0]!.status, 'running');
  } finally {
    await exp.close();
  }
});

test('a run whose training throws is failed, with the code and message in ls, history and audit', async (t) => {
  const root = tempDir();
  const child = spawnTs('experiment-child.ts', ['run', root, '4', 'all', '6', 'throw:2']);
  const status = await child.exited;
  t.is(status.code, 1);
  t.regex(child.lines.at(-1)!, /^error NODE_FAILED .*diverged: loss is NaN/);
  const [listing] = await ls(root);
  t.is(listing!.status, 'failed');
  t.is(listing!.run, null);
  t.like(listing!.failure, { code: 'NODE_FAILED', round: 2, attempt: 1 });
  t.regex(listing!.failure!.message, /hospital-b.*diverged: loss is NaN/);
  const text = await roundlog(['ls', '--root', root]);
  t.regex(text.stdout, /failed at round 2 attempt 1 \(.*\): NODE_FAILED: .*diverged: loss is NaN/);

  const history = await roundlog(['history', '--root', root, listing!.folder]);
  t.regex(history.stdout, /round 2 attempt 1 aborted: .*next: RunFailed/);
  t.regex(history.stdout, /failed at round 2 attempt 1: NODE_FAILED: .*diverged: loss is NaN/);
  const audit = await roundlog(['audit', '--root', root, '--type', 'RunFailed']);
  t.regex(audit.stdout, /RunFailed.*NODE_FAILED: .*diverged: loss is NaN/);

  // A resume starts a new run: the failure is history, the status running again.
  const exp = await Experiment.loadBreakpoint(undefined, { root, federation, workspace: WORKSPACE });
  try {
    t.is((await ls(root))[0]!.status, 'running');
    await exp.runOnce();
    t.is(exp.roundCurrent(), 3);
  } finally {
    await exp.close();
  }
  t.like((await ls(root))[0], { status: 'stopped', failure: null });
});
