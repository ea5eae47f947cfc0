/**
 * The Python proof, with real processes: examples/heart-disease/train.py (NumPy logistic regression
 * on four hospitals' records, through the Python client) records 10 rounds into `roundlog serve`.
 * Killed with SIGKILL after round 3 and started again with `--resume`, it ends with the parameters
 * of a run that never stopped, bit for bit, and the history shows the resume; a second process
 * trying to record into the running experiment gets EXPERIMENT_RUNNING; the server killed with
 * SIGKILL mid-run and started again on the same port, the loop's retries carry it to the same
 * bits. The interpreter is `ROUNDLOG_PYTHON`, else /usr/bin/python3; without NumPy these tests
 * fail (`.ci/run` installs python3-numpy), they are never skipped.
 */
import test from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { REPO, roundlogJson, startRoundlog } from '../support/cli.ts';
import type { Child } from '../support/child.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const PYTHON = process.env.ROUNDLOG_PYTHON || '/usr/bin/python3';
const TRAIN = path.join(REPO, 'examples', 'heart-disease', 'train.py');

test.before(() => {
  const probe = spawnSync(PYTHON, ['-c', 'import numpy'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error(
      `${PYTHON} cannot import numpy (${probe.error?.message ?? probe.stderr.trim()}): these tests need ` +
        'Python 3 with NumPy. Install them (apt-get install -y python3 python3-numpy, as .ci/run does) ' +
        'or point ROUNDLOG_PYTHON at an interpreter that has NumPy',
    );
  }
});

type Py = {
  proc: ChildProcess;
  lines: string[];
  stderr: () => string;
  waitFor: (prefix: string) => Promise<string>;
  exited: Promise<number | null>;
};

/** Starts train.py with `args`; its stdout is read line by line. */
function trainPy(args: readonly string[]): Py {
  const proc = spawn(PYTHON, ['-B', TRAIN, ...args], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  proc.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const waiters: Array<{ prefix: string; resolve: (line: string) => void }> = [];
  const reader = createInterface({ input: proc.stdout! });
  reader.on('line', (line) => {
    lines.push(line);
    for (let i = waiters.length - 1; i >= 0; i--)
      if (line.startsWith(waiters[i]!.prefix)) waiters.splice(i, 1)[0]!.resolve(line);
  });
  const closed = new Promise<void>((resolve) => reader.on('close', resolve));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return {
    proc,
    lines,
    stderr: () => stderr,
    exited: Promise.all([exited, closed]).then(([code]) => code),
    waitFor: (prefix) => {
      const found = lines.find((line) => line.startsWith(prefix));
      if (found !== undefined) return Promise.resolve(found);
      return Promise.race([
        new Promise<string>((resolve) => waiters.push({ prefix, resolve })),
        closed.then(() => {
          throw new Error(`train.py ended before printing "${prefix}": ${lines.join('\n')}\n${stderr}`);
        }),
      ]);
    },
  };
}

/** Runs train.py to its end; returns its last line ("done: ... parameters sha256:<hex>"). */
async function trainToEnd(t: import('ava').ExecutionContext, args: readonly string[]): Promise<string> {
  const py = trainPy(args);
  py.proc.stdin!.end();
  const code = await py.exited;
  t.is(code, 0, `train.py ${args.join(' ')}:\n${py.lines.join('\n')}\n${py.stderr()}`);
  return py.lines.at(-1) ?? '';
}

const digestOf = (done: string) => /parameters (sha256:[0-9a-f]{64})$/.exec(done)?.[1];

/** `roundlog serve --root root --port port`; resolves with the child and the URL it printed. */
async function serve(root: string, port = 0): Promise<{ child: Child; url: string }> {
  const child = startRoundlog(['serve', '--root', root, '--init', '--port', String(port)]);
  const url = await child.waitFor((line) => line.startsWith('http://'));
  return { child, url };
}

async function kill9(child: { process: ChildProcess } | ChildProcess, exited: Promise<unknown>): Promise<void> {
  const proc = 'process' in child ? child.process : child;
  proc.kill('SIGKILL');
  await exited;
}

test('Python loop SIGKILLed, then --resume: same bits, the resume in history, a second process refused', async (t) => {
  const root = tempDir();
  const { child: server, url } = await serve(root);
  try {
    const reference = digestOf(await trainToEnd(t, ['--url', url, '--experiment', 'uninterrupted']));
    t.truthy(reference);

    const first = trainPy(['--url', url, '--experiment', 'killed', '--wait-after-round', '3']);
    await first.waitFor('waiting after round 3');
    // While it holds the run, a second process gets the conflict and records nothing.
    const second = trainPy(['--url', url, '--experiment', 'killed', '--resume']);
    second.proc.stdin!.end();
    t.is(await second.exited, 1);
    t.regex(second.stderr(), /EXPERIMENT_RUNNING \(HTTP 409\)/);
    await kill9(first.proc, first.exited);

    const resumed = trainPy(['--url', url, '--experiment', 'killed', '--resume']);
    resumed.proc.stdin!.end();
    t.is(await resumed.exited, 0, resumed.stderr());
    t.regex(resumed.lines[0]!, /^resumed killed after round 3/);
    t.deepEqual(
      resumed.lines.filter((l) => l.startsWith('round ')).map((l) => l.split(' ')[1]),
      ['4', '5', '6', '7', '8', '9'],
    );
    t.is(digestOf(resumed.lines.at(-1)!), reference);

    const history = await roundlogJson<{ roundCurrent: number; entries: Array<{ kind: string }> }>([
      'history',
      'killed',
      '--root',
      root,
    ]);
    t.is(history.roundCurrent, 10);
    t.is(history.entries.filter((e) => e.kind === 'resumed').length, 1);
    t.is(history.entries.filter((e) => e.kind === 'round').length, 10);
  } finally {
    server.process.kill('SIGTERM');
    await server.exited;
  }
});

test('server SIGKILLed mid-run, started again on its port: the loop retries, ends with the same bits', async (t) => {
  const root = tempDir();
  let { child: server, url } = await serve(root);
  try {
    const reference = digestOf(await trainToEnd(t, ['--url', url, '--experiment', 'reference']));
    const port = Number(new URL(url).port);
    const loop = trainPy(['--url', url, '--experiment', 'server-killed', '--wait-after-round', '4', '--retries', '12']);
    await loop.waitFor('waiting after round 4');
    await kill9(server, server.exited);
    loop.proc.stdin!.end(); // round 5 trains and meets a server that is gone: refused, retried
    ({ child: server, url } = await serve(root, port));
    t.is(await loop.exited, 0, `${loop.lines.join('\n')}\n${loop.stderr()}`);
    t.deepEqual(
      loop.lines.filter((l) => l.startsWith('round ')).map((l) => l.split(' ')[1]),
      ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    );
    t.is(digestOf(loop.lines.at(-1)!), reference);
  } finally {
    server.process.kill('SIGTERM');
    await server.exited;
  }
});
