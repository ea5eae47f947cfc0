/**
 * Which folder is which is decided on resolved paths, never on the string typed: a root reached
 * through a symlinked path (`/scratch` -> `/lustre/...`, as on clusters) and an experiment folder
 * given through a symlink are the same folders as their real paths. With a real process that
 * committed a round and died before that round's breakpoint folder was written, resuming the
 * experiment folder by either path continues after the committed round and supersedes nothing.
 */
import test from 'ava';
import { cpSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Experiment } from '../../src/federated/experiment.ts';
import { listExperiments } from '../../src/cli/experiments.ts';
import { syntheticClinicalFederation } from '../../examples/logistic-regression/data.ts';
import { killSpawned, spawnTs } from '../support/child.ts';
import { roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const WORKSPACE = fileURLToPath(new URL('../..', import.meta.url));
const federation = syntheticClinicalFederation({ seed: 11 });

/**
 * A root where a real process committed rounds 0, 1 and 2 and died before round 2's folder was
 * written: while round 2 trains (at the child's gate), a non-empty folder is put where
 * `breakpoint_0002` goes, and a file where `superseded/` goes, so neither moving it aside nor
 * renaming the written folder into place works after the commit, and the process ends there. The
 * obstacles are then removed: the log has round 2, the folders end at round 1.
 */
async function crashedAfterCommit(root: string): Promise<string> {
  let experimentDir = '';
  const child = spawnTs('experiment-child.ts', ['run', root, '5', 'all', '6', 'gate'], (line, c) => {
    const created = /^created (\S+) /.exec(line);
    if (created !== null) experimentDir = path.join(root, 'experiments', created[1]!);
    const training = /^training (\d+) /.exec(line);
    if (training === null) return;
    if (Number(training[1]) === 2) {
      mkdirSync(path.join(experimentDir, 'breakpoint_0002'));
      writeFileSync(path.join(experimentDir, 'breakpoint_0002', 'obstacle'), '');
      // A folder in the way is moved aside into superseded/: a file there makes that fail too.
      writeFileSync(path.join(experimentDir, 'superseded'), '');
    }
    c.process.stdin!.write('\n');
  });
  const exited = await child.exited;
  if (exited.code !== 1 || !child.lines.includes('round 1 committed') || child.lines.includes('round 2 committed')) {
    throw new Error(`the child did not die in round 2's folder write: ${child.lines.join('\n')}\n${child.stderr()}`);
  }
  rmSync(path.join(experimentDir, 'breakpoint_0002'), { recursive: true });
  rmSync(path.join(experimentDir, 'superseded'));
  return experimentDir;
}

test(
  'a root through a symlinked path and an experiment folder through a symlink: ' +
    'resume never supersedes a committed round',
  async (t) => {
    const base = tempDir();
    const lustre = path.join(base, 'lustre');
    mkdirSync(lustre);
    const made = path.join(lustre, 'made');
    const experimentDir = await crashedAfterCommit(made);
    const name = path.basename(experimentDir);
    t.deepEqual(readdirSync(experimentDir).sort(), ['breakpoint_0000', 'breakpoint_0001', 'tensorboard']);
    t.deepEqual((await listExperiments(made))[0]!.missingBreakpoints, [2], 'round 2 is committed, its folder missing');

    // Three ways to name the same folders: the root through /scratch -> /lustre, the real experiment
    // folder under it; the real root and the experiment folder through a symlink; both through symlinks.
    const scratch = path.join(base, 'scratch');
    symlinkSync(lustre, scratch);
    const cases: Array<{ what: string; root: string; target: (root: string) => string }> = [
      {
        what: 'root through a symlinked path',
        root: 'via-scratch',
        target: (copy) => path.join(lustre, copy, 'experiments', name),
      },
      {
        what: 'experiment folder through a symlink',
        root: 'via-link',
        target: (copy) => {
          const link = path.join(base, `${copy}-link`);
          symlinkSync(path.join(lustre, copy, 'experiments', name), link);
          return link;
        },
      },
      {
        what: 'both',
        root: 'both',
        target: (copy) => {
          const link = path.join(base, `${copy}-link`);
          symlinkSync(path.join(scratch, copy, 'experiments', name), link);
          return link;
        },
      },
    ];
    for (const c of cases) {
      cpSync(made, path.join(lustre, c.root), { recursive: true });
      const useRoot =
        c.what === 'experiment folder through a symlink' ? path.join(lustre, c.root) : path.join(scratch, c.root);
      const resumed = await Experiment.loadBreakpoint(c.target(c.root), {
        root: useRoot,
        federation,
        workspace: WORKSPACE,
      });
      t.is(resumed.roundCurrent(), 3, `${c.what}: continues after the committed round 2`);
      t.deepEqual(resumed.state.superseded, [], `${c.what}: nothing superseded`);
      t.is(resumed.experimentationFolder(), name, `${c.what}: the folder is not taken for a renamed one`);
      await resumed.close();
      t.deepEqual(
        readdirSync(path.join(lustre, c.root, 'experiments', name)).sort(),
        ['breakpoint_0000', 'breakpoint_0001', 'breakpoint_0002', 'tensorboard'],
        `${c.what}: round 2's folder written, none moved aside`,
      );
    }
  },
);

test('replay --out through a symlink into the experiments folder is refused like the real path', async (t) => {
  const root = tempDir();
  const run = await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '1', '--root', root]);
  t.is(run.code, 0, run.stderr);
  const into = path.join(tempDir(), 'into-experiments');
  symlinkSync(path.join(root, 'experiments'), into);
  for (const out of [path.join(root, 'experiments', 'r0'), path.join(into, 'r0')]) {
    const replay = await roundlog(['replay', 'Experiment_0000', '--round', '0', '--out', out, '--root', root]);
    t.is(replay.code, 1, replay.stdout);
    t.regex(replay.stderr, /out must not be inside .*experiments/);
  }
  t.deepEqual(readdirSync(path.join(root, 'experiments')).sort(), ['Experiment_0000']);
});
