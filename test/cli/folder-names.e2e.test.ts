/**
 * Folder names and the experiments they belong to: `Experiment_<digits>` names are the
 * numbering's (never chosen, and a taken one is passed over, so `run` never fails for good on
 * one); a folder is taken by the experiment its breakpoints name (two folders swapped are two
 * experiments, never mixed); every output names the folder where it is now.
 */
import test from 'ava';
import { readdirSync, readFileSync, renameSync, cpSync } from 'node:fs';
import path from 'node:path';
import { roundlog, roundlogJson, roundlogOk } from '../support/cli.ts';
import type { ExperimentListing } from '../../src/cli/experiments.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const EXAMPLE = 'examples/logistic-regression/experiment.ts';

type Listing = ExperimentListing[];

/** The experiment ids the manifests of a folder's breakpoint folders name. */
function idsIn(folder: string): string[] {
  const ids = readdirSync(folder)
    .filter((name) => /^breakpoint_\d+$/.test(name))
    .map((name) => {
      const manifest = JSON.parse(readFileSync(path.join(folder, name, 'breakpoint.json'), 'utf8')) as {
        experimentId: string;
      };
      return manifest.experimentId;
    });
  return [...new Set(ids)];
}

test('fork --name Experiment_NNNN is refused as reserved, and nothing is created', async (t) => {
  const root = tempDir();
  const r = ['--root', root];
  await roundlogOk(t, ['run', EXAMPLE, '--rounds', '2', ...r]);
  for (const name of ['Experiment_0006', 'Experiment_1', 'Experiment_00001']) {
    const refused = await roundlog(['fork', 'Experiment_0000', '--round', '1', '--name', name, ...r]);
    t.is(refused.code, 1, refused.stdout);
    t.regex(refused.stderr, /has the form Experiment_<digits>, which roundlog keeps for the folders it numbers/);
    t.regex(refused.stderr, /choose another name/);
  }
  t.deepEqual(readdirSync(path.join(root, 'experiments')), ['Experiment_0000']);
  t.is((await roundlogJson<Listing>(['ls', ...r])).length, 1);
  // Any other name is fine, and the next run still gets its numbered folder.
  await roundlogOk(t, ['fork', 'Experiment_0000', '--round', '1', '--name', 'myfork', ...r]);
  await roundlogOk(t, ['run', EXAMPLE, '--rounds', '1', ...r]);
  const folders = (await roundlogJson<Listing>(['ls', ...r])).map((e) => e.folder);
  t.deepEqual(folders, ['Experiment_0000', 'myfork', 'Experiment_0002']);
});

test('a new experiment passes over an Experiment_NNNN name another has, never refused for good', async (t) => {
  const root = tempDir();
  const r = ['--root', root];
  const experiments = path.join(root, 'experiments');
  await roundlogOk(t, ['run', EXAMPLE, '--rounds', '1', ...r]);
  // Experiment 0 moved to the folder experiment 2 would get, and the move recorded by a resume.
  renameSync(path.join(experiments, 'Experiment_0000'), path.join(experiments, 'Experiment_0002'));
  await roundlogOk(t, ['resume', 'Experiment_0002', '--rounds', '1', ...r]);
  for (let i = 0; i < 3; i++) await roundlogOk(t, ['run', EXAMPLE, '--rounds', '1', ...r]);
  const listed = await roundlogJson<Listing>(['ls', ...r]);
  t.deepEqual(
    listed.map((e) => e.folder),
    ['Experiment_0002', 'Experiment_0001', 'Experiment_0003', 'Experiment_0004'],
  );
  for (const e of listed) t.deepEqual(idsIn(path.join(experiments, e.folder)), [e.id], e.folder);
  // Moved away again: the name stays passed over, and runs go on.
  renameSync(path.join(experiments, 'Experiment_0004'), path.join(experiments, 'elsewhere'));
  await roundlogOk(t, ['run', EXAMPLE, '--rounds', '1', ...r]);
  t.deepEqual(readdirSync(experiments).sort(), [
    'Experiment_0001',
    'Experiment_0002',
    'Experiment_0003',
    'Experiment_0005',
    'elsewhere',
  ]);
});

test('two folders swapped are two experiments: ls, verify, resume and project never mix them', async (t) => {
  const root = tempDir();
  const r = ['--root', root];
  const experiments = path.join(root, 'experiments');
  await roundlogOk(t, ['run', EXAMPLE, '--rounds', '2', ...r]);
  await roundlogOk(t, ['run', EXAMPLE, '--rounds', '2', ...r]);
  const [zero, one] = (await roundlogJson<Listing>(['ls', ...r])).map((e) => e.id);
  renameSync(path.join(experiments, 'Experiment_0000'), path.join(experiments, 'mydir'));
  renameSync(path.join(experiments, 'Experiment_0001'), path.join(experiments, 'Experiment_0000'));

  const listed = await roundlogJson<Listing>(['ls', ...r]);
  t.deepEqual(
    listed.map((e) => [e.id, e.folder]),
    [
      [zero, 'mydir'],
      [one, 'Experiment_0000'],
    ],
  );
  const verified = await roundlogOk(t, ['verify', '--json', ...r]);
  t.true((JSON.parse(verified.stdout) as { ok: boolean }).ok, verified.stdout);
  t.notRegex(verified.stdout, /not the folder of any experiment/);

  // The folder named is the experiment its breakpoints name: experiment 1 now.
  const resumed = await roundlogOk(t, ['resume', 'Experiment_0000', '--rounds', '1', ...r]);
  t.regex(resumed.stdout, new RegExp(`^resumed Experiment_0000 \\(${one}\\) after round 1`, 'm'));
  await roundlogOk(t, ['resume', 'mydir', '--rounds', '1', ...r]);
  await roundlogOk(t, ['project', ...r]);
  t.deepEqual(readdirSync(experiments).sort(), ['Experiment_0000', 'mydir']);
  t.deepEqual(idsIn(path.join(experiments, 'Experiment_0000')), [one]);
  t.deepEqual(idsIn(path.join(experiments, 'mydir')), [zero]);
  t.deepEqual(
    readdirSync(path.join(experiments, 'Experiment_0000'))
      .filter((n) => n.startsWith('breakpoint_'))
      .sort(),
    ['breakpoint_0000', 'breakpoint_0001', 'breakpoint_0002'],
  );
  t.deepEqual(
    readdirSync(path.join(experiments, 'mydir'))
      .filter((n) => n.startsWith('breakpoint_'))
      .sort(),
    ['breakpoint_0000', 'breakpoint_0001', 'breakpoint_0002'],
  );
  const after = await roundlogOk(t, ['verify', '--json', ...r]);
  t.true((JSON.parse(after.stdout) as { ok: boolean }).ok, after.stdout);
});

test('gc --dry-run names a moved folder where it is now, before a resume records the move', async (t) => {
  const root = tempDir();
  const r = ['--root', root];
  const experiments = path.join(root, 'experiments');
  await roundlogOk(t, ['run', EXAMPLE, '--rounds', '3', ...r]);
  renameSync(path.join(experiments, 'Experiment_0000'), path.join(experiments, 'mydir'));
  const dry = await roundlogOk(t, ['gc', '--dry-run', '--keep-last', '1', ...r]);
  t.regex(dry.stdout, /^mydir: /m);
  t.notRegex(dry.stdout, /Experiment_0000/);
  const json = JSON.parse((await roundlogOk(t, ['gc', '--dry-run', '--keep-last', '1', '--json', ...r])).stdout) as {
    experiments: Array<{ folder: string }>;
  };
  t.deepEqual(
    json.experiments.map((e) => e.folder),
    ['mydir'],
  );
});

test('two folders claiming one experiment: verify advises removing or renaming one, not project', async (t) => {
  const root = tempDir();
  const r = ['--root', root];
  const experiments = path.join(root, 'experiments');
  await roundlogOk(t, ['run', EXAMPLE, '--rounds', '2', ...r]);
  renameSync(path.join(experiments, 'Experiment_0000'), path.join(experiments, 'a'));
  cpSync(path.join(experiments, 'a'), path.join(experiments, 'b'), { recursive: true });
  const verified = await roundlog(['verify', ...r]);
  t.not(verified.code, 0);
  t.regex(verified.stdout, /remove all but one of them, or rename them to move them out of/);
  t.notRegex(verified.stdout, /roundlog project writes them/);
  const project = await roundlog(['project', ...r]);
  t.not(project.code, 0, 'project is refused while two folders claim it');
  t.regex(project.stderr, /EXPERIMENT_FOLDER_AMBIGUOUS|remove all but one of them/);
});

test('a recorded folder holding another experiment, and none holding this one: refused, nothing mixed', async (t) => {
  const root = tempDir();
  const r = ['--root', root];
  const experiments = path.join(root, 'experiments');
  await roundlogOk(t, ['run', EXAMPLE, '--rounds', '1', ...r]);
  await roundlogOk(t, ['run', EXAMPLE, '--rounds', '1', ...r]);
  const [zero, one] = (await roundlogJson<Listing>(['ls', ...r])).map((e) => e.id);
  renameSync(path.join(experiments, 'Experiment_0000'), path.join(tempDir(), 'away'));
  renameSync(path.join(experiments, 'Experiment_0001'), path.join(experiments, 'Experiment_0000'));
  const resumed = await roundlog(['resume', zero!, '--rounds', '1', ...r]);
  t.is(resumed.code, 1, resumed.stdout);
  t.regex(resumed.stderr, new RegExp(`holds the breakpoints of experiment ${one}`));
  const verified = await roundlog(['verify', ...r]);
  t.not(verified.code, 0);
  t.regex(verified.stdout, /holds the breakpoints of experiment/);
  t.deepEqual(readdirSync(experiments).sort(), ['Experiment_0000']);
  t.deepEqual(idsIn(path.join(experiments, 'Experiment_0000')), [one]);
  // ls still lists both: the one without a folder says so, the other is where it is now.
  const listing = await roundlogJson<Listing>(['ls', ...r]);
  t.deepEqual(
    listing.map((e) => [e.id, e.folder, e.folderProblem?.code ?? null, e.breakpoints.length]),
    [
      [zero, 'Experiment_0000', 'EXPERIMENT_FOLDER_TAKEN', 0],
      [one, 'Experiment_0000', null, 1],
    ],
  );
});
