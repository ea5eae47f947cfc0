/**
 * Small file-system steps shared by the file adapters: fsync of data and of folder entries (steps
 * that must survive a crash once they return), existence checks, and whether the process that
 * wrote a temp or lock file (named by its pid) is still running.
 */
import { promises as fs } from 'node:fs';
import { StorageWriteError, isSystemError } from './errors.ts';

/** Makes the folder's entries (created, renamed, removed names) durable. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Creates `file` (it must not exist) with `data`, fsynced before returning. */
export async function createFileDurably(file: string, data: string | Uint8Array): Promise<void> {
  const handle = await fs.open(file, 'wx');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Whether `file` exists; errors other than "no such file" are thrown, not taken for absence. */
export async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/**
 * Runs a write step on `file`; a file-system error (`ENOSPC`, `EACCES`, `EIO`, ...) becomes a
 * `StorageWriteError` naming the file and `operation`. Errors of roundlog pass unchanged.
 */
export async function writeStep<T>(file: string, operation: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (isSystemError(error)) throw new StorageWriteError(file, operation, error);
    throw error;
  }
}

/**
 * Whether a process with this pid runs on this machine, asked with signal 0 (nothing is sent): a
 * process of another user (`EPERM`) is alive, only `ESRCH` (no such process) is dead. A pid that
 * cannot name one process (not an integer from 1 to 2^31 - 1; 0 and negatives name process groups)
 * is not alive. Writers name their temp and lock files with their pid; a file whose writer is not
 * alive is left over from a crash.
 */
export function processIsAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid > 0x7fffffff) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
