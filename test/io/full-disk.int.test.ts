/**
 * A completely full file system (a real tmpfs filled to the last byte): every write roundlog does
 * fails with a `StorageWriteError` naming the file and saying what to do, leaves no stray file
 * behind, and loses nothing committed before.
 */
import test from 'ava';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { StorageWriteError } from '../../src/errors.ts';
import { openFileEventLog } from '../../src/log/file/index.ts';
import { mountTmpfs, type Tmpfs } from '../support/tmpfs.ts';

const mounted = mountTmpfs(2 * 1024 * 1024);
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
