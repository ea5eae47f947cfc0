/**
 * One name resolver and one round convention across the commands: every command that takes an
 * experiment takes what `ls` lists (the folder name, a renamed folder's too), the id, and a path to
 * the folder; every round a command names is the index R of `breakpoint_RRRR`.
 */
import test from 'ava';
import { readdirSync, renameSync } from 'node:fs';
import path from 'node:path';
import { roundlog, roundlogJson, roundlogOk, type Run } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const EXAMPLE = 'examples/logistic-regression/experiment.ts';

type Listing = Array<{ folder: string; id: string; roundCurrent: number }>;
type HistoryJson = {
  experiment: { id: string; folder: string };
  entries: Array<{ kind: string; round?: number | null; roundCurrent?: number; [key: string]: unknown }>;
};

/** Every command that takes one experiment, named `name`; each must answer for the experiment `id`. */
async function everyCommandAccepts(
  t: import('ava').ExecutionContext,
  root: string,
  name: string,
  id: string,
  options: { cwd?: string; writers: boolean },
): Promise<void> {
  const r = ['--root', root];
  const said = (run: Run) => t.true(run.stdout.includes(id), `${name}: ${run.stdout.slice(0, 400)}`);
  said(await roundlogOk(t, ['history', name, ...r], options.cwd));
  said(await roundlogOk(t, ['history', name, '--json', ...r], options.cwd));
  said(await roundlogOk(t, ['audit', 'rounds', name, ...r], options.cwd));
  said(await roundlogOk(t, ['audit', 'metric', name, 'loss', ...r], options.cwd));
  said(await roundlogOk(t, ['audit', 'lineage', name, ...r], options.cwd));
  said(await roundlogOk(t, ['audit', 'events', '--experiment', name, '--json', ...r], options.cwd));
  said(await roundlogOk(t, ['audit', 'actions', '--experiment', name, '--json', ...r], options.cwd));
  t.true((await roundlogOk(t, ['events', name, ...r], options.cwd)).stdout.includes('ExperimentCreated'), name);
  const out = path.join(tempDir(), 'replayed');
  await roundlogOk(t, ['replay', name, '--round', '1', '--out', out, ...r], options.cwd);
  const exported = path.join(tempDir(), 'round1.npz');
  said(await roundlogOk(t, ['export', name, '--round', '1', '--out', exported, '--json', ...r], options.cwd));
  await roundlogOk(t, ['gc', name, '--dry-run', '--keep-last', '2', ...r], options.cwd);
  if (!options.writers) return;
  await roundlogOk(t, ['project', name, ...r], options.cwd);
  const fork = await roundlogOk(t, ['fork', name, '--round', '1', '--json', ...r], options.cwd);
  t.is((JSON.parse(fork.stdout) as { parentId: string }).parentId, id);
}

test('after mv Experiment_0000 mydir, every command taking an experiment takes mydir, its id and path', async (t) => {
  const root = tempDir();
  await roundlogOk(t, ['run', EXAMPLE, '--rounds', '4', '--root', root]);
  const experiments = path.join(root, 'experiments');
  const { id } = (await roundlogJson<Listing>(['ls', '--root', root]))[0]!;
  renameSync(path.join(experiments, 'Experiment_0000'), path.join(experiments, 'mydir'));

  // Before the log knows of the move: the folder's manifests name the experiment.
  await everyCommandAccepts(t, root, 'mydir', id, { writers: false });
  await everyCommandAccepts(t, root, path.join(experiments, 'mydir'), id, { writers: false });

  // Writers follow the move too (the folder is found by its manifests): nothing under the old name.
  await roundlogOk(t, ['project', 'mydir', '--root', root]);
  await roundlogOk(t, ['gc', path.join(experiments, 'mydir'), '--keep-last', '10', '--root', root]);
  t.deepEqual(readdirSync(experiments), ['mydir'], 'nothing written under the old name');

  // A resume from the moved folder records it; `ls` lists it from then on.
  const resumed = await roundlogOk(t, ['resume', 'mydir', '--rounds', '1', '--root', root]);
  t.regex(resumed.stdout, /^resumed mydir \(/m);
  const listing = await roundlogJson<Listing>(['ls', '--root', root]);
  t.like(listing[0], { folder: 'mydir', id, roundCurrent: 5 });

  await everyCommandAccepts(t, root, 'mydir', id, { writers: true });
  await everyCommandAccepts(t, root, id, id, { writers: true });
  await everyCommandAccepts(t, root, path.join(experiments, 'mydir'), id, { writers: true });
  // Relative paths are relative to the directory the command runs in.
  await everyCommandAccepts(t, root, 'mydir', id, { writers: true, cwd: experiments });
  await everyCommandAccepts(t, root, './mydir', id, { writers: true, cwd: experiments });
  await everyCommandAccepts(t, root, 'experiments/mydir/breakpoint_0002', id, { writers: true, cwd: root });
  // The folder it was created with still names it (as `history Experiment_0000` did before the move).
  await everyCommandAccepts(t, root, 'Experiment_0000', id, { writers: false });

  const rewound = await roundlogOk(t, [
    'rewind',
    'mydir',
    '--round',
    '2',
    '--reason',
    'renamed folder',
    '--root',
    root,
  ]);
  t.regex(rewound.stdout, /^rewound mydir to round 2 \(round 3 runs next\)$/m);
  const again = await roundlogOk(t, ['resume', './mydir', '--rounds', '1', '--root', root], experiments);
  t.regex(again.stdout, /^resumed mydir \(.*\) after round 2 \(round 3 runs next\)/m);

  const unknown = await roundlog(['history', 'nodir', '--root', root]);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /no experiment "nodir" in the roundlog root/);
});

test('resume Experiment_0000 takes the folder name, as every other command does', async (t) => {
  const root = tempDir();
  await roundlogOk(t, ['run', EXAMPLE, '--rounds', '2', '--root', root]);
  const { id } = (await roundlogJson<Listing>(['ls', '--root', root]))[0]!;
  const byName = await roundlogOk(t, ['resume', 'Experiment_0000', '--rounds', '1', '--root', root]);
  t.regex(byName.stdout, /^resumed Experiment_0000 \(.*\) after round 1 \(round 2 runs next\), 2\/10 rounds done$/m);
  const byId = await roundlogOk(t, ['resume', id, '--rounds', '1', '--root', root]);
  t.regex(byId.stdout, /^resumed Experiment_0000 \(.*\) after round 2 \(round 3 runs next\), 3\/10 rounds done$/m);
  const listing = await roundlogJson<Listing>(['ls', '--root', root]);
  t.like(listing[0], { folder: 'Experiment_0000', roundCurrent: 4 });
});

test('rewind --round 2, then history (text, JSON, CSV), audit and resume all name round 2', async (t) => {
  const root = tempDir();
  await roundlogOk(t, ['run', EXAMPLE, '--rounds', '5', '--root', root]);
  const rewound = await roundlogOk(t, [
    'rewind',
    'Experiment_0000',
    '--round',
    '2',
    '--reason',
    'bad data',
    '--root',
    root,
  ]);
  t.regex(rewound.stdout, /^rewound Experiment_0000 to round 2 \(round 3 runs next\)$/m);
  const rewind = await roundlogJson<{ round: number }>([
    'rewind',
    'Experiment_0000',
    '--round',
    '1',
    '--reason',
    'worse data',
    '--root',
    root,
  ]);
  t.is(rewind.round, 1);

  const text = (await roundlogOk(t, ['history', 'Experiment_0000', '--root', root])).stdout;
  t.regex(text, / rewound +rewound to round 2 \(round 3 runs next\) by /);
  t.regex(text, / rewound +rewound to round 1 \(round 2 runs next\) by /);
  const json = await roundlogJson<HistoryJson>(['history', 'Experiment_0000', '--root', root]);
  const rewinds = json.entries.filter((e) => e.kind === 'rewound');
  t.deepEqual(
    rewinds.map((e) => [e.round, e.roundCurrent]),
    [
      [2, 3],
      [1, 2],
    ],
  );
  const csv = (await roundlogOk(t, ['history', 'Experiment_0000', '--csv', '--root', root])).stdout.trim().split('\n');
  const header = csv[0]!.split(',');
  const rows = csv.slice(1).map((line) => line.split(','));
  const kind = header.indexOf('kind');
  const round = header.indexOf('round');
  t.deepEqual(
    rows.filter((row) => row[kind] === 'rewound').map((row) => row[round]),
    ['2', '1'],
  );

  const audit = (await roundlogOk(t, ['audit', '--root', root])).stdout;
  t.regex(audit, / Rewound +to round 2 \(round 3 runs next\) by /);
  const auditJson = await roundlogJson<{ events: Array<{ type: string; round?: number | null }> }>([
    'audit',
    '--type',
    'Rewound',
    '--root',
    root,
  ]);
  t.deepEqual(
    auditJson.events.map((e) => [e.type, e.round]),
    [
      ['Rewound', 2],
      ['Rewound', 1],
    ],
  );
  const actions = (await roundlogOk(t, ['audit', 'actions', '--root', root])).stdout;
  t.regex(actions, /Rewound .*to round 2 \(round 3 runs next\)/);

  const resumed = await roundlogOk(t, ['resume', 'Experiment_0000', '--rounds', '1', '--root', root]);
  t.regex(resumed.stdout, /^resumed Experiment_0000 \(.*\) after round 1 \(round 2 runs next\)/m);
  t.regex(resumed.stdout, /^round 2 \(3\/10 done\) {2}nodes 3\/3 replied .*breakpoint_0002$/m);
  const after = await roundlogJson<HistoryJson>(['history', 'Experiment_0000', '--root', root]);
  const resume = after.entries.find((e) => e.kind === 'resumed')!;
  t.like(resume, { round: 1, roundCurrent: 2, breakpoint: 'breakpoint_0001' });
  const resumedText = (await roundlogOk(t, ['history', 'Experiment_0000', '--root', root])).stdout;
  t.regex(resumedText, / resumed +resumed after round 1 \(round 2 runs next\) from breakpoint_0001 by /);
});
