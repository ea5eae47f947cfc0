/**
 * `resume` past round 9,999, through the CLI: with no path, with an experiment folder, and with a
 * copy of that folder imported into another root, "the latest breakpoint" is round 10,000, not
 * `breakpoint_9999` (which text order would put last). The history of 10,001 rounds is round 0
 * run for real, then 10,000 copies of it appended as events (not 10,000 rounds run).
 */
import test from 'ava';
import { cpSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { ExperimentEvent, RoundCompleted } from '../../src/model/index.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const LAST = 10000;

/** A root whose Experiment_0000 has rounds 0..10,000, breakpoints at 0, 9,999 and 10,000, limit 10,003. */
async function rootPast9999(): Promise<string> {
  const root = tempDir();
  const run = await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '1', '--root', root]);
  if (run.code !== 0) throw new Error(run.stderr);
  const rl = await openRoundLog({ root });
  const handle = await rl.openExperiment('Experiment_0000');
  const first = handle.state.rounds[0]!;
  const events: ExperimentEvent[] = [{ type: 'SettingsChanged', data: { v: 1, roundLimit: LAST + 3, by: rl.actor } }];
  for (let round = 1; round <= LAST; round++) {
    const data: RoundCompleted = {
      v: 1,
      round,
      attempt: 1,
      params: first.params,
      state: first.state,
      nodes: first.nodes,
      metrics: first.metrics,
      breakpoint: round >= LAST - 1,
      durationMs: 0,
    };
    events.push({ type: 'RoundCompleted', data });
  }
  for (let start = 0; start < events.length; start += 2500) await handle.append(events.slice(start, start + 2500));
  await rl.close();
  return root;
}

function breakpoints(folder: string): string[] {
  return readdirSync(folder).filter((name) => name.startsWith('breakpoint_'));
}

test('resume with no path and resume of the experiment folder continue from round 10,000', async (t) => {
  const root = await rootPast9999();
  const folder = path.join(root, 'experiments', 'Experiment_0000');
  t.deepEqual(breakpoints(folder).sort(), ['breakpoint_0000', 'breakpoint_10000', 'breakpoint_9999']);

  const noPath = await roundlog(['resume', '--rounds', '1', '--root', root]);
  t.is(noPath.code, 0, noPath.stderr);
  t.regex(
    noPath.stdout,
    /resumed Experiment_0000 .* after round 10000 \(round 10001 runs next\), 10001\/10003 rounds done/,
  );
  t.regex(noPath.stdout, /breakpoint \S*breakpoint_10001\n/);

  const byFolder = await roundlog(['resume', folder, '--rounds', '1', '--root', root]);
  t.is(byFolder.code, 0, byFolder.stderr);
  t.regex(
    byFolder.stdout,
    /resumed Experiment_0000 .* after round 10001 \(round 10002 runs next\), 10002\/10003 rounds done/,
  );

  const ls = await roundlog(['ls', '--json', '--root', root]);
  t.is(ls.code, 0, ls.stderr);
  const [listed] = JSON.parse(ls.stdout) as Array<{ breakpoints: Array<{ round: number }> }>;
  t.deepEqual(
    listed!.breakpoints.map((b) => b.round),
    [0, 9999, 10000, 10001, 10002],
  );
});

test('a copied experiment folder past round 9,999, imported elsewhere, continues from round 10,000', async (t) => {
  const root = await rootPast9999();
  const copy = path.join(tempDir(), 'carried');
  cpSync(path.join(root, 'experiments', 'Experiment_0000'), copy, { recursive: true });
  rmSync(root, { recursive: true, force: true });
  const other = tempDir();
  await (await openRoundLog({ root: other })).close(); // an empty root
  const resume = await roundlog(['resume', copy, '--rounds', '1', '--root', other]);
  t.is(resume.code, 0, resume.stderr);
  t.regex(resume.stdout, /after round 10000 \(round 10001 runs next\), 10001\/10003 rounds done/);
});
