/**
 * Spawns test child processes (TypeScript run through tsx) and reads their stdout and stderr line by
 * line: the one spawn helper of the tests, for what needs a real process (SIGKILL, concurrency,
 * signals, `--follow`). `test/support/cli.ts` runs `roundlog` with it.
 *
 * A test kills what it spawns in its teardown (`t.teardown`, `test.after.always`); as a last resort,
 * every child still running when the test file's process exits is SIGKILLed (SIGCONT first, for a
 * stopped one), so no process outlives its test file (`.ci/run` checks that none is left).
 */
import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The children spawned here and still running. */
const running = new Set<ChildProcess>();
let killOnExit = false;

function track(proc: ChildProcess): void {
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  if (killOnExit) return;
  killOnExit = true;
  process.on('exit', () => {
    for (const child of running) {
      try {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });
}

export type Child = {
  process: ChildProcess;
  /** Resolves with the first line matching `predicate` (lines before it are kept in `lines`). */
  waitFor(predicate: (line: string) => boolean): Promise<string>;
  /** Every line read so far. */
  lines: string[];
  /** Every stderr line read so far. */
  errLines: string[];
  /** Resolves with the first stderr line matching `predicate`. */
  waitForErr(predicate: (line: string) => boolean): Promise<string>;
  /** Resolves once the process has exited and all its output was read. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
};

/** `script` is relative to test/support/; `env` is added to this process's environment for the child. */
export function spawnTs(
  script: string,
  args: string[],
  onLine?: (line: string, child: Child) => void,
  env: NodeJS.ProcessEnv = {},
): Child {
  const file = fileURLToPath(new URL(script, new URL('../support/', import.meta.url)));
  return spawnProcess(process.execPath, ['--import', 'tsx', file, ...args], { env }, onLine);
}

/**
 * Spawns `command args` (any executable: the Python tests run their interpreter with it) from `cwd`
 * (default: the repository), `env` added to this process's environment, read line by line.
 */
export function spawnProcess(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
  onLine?: (line: string, child: Child) => void,
): Child {
  const proc = spawn(command, [...args], {
    cwd: options.cwd ?? ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  track(proc);
  let stderr = '';
  const lines: string[] = [];
  const errLines: string[] = [];
  type Waiter = { predicate: (line: string) => boolean; resolve: (line: string) => void; reject: (e: Error) => void };
  const waiters: Waiter[] = [];
  const errWaiters: Waiter[] = [];
  let ended = false;
  const wait = (read: string[], list: Waiter[]) => (predicate: (line: string) => boolean) => {
    const found = read.find(predicate);
    if (found !== undefined) return Promise.resolve(found);
    if (ended) return Promise.reject(new Error(`child has exited before the awaited line; stderr:\n${stderr}`));
    return new Promise<string>((resolve, reject) => list.push({ predicate, resolve, reject }));
  };
  const reader = createInterface({ input: proc.stdout! });
  const errReader = createInterface({ input: proc.stderr! });
  errReader.on('line', (line) => {
    stderr += `${line}\n`;
    errLines.push(line);
    for (let i = errWaiters.length - 1; i >= 0; i--)
      if (errWaiters[i]!.predicate(line)) errWaiters.splice(i, 1)[0]!.resolve(line);
  });
  const errClosed = new Promise<void>((resolve) => errReader.on('close', resolve));
  const child: Child = {
    process: proc,
    lines,
    errLines,
    waitFor: wait(lines, waiters),
    waitForErr: wait(errLines, errWaiters),
    exited: new Promise((resolve) => {
      let status: { code: number | null; signal: NodeJS.Signals | null } | null = null;
      let closed = false;
      const done = () => {
        if (status === null || !closed) return;
        const exit = status;
        void errClosed.then(() => {
          ended = true;
          for (const w of [...waiters.splice(0), ...errWaiters.splice(0)]) {
            w.reject(
              new Error(`child exited (${exit.code ?? exit.signal}) before the awaited line; stderr:\n${stderr}`),
            );
          }
          resolve(exit);
        });
      };
      proc.on('exit', (code, signal) => {
        status = { code, signal };
        done();
      });
      reader.on('close', () => {
        closed = true;
        done();
      });
    }),
    stderr: () => stderr,
  };
  reader.on('line', (line) => {
    lines.push(line);
    onLine?.(line, child);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.predicate(line)) waiters.splice(i, 1)[0]!.resolve(line);
    }
  });
  return child;
}

/**
 * SIGKILLs every child spawned here that is still running (SIGCONT first, for a stopped one) and
 * resolves once they have exited: `test.after.always(killSpawned)` in each file that spawns.
 */
export async function killSpawned(): Promise<void> {
  const left = [...running].filter((proc) => proc.exitCode === null && proc.signalCode === null);
  const exits = left.map((proc) => new Promise<void>((resolve) => proc.once('exit', () => resolve())));
  for (const proc of left) {
    try {
      proc.kill('SIGCONT');
      proc.kill('SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
  await Promise.all(exits);
}

/** Kills `child` (stopped or not: SIGCONT first) in the test's teardown, and waits for it to exit. */
export function killedAfter(t: ExecutionContext, child: Child): Child {
  t.teardown(async () => {
    if (child.process.exitCode === null && child.process.signalCode === null) {
      child.process.kill('SIGCONT');
      child.process.kill('SIGKILL');
    }
    await child.exited;
  });
  return child;
}

/** Sends SIGKILL to `child` and resolves once it has exited and its output was read. */
export async function kill9(child: Child): Promise<void> {
  child.process.kill('SIGKILL');
  await child.exited;
}
