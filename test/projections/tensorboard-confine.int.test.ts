/**
 * The TensorBoard projection writes only inside the root: a `tensorboard/` folder (or its
 * `superseded/` area, or a run's folder) that is a symbolic link is never followed (nothing written
 * or removed where it points), `verify` names it, `project` fails on it, and `project --rebuild` /
 * `verify --repair` replace the link itself by a real folder. A regular file in place of the folder
 * is named as a file, fails `project`, `project --rebuild`, `verify` and `verify --repair` (exit 1),
 * and is never removed.
 */
import test from 'ava';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { openRoundLog, rewindExperiment } from '../../src/projections/index.ts';
import { roundlog } from '../support/cli.ts';
import { tensors } from '../support/rounds.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

/** A root with one experiment of `rounds` rounds, its `tensorboard/` folder replaced by `replace`. */
async function rootWith(rounds: number, replace: (tensorboard: string) => void, rewindTo?: number) {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const handle = await rl.createExperiment({ roundLimit: 20 });
  for (let r = 0; r < rounds; r++) await handle.recordRound({ params: tensors(r), metrics: { loss: 1 / (r + 1) } });
  if (rewindTo !== undefined) await rewindExperiment(rl, handle.state.folder, { round: rewindTo, reason: 'test' });
  const tensorboard = path.join(root, 'experiments', handle.state.folder, 'tensorboard');
  replace(tensorboard);
  await rl.close();
  return { root, tensorboard, folder: handle.state.folder };
}

/** A folder outside the root holding a file named as this projection names its event files. */
function outside(): { dir: string; foreign: string } {
  const dir = tempDir('roundlog-outside-');
  const foreign = path.join(dir, 'events.out.tfevents.1.roundlog.7');
  writeFileSync(foreign, 'not yours');
  return { dir, foreign };
}

const cli = (root: string, ...args: string[]) => roundlog([...args, '--root', root]);

test('a tensorboard folder that is a symlink out of the root is never written through', async (t) => {
  const out = outside();
  const { root, tensorboard } = await rootWith(0, (dir) => {
    mkdirSync(path.dirname(dir), { recursive: true });
    symlinkSync(out.dir, dir);
  });
  const rl = await openRoundLog({ root });
  const handle = await rl.openExperiment('Experiment_0000');
  // Rounds committed after the link is there: their projection must not follow it either.
  await handle.recordRound({ params: tensors(0), metrics: { loss: 1 } });
  await rl.close();
  t.deepEqual(readdirSync(out.dir), [path.basename(out.foreign)], 'nothing written outside by the round');

  const verified = await cli(root, 'verify');
  t.is(verified.code, 1, verified.stdout);
  t.true(verified.stdout.includes(tensorboard), verified.stdout);
  t.regex(verified.stdout, /symbolic link/);

  const projected = await cli(root, 'project');
  t.is(projected.code, 1, projected.stdout);
  t.regex(projected.stdout + projected.stderr, /symbolic link/);
  t.deepEqual(readdirSync(out.dir), [path.basename(out.foreign)], 'nothing written or removed outside');
  t.is(readFileSync(out.foreign, 'utf8'), 'not yours');

  const rebuilt = await cli(root, 'project', '--rebuild');
  t.is(rebuilt.code, 0, rebuilt.stdout + rebuilt.stderr);
  t.true(lstatSync(tensorboard).isDirectory(), 'the link replaced by a real folder');
  t.is(readdirSync(tensorboard).filter((n) => n.includes('tfevents')).length, 1);
  t.deepEqual(readdirSync(out.dir), [path.basename(out.foreign)], 'what the link pointed to is untouched');
  t.is((await cli(root, 'verify')).code, 0);
});

test('a superseded area or a rewind run folder that is a symlink is not followed; repair replaces it', async (t) => {
  for (const which of ['superseded', 'run'] as const) {
    const out = outside();
    const { root, tensorboard } = await rootWith(
      4,
      (dir) => {
        const area = path.join(dir, 'superseded');
        if (which === 'superseded') {
          for (const name of readdirSync(area)) mkdirSync(path.join(out.dir, name));
          // The area replaced by a link to a folder outside holding a run folder of the same name.
          rmSync(area, { recursive: true });
          symlinkSync(out.dir, area);
        } else {
          const [run] = readdirSync(area);
          rmSync(path.join(area, run!), { recursive: true });
          symlinkSync(out.dir, path.join(area, run!));
        }
      },
      1,
    );
    const projected = await cli(root, 'project');
    t.is(projected.code, 1, `${which}: ${projected.stdout}`);
    const verified = await cli(root, 'verify');
    t.is(verified.code, 1, `${which}: ${verified.stdout}`);
    t.regex(verified.stdout, /symbolic link/);
    t.true(readdirSync(out.dir).includes(path.basename(out.foreign)), `${which}: foreign file kept`);
    t.false(
      readdirSync(out.dir, { recursive: true }).some(
        (n) => String(n).includes('tfevents') && !String(n).endsWith('.7'),
      ),
      `${which}: no event file written outside`,
    );
    const repaired = await cli(root, 'verify', '--repair');
    t.is(repaired.code, 0, `${which}: ${repaired.stdout}`);
    t.true(lstatSync(path.join(tensorboard, 'superseded')).isDirectory());
    t.is(readFileSync(out.foreign, 'utf8'), 'not yours');
  }
});

test('a regular file in place of the tensorboard folder: named as a file, every command exits 1, kept', async (t) => {
  const { root, tensorboard } = await rootWith(3, (dir) => {
    rmSync(dir, { recursive: true });
    writeFileSync(dir, 'my notes');
  });
  const projected = await cli(root, 'project');
  t.is(projected.code, 1);
  t.regex(projected.stdout, /is a regular file, not a folder/);
  t.notRegex(projected.stdout, /EEXIST/);
  const rebuilt = await cli(root, 'project', '--rebuild');
  t.is(rebuilt.code, 1, rebuilt.stdout);
  t.regex(rebuilt.stdout, /is a regular file, not a folder/);
  const verified = await cli(root, 'verify');
  t.is(verified.code, 1, verified.stdout);
  t.regex(verified.stdout, /a regular file, not a folder/);
  t.regex(verified.stdout, /^tensorboard: 0 event files checked, 1 problem$/m);
  const repaired = await cli(root, 'verify', '--repair');
  t.is(repaired.code, 1, repaired.stdout);
  const notHealed = repaired.stdout.split('\n').find((line) => line.startsWith('not healed: '));
  t.truthy(notHealed, repaired.stdout);
  t.is(notHealed!.split(tensorboard).length - 1, 1, `the line names the path once: ${notHealed}`);
  t.is(readFileSync(tensorboard, 'utf8'), 'my notes', 'the file is the user’s: kept');
  t.true(existsSync(tensorboard));
});
