/**
 * The `roundlog` command for tests: `roundlog(args)` calls `main(argv, io)` in this process (output
 * captured, environment copied, never changed); `startRoundlog` and `roundlogProcess` run it as a
 * real process through the one spawn helper (`child.ts`), for what needs one: signals, SIGKILL,
 * `--follow`, concurrent processes, the demo.
 */
import type { ExecutionContext } from 'ava';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.ts';
import { spawnTs, type Child } from './child.ts';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
/** `src/cli/main.ts`, relative to test/support/ (where `spawnTs` resolves scripts). */
const MAIN = '../../src/cli/main.ts';

export type Run = { code: number | null; stdout: string; stderr: string; pid: number };

export type RoundlogOptions = {
  /** Default: the repository, the workspace of the example definitions. */
  cwd?: string;
  signal?: AbortSignal;
};

/**
 * Runs `roundlog <args>` in this process, as `main(argv, io)`, with its output captured; `env` is added
 * to a copy of this process's environment.
 */
export async function roundlog(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
  options: RoundlogOptions = {},
): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    out: (line) => (stdout += `${line}\n`),
    err: (line) => (stderr += `${line}\n`),
    env: { ...process.env, ...env },
    cwd: options.cwd ?? REPO,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  return { code, stdout, stderr, pid: process.pid };
}

/** Runs `roundlog` in this process, asserting with `t` that it exits 0 (its output shown when not). */
export async function roundlogOk(t: ExecutionContext, args: readonly string[], cwd?: string): Promise<Run> {
  const result = await roundlog(args, {}, cwd === undefined ? {} : { cwd });
  t.is(result.code, 0, `roundlog ${args.join(' ')}: ${result.stderr}${result.stdout}`);
  return result;
}

/** Runs `roundlog` in this process and parses its `--json` output; throws with its stderr when it fails. */
export async function roundlogJson<T>(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<T> {
  const result = await roundlog([...args, '--json'], env);
  if (result.code !== 0)
    throw new Error(`roundlog ${args.join(' ')} exited ${result.code}: ${result.stderr}${result.stdout}`);
  return JSON.parse(result.stdout) as T;
}

/** Starts `roundlog <args>` as a real process (from the repository), read line by line. */
export function startRoundlog(args: readonly string[], env: NodeJS.ProcessEnv = {}): Child {
  return spawnTs(MAIN, [...args], undefined, env);
}

/** Runs `roundlog <args>` as a real process to its end. */
export async function roundlogProcess(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const child = startRoundlog(args, env);
  const { code } = await child.exited;
  return { code, stdout: child.lines.map((l) => `${l}\n`).join(''), stderr: child.stderr(), pid: child.process.pid! };
}

/** `roundlog serve --root root --port port` as a real process; resolves with it and the URL it printed. */
export async function serveRoundlog(root: string, port = 0): Promise<{ child: Child; url: string }> {
  const child = startRoundlog(['serve', '--root', root, '--init', '--port', String(port)]);
  const url = await child.waitFor((line) => line.startsWith('http://'));
  return { child, url };
}
