/**
 * Python for the tests: the interpreter (`ROUNDLOG_PYTHON`, else Debian's /usr/bin/python3, which
 * `.ci/run` gives NumPy and PyTorch), a check that it has the modules a test file needs (the tests
 * fail without them, they are never skipped), and Python processes read line by line.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { spawnProcess, type Child } from './child.ts';
import { REPO } from './cli.ts';

export const PYTHON = process.env.ROUNDLOG_PYTHON || '/usr/bin/python3';
/** The Python client's folder: on `PYTHONPATH`, `import roundlog_client` finds the checkout's client. */
export const CLIENT_DIR = path.join(REPO, 'clients', 'python');

const DEBIAN_PACKAGE: Record<string, string> = {
  numpy: 'apt-get install -y python3 python3-numpy',
  torch: 'apt-get install -y --no-install-recommends python3-torch',
};

/** Throws, saying how to install them, unless PYTHON imports every one of `modules` (for `test.before`). */
export function requirePython(modules: readonly string[]): void {
  const probe = spawnSync(PYTHON, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8' });
  if (probe.error === undefined && probe.status === 0) return;
  const install = modules.map((name) => DEBIAN_PACKAGE[name] ?? `pip install ${name}`).join(', then ');
  throw new Error(
    `${PYTHON} cannot import ${modules.join(', ')} (${probe.error?.message ?? probe.stderr.trim()}): these tests ` +
      `need Python 3 with them. Install them (${install}, as .ci/run does) or point ROUNDLOG_PYTHON at an ` +
      'interpreter that has them',
  );
}

/** Starts `python -B args` from `cwd` (default: the repository), the client importable, read line by line. */
export function startPython(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Child {
  return spawnProcess(PYTHON, ['-B', ...args], {
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    env: { PYTHONPATH: CLIENT_DIR, PYTHONDONTWRITEBYTECODE: '1', ...options.env },
  });
}
