/**
 * The writer lock of a file log: a `LOCK` file naming its holder (pid, host, process start).
 * A lock whose holder is gone from this host is reclaimed; a live holder is reported. The same
 * lock, under another name, is the projection lock of a root (`src/engine/projection-lock.ts`).
 */
import { randomUUID } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { processIsAlive, writeStep } from '../../durable.ts';
import { isReadRefusal, readRegularFile } from '../../confine.ts';
import { StorageWriteError, isSystemError } from '../../errors.ts';
import { LogLockedError } from '../errors.ts';

type LockContent = { pid: number; host: string; since: string; start: string | null; token: string };

export type HeldLock = { file: string; token: string; release(): Promise<void> };

/** Start time of a process (in clock ticks since boot, from /proc), to tell a reused pid apart. */
function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

function isAlive(lock: LockContent): boolean {
  if (!processIsAlive(lock.pid)) return false;
  if (lock.start === null) return true;
  const start = processStart(lock.pid);
  return start === null || start === lock.start;
}

/**
 * A lock file's text, read bounded and only from a regular file; a lock file that is something
 * else (a symlink to a device) or too large reads as garbage (`''`), which is reclaimed.
 * `missing` when there is none or it cannot be read.
 */
async function readLockFile(file: string, missing: string | null = ''): Promise<string | null> {
  try {
    return (await readRegularFile(file, 'writer lock', 64 * 1024)).toString('utf8');
  } catch (error) {
    return isReadRefusal(error) ? '' : missing;
  }
}

function parse(text: string): LockContent | null {
  try {
    const v = JSON.parse(text) as Partial<LockContent>;
    if (typeof v.pid !== 'number' || typeof v.host !== 'string' || typeof v.token !== 'string') return null;
    return { pid: v.pid, host: v.host, since: String(v.since ?? 'unknown'), start: v.start ?? null, token: v.token };
  } catch {
    return null;
  }
}

/** What a lock is besides the log's writer lock: its file name, what it is called, the error of a live holder. */
export type LockKind = Readonly<{
  /** The lock file's name in its folder (candidates are `<name>.<pid>.<token>.pending`). Default `LOCK`. */
  name?: string;
  /** What the lock is, in messages of failed writes. Default `the writer lock`. */
  what?: string;
  /** The error for a live holder. Default `LogLockedError`. */
  locked?: (file: string, pid: number, host: string, since: string) => Error;
}>;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Removes lock candidates left by processes that died before taking or giving up the lock. */
export async function removeDeadCandidates(dir: string, names: readonly string[], lockName = 'LOCK'): Promise<void> {
  const candidate = new RegExp(`^${escapeRegExp(lockName)}\\.(\\d+)\\.[0-9a-f-]+\\.(pending|stale)$`);
  for (const name of names) {
    const match = candidate.exec(name);
    if (match === null) continue;
    if (!processIsAlive(Number(match[1]))) await fs.unlink(path.join(dir, name)).catch(() => undefined);
  }
}

/**
 * Takes the lock or throws `LogLockedError` (`kind.locked`). `onReclaim` is told when a dead
 * holder's lock was taken over.
 */
export async function acquireLock(
  dir: string,
  onReclaim: (previous: string) => void,
  kind: LockKind = {},
): Promise<HeldLock> {
  const name = kind.name ?? 'LOCK';
  const what = kind.what ?? 'the writer lock';
  const locked = kind.locked ?? ((...args) => new LogLockedError(...args));
  const file = path.join(dir, name);
  const token = randomUUID();
  const mine: LockContent = {
    pid: process.pid,
    host: os.hostname(),
    since: new Date().toISOString(),
    start: processStart(process.pid),
    token,
  };
  const text = JSON.stringify(mine);
  const temp = path.join(dir, `${name}.${process.pid}.${token}.pending`);
  try {
    // Inside the try: a write that fails (a full disk) leaves no pending file behind.
    await writeStep(temp, `writing ${what}`, () => fs.writeFile(temp, text));
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await fs.link(temp, file);
        return {
          file,
          token,
          async release() {
            const current = (await readLockFile(file)) ?? '';
            if (parse(current)?.token === token) await fs.unlink(file).catch(() => undefined);
          },
        };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw isSystemError(error) ? new StorageWriteError(file, `taking ${what}`, error) : error;
        }
      }
      const seen = await readLockFile(file, null);
      if (seen === null) continue;
      const holder = parse(seen);
      if (holder !== null && (holder.host !== mine.host || isAlive(holder))) {
        throw locked(file, holder.pid, holder.host, holder.since);
      }
      // The holder is gone (or the file is unreadable garbage): move it aside, and make sure
      // what was moved is what was judged stale before deleting it.
      const aside = path.join(dir, `${name}.${process.pid}.${token}.stale`);
      try {
        await fs.rename(file, aside);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw error;
      }
      const moved = await readLockFile(aside);
      if (moved === seen) {
        await fs.unlink(aside);
        onReclaim(holder ? `process ${holder.pid} on ${holder.host} since ${holder.since}` : 'an unreadable lock file');
      } else {
        await fs.link(aside, file).catch(() => undefined);
        await fs.unlink(aside);
      }
    }
    const last = parse((await readLockFile(file)) ?? '');
    throw locked(file, last?.pid ?? -1, last?.host ?? 'unknown', last?.since ?? 'unknown');
  } finally {
    await fs.unlink(temp).catch(() => undefined);
  }
}
