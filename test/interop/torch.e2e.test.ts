/**
 * The README's Python snippets that open a breakpoint or an exported round without the `safetensors`
 * package, run as the README prints them (read from README.md) on what the synthetic demo
 * (`roundlog demo --synthetic`) writes into ./var: the Python client's reader with `to_torch_params`
 * into an `nn.Linear` ("Open a breakpoint in PyTorch"), NumPy alone (same section), and the
 * client's reader on `roundlog export`'s file ("Export a round for PyTorch and NumPy"). Each tensor
 * must be the round roundlog recorded, bit for bit. The interpreter is `ROUNDLOG_PYTHON`, else
 * /usr/bin/python3; without NumPy and PyTorch these tests fail (`.ci/run` installs them), they are never skipped.
 */
import test, { type ExecutionContext } from 'ava';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TensorSet } from '../../src/codec/dtypes.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { roundlog } from '../support/cli.ts';
import { SAFETENSORS_DTYPE } from '../support/dtypes.ts';
import { requirePython, startPython } from '../support/python.ts';
import { readmeBlock } from '../support/readme.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

test.before(() => requirePython(['numpy', 'torch']));

const BREAKPOINT = '## Open a breakpoint in PyTorch';
const EXPORT = '## Export a round for PyTorch and NumPy';

/** Prints `{name: {dtype, shape, hex}}` of the dict named `variable` (torch tensors or NumPy arrays). */
const dump = (variable: string) => `
import json as _json
def _entry(value):
    if hasattr(value, 'detach'):
        import torch as _torch
        value = value.detach().contiguous()
        kind = str(value.dtype).replace('torch.', '')
        raw = value.view(_torch.int16) if value.dtype == _torch.bfloat16 else value
        return {'dtype': kind, 'shape': list(value.shape), 'hex': raw.numpy().tobytes().hex()}
    return {'dtype': value.dtype.name, 'shape': list(value.shape), 'hex': value.tobytes().hex()}
print('dump ' + _json.dumps({name: _entry(value) for name, value in ${variable}.items()}), flush=True)
`;

type Dumped = Record<string, { dtype: string; shape: number[]; hex: string }>;

/** Runs `code` (a README block) from `cwd` and returns each dict it dumped, in order. */
async function runPython(t: ExecutionContext, code: string, cwd: string): Promise<Dumped[]> {
  const file = path.join(tempDir(), 'snippet.py');
  writeFileSync(file, code);
  const py = startPython([file], { cwd });
  py.process.stdin!.end();
  const { code: exit } = await py.exited;
  t.is(exit, 0, `${code}\n${py.stderr()}`);
  return py.lines.filter((l) => l.startsWith('dump ')).map((l) => JSON.parse(l.slice('dump '.length)) as Dumped);
}

/** A folder holding the demo's root as ./var, and round 3 of Experiment_0000 as roundlog reads it. */
async function runDemo(): Promise<{ cwd: string; params: TensorSet }> {
  const cwd = tempDir();
  const root = path.join(cwd, 'var');
  const run = await roundlog(['demo', '--synthetic', '--root', root]);
  if (run.code !== 0) throw new Error(`roundlog demo exited ${run.code}: ${run.stderr}`);
  const rl = await openRoundLog({ root });
  try {
    const handle = await rl.openExperiment('Experiment_0000');
    return { cwd, params: (await handle.loadRound(3)).params };
  } finally {
    await rl.close();
  }
}

let demoRun: ReturnType<typeof runDemo> | undefined;
/** The demo's root, made once for the file's tests (they only read it, and write beside it). */
const demo = () => (demoRun ??= runDemo());

const hexOf = (data: ArrayBufferView) => Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex');

/** `dumped` holds `params`: same names, dtypes (`dtypeOf` names them), shapes and bytes. */
function sameTensors(t: ExecutionContext, dumped: Dumped, params: TensorSet, dtypeOf: (dtype: string) => string) {
  t.deepEqual(Object.keys(dumped).sort(), Object.keys(params).sort());
  for (const [name, tensor] of Object.entries(params)) {
    t.is(dumped[name]!.dtype, dtypeOf(tensor.dtype), name);
    t.deepEqual(dumped[name]!.shape, [...tensor.shape], name);
    t.is(dumped[name]!.hex, hexOf(tensor.data), `${name}: the bits`);
  }
}

const torchDtype = (dtype: string) => dtype;
const numpyDtype = (dtype: string) => (dtype === 'bfloat16' ? 'uint16' : dtype);

test("the README's PyTorch read of a breakpoint without the safetensors package loads the demo's round", async (t) => {
  const block = readmeBlock(BREAKPOINT, 'python', 'to_torch_params');
  const { cwd, params } = await demo();
  t.deepEqual(Object.keys(params).sort(), ['bias', 'weights']);
  const [tensors, model] = await runPython(t, `${block}\n${dump('params')}\n${dump('model.state_dict()')}`, cwd);
  sameTensors(t, tensors!, params, torchDtype);
  t.deepEqual(model!.weight, { dtype: 'float32', shape: [1, 5], hex: hexOf(params.weights!.data) });
  t.deepEqual(model!.bias, { dtype: 'float32', shape: [1], hex: hexOf(params.bias!.data) });
});

test("the README's NumPy-alone read of a breakpoint gives the demo's round bit for bit", async (t) => {
  const block = readmeBlock(BREAKPOINT, 'python', 'np.frombuffer');
  const { cwd, params } = await demo();
  const [arrays] = await runPython(t, `${block}\n${dump('params')}`, cwd);
  sameTensors(t, arrays!, params, numpyDtype);
  t.is(SAFETENSORS_DTYPE[params.weights!.dtype], 'F32');
});

test("the README's read of an exported round without the safetensors package gives it bit for bit", async (t) => {
  const block = readmeBlock(EXPORT, 'python', 'to_torch_params');
  const { cwd, params } = await demo();
  const run = await roundlog(
    ['export', 'Experiment_0000', '--round', '3', '--out', 'round3.safetensors', '--root', 'var'],
    {},
    { cwd },
  );
  t.is(run.code, 0, run.stderr);
  const [stateDict, arrays] = await runPython(t, `${block}\n${dump('state_dict')}\n${dump('arrays')}`, cwd);
  sameTensors(t, stateDict!, params, torchDtype);
  sameTensors(t, arrays!, params, numpyDtype);
});
