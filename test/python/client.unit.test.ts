/**
 * The Python client (clients/python/) in CI: its unittest suite (safetensors codec, error mapping,
 * SSE parsing, retries against a scripted local HTTP server), the heart-disease training loop's
 * (examples/heart-disease/tests/: determinism, resume after any round), and the client's codec against
 * roundlog's own: the client reads what roundlog writes bit for bit and writes the very same bytes
 * back, so the same parameters get the same content address from either side. The suite's PyTorch
 * tests (tests/test_torch.py: state_dicts bit for bit, to_torch_params, TorchNotInstalledError) run
 * here too. The interpreter is `ROUNDLOG_PYTHON`, else /usr/bin/python3; without NumPy or PyTorch
 * these tests fail (`.ci/run` installs python3-numpy and python3-torch), they are never skipped.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TensorSet } from '../../src/codec/dtypes.ts';
import { decodeSafetensorsFile, encodeSafetensors } from '../../src/codec/safetensors.ts';
import { REPO } from '../support/cli.ts';
import { everyDtype } from '../support/dtypes.ts';
import { CLIENT_DIR as CLIENT, PYTHON, requirePython } from '../support/python.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const HEART = path.join(REPO, 'examples', 'heart-disease');
const ENV = { ...process.env, PYTHONDONTWRITEBYTECODE: '1', ROUNDLOG_CLIENT_SAFETENSORS: 'builtin' };

test.before(() => requirePython(['numpy', 'torch']));

/** Runs `python -m unittest discover` in `dir`; returns how many tests ran and the verbose output. */
function unittestSuite(t: import('ava').ExecutionContext, dir: string): { count: number; output: string } {
  const run = spawnSync(PYTHON, ['-m', 'unittest', 'discover', '-v', '-s', 'tests', '-t', '.'], {
    cwd: dir,
    env: ENV,
    encoding: 'utf8',
    timeout: 120_000,
  });
  t.is(run.status, 0, `${PYTHON} -m unittest discover in ${dir}:\n${run.stderr}${run.stdout}`);
  t.regex(run.stderr, /\nOK\b/);
  return { count: Number(/Ran (\d+) tests?/.exec(run.stderr)?.[1] ?? 0), output: run.stderr };
}

/** `python -c code args...` with the client importable; returns stdout, failing with stderr. */
function python(code: string, args: readonly string[]): string {
  const run = spawnSync(PYTHON, ['-c', code, ...args], { cwd: CLIENT, env: ENV, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`python exited ${run.status}: ${run.stderr}`);
  return run.stdout;
}

const RECODE = `
import json, sys
from roundlog_client import safetensors as st
tensors = st.load_file(sys.argv[1])
st.save_file(tensors, sys.argv[2])
print(json.dumps({name: {"dtype": st.safetensors_dtype(a), "shape": list(a.shape), "hex": a.tobytes().hex()}
                  for name, a in tensors.items()}))
`;

type Seen = Record<string, { dtype: string; shape: number[]; hex: string }>;
const hexOf = (data: ArrayBufferView) => Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex');

function recodeInPython(t: import('ava').ExecutionContext, tensors: TensorSet, label: string): void {
  const dir = tempDir();
  const written = path.join(dir, 'roundlog.safetensors');
  const rewritten = path.join(dir, 'python.safetensors');
  const bytes = encodeSafetensors(tensors);
  writeFileSync(written, bytes);
  const seen = JSON.parse(python(RECODE, [written, rewritten])) as Seen;
  t.deepEqual(Object.keys(seen).sort(), Object.keys(tensors).sort(), label);
  for (const [name, tensor] of Object.entries(tensors)) {
    t.deepEqual(seen[name]!.shape, [...tensor.shape], `${label} ${name}`);
    t.is(seen[name]!.hex, hexOf(tensor.data), `${label} ${name}: the bits`);
  }
  const again = readFileSync(rewritten);
  t.true(again.equals(bytes), `${label}: the client writes the bytes roundlog wrote`);
  const decoded = decodeSafetensorsFile(again).tensors;
  for (const [name, tensor] of Object.entries(tensors)) {
    t.is(decoded[name]!.dtype, tensor.dtype, `${label} ${name}`);
    t.is(hexOf(decoded[name]!.data), hexOf(tensor.data), `${label} ${name}: roundlog reads the client's bits`);
  }
}

test('the Python client unittest suite passes, its PyTorch tests included', (t) => {
  const run = unittestSuite(t, CLIENT);
  t.true(run.count >= 60, 'every test module was found');
  t.notRegex(run.output, /skipped '[^']*PyTorch/, 'no PyTorch test was skipped');
  t.regex(run.output, /test_a_module_state_dict_comes_back_bit_for_bit .*\.\.\. ok/);
});

test('the heart-disease loop is deterministic and resumes bit for bit after any round (no server)', (t) => {
  t.true(unittestSuite(t, HEART).count >= 11, 'every test module was found');
});

test('the client reads every dtype roundlog writes bit for bit and writes the same bytes back', (t) => {
  recodeInPython(t, everyDtype(), 'every dtype');
});

test('the client orders awkward names as roundlog does (integer-like, UTF-16, escapes)', (t) => {
  const f32 = () => ({ dtype: 'float32' as const, shape: [1], data: new Float32Array([1.5]) });
  recodeInPython(
    t,
    {
      b: f32(),
      '10': { dtype: 'int8', shape: [2], data: new Int8Array([-1, 1]) },
      '2': { dtype: 'float64', shape: [], data: new Float64Array([2]) },
      '\u{1f600}': f32(),
      '\uffff': f32(),
      'é\n"\\': f32(),
      '007': f32(),
    },
    'awkward names',
  );
});

test("the Python suite's fixture is what roundlog's encoder writes today", (t) => {
  const fixture = readFileSync(path.join(CLIENT, 'tests', 'fixtures', 'roundlog-every-dtype.safetensors'));
  t.true(fixture.equals(encodeSafetensors(everyDtype())));
});
