/**
 * What `project` reports comes from one view of the folders: the folders it says it wrote are those
 * it wrote, never a count taken before compared with one taken after; and the lag is said with the
 * number it takes (`round 1 has`, `rounds 1, 2 have`).
 */
import test from 'ava';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { roundlog } from '../support/cli.ts';
import { rootWithRounds } from '../support/rounds.ts';
import { removeTempDirs } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const cli = (root: string, ...args: string[]) => roundlog([...args, '--root', root]);

test('a folder of the right position but another experiment is moved aside, written and reported so', async (t) => {
  const { root, folder } = await rootWithRounds(3);
  const manifestFile = path.join(root, 'experiments', folder, 'breakpoint_0001', 'breakpoint.json');
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as Record<string, unknown>;
  writeFileSync(manifestFile, JSON.stringify({ ...manifest, experimentId: '00000000-0000-4000-8000-000000000000' }));

  const verified = await cli(root, 'verify');
  t.regex(verified.stdout, /projection lag: Experiment_0000 round 1 has no breakpoint folder yet/);

  const projected = await cli(root, 'project');
  t.is(projected.code, 0, projected.stdout);
  t.notRegex(projected.stdout, /problem/);
  t.regex(projected.stdout, /lag before: 1 breakpoint folder missing \(round 1\)/);
  t.regex(projected.stdout, /wrote {4}.*breakpoint_0001/);
  t.regex(projected.stdout, /moved aside .*breakpoint_0001\.1/);
  t.is(JSON.parse(readFileSync(manifestFile, 'utf8')).experimentId, manifest.experimentId);
});

test('verify says the lag of several rounds with the plural', async (t) => {
  const { root, folder } = await rootWithRounds(3);
  for (const round of ['0001', '0002'])
    rmSync(path.join(root, 'experiments', folder, `breakpoint_${round}`), { recursive: true });
  const verified = await cli(root, 'verify');
  t.regex(verified.stdout, /projection lag: Experiment_0000 rounds 1, 2 have no breakpoint folder yet/);
});
