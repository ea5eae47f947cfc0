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
import path from 'node:path';
import { kill9, type Child } from '../support/child.ts';
import { REPO, roundlogJson, serveRoundlog as serve } from '../support/cli.ts';
import { requirePython, startPython } from '../support/python.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const TRAIN = path.join(REPO, 'examples', 'heart-disease', 'train.py');

test.before(() => requirePython(['numpy']));

/** Starts train.py with `args`; its stdout is read line by line. */
const trainPy = (args: readonly string[]): Child => startPython([TRAIN, ...args]);

const waitFor = (py: Child, prefix: string) => py.waitFor((line) => line.startsWith(prefix));

/** Runs train.py to its end; returns its last line ("done: ... parameters sha256:<hex>"). */
async function trainToEnd(t: import('ava').ExecutionContext, args: readonly string[]): Promise<string> {
  const py = trainPy(args);
  py.process.stdin!.end();
  const { code } = await py.exited;
  t.is(code, 0, `train.py ${args.join(' ')}:\n${py.lines.join('\n')}\n${py.stderr()}`);
  return py.lines.at(-1) ?? '';
}

const digestOf = (done: string) => /parameters (sha256:[0-9a-f]{64})$/.exec(done)?.[1];

test('Python loop SIGKILLed, then --resume: same bits, the resume in history, a second process refused', async (t) => {
  const root = tempDir();
  const { child: server, url } = await serve(root);
  try {
    const reference = digestOf(await trainToEnd(t, ['--url', url, '--experiment', 'uninterrupted']));
    t.truthy(reference);

    const first = trainPy(['--url', url, '--experiment', 'killed', '--wait-after-round', '3']);
    await waitFor(first, 'waiting after round 3');
    // While it holds the run, a second process gets the conflict and records nothing.
    const second = trainPy(['--url', url, '--experiment', 'killed', '--resume']);
    second.process.stdin!.end();
    t.is((await second.exited).code, 1);
    t.regex(second.stderr(), /EXPERIMENT_RUNNING \(HTTP 409\)/);
    await kill9(first);

    const resumed = trainPy(['--url', url, '--experiment', 'killed', '--resume']);
    resumed.process.stdin!.end();
    t.is((await resumed.exited).code, 0, resumed.stderr());
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
    await waitFor(loop, 'waiting after round 4');
    await kill9(server);
    loop.process.stdin!.end(); // round 5 trains and meets a server that is gone: refused, retried
    ({ child: server, url } = await serve(root, port));
    t.is((await loop.exited).code, 0, `${loop.lines.join('\n')}\n${loop.stderr()}`);
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
