/** Helpers of the audit tests: the `roundlog` CLI as a real process, and a CSV reader. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = path.join(REPO, 'src/cli/main.ts');

export type Run = { code: number | null; stdout: string; stderr: string; pid: number };

/** Runs `roundlog <args>` to completion. */
export function roundlog(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const result = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: REPO, encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr, pid: result.pid };
}

/** Runs `roundlog <args>` without blocking this process (so live followers keep being read meanwhile). */
export function roundlogAsync(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    proc.on('error', reject);
    proc.on('close', (code) => resolve({ code, stdout, stderr, pid: proc.pid! }));
  });
}

type Waiter = { predicate: (line: string) => boolean; resolve: (line: string) => void; reject: (error: Error) => void };

/** A long-running `roundlog` (a `--follow`), read line by line on stdout and stderr. */
export type LiveCli = {
  process: ChildProcess;
  stdout: string[];
  stderr: string[];
  /** The first stdout line (already read or to come) matching; rejects if the process ends first. */
  waitOut(predicate: (line: string) => boolean): Promise<string>;
  waitErr(predicate: (line: string) => boolean): Promise<string>;
  /** Resolves once the process has exited and its output has been read. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
};

/** `env` is added to this process's environment for the command. */
export function startRoundlog(args: string[], env: NodeJS.ProcessEnv = {}): LiveCli {
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters = { out: [] as Waiter[], err: [] as Waiter[] };
  let ended = false;
  const watch = (input: NodeJS.ReadableStream, lines: string[], list: Waiter[]) => {
    const reader = createInterface({ input });
    reader.on('line', (line) => {
      lines.push(line);
      for (let i = list.length - 1; i >= 0; i--) if (list[i]!.predicate(line)) list.splice(i, 1)[0]!.resolve(line);
    });
    return new Promise<void>((resolve) => reader.on('close', resolve));
  };
  const closed = Promise.all([watch(proc.stdout!, stdout, waiters.out), watch(proc.stderr!, stderr, waiters.err)]);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('exit', (code, signal) => {
      void closed.then(() => {
        ended = true;
        for (const w of [...waiters.out.splice(0), ...waiters.err.splice(0)]) {
          w.reject(new Error(`roundlog ${args.join(' ')} exited (${code ?? signal}) before the awaited line.\nstdout:\n${stdout.join('\n')}\nstderr:\n${stderr.join('\n')}`));
        }
        resolve({ code, signal });
      });
    });
  });
  const wait = (lines: string[], list: Waiter[]) => (predicate: (line: string) => boolean) => {
    const found = lines.find(predicate);
    if (found !== undefined) return Promise.resolve(found);
    if (ended) return Promise.reject(new Error(`roundlog ${args.join(' ')} has exited; stderr:\n${stderr.join('\n')}`));
    return new Promise<string>((resolve, reject) => list.push({ predicate, resolve, reject }));
  };
  return { process: proc, stdout, stderr, waitOut: wait(stdout, waiters.out), waitErr: wait(stderr, waiters.err), exited };
}

/** Parses CSV (RFC 4180: quoted fields, doubled quotes, line breaks inside quotes) into records keyed by the header. */
export function parseCsv(text: string): Array<Record<string, string>> {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  const [header, ...records] = rows;
  if (header === undefined) return [];
  return records.map((r) => {
    if (r.length !== header.length) throw new Error(`CSV record with ${r.length} fields, header has ${header.length}: ${JSON.stringify(r)}`);
    return Object.fromEntries(header.map((h, i) => [h, r[i]!]));
  });
}
