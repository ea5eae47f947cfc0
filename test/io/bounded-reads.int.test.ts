/**
 * Reads of a root's own files (blobs, snapshots, log index and heads files, the projection
 * checkpoint, the writer lock) are bounded and only from regular files: a file replaced by a
 * symlink to /dev/zero is never read without limit. The projection checkpoint is refused with a
 * typed error; a snapshot, an index or the heads file (caches) count as damaged and are read past.
 */
import test from 'ava';
import { lstatSync, mkdirSync, readdirSync, rmSync, symlinkSync, truncateSync } from 'node:fs';
import path from 'node:path';
import { LinkTargetExistsError } from '../../src/blobs/errors.ts';
import { openFileBlobStore } from '../../src/blobs/file.ts';
import { getInMemoryBlobStore } from '../../src/blobs/memory.ts';
import { FileTooLargeError, NotARegularFileError } from '../../src/confine.ts';
import { loadProjectionCheckpoint, readProjectionCheckpoint } from '../../src/engine/project.ts';
import { readSnapshot, snapshotFile } from '../../src/engine/snapshots.ts';
import { openFileEventLog, type FileLogWarning } from '../../src/log/file/index.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { rootLayout } from '../../src/root.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

/** Replaces `file` with a symlink to /dev/zero, a file without end. */
function endless(file: string): void {
  rmSync(file, { force: true });
  mkdirSync(path.dirname(file), { recursive: true });
  symlinkSync('/dev/zero', file);
}

/** Runs `read` and checks the process grew by less than 64 MiB meanwhile. */
async function bounded<T>(t: import('ava').ExecutionContext, read: () => Promise<T>): Promise<T> {
  const before = process.memoryUsage().rss;
  try {
    return await read();
  } finally {
    t.true(process.memoryUsage().rss - before < 64 * 1024 * 1024, 'memory stays bounded');
  }
}

test('a blob file replaced by a symlink to /dev/zero, or grown past its recorded size, is refused typed', async (t) => {
  const dir = tempDir();
  const blobs = await openFileBlobStore({ dir });
  const { ref } = await blobs.put(Buffer.from('some bytes'));
  const file = blobs.fileOf(ref.sha256)!;
  truncateSync(file, ref.bytes + 1024 * 1024);
  const large = await t.throwsAsync(blobs.get(ref));
  t.true(large instanceof FileTooLargeError, String(large));
  endless(file);
  const error = await bounded(t, () => t.throwsAsync(blobs.get(ref)));
  t.true(error instanceof NotARegularFileError, String(error));
  t.is((error as NotARegularFileError).file, file);
  await blobs.close();
});

test('a snapshot or the projection checkpoint as a symlink to /dev/zero is not used, never read', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const experiment = await rl.createExperiment({ config: { name: 'x' } });
  await experiment.snapshot();
  await rl.close();
  const snap = snapshotFile(root, experiment.id);
  endless(snap);
  t.is(await bounded(t, () => readSnapshot(root, experiment.id, experiment.stream)), null);

  const checkpoint = rootLayout(root).projectionCheckpoint;
  endless(checkpoint);
  t.is(await bounded(t, () => readProjectionCheckpoint(root)), null);
  t.like(await bounded(t, () => loadProjectionCheckpoint(root)), { kind: 'damaged', file: checkpoint });
});

test('an index or heads file as a symlink to /dev/zero is read past, a writer replaces it; a LOCK too', async (t) => {
  const dir = tempDir();
  const log = await openFileEventLog({ dir, segmentBytes: 4096 });
  for (let i = 0; i < 60; i++) await log.append(`s${i % 3}`, [{ type: 'T', data: { i, text: 'x'.repeat(100) } }]);
  await log.close();
  const names = readdirSync(dir);
  const index = names.find((name) => name.endsWith('.idx'))!;
  t.truthy(index);
  t.true(names.includes('heads.ckpt'));

  const readAll = async (options: { readOnly?: boolean } = {}) => {
    const warnings: FileLogWarning[] = [];
    const reader = await bounded(t, () =>
      openFileEventLog({ dir, readOnly: options.readOnly ?? true, onWarning: (w) => warnings.push(w) }),
    );
    try {
      return { count: (await reader.readAll()).events.length, warnings: warnings.map((w) => w.code) };
    } finally {
      await reader.close();
    }
  };
  endless(path.join(dir, 'heads.ckpt'));
  t.deepEqual(await readAll(), { count: 60, warnings: ['INDEX_REBUILT'] });
  endless(path.join(dir, index));
  t.like(await readAll(), { count: 60 });
  t.true(lstatSync(path.join(dir, index)).isSymbolicLink(), 'a reader replaces nothing');
  t.like(await readAll({ readOnly: false }), { count: 60 });
  t.true(lstatSync(path.join(dir, index)).isFile(), 'a writer writes the index again');
  t.false(lstatSync(path.join(dir, 'heads.ckpt'), { throwIfNoEntry: false })?.isSymbolicLink() ?? false);

  endless(path.join(dir, 'LOCK'));
  const warnings: FileLogWarning[] = [];
  const reopened = await bounded(t, () => openFileEventLog({ dir, onWarning: (w) => warnings.push(w) }));
  t.deepEqual(
    warnings.map((w) => w.code),
    ['STALE_LOCK_RECLAIMED'],
  );
  t.is((await reopened.readStream('s0')).events.length, 20);
  await reopened.close();
});

test('linking a blob of the in-memory store over a symlink to /dev/zero refuses it as other contents', async (t) => {
  const store = getInMemoryBlobStore();
  const { ref } = await store.put(Buffer.from('bytes to link'));
  const target = path.join(tempDir(), 'linked.bin');
  endless(target);
  const error = await bounded(t, () => t.throwsAsync(store.link(ref.sha256, target)));
  t.true(error instanceof LinkTargetExistsError, String(error));
});
