/**
 * Breakpoints read from outside: Debian's Python with NumPy alone (no safetensors package) opens a
 * breakpoint's params.safetensors by its published layout (test/python/read_safetensors.py), and
 * roundlog reads a file written by an independent NumPy writer (test/python/write_safetensors.py).
 * The interpreter is `ROUNDLOG_PYTHON`, else /usr/bin/python3; without NumPy these tests fail
 * (`.ci/run` installs python3-numpy), they are never skipped.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DTYPES, type Tensor, type TensorSet } from '../../src/codec/dtypes.ts';
import { bfloat16ToNumber, float16ToNumber } from '../../src/codec/float16.ts';
import { decodeSafetensorsFile, encodeSafetensors } from '../../src/codec/safetensors.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { REPO, roundlog } from '../support/cli.ts';
import { SAFETENSORS_DTYPE, everyDtype } from '../support/dtypes.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const PYTHON = process.env.ROUNDLOG_PYTHON || '/usr/bin/python3';
const SCRIPTS = path.join(REPO, 'test', 'python');

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

type PyTensor = { dtype: string; shape: number[]; sha256: string; values: Array<number | string> };
type PyRead = { metadata: Record<string, string>; dataStart: number; tensors: Record<string, PyTensor> };

function python(script: string, args: readonly string[]): string {
  const run = spawnSync(PYTHON, [path.join(SCRIPTS, script), ...args], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`${script} ${args.join(' ')} exited ${run.status}: ${run.stderr}`);
  return run.stdout;
}

const readWithNumpy = (file: string) => JSON.parse(python('read_safetensors.py', [file])) as PyRead;
const bytesOf = (data: ArrayBufferView) => Buffer.from(data.buffer, data.byteOffset, data.byteLength);
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** A tensor's elements as read_safetensors.py prints them (see its docstring). */
function valuesOf(tensor: Tensor): Array<number | string> {
  const float = (x: number) => (Number.isNaN(x) ? 'nan' : x === Infinity ? 'inf' : x === -Infinity ? '-inf' : x);
  switch (tensor.dtype) {
    case 'float16':
      return [...tensor.data].map((bits) => float(float16ToNumber(bits)));
    case 'bfloat16':
      return [...tensor.data].map((bits) => float(bfloat16ToNumber(bits)));
    case 'float32':
    case 'float64':
      return [...tensor.data].map(float);
    case 'int64':
    case 'uint64':
      return [...tensor.data].map(String);
    default:
      return [...tensor.data];
  }
}

/** Asserts NumPy read `tensors` bit for bit: same names, dtypes, shapes, bytes and values. */
function sameAsNumpy(t: import('ava').ExecutionContext, read: PyRead, tensors: TensorSet, where: string) {
  t.deepEqual(Object.keys(read.tensors).sort(), Object.keys(tensors).sort(), where);
  for (const [name, tensor] of Object.entries(tensors)) {
    const seen = read.tensors[name]!;
    t.is(seen.dtype, SAFETENSORS_DTYPE[tensor.dtype], `${where} ${name}`);
    t.deepEqual(seen.shape, [...tensor.shape], `${where} ${name}`);
    t.is(seen.sha256, sha256(bytesOf(tensor.data)), `${where} ${name}: the bytes`);
    t.deepEqual(seen.values, valuesOf(tensor), `${where} ${name}: the values`);
  }
}

test('every breakpoint the synthetic demo writes opens in NumPy alone, bit for bit as recorded', async (t) => {
  const root = tempDir();
  const demo = await roundlog(['demo', '--synthetic', '--root', root]);
  t.is(demo.code, 0, demo.stderr);
  const experiment = path.join(root, 'experiments', 'Experiment_0000');
  const folders = readdirSync(experiment).filter((name) => name.startsWith('breakpoint_'));
  t.is(folders.length, 10);
  const rl = await openRoundLog({ root });
  try {
    const handle = await rl.openExperiment('Experiment_0000');
    for (const folder of folders) {
      const round = Number(folder.slice('breakpoint_'.length));
      const file = path.join(experiment, folder, 'params.safetensors');
      const { params } = await handle.loadRound(round);
      const recorded = handle.state.rounds[round]!.params;
      t.is(recorded.encoding, 'tensors/safetensors');
      t.is(sha256(readFileSync(file)), recorded.sha256, 'the file is the blob the round recorded');
      const read = readWithNumpy(file);
      t.is(read.dataStart % 8, 0, 'the buffer starts 8-aligned');
      sameAsNumpy(t, read, params, folder);
    }
  } finally {
    await rl.close();
  }
});

test('every dtype roundlog writes is read by NumPy bit for bit (float16 natively, bfloat16 as bits)', (t) => {
  const tensors = everyDtype();
  const file = path.join(tempDir(), 'every.safetensors');
  writeFileSync(file, encodeSafetensors(tensors, { metadata: { written: 'by roundlog' } }));
  const read = readWithNumpy(file);
  t.deepEqual(read.metadata, { written: 'by roundlog' });
  sameAsNumpy(t, read, tensors, 'every dtype');
});

test('a file from an independent NumPy writer decodes bit for bit, misaligned tensors included', (t) => {
  const file = path.join(tempDir(), 'independent.safetensors');
  const written = JSON.parse(python('write_safetensors.py', [file])) as Record<
    string,
    { dtype: string; shape: number[]; sha256: string; bits: string }
  >;
  const input = readFileSync(file);
  const { tensors, metadata } = decodeSafetensorsFile(input, { source: file });
  // The writer does not pad its header: some tensors are copied, the aligned ones viewed in place.
  t.true(Object.values(tensors).some((tensor) => tensor.data.buffer !== input.buffer));
  t.true(Object.values(tensors).some((tensor) => tensor.data.buffer === input.buffer));
  t.deepEqual(metadata, { writer: 'test/python/write_safetensors.py', format: 'np' });
  t.deepEqual(Object.keys(tensors).sort(), Object.keys(written).sort());
  t.is(Object.keys(written).length, 15);
  for (const [name, expected] of Object.entries(written)) {
    const tensor = tensors[name]!;
    t.is(SAFETENSORS_DTYPE[tensor.dtype], expected.dtype, name);
    t.deepEqual(tensor.shape, expected.shape, name);
    t.is(bytesOf(tensor.data).toString('hex'), expected.bits, name);
    t.is(sha256(bytesOf(tensor.data)), expected.sha256, name);
    t.true(tensor.data instanceof DTYPES[tensor.dtype].ctor, name);
  }
  t.is(float16ToNumber((tensors['layer.0.weight']!.data as Uint16Array)[2]!), 65504);
  t.is(bfloat16ToNumber((tensors.b!.data as Uint16Array)[1]!), 3.140625);
  t.deepEqual([...(tensors.flags!.data as Uint8Array)], [1, 0, 1]);
});
