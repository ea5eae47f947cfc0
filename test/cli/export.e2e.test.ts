/**
 * `roundlog export`: a round's parameters as safetensors or .npz, opened by Python (Debian's
 * python3 with NumPy, or $ROUNDLOG_PYTHON: `numpy.load` in test/python/dump_npz.py, and the
 * NumPy-only safetensors reader test/python/read_safetensors.py) and compared bit for bit (SHA-256
 * of each tensor's bytes as NumPy holds them) with the round's parameters as roundlog decodes them.
 * Python without NumPy fails these tests: they are never skipped.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { encodeTensorChunks, type Tensor, type TensorSet } from '../../src/codec/tensors.ts';
import { decideCompleteRound } from '../../src/model/decide/index.ts';
import { UnsafeTensorNameError } from '../../src/codec/errors.ts';
import { exportRound, openRoundLog, type ExportResult } from '../../src/projections/index.ts';
import { roundlog, roundlogJson } from '../support/cli.ts';
import { NUMPY_DTYPE, SAFETENSORS_DTYPE } from '../support/dtypes.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const PYTHON = process.env.ROUNDLOG_PYTHON || '/usr/bin/python3';
const DUMP_NPZ = fileURLToPath(new URL('../python/dump_npz.py', import.meta.url));
const READ_SAFETENSORS = fileURLToPath(new URL('../python/read_safetensors.py', import.meta.url));
const FORMATS = fileURLToPath(new URL('../fixtures/formats/', import.meta.url));

type Exported = Omit<ExportResult, 'logPosition' | 'streamRevision'> & { logPosition: string; streamRevision: string };
type Seen = { dtype: string; shape: number[]; sha256: string };
type Dumped = Record<string, Record<string, Seen>>;

/** Every dtype roundlog stores, and names as PyTorch state dicts have them; values depend on `r`. */
function params(r: number): TensorSet {
  return {
    'encoder/layer.0.weight': {
      dtype: 'float32',
      shape: [2, 3],
      data: new Float32Array([r, -0, Infinity, NaN, 1e-40, -3.5]),
    },
    'head.bias': { dtype: 'float64', shape: [3], data: new Float64Array([r / 3, -1e300, 5e-324]) },
    half: { dtype: 'float16', shape: [4], data: new Uint16Array([0x3c00 + r, 0x8000, 0x7c00, 0x0001]) },
    // bfloat16 bits: 1 + r/128, -0, -inf, the smallest subnormal.
    brain: { dtype: 'bfloat16', shape: [2, 2], data: new Uint16Array([0x3f80 + r, 0x8000, 0xff80, 0x0001]) },
    step: { dtype: 'int64', shape: [], data: new BigInt64Array([BigInt(r) - 2n ** 62n]) },
    ids: { dtype: 'int32', shape: [2], data: new Int32Array([r, -2147483648]) },
    small: { dtype: 'int16', shape: [2], data: new Int16Array([-r, 32767]) },
    tiny: { dtype: 'int8', shape: [3], data: new Int8Array([-128, r, 127]) },
    big: { dtype: 'uint64', shape: [1], data: new BigUint64Array([2n ** 64n - 1n - BigInt(r)]) },
    u32: { dtype: 'uint32', shape: [1], data: new Uint32Array([4294967295 - r]) },
    u16: { dtype: 'uint16', shape: [1], data: new Uint16Array([65535 - r]) },
    bytes: { dtype: 'uint8', shape: [0], data: new Uint8Array(0) },
    mask: { dtype: 'bool', shape: [3], data: new Uint8Array([1, 0, r % 2]) },
  };
}

const node = { node: 'n1', sampleSize: 3, metrics: {} };

/**
 * A root with one experiment that saves no breakpoint folder: rounds 0-3 with `params(r)`, then
 * rewound to round 1 and rounds 2-3 run again with `params(20 + r)`; so round 2 of the current
 * branch has never had a folder, and the first round 2 is superseded.
 */
async function rewoundRoot(): Promise<{ root: string; folder: string; supersededPosition: bigint }> {
  const root = tempDir();
  let rl = await openRoundLog({ root });
  const handle = await rl.createExperiment({ saveBreakpoints: false, roundLimit: 10, initialParams: params(0) });
  for (let r = 0; r < 4; r++) await handle.recordRound({ params: params(r), replies: [], nodes: [node] });
  const folder = handle.state.folder;
  await rl.close();
  const rewound = await roundlog(['rewind', folder, '--round', '1', '--reason', 'export test', '--root', root]);
  if (rewound.code !== 0) throw new Error(rewound.stderr);
  rl = await openRoundLog({ root });
  const again = await rl.openExperiment(folder);
  for (let r = 2; r < 4; r++) await again.recordRound({ params: params(20 + r), replies: [], nodes: [node] });
  const supersededPosition = again.state.superseded.find((s) => s.round === 2)!.position;
  await rl.close();
  return { root, folder, supersededPosition };
}

/** The parameters of a round as roundlog's API decodes them: by log position. */
async function recordedParams(root: string, folder: string, position: bigint): Promise<TensorSet> {
  const rl = await openRoundLog({ root });
  try {
    const { state } = await rl.openExperiment(folder);
    const record = [...state.rounds, ...state.superseded].find((r) => r.position === position)!;
    return await rl.getTensors(record.params);
  } finally {
    await rl.close();
  }
}

/** Each file as Python reads it: .npz by numpy.load, .safetensors by the NumPy-only reader. */
async function python(files: readonly string[]): Promise<Dumped> {
  // Fails (never skips) where Python or NumPy is missing: the error says which.
  const run = (args: string[]) => promisify(execFile)(PYTHON, args, { maxBuffer: 64 * 1024 * 1024 });
  const npz = files.filter((f) => f.endsWith('.npz'));
  const dumped: Dumped = npz.length === 0 ? {} : (JSON.parse((await run([DUMP_NPZ, ...npz])).stdout) as Dumped);
  for (const file of files.filter((f) => !f.endsWith('.npz'))) {
    const read = JSON.parse((await run([READ_SAFETENSORS, file])).stdout) as { tensors: Record<string, Seen> };
    dumped[file] = Object.fromEntries(
      Object.entries(read.tensors).map(([name, { dtype, shape, sha256 }]) => [name, { dtype, shape, sha256 }]),
    );
  }
  return dumped;
}

const sha256Of = (data: Tensor['data']) =>
  createHash('sha256')
    .update(Buffer.from(data.buffer, data.byteOffset, data.byteLength))
    .digest('hex');

/** What NumPy holds for a tensor of an .npz: its dtype string and bytes (bfloat16 widened to float32). */
function npzExpected(tensor: Tensor): Seen {
  if (tensor.dtype === 'bfloat16') {
    const wide = Uint32Array.from(tensor.data, (bits) => bits * 65536);
    return { dtype: '<f4', shape: [...tensor.shape], sha256: sha256Of(wide) };
  }
  return { dtype: NUMPY_DTYPE[tensor.dtype], shape: [...tensor.shape], sha256: sha256Of(tensor.data) };
}

function safetensorsExpected(tensor: Tensor): Seen {
  return { dtype: SAFETENSORS_DTYPE[tensor.dtype], shape: [...tensor.shape], sha256: sha256Of(tensor.data) };
}

function exportArgs(folder: string, root: string, ...rest: string[]): string[] {
  return ['export', folder, ...rest, '--root', root];
}

test('rounds with no breakpoint folder, current and superseded (--position), open in NumPy bit for bit', async (t) => {
  const { root, folder, supersededPosition } = await rewoundRoot();
  t.false(existsSync(path.join(root, 'experiments', folder, 'breakpoint_0002')), 'round 2 never had a folder');
  const out = tempDir();
  const last = await roundlogJson<Exported>(
    exportArgs(folder, root, '--round', '3', '--out', path.join(out, 'last.npz')),
  );
  const current2 = await roundlogJson<Exported>(
    exportArgs(folder, root, '--round', '2', '--out', path.join(out, 'current2.safetensors')),
  );
  const old2npz = await roundlogJson<Exported>(
    exportArgs(
      folder,
      root,
      '--round',
      '2',
      '--position',
      String(supersededPosition),
      '--out',
      path.join(out, 'old2.npz'),
    ),
  );
  const old2st = await roundlogJson<Exported>(
    exportArgs(folder, root, '--round', '2', '--superseded', '--out', path.join(out, 'old2.safetensors')),
  );
  t.like(last, { round: 3, branch: 'current', format: 'npz', method: 'converted', widened: ['brain'] });
  t.like(current2, { round: 2, branch: 'current', format: 'safetensors', method: 'copied', widened: [] });
  t.like(old2npz, { round: 2, branch: 'superseded', logPosition: String(supersededPosition), format: 'npz' });
  t.like(old2st, { round: 2, branch: 'superseded', logPosition: String(supersededPosition), method: 'copied' });
  t.not(current2.logPosition, old2npz.logPosition);
  // A round stored as safetensors is exported as the stored bytes, as recorded.
  const copied = readFileSync(current2.path);
  t.is(current2.sha256, current2.params.sha256);
  t.is(copied.length, current2.params.bytes);
  t.deepEqual(readdirSync(out).sort(), ['current2.safetensors', 'last.npz', 'old2.npz', 'old2.safetensors']);

  const dumped = await python([last.path, current2.path, old2npz.path, old2st.path]);
  const cases: [Exported, (tensor: Tensor) => unknown][] = [
    [last, npzExpected],
    [current2, safetensorsExpected],
    [old2npz, npzExpected],
    [old2st, safetensorsExpected],
  ];
  for (const [exported, expected] of cases) {
    const recorded = await recordedParams(root, folder, BigInt(exported.logPosition));
    const want = Object.fromEntries(Object.entries(recorded).map(([name, tensor]) => [name, expected(tensor)]));
    t.deepEqual(dumped[exported.path], want, `${path.basename(exported.path)}: every tensor, bit for bit`);
  }
  // The superseded round is the first history's round 2, not the current one's.
  t.not(dumped[old2st.path]!['ids']!.sha256, dumped[current2.path]!['ids']!.sha256);

  // The same round exported again gives the same bytes, in both formats (converted or not).
  for (const first of [last, old2npz, current2]) {
    const again = await roundlogJson<Exported>(
      exportArgs(
        folder,
        root,
        '--round',
        String(first.round),
        '--position',
        first.logPosition,
        '--out',
        first.path.replace(/\.(\w+)$/, '.again.$1'),
      ),
    );
    t.is(again.sha256, first.sha256, path.basename(first.path));
  }

  // The text output names the round, the file and the bfloat16 widening.
  const text = await roundlog(exportArgs(folder, root, '--round', '1', '--out', path.join(out, 'one.npz')));
  t.is(text.code, 0, text.stderr);
  t.regex(
    text.stdout,
    /exported Experiment_0000 round 1 \(current branch, RoundCompleted at log position \d+\) as npz/,
  );
  t.regex(text.stdout, /NumPy has no bfloat16: brain written as float32/);
});

test('rounds of the old encodings (the committed fixture roots) export as safetensors and npz', async (t) => {
  for (const fixture of ['0.1.0-before-manifest-v2', '0.1.0-manifest-v2']) {
    const root = path.join(tempDir(), 'root');
    cpSync(path.join(FORMATS, fixture, 'root'), root, { recursive: true });
    const out = tempDir();
    const files: Exported[] = [];
    for (const round of ['0', '2']) {
      for (const ext of ['safetensors', 'npz']) {
        files.push(
          await roundlogJson<Exported>(
            exportArgs('Experiment_0000', root, '--round', round, '--out', path.join(out, `r${round}.${ext}`)),
          ),
        );
      }
    }
    const dumped = await python(files.map((f) => f.path));
    for (const exported of files) {
      t.like(exported, { method: 'converted', params: { encoding: 'tensors/msgpack' } }, fixture);
      const recorded = await recordedParams(root, 'Experiment_0000', BigInt(exported.logPosition));
      t.deepEqual(Object.keys(recorded).sort(), ['bias', 'weights']);
      const expected = exported.format === 'npz' ? npzExpected : safetensorsExpected;
      const want = Object.fromEntries(Object.entries(recorded).map(([name, tensor]) => [name, expected(tensor)]));
      t.deepEqual(dumped[exported.path], want, `${fixture} ${path.basename(exported.path)}`);
    }
  }
});

test('a round stored as tensors/msgpack+lz4 (as releases before safetensors wrote) exports as both', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const handle = await rl.createExperiment({ saveBreakpoints: false, roundLimit: 10, initialParams: {} });
  // Zeros and a repeated pattern: lz4 shrinks them, so the older encoder stores lz4 blocks.
  const old: TensorSet = {
    weights: { dtype: 'float32', shape: [64, 64], data: new Float32Array(4096).fill(0.25) },
    counts: { dtype: 'int64', shape: [512], data: BigInt64Array.from({ length: 512 }, (_, i) => BigInt(i % 4)) },
    mask: { dtype: 'uint8', shape: [3], data: new Uint8Array([1, 2, 3]) },
  };
  const { encoding, chunks } = encodeTensorChunks(old);
  t.is(encoding, 'tensors/msgpack+lz4');
  const { ref } = await rl.blobs.putStream(chunks, { encoding });
  await handle.append(decideCompleteRound(handle.state, { replies: [], nodes: [node], params: ref }));
  const folder = handle.state.folder;
  await rl.close();

  const out = tempDir();
  const files: Exported[] = [];
  for (const ext of ['safetensors', 'npz']) {
    const args = exportArgs(folder, root, '--round', '0', '--out', path.join(out, `r0.${ext}`));
    files.push(await roundlogJson<Exported>(args));
  }
  const dumped = await python(files.map((f) => f.path));
  for (const exported of files) {
    t.like(exported, { method: 'converted', params: { encoding: 'tensors/msgpack+lz4' } });
    const expected = exported.format === 'npz' ? npzExpected : safetensorsExpected;
    const want = Object.fromEntries(Object.entries(old).map(([name, tensor]) => [name, expected(tensor)]));
    t.deepEqual(dumped[exported.path], want, path.basename(exported.path));
  }
});

test('refused: unknown experiment, missing round, --position of no RoundCompleted, bad --out or format', async (t) => {
  const { root, folder } = await rewoundRoot();
  const out = tempDir();
  const file = path.join(out, 'p.safetensors');
  const refused = async (args: string[], code: number, message: RegExp) => {
    const run = await roundlog(exportArgs(args[0]!, root, ...args.slice(1)));
    t.is(run.code, code, `${args.join(' ')}: ${run.stderr}`);
    t.regex(run.stderr, message);
    t.notRegex(run.stderr, /unexpected error/);
  };
  await refused(['Experiment_0042', '--round', '0', '--out', file], 1, /no experiment "Experiment_0042"/);
  await refused([folder, '--round', '9', '--out', file], 1, /has no completed round 9 on its current branch/);
  await refused(
    [folder, '--round', '2', '--position', '1', '--out', file],
    1,
    /no round 2 completed at log position 1/,
  );
  await refused([folder, '--round', '0', '--out', path.join(out, 'missing', 'p.npz')], 1, /missing: create it first/);
  await refused([folder, '--round', '0', '--out', out], 1, /is a directory, not a regular file/);
  await refused([folder, '--round', '0', '--out', path.join(root, 'blobs', 'p.npz')], 1, /must not be inside/);
  await refused([folder, '--round', '0', '--out', file, '--format', 'pickle'], 2, /--format must be one of/);
  await refused([folder, '--out', file], 2, /needs --round R/);
  await refused([folder, '--round', '0'], 2, /needs --out FILE/);
  // A round whose parameters retention deleted cannot be exported.
  const gc = await roundlog(['gc', folder, '--keep-last', '1', '--root', root]);
  t.is(gc.code, 0, gc.stderr);
  await refused([folder, '--round', '0', '--out', file], 1, /round 0 .*pruned|pruned.*round 0/i);
  t.deepEqual(readdirSync(out), [], 'nothing written by a refused export');

  // An existing file is kept without --force, replaced (atomically) with it.
  writeFileSync(file, 'keep me');
  await refused([folder, '--round', '3', '--out', file], 1, /does not exist yet: .*--force/);
  t.is(readFileSync(file, 'utf8'), 'keep me');
  const forced = await roundlogJson<Exported>(exportArgs(folder, root, '--round', '3', '--out', file, '--force'));
  t.true(forced.replaced);
  t.is(readFileSync(file).length, forced.bytes);
  t.deepEqual(readdirSync(out), ['p.safetensors'], 'no temporary file left');
});

test('--format wins over the extension; names that cannot be .npz entries are refused, typed', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const weights = { dtype: 'float32', shape: [1], data: new Float32Array([1]) } as const;
  const handle = await rl.createExperiment({ saveBreakpoints: true, roundLimit: 10, initialParams: {} });
  await handle.recordRound({ params: { '../escape': weights, ok: weights }, replies: [], nodes: [node] });
  const folder = handle.state.folder;
  const out = tempDir();
  const error = await t.throwsAsync(exportRound(rl, folder, { round: 0, out: path.join(out, 'p.npz') }), {
    instanceOf: UnsafeTensorNameError,
  });
  t.is(error?.code, 'UNSAFE_TENSOR_NAME');
  t.is(error?.tensor, '../escape');
  t.deepEqual(readdirSync(out), [], 'nothing written');
  await rl.close();

  const run = await roundlog(exportArgs(folder, root, '--round', '0', '--out', path.join(out, 'p.npz')));
  t.is(run.code, 1);
  t.regex(run.stderr, /tensor "..\/escape" of round 0 of Experiment_0000 .* has a "\.\." path segment/);
  // safetensors keeps any name; --format over a misleading extension.
  const st = await roundlogJson<Exported>(
    exportArgs(folder, root, '--round', '0', '--out', path.join(out, 'p.bin'), '--format', 'safetensors'),
  );
  t.is(st.format, 'safetensors');
  const dumped = await python([st.path]);
  t.deepEqual(Object.keys(dumped[st.path]!).sort(), ['../escape', 'ok']);
  mkdirSync(path.join(out, 'sub'));
  const defaulted = await roundlogJson<Exported>(
    exportArgs(folder, root, '--round', '0', '--out', path.join(out, 'sub', 'noext')),
  );
  t.is(defaulted.format, 'safetensors', 'no .npz extension: safetensors');
});
