/**
 * The CLI depends neither on the directory it is run from nor on its reader: an experiment records
 * its workspace and resumes from anywhere (`--workspace` overrides it), and a stdout closed early
 * ends the output quietly without stopping a run.
 */
import test from 'ava';
import { once } from 'node:events';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { recordedWorkspace, type ExperimentCreated } from '../../src/model/events.ts';
import { REPO, roundlog, roundlogJson, startRoundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { killSpawned } from '../support/child.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

type Listing = Array<{ folder: string; roundCurrent: number; status: string }>;

/** A project of one's own: a definition and a training plan module outside roundlog's examples. */
function project(): string {
  const dir = path.join(tempDir(), 'my-project');
  mkdirSync(path.join(dir, 'plans'), { recursive: true });
  const example = (file: string) => JSON.stringify(path.join(REPO, 'examples/logistic-regression', file));
  writeFileSync(
    path.join(dir, 'plans', 'lr.ts'),
    `export { logisticRegressionPlan as plan } from ${example('plan.ts')};\n`,
  );
  writeFileSync(
    path.join(dir, 'experiment.ts'),
    `import { definition } from ${example('experiment.ts')};\n` +
      `export default { ...definition, trainingPlan: { module: 'plans/lr.ts', export: 'plan' } };\n`,
  );
  return dir;
}

test('resume works from any directory: the workspace recorded by run is where modules are found', async (t) => {
  const workspace = project();
  const root = path.join(tempDir(), 'root');
  const run = await roundlog(['run', 'experiment.ts', '--rounds', '2', '--root', root], {}, { cwd: workspace });
  t.is(run.code, 0, run.stderr);
  const elsewhere = tempDir();
  for (const target of [[], [path.join(root, 'experiments', 'Experiment_0000')]]) {
    const resumed = await roundlog(['resume', ...target, '--rounds', '1', '--root', root], {}, { cwd: elsewhere });
    t.is(resumed.code, 0, resumed.stderr);
  }
  const [listed] = await roundlogJson<Listing>(['ls', '--root', root]);
  t.is(listed!.roundCurrent, 4);
});

test('resume --workspace resolves the modules against another folder instead of the recorded one', async (t) => {
  const workspace = project();
  const root = path.join(tempDir(), 'root');
  const run = await roundlog(['run', 'experiment.ts', '--rounds', '1', '--root', root], {}, { cwd: workspace });
  t.is(run.code, 0, run.stderr);
  // A copy of the project whose plan differs: chosen by --workspace, so the plan check refuses it.
  const copy = path.join(tempDir(), 'copy');
  cpSync(workspace, copy, { recursive: true });
  writeFileSync(path.join(copy, 'plans', 'lr.ts'), '// changed\n', { flag: 'a' });
  const other = await roundlog(['resume', '--root', root, '--workspace', copy], {}, { cwd: workspace });
  t.is(other.code, 1);
  t.regex(other.stderr, /the training plan plans\/lr\.ts changed since the experiment recorded it/);
  const same = await roundlog(
    ['resume', '--rounds', '1', '--root', root, '--workspace', workspace],
    {},
    {
      cwd: tempDir(),
    },
  );
  t.is(same.code, 0, same.stderr);
});

test('an experiment recorded before workspaces were reads as having none (resume uses the current directory)', (t) => {
  const created = { federated: { tags: [] } } as unknown as ExperimentCreated;
  t.is(recordedWorkspace(created), null);
  t.is(recordedWorkspace(null), null);
  const recorded = { federated: { workspace: '/home/alice/project' } } as unknown as ExperimentCreated;
  t.is(recordedWorkspace(recorded), '/home/alice/project');
});

/** Starts `roundlog <args>` as a real process and closes its stdout after the first line, as `| head -1` does. */
async function withHeadOne(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = startRoundlog(args);
  await child.waitFor(() => true);
  const closed = once(child.process, 'close');
  child.process.stdout!.destroy();
  const [code] = (await closed) as [number | null];
  return { code, stderr: child.stderr() };
}

test('run | head -1 and resume | head -1: the run goes on to its end, exit 0, no EPIPE', async (t) => {
  const root = tempDir();
  const run = await withHeadOne(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '4', '--root', root]);
  t.is(run.code, 0, run.stderr);
  t.notRegex(run.stderr, /EPIPE|unexpected error|    at /);
  let [listed] = await roundlogJson<Listing>(['ls', '--root', root]);
  t.is(listed!.roundCurrent, 4, 'every round of the run was committed');
  const resumed = await withHeadOne(['resume', '--rounds', '3', '--root', root]);
  t.is(resumed.code, 0, resumed.stderr);
  t.notRegex(resumed.stderr, /EPIPE|unexpected error|    at /);
  [listed] = await roundlogJson<Listing>(['ls', '--root', root]);
  t.is(listed!.roundCurrent, 7);
});

test('events | head, audit | head: output ends quietly with exit 0', async (t) => {
  const root = tempDir();
  const run = await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '3', '--root', root]);
  t.is(run.code, 0, run.stderr);
  for (const args of [
    ['events', 'Experiment_0000'],
    ['events', 'Experiment_0000', '--json'],
    ['audit'],
    ['history', 'Experiment_0000'],
  ]) {
    const result = await withHeadOne([...args, '--root', root]);
    t.is(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    t.notRegex(result.stderr, /EPIPE|unexpected error|    at /, args.join(' '));
  }
});

test('history --follow | head: the follower stops with exit 0 at its first line nobody reads', async (t) => {
  const root = tempDir();
  const run = await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '1', '--root', root]);
  t.is(run.code, 0, run.stderr);
  const follower = startRoundlog(['history', 'Experiment_0000', '--follow', '--root', root]);
  await follower.waitForErr((line) => /caught up at log position/.test(line));
  const closed = once(follower.process, 'close');
  follower.process.stdout!.destroy();
  // New events for the follower to print: its write fails, and it stops as on Ctrl-C.
  const resumed = await roundlog(['resume', '--rounds', '1', '--root', root]);
  t.is(resumed.code, 0, resumed.stderr);
  const [code] = (await closed) as [number | null];
  t.is(code, 0, follower.stderr());
  t.notRegex(follower.stderr(), /EPIPE|unexpected error|    at /);
});
