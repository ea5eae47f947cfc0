/**
 * The projection lock: one process at a time writes the views of a root's experiments (breakpoint
 * folders, superseded moves, TensorBoard event files). An experiment projects its own round after
 * each commit while `roundlog project --follow` (or `project`, `verify --repair`, `gc`, `rewind`)
 * may project the same folders from another process; each of these writes through a temp name and
 * a rename, and two of them at once would rename onto each other's folder (ENOTEMPTY), move the
 * same folder aside twice, or remove each other's temp files. Under the lock each one finds the
 * files as the previous one left them and writes only what is still missing, so processes that
 * project concurrently end with the bytes one `project --rebuild` writes.
 *
 * The lock is the log's writer lock under another name (`src/log/file/lock.ts`: a file hard-linked
 * into place, naming pid, host and process start; a holder gone from this host is reclaimed), at
 * `<experiments>/.projection-lock`, and exists only while held. It is independent of the log:
 * nobody holding it waits for the writer lock, so the two never deadlock, and it works the same
 * for a root whose history is on EventStoreDB. It is re-entrant within one call chain (an
 * `AsyncLocalStorage` marks it held), and calls of one process queue for it in order.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeStep } from '../durable.ts';
import { RoundlogError } from '../errors.ts';
import { acquireLock, removeDeadCandidates, type HeldLock } from '../log/file/lock.ts';
import { PROJECTION_LOCK_FILE } from '../root.ts';

/** How long a projector waits for another process's projection lock, in ms, by default. */
export const PROJECTION_LOCK_WAIT_MS = 60_000;

/**
 * Another process held the projection lock for longer than a projector waits
 * (`PROJECTION_LOCK_WAIT_MS`): a projector hung, or a holder on another machine whose lock cannot
 * be judged stale from here.
 */
export class ProjectionLockedError extends RoundlogError {
  readonly code = 'PROJECTION_LOCKED' as const;
  constructor(
    readonly lockFile: string,
    readonly pid: number,
    readonly host: string,
    readonly since: string,
    readonly waitedMs: number,
  ) {
    super(
      `the views under ${path.dirname(lockFile)} are being written by process ${pid} on host ${host} ` +
        `since ${since} (lock file ${lockFile}), still after waiting ${waitedMs} ms; one process writes ` +
        'them at a time: let it finish or stop it, then run the command again (a lock left by a process ' +
        'gone from this host is taken over; if that process is gone and the host is another machine, ' +
        'delete the lock file)',
    );
  }
}

/** The lock files this call chain holds. */
const held = new AsyncLocalStorage<ReadonlySet<string>>();
/** The last call of this process queued for each lock file. */
const queues = new Map<string, Promise<void>>();

/**
 * Runs `fn` holding the projection lock of the views under `dir` (`<root>/experiments`, or the
 * folder a replay is staged in); `fn` is run at once when this call chain holds it already.
 * Waits up to `waitMs` for another holder, then throws `ProjectionLockedError`; a lock that cannot
 * be written is a `StorageWriteError` naming it. `dir` is created if missing.
 */
export async function withProjectionLock<T>(
  dir: string,
  fn: () => Promise<T>,
  waitMs = PROJECTION_LOCK_WAIT_MS,
): Promise<T> {
  const file = path.join(dir, PROJECTION_LOCK_FILE);
  const outer = held.getStore();
  if (outer?.has(file)) return fn();
  const previous = queues.get(file) ?? Promise.resolve();
  let release: () => void = () => undefined;
  const mine = new Promise<void>((resolve) => (release = resolve));
  const tail = previous.then(() => mine);
  queues.set(file, tail);
  try {
    await previous;
    const lock = await acquireWaiting(dir, waitMs);
    try {
      return await held.run(new Set([...(outer ?? []), file]), fn);
    } finally {
      await lock.release();
    }
  } finally {
    release();
    if (queues.get(file) === tail) queues.delete(file);
  }
}

async function acquireWaiting(dir: string, waitMs: number): Promise<HeldLock> {
  await writeStep(dir, 'creating the folder of the projection lock', () => fs.mkdir(dir, { recursive: true }));
  const started = Date.now();
  const kind = {
    name: PROJECTION_LOCK_FILE,
    what: 'the projection lock',
    locked: (lockFile: string, pid: number, host: string, since: string) =>
      new ProjectionLockedError(lockFile, pid, host, since, Date.now() - started),
  };
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    try {
      return await acquireLock(dir, () => undefined, kind);
    } catch (error) {
      // Waits the whole of waitMs before giving up: the error's waitedMs is never less than it.
      if (!(error instanceof ProjectionLockedError)) throw error;
      const left = waitMs - error.waitedMs;
      if (left <= 0) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(delay, left)));
    }
  }
}

/** Whether `name` (in a folder of views) is the projection lock or one of its candidates: not a view. */
export function isProjectionLockName(name: string): boolean {
  return name === PROJECTION_LOCK_FILE || name.startsWith(`${PROJECTION_LOCK_FILE}.`);
}

/** Removes the lock candidates of processes that died while taking the projection lock of `dir`. */
export async function removeDeadProjectionLockCandidates(dir: string): Promise<void> {
  await removeDeadCandidates(dir, await fs.readdir(dir).catch(() => [] as string[]), PROJECTION_LOCK_FILE);
}
