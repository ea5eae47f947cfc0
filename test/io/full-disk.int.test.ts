/**
 * A completely full file system (a real tmpfs filled to the last byte): every write roundlog does
 * fails with a `StorageWriteError` naming the file and saying what to do, leaves no stray file
 * behind, and loses nothing committed before.
 */
import test from 'ava';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { StorageWriteError } from '../../src/errors.ts';
import { openFileEventLog } from '../../src/log/file/index.ts';
import { projectExperiment } from '../../src/projections/breakpoints/index.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { roundlog } from '../support/cli.ts';
import { mountTmpfs, type Tmpfs } from '../support/tmpfs.ts';

const mounted = mountTmpfs(16 * 1024 * 1024);
const fs: Tmpfs | null = typeof mounted === 'string' ? null : mounted;
const skip = typeof mounted === 'string' ? mounted : null;

test.after.always(() => fs?.unmount());

const full = skip === null ? test.serial : test.serial.skip;
if (skip !== null) test.serial(`(skipped: ${skip})`, (t) => t.pass());

full(
  'opening a file log on a full disk fails with StorageWriteError ENOSPC, no stray lock file, nothing lost',
  async (t) => {
    const dir = path.join(fs!.dir, 'log');
    const log = await openFileEventLog({ dir });
    await log.append('s', [{ type: 'Kept', data: { i: 1 } }]);
    await log.close();
    fs!.fill();
    try {
      const error = await t.throwsAsync(openFileEventLog({ dir }));
      t.true(error instanceof StorageWriteError, String(error));
      const typed = error as StorageWriteError;
      t.is(typed.code, 'STORAGE_WRITE_FAILED');
      t.is(typed.errno, 'ENOSPC');
      t.regex(typed.message, /LOCK/);
      t.regex(typed.message, /full/);
      t.deepEqual(
        readdirSync(dir).filter((name) => name.startsWith('LOCK')),
        [],
      );
    } finally {
      fs!.unfill();
    }
    const again = await openFileEventLog({ dir, readOnly: true });
    const { events } = await again.readStream('s');
    await again.close();
    t.deepEqual(
      events.map((event) => event.type),
      ['Kept'],
    );
  },
);

const params = (i: number) => ({
  w: { dtype: 'float32' as const, shape: [3], data: new Float32Array([i, i + 1, i + 2]) },
});

full(
  'a breakpoint folder and a snapshot written on a full disk fail with StorageWriteError naming the file; ' +
    'no temp left, nothing lost',
  async (t) => {
    const root = path.join(fs!.dir, 'root');
    const rl = await openRoundLog({ root });
    const experiment = await rl.createExperiment({ config: { name: 'full' } });
    await experiment.recordRound({ params: params(0), metrics: { loss: 1 }, breakpoint: true });
    const experiments = path.join(root, 'experiments');
    const folder = path.join(experiments, experiment.state.folder);
    const ctx = { experimentsDir: experiments, blobs: rl.blobs };
    await projectExperiment(ctx, experiment.state);
    t.true(existsSync(path.join(folder, 'breakpoint_0000')));
    rmSync(path.join(folder, 'breakpoint_0000'), { recursive: true });
    fs!.fill();
    try {
      const error = await t.throwsAsync(projectExperiment(ctx, experiment.state));
      t.true(error instanceof StorageWriteError, String(error));
      const typed = error as StorageWriteError;
      t.is(typed.errno, 'ENOSPC');
      // Either the folder itself, or, first, the projection lock its writer takes (a file too).
      t.regex(typed.file, /breakpoint|\.projection-lock/);
      t.regex(typed.message, /breakpoint folder|projection lock/);
      // The round's TensorBoard run, written when it committed, and nothing else.
      t.deepEqual(readdirSync(folder), ['tensorboard'], 'no temp folder left, no half folder');
      t.deepEqual(
        readdirSync(experiments).filter((name) => name.startsWith('.')),
        [],
        'no lock file and no pending lock file left',
      );

      const snapshotError = await t.throwsAsync(experiment.snapshot());
      t.true(snapshotError instanceof StorageWriteError, String(snapshotError));
      const snap = snapshotError as StorageWriteError;
      t.is(snap.errno, 'ENOSPC');
      t.regex(snap.file, /\.snap$/);
      t.regex(snap.message, /snapshot/);
      t.deepEqual(
        readdirSync(path.join(root, 'snapshots')).filter((name) => name.endsWith('.tmp')),
        [],
      );
    } finally {
      fs!.unfill();
    }
    // Nothing committed was lost: with space again, the folder is written and the round reads back.
    t.deepEqual(await projectExperiment(ctx, experiment.state), { written: 1, writtenRounds: [0], failed: [] });
    t.deepEqual((await experiment.loadRound(0)).params, params(0));
    await rl.close();
  },
);

full('a command on a full disk exits 1 with the typed message naming the file, and leaves no stray file', async (t) => {
  const root = path.join(fs!.dir, 'cli-root');
  const rl = await openRoundLog({ root });
  const experiment = await rl.createExperiment({ config: { name: 'cli' } });
  await experiment.recordRound({ params: params(0), metrics: { loss: 1 } });
  await rl.close();
  const before = readdirSync(path.join(root, 'log')).sort();
  fs!.fill();
  try {
    const run = await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '1', '--root', root]);
    t.is(run.code, 1, run.stderr);
    t.regex(run.stderr, /^roundlog: .*failed.*ENOSPC.*free (disk )?space/);
    t.notRegex(run.stderr, /\n\s+at /, 'no stack trace');
    t.deepEqual(readdirSync(path.join(root, 'log')).sort(), before);
  } finally {
    fs!.unfill();
  }
  const run = await roundlog(['ls', '--root', root, '--json']);
  t.is(run.code, 0, run.stderr);
  // The experiment committed before is whole: its round is there.
  const listed = JSON.parse(run.stdout) as Array<{ folder: string; roundCurrent: number }>;
  t.deepEqual(listed.find((entry) => entry.folder === experiment.state.folder)?.roundCurrent, 1);
});
