/**
 * The projection lock on real files (src/engine/projection-lock.ts): waited for, then a typed error
 * naming the lock file and its holder; a lock of a dead process taken over; re-entrant within one
 * call chain; calls of one process one after the other; gone once released.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProjectionLockedError, withProjectionLock } from '../../src/engine/projection-lock.ts';
import { PROJECTION_LOCK_FILE } from '../../src/root.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

/** The pid of a process that has exited (and been reaped). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

test('a lock held on another host is waited for, then ProjectionLockedError names the lock file, holder', async (t) => {
  const dir = tempDir();
  const lockFile = path.join(dir, PROJECTION_LOCK_FILE);
  const holder = { pid: 4242, host: 'elsewhere.example', since: '2026-01-02T03:04:05.000Z', start: null, token: 't' };
  writeFileSync(lockFile, JSON.stringify(holder));
  let ran = false;
  const error = await t.throwsAsync(
    withProjectionLock(dir, async () => void (ran = true), 30),
    { instanceOf: ProjectionLockedError },
  );
  t.false(ran, 'nothing is written without the lock');
  t.is(error.code, 'PROJECTION_LOCKED');
  t.is(error.lockFile, lockFile);
  t.is(error.pid, 4242);
  t.is(error.host, 'elsewhere.example');
  t.true(error.waitedMs >= 30);
  t.true(error.message.includes(lockFile) && error.message.includes('elsewhere.example'));
  t.true(existsSync(lockFile), "another host's lock is never taken over");
});

test('a lock left by a process gone from this host is taken over, and gone once released', async (t) => {
  const dir = tempDir();
  const lockFile = path.join(dir, PROJECTION_LOCK_FILE);
  const holder = { pid: deadPid(), host: os.hostname(), since: '2026-01-02T03:04:05.000Z', start: null, token: 't' };
  writeFileSync(lockFile, JSON.stringify(holder));
  t.is(await withProjectionLock(dir, async () => 'written', 1000), 'written');
  t.deepEqual(readdirSync(dir), [], 'neither the lock nor a candidate is left');
});

test('re-entrant within one call chain; calls of one process run one after the other', async (t) => {
  const dir = tempDir();
  t.is(await withProjectionLock(dir, () => withProjectionLock(dir, async () => 'nested', 50), 50), 'nested');
  let inside = 0;
  let most = 0;
  const order: number[] = [];
  await Promise.all(
    [0, 1, 2, 3].map((i) =>
      withProjectionLock(dir, async () => {
        most = Math.max(most, ++inside);
        // Let the others run if they could: they must not enter meanwhile.
        for (let k = 0; k < 5; k++) await new Promise((resolve) => setImmediate(resolve));
        order.push(i);
        inside--;
      }),
    ),
  );
  t.is(most, 1, 'never two holders at once');
  t.deepEqual(order, [0, 1, 2, 3], 'in the order they asked');
  t.deepEqual(readdirSync(dir), []);
});
