/**
 * The README's PyTorch loop ("From Python"), as the README prints it, against a real `roundlog
 * serve`: the block is read from README.md (only its URL and experiment name are replaced) and run
 * with a `train_one_epoch` of its own (minibatches shuffled with PyTorch's global random state, so
 * a restart that did not restore that state would train on other batches). SIGKILLed while training
 * round 0 (nothing recorded yet), then while training round 6, and started again each time, it ends
 * with the parameters of a run that never stopped, bit for bit, having recorded the same rounds. The
 * interpreter is `ROUNDLOG_PYTHON`, else /usr/bin/python3; without NumPy and PyTorch these tests
 * fail (`.ci/run` installs them), they are never skipped.
 */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { killSpawned, kill9, type Child } from '../support/child.ts';
import { roundlogJson, serveRoundlog } from '../support/cli.ts';
import { startPython, requirePython } from '../support/python.ts';
import { readmeBlock } from '../support/readme.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

test.before(() => requirePython(['numpy', 'torch']));

/** What the README leaves to the reader (`train_one_epoch`), and a way to stop in a given epoch. */
const PRELUDE = `
import json, os, sys
import torch

_data = torch.Generator().manual_seed(1)  # the records: the same in every process, apart from the loop's RNG
_X = torch.randn(256, 13, generator=_data)
_y = ((_X @ torch.randn(13, generator=_data) + 0.3 * torch.randn(256, generator=_data)) > 0).float().unsqueeze(1)
_epochs = 0

def train_one_epoch(model, opt):
    global _epochs
    if _epochs == int(os.environ.get('STOP_IN_EPOCH', '-1')):
        print('stopped in epoch %d' % _epochs, flush=True)
        sys.stdin.read()  # until the test kills this process
    _epochs += 1
    order = torch.randperm(len(_X))  # PyTorch's global random state
    total = 0.0
    for batch in order.split(32):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(_X[batch]), _y[batch])
        loss.backward()
        opt.step()
        total += loss.item() * len(batch)
    print('trained an epoch', flush=True)
    return total / len(_X)
`;

/** After the loop: the model's final bits and the content address of every round recorded. */
const EPILOGUE = `
from roundlog_client import Client as _Client
_client = _Client(os.environ['ROUNDLOG_URL'])
print('final ' + json.dumps({
    'params': {name: t.detach().numpy().tobytes().hex() for name, t in model.state_dict().items()},
    'rounds': [_client.load(run.experiment, r).info['params']['sha256'] for r in range(run.round)],
    'resumed': run.resumed,
}), flush=True)
`;

const LOOP = readmeBlock('## From Python', 'python', 'train_one_epoch');

/** The README loop as a script recording into `experiment` at `url`. */
function loopScript(url: string, experiment: string): string {
  const swaps: Array<[string, string]> = [
    ["Client('http://127.0.0.1:8080')", `Client(${JSON.stringify(url)})`],
    ["start_run('heart'", `start_run(${JSON.stringify(experiment)}`],
  ];
  let code = LOOP;
  for (const [from, to] of swaps) {
    if (code.split(from).length !== 2) throw new Error(`the README's PyTorch loop no longer has ${from} once`);
    code = code.replace(from, to);
  }
  const file = path.join(tempDir(), `${experiment}.py`);
  writeFileSync(file, `${PRELUDE}\n${code}\n${EPILOGUE}`);
  return file;
}

type Final = { params: Record<string, string>; rounds: string[]; resumed: boolean };

function start(script: string, url: string, stopInEpoch?: number): Child {
  const env: NodeJS.ProcessEnv = { ROUNDLOG_URL: url };
  if (stopInEpoch !== undefined) env.STOP_IN_EPOCH = String(stopInEpoch);
  return startPython([script], { env });
}

/** Runs `script` to its end; returns what its epilogue printed. */
async function toEnd(t: import('ava').ExecutionContext, py: Child): Promise<Final> {
  py.process.stdin!.end();
  const { code } = await py.exited;
  t.is(code, 0, `${py.lines.join('\n')}\n${py.stderr()}`);
  const final = py.lines.find((line) => line.startsWith('final '));
  if (final === undefined) throw new Error(`the loop printed no final line:\n${py.lines.join('\n')}`);
  return JSON.parse(final.slice('final '.length)) as Final;
}

/** Starts `script` stopping in the given epoch of this process, waits until it is there, SIGKILLs it. */
async function killedIn(script: string, url: string, epoch: number): Promise<Child> {
  const py = start(script, url, epoch);
  await py.waitFor((line) => line === `stopped in epoch ${epoch}`);
  await kill9(py);
  return py;
}

const trained = (py: Child) => py.lines.filter((line) => line === 'trained an epoch').length;

test("the README's PyTorch loop, SIGKILLed twice and restarted, ends with the bits of an unbroken run", async (t) => {
  const root = tempDir();
  const { child: server, url } = await serveRoundlog(root);
  try {
    const reference = await toEnd(t, start(loopScript(url, 'straight'), url));
    t.is(reference.rounds.length, 10);
    t.false(reference.resumed);
    t.deepEqual(Object.keys(reference.params).sort(), ['bias', 'weight']);

    const script = loopScript(url, 'killed');
    const first = await killedIn(script, url, 0); // while training round 0: nothing recorded yet
    t.is(trained(first), 0);
    const second = await killedIn(script, url, 6); // a fresh start, killed while training round 6
    t.is(trained(second), 6);
    const last = start(script, url);
    const resumed = await toEnd(t, last);
    t.is(trained(last), 4, 'rounds 6 to 9 were trained after the restart');
    t.true(resumed.resumed);

    t.deepEqual(resumed.rounds, reference.rounds, 'every round recorded the same parameters');
    t.deepEqual(resumed.params, reference.params, 'the final parameters, bit for bit');

    const history = await roundlogJson<{ roundCurrent: number; entries: Array<{ kind: string }> }>([
      'history',
      'killed',
      '--root',
      root,
    ]);
    t.is(history.roundCurrent, 10);
    t.is(history.entries.filter((e) => e.kind === 'round').length, 10);
  } finally {
    server.process.kill('SIGTERM');
    await server.exited;
  }
});
