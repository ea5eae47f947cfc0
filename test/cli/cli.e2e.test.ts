/** The `roundlog` command against a real root: the demo as a real process, the other commands in process. */
import test from 'ava';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openRoundLog } from '../../src/index.ts';
import { roundlog, roundlogProcess } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

function blobFiles(root: string): string[] {
  const dir = path.join(root, 'blobs');
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /^[0-9a-f]{62}$/.test(e.name))
    .map((e) => path.join(e.parentPath, e.name));
}

type Listing = Array<{
  folder: string;
  roundCurrent: number;
  roundLimit: number;
  status: string;
  breakpoints: Array<{ round: number; path: string; paramsSha256: string }>;
}>;

test(
  'demo --synthetic: SIGKILL part-way, resume from the last ' +
    'breakpoint, identical to an uninterrupted run; then ls, verify',
  async (t) => {
    const root = tempDir();
    const demo = await roundlogProcess(['demo', '--synthetic', '--crash-after', '3'], { ROUNDLOG_DIR: root });
    t.is(demo.code, 0, demo.stderr + demo.stdout);
    t.regex(demo.stdout, /SIGKILL sent to pid \d+ after 3 committed rounds/);
    t.regex(demo.stdout, /after the crash: Experiment_0000 has 3 completed rounds/);
    t.regex(demo.stdout, /resumed Experiment_0000 \(.*\) after round 2 \(round 3 runs next\), 3\/10 rounds done/);
    t.regex(demo.stdout, /round 9 \(10\/10 done\) {2}nodes 3\/3 replied {2}loss \d\.\d{4}/);
    t.regex(demo.stdout, /crashed \+ resumed {2}[0-9a-f]{64} {2}identical, bit for bit/);
    t.regex(demo.stdout, /Resumed +after round 2 \(round 3 runs next\) from breakpoint_0002/);
    t.regex(demo.stdout, /├── breakpoint_0009\//);
    t.regex(demo.stdout, /└── tensorboard\/\n\s+└── events\.out\.tfevents\.\d+\.roundlog\.0\n/);

    const ls = await roundlog(['ls', '--json', '--root', root]);
    t.is(ls.code, 0, ls.stderr);
    const listing = JSON.parse(ls.stdout) as Listing;
    t.is(listing.length, 1);
    t.like(listing[0], { folder: 'Experiment_0000', roundCurrent: 10, roundLimit: 10, status: 'finished' });
    t.deepEqual(
      listing[0]!.breakpoints.map((b) => b.round),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    t.true(listing[0]!.breakpoints.every((b) => /^[0-9a-f]{64}$/.test(b.paramsSha256) && path.isAbsolute(b.path)));
    const table = await roundlog(['ls', '--root', root]);
    t.regex(table.stdout, /Experiment_0000 +[0-9a-f-]{36} +10\/10 +finished +10/);

    const healthy = await roundlog(['verify', '--root', root]);
    t.is(healthy.code, 0, healthy.stdout + healthy.stderr);
    t.regex(healthy.stdout, /0 problems[\s\S]*0 problems/);

    // A flipped byte in a blob is named by verify, which exits non-zero.
    const victim = blobFiles(root)[0]!;
    chmodSync(victim, 0o644);
    const bytes = readFileSync(victim);
    bytes[0] = bytes[0]! ^ 0xff;
    writeFileSync(victim, bytes);
    const damaged = await roundlog(['verify', '--root', root]);
    t.is(damaged.code, 1);
    t.true(damaged.stdout.includes(victim), damaged.stdout);
  },
);

test('run a definition module with --rounds, then resume an experiment folder to its limit', async (t) => {
  const root = tempDir();
  const run = await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '2', '--root', root]);
  t.is(run.code, 0, run.stderr);
  t.regex(run.stdout, /round 1 \(2\/10 done\) {2}nodes 3\/3 replied/);
  t.regex(run.stdout, /done: 2 rounds completed/);
  const resume = await roundlog(['resume', path.join(root, 'experiments', 'Experiment_0000'), '--root', root]);
  t.is(resume.code, 0, resume.stderr);
  t.regex(resume.stdout, /resumed Experiment_0000 .* after round 1 \(round 2 runs next\), 2\/10 rounds done/);
  t.regex(resume.stdout, /done: 10 rounds completed/);
  const events = await roundlog(['streams', '--json', '--root', root]);
  t.is(events.code, 0);
  t.is((JSON.parse(events.stdout) as unknown[]).length, 2, 'the registry stream and the experiment stream');
  // `events` takes an experiment as every other command names it, as well as a stream name.
  const byFolder = await roundlog(['events', 'Experiment_0000', '--limit', '1', '--json', '--root', root]);
  t.is(byFolder.code, 0, byFolder.stderr);
  const [created] = JSON.parse(byFolder.stdout) as Array<{ type: string; stream: string }>;
  t.is(created?.type, 'ExperimentCreated');
  t.regex(created?.stream ?? '', /^experiment-/);
});

test('usage errors exit 2 and say what to do; a missing stream is a clear error', async (t) => {
  const root = tempDir();
  await (await openRoundLog({ root })).close(); // an empty root: its marker, no experiment
  const unknown = await roundlog(['frobnicate', '--root', root]);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /unknown command "frobnicate"/);
  t.regex(unknown.stderr, /roundlog help/);
  const badCrash = await roundlog(['demo', '--crash-after', 'soon', '--root', root]);
  t.is(badCrash.code, 2);
  t.regex(badCrash.stderr, /--crash-after must be a positive integer \(got "soon"\)/);
  const missing = await roundlog(['events', 'nope', '--root', root]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /stream "nope" does not exist/);
  const nothing = await roundlog(['resume', '--root', root]);
  t.is(nothing.code, 1);
  t.regex(nothing.stderr, /no breakpoint/);
  const nowhere = path.join(root, 'no-such-root');
  for (const command of ['ls', 'verify', 'history Experiment_0000', 'gc --keep-last 1']) {
    const run = await roundlog([...command.split(' '), '--root', nowhere]);
    t.is(run.code, 1, command);
    t.regex(run.stderr, /there is no roundlog root at .*no-such-root; check --root or ROUNDLOG_DIR/, command);
  }
  t.false(existsSync(nowhere), 'a read command never creates the root');
  const help = await roundlog(['help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /Usage: roundlog <command>/);
});
