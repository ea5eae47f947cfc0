/**
 * The breakpoint projection writes only inside the root: a breakpoint folder, the experiment's
 * `superseded/` area or a replay's folder that is a symbolic link out of the root is never written
 * through (nothing changed where it points); verify names it; project moves a linked breakpoint
 * folder aside as the link it is and writes the real folder.
 */
import test from 'ava';
import {
  cpSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { roundlog } from '../support/cli.ts';
import { rootWithRounds } from '../support/rounds.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const cli = (root: string, ...args: string[]) => roundlog([...args, '--root', root]);

test('a breakpoint folder that is a symlink out of the root is not written through; it is put aside', async (t) => {
  const { root, folder } = await rootWithRounds(3);
  const dir = path.join(root, 'experiments', folder);
  const outside = tempDir('roundlog-outside-');
  const copy = path.join(outside, 'copy');
  // A copy of round 1's folder outside the root, its parameters not the round's, linked in its place.
  cpSync(path.join(dir, 'breakpoint_0001'), copy, { recursive: true });
  const params = readdirSync(copy).find((n) => n.startsWith('params'))!;
  writeFileSync(path.join(copy, params), 'not the parameters');
  renameSync(path.join(dir, 'breakpoint_0001'), path.join(outside, 'original'));
  symlinkSync(copy, path.join(dir, 'breakpoint_0001'));

  const verified = await cli(root, 'verify');
  t.is(verified.code, 1, verified.stdout);
  t.regex(verified.stdout, /breakpoint_0001.*symbolic link/);

  const projected = await cli(root, 'project');
  t.is(projected.code, 0, projected.stdout + projected.stderr);
  t.is(readFileSync(path.join(copy, params), 'utf8'), 'not the parameters', 'nothing written outside');
  t.true(lstatSync(path.join(dir, 'breakpoint_0001')).isDirectory(), 'the real folder written');
  t.true(lstatSync(path.join(dir, 'superseded', 'breakpoint_0001.1')).isSymbolicLink(), 'the link kept aside');
});

test('a superseded/ area that is a symlink out of the root: nothing is moved through it', async (t) => {
  const { root, folder } = await rootWithRounds(3);
  const dir = path.join(root, 'experiments', folder);
  const outside = tempDir('roundlog-outside-');
  symlinkSync(outside, path.join(dir, 'superseded'));
  // A folder the projection moves aside: one of another history.
  mkdirSync(path.join(dir, 'breakpoint_0007'));
  writeFileSync(path.join(dir, 'breakpoint_0007', 'breakpoint.json'), '{}');

  const verified = await cli(root, 'verify');
  t.is(verified.code, 1, verified.stdout);
  t.regex(verified.stdout, /superseded.*symbolic link/);
  const projected = await cli(root, 'project');
  t.is(projected.code, 1, projected.stdout);
  t.regex(projected.stdout + projected.stderr, /symbolic link/);
  t.deepEqual(readdirSync(outside), [], 'nothing moved out of the root');
  t.true(lstatSync(path.join(dir, 'breakpoint_0007')).isDirectory());
});

test('a replay folder that is a symlink out of the root is not written through', async (t) => {
  const { root, folder } = await rootWithRounds(3);
  const outside = tempDir('roundlog-outside-');
  mkdirSync(path.join(root, 'replays'), { recursive: true });
  symlinkSync(outside, path.join(root, 'replays', folder));
  const replayed = await cli(root, 'replay', folder, '--round', '1');
  t.is(replayed.code, 1, replayed.stdout + replayed.stderr);
  t.regex(replayed.stderr + replayed.stdout, /symbolic link/);
  t.deepEqual(readdirSync(outside), [], 'nothing written out of the root');
});
