/**
 * Temp files of the projection checkpoint left by followers that died before renaming them are
 * removed when a follower starts; those of live processes are kept (they may be renaming theirs).
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { followProjection } from '../../src/projections/index.ts';
import { rootLayout } from '../../src/root.ts';
import { rootWithRounds } from '../support/rounds.ts';
import { removeTempDirs } from '../support/tmp.ts';

test.after.always(removeTempDirs);

test('project --follow removes the checkpoint temp files of dead followers, never a live one', async (t) => {
  const { root } = await rootWithRounds(1);
  const checkpoint = rootLayout(root).projectionCheckpoint;
  const dead = Number(
    spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout,
  );
  const deadTemp = `${checkpoint}.${dead}.0f6c1a52-2b9e-4c1d-9a53-6f0d5c1e2a11.tmp`;
  const liveTemp = `${checkpoint}.${process.pid}.7d2b9c44-1e3f-4a6b-8c5d-2e9f0a1b3c4d.tmp`;
  writeFileSync(deadTemp, '{}');
  writeFileSync(liveTemp, '{}');
  const controller = new AbortController();
  await followProjection({
    root,
    signal: controller.signal,
    onUpdate: (update) => {
      if (update.kind === 'caughtUp') controller.abort();
    },
  });
  t.false(existsSync(deadTemp), `${path.basename(deadTemp)} of a dead process is removed`);
  t.true(existsSync(liveTemp), 'the temp file of a live process is kept');
  t.true(existsSync(checkpoint), 'the checkpoint is written');
});
