/** Spawns test child processes (TypeScript run through tsx) and reads their stdout line by line. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export type Child = {
  process: ChildProcess;
  /** Resolves with the first line matching `predicate` (lines before it are kept in `lines`). */
  waitFor(predicate: (line: string) => boolean): Promise<string>;
  /** Every line read so far. */
  lines: string[];
  /** Resolves once the process has exited and all its output was read. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
};

/** `env` is added to this process's environment for the child. */
export function spawnTs(script: string, args: string[], onLine?: (line: string, child: Child) => void, env: NodeJS.ProcessEnv = {}): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(script, new URL('../support/', import.meta.url))), ...args], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const lines: string[] = [];
  const waiters: Array<{ predicate: (line: string) => boolean; resolve: (line: string) => void; reject: (e: Error) => void }> = [];
  const reader = createInterface({ input: proc.stdout! });
  const child: Child = {
    process: proc,
    lines,
    waitFor(predicate) {
      const found = lines.find(predicate);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => waiters.push({ predicate, resolve, reject }));
    },
    exited: new Promise((resolve) => {
      let status: { code: number | null; signal: NodeJS.Signals | null } | null = null;
      let closed = false;
      const done = () => {
        if (status === null || !closed) return;
        for (const w of waiters.splice(0)) {
          w.reject(new Error(`child exited (${status.code ?? status.signal}) before the awaited line; stderr:\n${stderr}`));
        }
        resolve(status);
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
