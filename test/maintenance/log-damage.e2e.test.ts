/**
 * Damage of the file log through the `roundlog` command: stray bytes after the data of the active
 * segment are named exactly, read commands work, and only `verify --repair-tail` clears them.
 */
import test from 'ava';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { roundlog } from '../support/cli.ts';
import { dataEnd, flipByte, recordOffsets, segmentsOf, writeBytes } from '../support/segments.ts';
import { rootWithRounds } from '../support/rounds.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

/** Flips a byte in the body of the middle record of `segment`; returns the offset of that record. */
function damageMiddleRecord(segment: string): number {
  const offsets = recordOffsets(segment);
  const victim = offsets[Math.floor(offsets.length / 2)]!;
  flipByte(segment, victim + 20);
  return victim;
}

test('one stray byte after the log data: named at its offset, reads work, writes need --repair-tail', async (t) => {
  const { root, folder } = await rootWithRounds(3);
  const [segment] = segmentsOf(path.join(root, 'log')) as [string];
  const end = dataEnd(segment);
  const at = end + 700;
  t.true(statSync(segment).size > at, 'the writer zero-fills ahead of its data');
  writeBytes(segment, at, Buffer.from([0x01]));
  const env = { ROUNDLOG_DIR: root };

  const ls = await roundlog(['ls'], env);
  t.is(ls.code, 0, ls.stderr);
  t.regex(ls.stdout, new RegExp(folder));
  const history = await roundlog(['history', folder], env);
  t.is(history.code, 0, history.stderr);

  const verify = await roundlog(['verify'], env);
  t.is(verify.code, 1);
  t.regex(verify.stdout, new RegExp(`${path.basename(segment)} at byte ${at}: non-zero bytes`));
  t.regex(verify.stdout, new RegExp(`after the end of the data at byte ${end}`));
  t.regex(verify.stdout, /nothing committed is damaged/);
  t.regex(verify.stdout, /1 problem found/);

  const write = await roundlog(['gc', '--keep-last', '1'], env);
  t.is(write.code, 1);
  t.regex(write.stderr, new RegExp(`at byte offset ${at} `));
  t.regex(write.stderr, /verify --repair-tail/);

  const repair = await roundlog(['verify', '--repair-tail'], env);
  t.is(repair.code, 0, repair.stdout);
  t.regex(repair.stdout, /note: cut off \d+ bytes after the end of the data/);
  t.is(statSync(segment).size, end);
  const after = await roundlog(['gc', '--keep-last', '1'], env);
  t.is(after.code, 0, after.stderr);
  t.is((await roundlog(['verify'], env)).code, 0);
});

test('one damaged record in the history: verify reports that one problem and names the experiment', async (t) => {
  const { root, folder } = await rootWithRounds(4);
  const [segment] = segmentsOf(path.join(root, 'log')) as [string];
  const victim = damageMiddleRecord(segment);

  const verify = await roundlog(['verify'], { ROUNDLOG_DIR: root });
  t.is(verify.code, 1);
  t.regex(verify.stdout, new RegExp(`${path.basename(segment)} at byte ${victim}: record body checksum mismatch`));
  t.regex(verify.stdout, new RegExp(`note: ${folder}: its history cannot be read past the damaged log record`));
  t.regex(verify.stdout, /\n1 problem found\n/, verify.stdout);
});

test(
  'damage in the middle of a history with a snapshot after it: ls shows the experiment damaged, ' +
    'resume refuses naming the record and appends nothing',
  async (t) => {
    const root = tempDir();
    const env = { ROUNDLOG_DIR: root };
    const run = await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '4'], env);
    t.is(run.code, 0, run.stderr);
    t.is(readdirSync(path.join(root, 'snapshots')).length, 1, 'closing the run wrote a snapshot of its state');
    const [segment] = segmentsOf(path.join(root, 'log')) as [string];
    const victim = damageMiddleRecord(segment);

    const ls = await roundlog(['ls'], env);
    t.is(ls.code, 0, ls.stderr);
    t.regex(ls.stdout, /Experiment_0000 +\S+ +\? +damaged /);
    t.regex(
      ls.stdout,
      new RegExp(`Experiment_0000: its history is damaged at .*${path.basename(segment)} byte ${victim} `),
    );
    const listing = JSON.parse((await roundlog(['ls', '--json'], env)).stdout) as Array<{
      status: string;
      damage: { file: string; offset: number } | null;
    }>;
    t.is(listing[0]!.status, 'damaged');
    t.deepEqual({ ...listing[0]!.damage, reason: undefined }, { file: segment, offset: victim, reason: undefined });

    const before = recordOffsets(segment).length;
    const resume = await roundlog(['resume', path.join(root, 'experiments', 'Experiment_0000'), '--rounds', '1'], env);
    t.is(resume.code, 1);
    // The experiment named and what to do, never a bare CORRUPT_LOG (the resolver reads histories first).
    t.regex(resume.stderr, /the history of experiment Experiment_0000 .* is damaged/);
    t.regex(resume.stderr, /restore that file from a backup, or run 'roundlog verify'/);
    t.notRegex(resume.stderr, /corrupt log record/);
    t.regex(resume.stderr, new RegExp(`${path.basename(segment)} at byte offset ${victim}`));
    t.is(recordOffsets(segment).length, before, 'nothing was appended after the damage');
    const last = await roundlog(['resume', '--rounds', '1'], env);
    t.is(last.code, 1, 'resume of the last experiment refuses too');
    t.regex(last.stderr, /the history of experiment Experiment_0000 .* is damaged/);
    t.is(recordOffsets(segment).length, before);
  },
);

const NAMED_DAMAGE =
  'a damaged history named by its folder is EXPERIMENT_HISTORY_DAMAGED naming it; the others stay reachable';

test(NAMED_DAMAGE, async (t) => {
  const root = tempDir();
  const env = { ROUNDLOG_DIR: root };
  for (let i = 0; i < 2; i++) {
    const run = await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '2'], env);
    t.is(run.code, 0, run.stderr);
  }
  const segment = path.join(
    root,
    'log',
    readdirSync(path.join(root, 'log')).find((n) => n.endsWith('.seg'))!,
  );
  // A record of the first experiment's history (its stream is written before anything of the second).
  const victim = recordOffsets(segment)[3]!;
  flipByte(segment, victim + 20);

  for (const name of ['Experiment_0000', path.join(root, 'experiments', 'Experiment_0000', 'breakpoint_0001')]) {
    for (const args of [
      ['history', name],
      ['audit', 'rounds', name],
      ['resume', name, '--rounds', '1'],
    ]) {
      const refused = await roundlog(args, env);
      t.is(refused.code, 1, args.join(' '));
      t.regex(refused.stderr, /the history of experiment Experiment_0000 .* is damaged/, args.join(' '));
      t.regex(refused.stderr, new RegExp(`${path.basename(segment)} at byte offset ${victim}`), args.join(' '));
    }
  }
  // The other experiment is still named by its folder, past the damaged one.
  const other = await roundlog(['history', 'Experiment_0001'], env);
  t.is(other.code, 0, other.stderr);
  const ls = await roundlog(['ls', '--json'], env);
  t.is(ls.code, 0, ls.stderr);
  t.deepEqual(
    (JSON.parse(ls.stdout) as Array<{ status: string }>).map((e) => e.status === 'damaged'),
    [true, false],
  );
});
