/**
 * A moved experiment folder (`mv <root>/experiments/Experiment_0000 <root>/experiments/mydir`) is
 * the experiment's folder for every command before any resume records the move: `ls` lists it,
 * `verify` checks it, `project` and `gc` write and remove in it (never a second tree under the old
 * name), `resume mydir` continues and records it. Two folders claiming a moved experiment are a
 * typed error naming both.
 */
import test from 'ava';
import { cpSync, existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { roundlog, roundlogJson, startRoundlog, roundlogOk } from '../support/cli.ts';
import type { ExperimentListing } from '../../src/cli/experiments.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { killSpawned } from '../support/child.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const EXAMPLE = 'examples/logistic-regression/experiment.ts';

type Listing = ExperimentListing[];

const MOVED =
  'after mv Experiment_0000 mydir: ls lists mydir, verify is ok, project writes into mydir, resume continues';

test(MOVED, async (t) => {
  const root = tempDir();
  const r = ['--root', root];
  await roundlogOk(t, ['run', EXAMPLE, '--rounds', '2', ...r]);
  const experiments = path.join(root, 'experiments');
  const mydir = path.join(experiments, 'mydir');
  renameSync(path.join(experiments, 'Experiment_0000'), mydir);

  const listed = (await roundlogJson<Listing>(['ls', ...r]))[0]!;
  t.is(listed.folder, 'mydir');
  t.deepEqual(
    listed.breakpoints.map((b) => path.relative(experiments, b.path)),
    ['mydir/breakpoint_0000', 'mydir/breakpoint_0001'],
  );

  const verified = await roundlogOk(t, ['verify', '--json', ...r]);
  t.true((JSON.parse(verified.stdout) as { ok: boolean }).ok, verified.stdout);

  // A breakpoint folder of the moved folder lost: project writes it again there, nowhere else.
  rmSync(path.join(mydir, 'breakpoint_0001'), { recursive: true });
  await roundlogOk(t, ['project', ...r]);
  await roundlogOk(t, ['project', 'mydir', ...r]);
  t.deepEqual(readdirSync(experiments), ['mydir'], 'no second tree under the old name');
  t.true(existsSync(path.join(mydir, 'breakpoint_0001', 'breakpoint.json')));
  await roundlogOk(t, ['gc', '--keep-last', '1', ...r]);
  t.deepEqual(readdirSync(mydir).sort(), ['breakpoint_0001', 'tensorboard']);
  t.deepEqual(readdirSync(experiments), ['mydir']);

  const resumed = await roundlogOk(t, ['resume', 'mydir', '--rounds', '1', ...r]);
  t.regex(resumed.stdout, /^resumed mydir \(.*\) after round 1 \(round 2 runs next\)/m);
  t.deepEqual(readdirSync(experiments), ['mydir']);
  t.true(existsSync(path.join(mydir, 'breakpoint_0002', 'breakpoint.json')));
  t.like((await roundlogJson<Listing>(['ls', ...r]))[0], { folder: 'mydir', roundCurrent: 3 });
  const after = await roundlogOk(t, ['verify', '--json', ...r]);
  t.true((JSON.parse(after.stdout) as { ok: boolean }).ok, after.stdout);
});

test('resume with no path, or by id, after a move continues in the moved folder and records it', async (t) => {
  const root = tempDir();
  const r = ['--root', root];
  await roundlogOk(t, ['run', EXAMPLE, '--rounds', '2', ...r]);
  const experiments = path.join(root, 'experiments');
  renameSync(path.join(experiments, 'Experiment_0000'), path.join(experiments, 'mydir'));
  const { id } = (await roundlogJson<Listing>(['ls', ...r]))[0]!;
  const resumed = await roundlogOk(t, ['resume', '--rounds', '1', ...r]);
  t.regex(resumed.stdout, /^resumed mydir \(/m);
  await roundlogOk(t, ['resume', id, '--rounds', '1', ...r]);
  t.deepEqual(readdirSync(experiments), ['mydir']);
  t.true(existsSync(path.join(experiments, 'mydir', 'breakpoint_0003')));
  // Recorded: the history says the folder is now mydir.
  const history = await roundlogOk(t, ['history', id, ...r]);
  t.regex(history.stdout, /folder now mydir/);
});

test('two folders claiming a moved experiment: every command names both, nothing is written', async (t) => {
  const root = tempDir();
  const r = ['--root', root];
  await roundlogOk(t, ['run', EXAMPLE, '--rounds', '2', ...r]);
  const experiments = path.join(root, 'experiments');
  renameSync(path.join(experiments, 'Experiment_0000'), path.join(experiments, 'mydir'));
  cpSync(path.join(experiments, 'mydir'), path.join(experiments, 'mycopy'), { recursive: true });

  // ls lists it (from the log, rounds and status) with the problem and no breakpoints, and exits 0.
  const listed = await roundlog(['ls', ...r]);
  t.is(listed.code, 0, listed.stderr);
  t.regex(listed.stdout, /EXPERIMENT_FOLDER_AMBIGUOUS: .*2 folders of .* hold its breakpoints: mycopy, mydir/);
  const [entry] = await roundlogJson<Listing>(['ls', ...r]);
  t.like(entry, { roundCurrent: 2, breakpoints: [], folderProblem: { code: 'EXPERIMENT_FOLDER_AMBIGUOUS' } });
  for (const args of [['project'], ['resume', 'mydir', '--rounds', '1'], ['history', 'mydir']]) {
    const refused = await roundlog([...args, ...r]);
    t.is(refused.code, 1, `${args.join(' ')}: ${refused.stdout}`);
    t.regex(refused.stderr, /EXPERIMENT_FOLDER_AMBIGUOUS|2 folders of .* hold its breakpoints: mycopy, mydir/, args[0]);
    t.regex(refused.stderr, /mycopy, mydir/, args[0]);
  }
  const verified = await roundlog(['verify', ...r]);
  t.is(verified.code, 1);
  t.regex(verified.stdout + verified.stderr, /mycopy, mydir/);
  t.deepEqual(readdirSync(experiments).sort(), ['mycopy', 'mydir']);

  // One removed: the other is the experiment's folder again.
  rmSync(path.join(experiments, 'mycopy'), { recursive: true });
  t.like((await roundlogJson<Listing>(['ls', ...r]))[0], { folder: 'mydir', folderProblem: null });
});

const MOVED_WHILE_RUNNING =
  'a folder moved while a run goes on: the next breakpoints are written into it, never under the old name';

test(MOVED_WHILE_RUNNING, async (t) => {
  const root = tempDir();
  const r = ['--root', root];
  // The example, blocked inside its next round's training until a line comes on stdin.
  const gated = 'test/experiment/gated.experiment.ts';
  await roundlogOk(t, ['run', gated, '--rounds', '1', ...r]);
  const experiments = path.join(root, 'experiments');
  const child = startRoundlog(['resume', '--rounds', '2', ...r], { ROUNDLOG_TEST_GATE: '1' });
  await child.waitFor((l) => l.startsWith('gate '));
  renameSync(path.join(experiments, 'Experiment_0000'), path.join(experiments, 'mydir'));
  child.process.stdin!.write('\n');
  t.is((await child.exited).code, 0, child.stderr());
  t.deepEqual(readdirSync(experiments), ['mydir']);
  t.deepEqual(readdirSync(path.join(experiments, 'mydir')).sort(), [
    'breakpoint_0000',
    'breakpoint_0001',
    'breakpoint_0002',
    'tensorboard',
  ]);
  t.like((await roundlogJson<Listing>(['ls', ...r]))[0], { folder: 'mydir', roundCurrent: 3 });
  const verified = await roundlogOk(t, ['verify', '--json', ...r]);
  t.true((JSON.parse(verified.stdout) as { ok: boolean }).ok, verified.stdout);
});

test('a folder name the log records is resolved from the snapshot and the events after it', async (t) => {
  const root = tempDir();
  const r = ['--root', root];
  const experiments = path.join(root, 'experiments');
  // Enough rounds for a snapshot (one every 100 events), then a move the next resume records.
  await roundlogOk(t, ['run', EXAMPLE, '--rounds', '20', ...r]);
  const snapshots = path.join(root, 'snapshots');
  t.is(readdirSync(snapshots).length, 1, 'the experiment has a snapshot');
  const { id } = (await roundlogJson<Listing>(['ls', ...r]))[0]!;
  renameSync(path.join(experiments, 'Experiment_0000'), path.join(experiments, 'mydir'));
  await roundlogOk(t, ['resume', '--rounds', '1', ...r]);
  // With no folder on disk, the name is the log's alone: the move is after the snapshot.
  rmSync(path.join(experiments, 'mydir'), { recursive: true });
  const named = await roundlogOk(t, ['history', 'mydir', ...r]);
  t.regex(named.stdout, new RegExp(id));
  // Then a snapshot taken after the move: the name comes from the snapshot's state.
  const before = statSync(path.join(snapshots, readdirSync(snapshots)[0]!)).mtimeMs;
  await roundlogOk(t, ['resume', id, '--rounds', '20', ...r]);
  t.not(statSync(path.join(snapshots, readdirSync(snapshots)[0]!)).mtimeMs, before, 'a newer snapshot');
  rmSync(path.join(experiments, 'mydir'), { recursive: true });
  t.regex((await roundlogOk(t, ['history', 'mydir', ...r])).stdout, new RegExp(id));
  // The name it was created with still names it.
  t.regex((await roundlogOk(t, ['history', 'Experiment_0000', ...r])).stdout, new RegExp(id));
});
