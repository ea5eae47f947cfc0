/**
 * Committing one round with 100 MB of float32 parameters, end to end, against two baselines run
 * alternately in the same invocation.
 *
 * Candidate (what a training loop with breakpoints pays per round; the `Experiment` facade makes
 * the same call after each round):
 *   handle.recordRound({ params, state, metrics, breakpoint: true })
 *     = encode the TensorSet (tensor codec chunks) + put the blob (hash, write, fsync, link, dir fsync)
 *       + append the RoundCompleted event (open the log with its writer lock, append + fsync, close)
 *       + the breakpoint folder (written by the breakpoint projection after the append:
 *         hard link of the blob, breakpoint.json written + fsynced, dir fsyncs, rename)
 *       + the TensorBoard projection (the round's metrics appended as scalar summaries to the
 *         experiment's event file; checked to be there after the runs).
 * Baselines:
 *   (a) the same raw parameter bytes written to a new plain file (writeSync in 8 MiB pieces) + fsync.
 *       Target: candidate within 1.5x.
 *   (b) a Fed-BioMed-style breakpoint done naively in Node: a new folder per round holding the
 *       parameters as a msgpack file (msgpackr, tensors as bin) and a state JSON file, each written
 *       and fsynced (no directory fsync, no rename). Ratio reported, no target.
 *
 * Every run commits NEW parameters: before each run (untimed) all 25M floats are perturbed by a
 * small N(0, 5e-4) step, as an SGD update would, so content addressing never finds them stored.
 * Excluded from every timing: generating and perturbing the parameters, a full GC before each
 * run, opening the round log and creating the experiment (once per invocation). Every contender
 * keeps what it wrote until the end, so none pays for deleting another's files.
 *
 *   npx tsx bench/round-commit.ts [--quick] [--reps=N] [--mb=100]
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Packr } from 'msgpackr';
import type { TensorSet } from '../src/codec/tensors.ts';
import { openRoundLog, type ExperimentHandle, type RoundLog } from '../src/projections/index.ts';
import { MANIFEST_FILE, SAFETENSORS_PARAMS_FILE } from '../src/projections/breakpoints/index.ts';
import { breakpointFolderName } from '../src/model/events.ts';
import {
  argValue,
  describeMode,
  formatNumber,
  formatTable,
  heading,
  interleave,
  isQuick,
  makeTempDir,
  median,
  medianOf,
  now,
  msSince,
  pairedRatio,
  ratioTable,
  removeTempDir,
  repsOr,
  samplesTable,
} from './lib.ts';

const TARGET_RATIO = 1.5;
const WRITE_CHUNK_BYTES = 8 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Parameters (exported: resume-time.ts and disk-usage.ts build theirs the same way)

/** Uniform numbers in (0, 1) from a seed. */
export function mulberry32(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 2 ** 32;
  };
}

/** Fills `out` with N(0, std) values (Box-Muller, both outputs used). */
export function fillNormal(out: Float32Array, std: number, random: () => number): void {
  for (let i = 0; i < out.length; i += 2) {
    const r = std * Math.sqrt(-2 * Math.log(random()));
    const theta = 2 * Math.PI * random();
    out[i] = r * Math.cos(theta);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(theta);
  }
}

/**
 * A model's parameters as a few float32 tensors, N(0, 0.02) like trained dense layers, summing to
 * exactly `elements` floats: a conv layer, a large hidden layer (~60%), an output layer, biases,
 * and a layer-norm vector taking the remainder.
 */
export function modelParams(elements: number, seed = 0x5eed): TensorSet {
  const random = mulberry32(seed);
  const shapes: [string, number[]][] = [];
  let left = elements;
  const take = (name: string, shape: number[]) => {
    const n = shape.reduce((p, d) => p * d, 1);
    if (n <= 0 || n > left) return;
    shapes.push([name, shape]);
    left -= n;
  };
  take('features.0.weight', [64, 3, 7, 7]);
  take('features.0.bias', [64]);
  take('classifier.0.bias', [4096]);
  take('classifier.2.bias', [1000]);
  take('classifier.0.weight', [4096, Math.floor((0.6 * left) / 4096)]);
  take('classifier.2.weight', [1000, Math.floor(left / 1000)]);
  if (left > 0) shapes.push(['norm.weight', [left]]);
  const tensors: Record<string, TensorSet[string]> = {};
  for (const [name, shape] of shapes) {
    const data = new Float32Array(shape.reduce((p, d) => p * d, 1));
    fillNormal(data, 0.02, random);
    tensors[name] = { dtype: 'float32', shape, data };
  }
  return tensors;
}

export function rawBytesOf(tensors: TensorSet): number {
  return Object.values(tensors).reduce((sum, t) => sum + t.data.byteLength, 0);
}

/** The raw element bytes of every tensor, in order: views, no copy. */
export function rawViews(tensors: TensorSet): Buffer[] {
  return Object.values(tensors).map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
}

const NOISE_BITS = 20;
const NOISE = (() => {
  const noise = new Float32Array(1 << NOISE_BITS);
  fillNormal(noise, 5e-4, mulberry32(0x0015e));
  return noise;
})();

/**
 * One training step's worth of change to every float: adds N(0, 5e-4) noise (a window of a fixed
 * noise table, shifted by a random offset), so the bytes are new and as incompressible as before.
 */
export function perturb(tensors: TensorSet, random: () => number): void {
  const mask = (1 << NOISE_BITS) - 1;
  for (const tensor of Object.values(tensors)) {
    const data = tensor.data as Float32Array;
    const offset = Math.floor(random() * NOISE.length);
    for (let i = 0; i < data.length; i++) data[i]! += NOISE[(i + offset) & mask]!;
  }
}

/** Optimizer/aggregator state of a realistic size, for the event and the state JSON. */
export function roundState(round: number): unknown {
  return {
    aggregator: { name: 'fedavg', totalSamples: 4096 * (round + 1) },
    strategy: { name: 'all-nodes', last: ['node-001', 'node-002', 'node-003'] },
    optimizer: { name: 'sgd', lr: 0.01, momentum: 0.9, step: (round + 1) * 100 },
    rng: { seed: 42, draws: round * 3 },
  };
}

export function roundMetrics(round: number): Record<string, number> {
  return { loss: 2 / (round + 1), accuracy: 1 - 1 / (round + 2), samples: 4096 };
}

/** Writes the buffers to a new file in 8 MiB pieces, then fsyncs and closes it. */
export function writeAndFsync(file: string, buffers: readonly Buffer[]): void {
  const fd = fs.openSync(file, 'w');
  try {
    for (const bytes of buffers) {
      for (let offset = 0; offset < bytes.length;) {
        offset += fs.writeSync(fd, bytes, offset, Math.min(WRITE_CHUNK_BYTES, bytes.length - offset));
      }
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A Fed-BioMed breakpoint done naively in Node: `breakpoint_NNNN/` with
 * `aggregated_params_<uuid>.mpk` (msgpack of { name: { dtype, shape, data: bin } }) and
 * `breakpoint_NNNN.json` (the state), each written with FileHandle.writeFile + sync + close.
 */
export async function fedBiomedSave(
  experimentDir: string,
  round: number,
  tensors: TensorSet,
  state: unknown,
  packr: Packr,
): Promise<{ paramsFile: string; stateFile: string }> {
  const name = `breakpoint_${String(round).padStart(4, '0')}`;
  const dir = path.join(experimentDir, name);
  await fsp.mkdir(dir, { recursive: true });
  const params: Record<string, unknown> = {};
  for (const [tensorName, t] of Object.entries(tensors)) {
    params[tensorName] = {
      dtype: t.dtype,
      shape: t.shape,
      data: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
    };
  }
  const paramsFile = path.join(dir, `aggregated_params_${randomUUID()}.mpk`);
  await writeFileDurably(paramsFile, packr.pack({ model_weights: params }));
  const stateFile = path.join(dir, `${name}.json`);
  const breakpointState = {
    breakpoint_version: '3',
    round_current: round + 1,
    round_limit: null,
    experimentation_folder: path.basename(experimentDir),
    aggregated_params: { [round]: { params_path: paramsFile } },
    ...(state as object),
  };
  await writeFileDurably(stateFile, JSON.stringify(breakpointState, null, 2));
  return { paramsFile, stateFile };
}

async function writeFileDurably(file: string, bytes: Uint8Array | string): Promise<void> {
  const handle = await fsp.open(file, 'w');
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** `gc()` without --expose-gc on the command line (as bench/blob-put.ts). */
export function gcFunction(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

// ---------------------------------------------------------------------------------------------

const BASELINE = 'baseline: write + fsync raw bytes to a plain file';
const ROUNDLOG = 'roundlog: recordRound (blob + event + breakpoint folder)';
const FEDBIOMED = 'Fed-BioMed-style naive: folder + msgpack params + state JSON, fsynced';

type Phases = { put: number[]; append: number[]; breakpoint: number[]; tensorboard: number[] };

export async function main(): Promise<void> {
  const quick = isQuick();
  const reps = repsOr(quick ? 3 : 15);
  const mbArg = Number(argValue('mb'));
  const mb = Number.isFinite(mbArg) && mbArg > 0 ? mbArg : 100;
  const elements = Math.floor((mb * 1e6) / 4);

  heading(`round-commit: one round of ${formatNumber(mb)} MB float32 parameters, committed with a breakpoint`);
  console.log(`${describeMode()}; ${reps} interleaved repetitions (+1 warm-up), order rotated each repetition`);
  console.log(
    `node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown cpu'}, ${os.cpus().length} cpus, ` +
      `temp dir on ${os.tmpdir()}`,
  );

  const collectGarbage = gcFunction();
  const start = now();
  const params = modelParams(elements);
  const rawBytes = rawBytesOf(params);
  const views = rawViews(params);
  console.log(
    `(setup, untimed) ${Object.keys(params).length} tensors, ${rawBytes} raw bytes, ` +
      `generated in ${formatNumber(msSince(start))} ms: ` +
      Object.entries(params)
        .map(([name, t]) => `${name} [${t.shape.join(', ')}]`)
        .join(', '),
  );

  const dir = await makeTempDir('round-commit');
  let rl: RoundLog | undefined;
  try {
    rl = await openRoundLog({ root: path.join(dir, 'roundlog') });
    const handle: ExperimentHandle = await rl.createExperiment({ seed: 42, saveBreakpoints: true });
    const baselineDir = path.join(dir, 'baseline');
    const fedDir = path.join(dir, 'fedbiomed', 'Experiment_0000');
    await fsp.mkdir(baselineDir, { recursive: true });
    await fsp.mkdir(fedDir, { recursive: true });
    const packr = new Packr({ useRecords: false });

    // Split of the candidate's time: putTensors (encode + blob) and the breakpoint projection (the
    // folder) are timed by wrapping what recordRound calls; the rest of recordRound is the append.
    const roundLog = rl;
    const putTensors = roundLog.putTensors.bind(roundLog);
    let lastPutMs = 0;
    roundLog.putTensors = async (tensors) => {
      const t0 = now();
      const ref = await putTensors(tensors);
      lastPutMs = msSince(t0);
      return ref;
    };
    // The breakpoint folder is written by the projection after the append.
    const projection = roundLog.projections.find((p) => p.name === 'breakpoints');
    if (projection === undefined) throw new Error('the round log has no breakpoint projection');
    const apply = projection.apply.bind(projection);
    let lastBreakpointMs = 0;
    let lastBreakpointPath = '';
    (projection as { apply: typeof apply }).apply = async (state, appended) => {
      const t0 = now();
      await apply(state, appended);
      lastBreakpointMs = msSince(t0);
      const last = state.rounds.at(-1);
      if (last?.breakpoint)
        lastBreakpointPath = path.join(roundLog.layout.experiments, state.folder, breakpointFolderName(last.round));
    };
    // The TensorBoard event file is written by the second projection, also after the append.
    const board = roundLog.projections.find((p) => p.name === 'tensorboard');
    if (board === undefined) throw new Error('the round log has no TensorBoard projection');
    const applyBoard = board.apply.bind(board);
    let lastBoardMs = 0;
    (board as { apply: typeof applyBoard }).apply = async (state, appended) => {
      const t0 = now();
      await applyBoard(state, appended);
      lastBoardMs = msSince(t0);
    };

    const random = mulberry32(0xc0ffee);
    const phases: Phases = { put: [], append: [], breakpoint: [], tensorboard: [] };
    const seen = new Set<string>();
    let blobBytes = 0;
    let manifestBytes = 0;
    let fedParamsBytes = 0;
    let fedRound = 0;
    let baselineN = 0;
    // Untimed preparation before each run: new parameters, then a full GC.
    const prepare = () => {
      perturb(params, random);
      collectGarbage();
    };

    const samples = await interleave(
      [
        {
          name: BASELINE,
          run: async () => {
            prepare();
            const t0 = now();
            writeAndFsync(path.join(baselineDir, `params-${baselineN++}.bin`), views);
            return msSince(t0);
          },
        },
        {
          name: ROUNDLOG,
          run: async (rep) => {
            prepare();
            const round = handle.roundCurrent();
            const state = roundState(round);
            const metrics = roundMetrics(round);
            lastPutMs = lastBreakpointMs = lastBoardMs = NaN;
            const t0 = now();
            const record = await handle.recordRound({ round, params, state, metrics, breakpoint: true });
            const total = msSince(t0);
            if (seen.has(record.params.sha256))
              throw new Error(`round ${round} stored parameters already stored: the perturbation did not change them`);
            seen.add(record.params.sha256);
            // The folder is there, its parameters are the blob itself (a hard link).
            const [linked, blob] = await Promise.all([
              fsp.stat(path.join(lastBreakpointPath, SAFETENSORS_PARAMS_FILE)),
              fsp.stat(roundLog.blobs.fileOf(record.params.sha256)!),
            ]);
            if (Number.isNaN(lastBoardMs)) throw new Error(`round ${round}: the TensorBoard projection did not run`);
            if (Number.isNaN(lastBreakpointMs) || linked.ino !== blob.ino)
              throw new Error(`round ${round}: no breakpoint folder hard-linked to the blob`);
            blobBytes = record.params.bytes;
            manifestBytes = (await fsp.stat(path.join(lastBreakpointPath, MANIFEST_FILE))).size;
            if (rep >= 0) {
              phases.put.push(lastPutMs);
              phases.append.push(total - lastPutMs - lastBreakpointMs - lastBoardMs);
              phases.breakpoint.push(lastBreakpointMs);
              phases.tensorboard.push(lastBoardMs);
            }
            return total;
          },
        },
        {
          name: FEDBIOMED,
          run: async () => {
            prepare();
            const round = fedRound++;
            const state = roundState(round);
            const t0 = now();
            const { paramsFile } = await fedBiomedSave(fedDir, round, params, state, packr);
            const ms = msSince(t0);
            fedParamsBytes = (await fsp.stat(paramsFile)).size;
            return ms;
          },
        },
      ],
      { reps, warmup: 1 },
    );

    // Every round's scalars reached the experiment's TensorBoard event file.
    const boardDir = path.join(roundLog.layout.experiments, handle.state.folder, 'tensorboard');
    const eventFiles = (await fsp.readdir(boardDir)).filter((name) => name.startsWith('events.out.tfevents.'));
    const boardBytes = (await Promise.all(eventFiles.map((name) => fsp.stat(path.join(boardDir, name))))).reduce(
      (sum, stat) => sum + stat.size,
      0,
    );
    if (boardBytes === 0) throw new Error(`no TensorBoard event file written under ${boardDir}`);
    console.log(
      `bytes per round: raw ${rawBytes}; roundlog blob ${blobBytes} (${handle.state.rounds.at(-1)?.params.encoding}) ` +
        `+ breakpoint.json ${manifestBytes}; ` +
        `Fed-BioMed-style msgpack ${fedParamsBytes}`,
    );
    console.log(
      'excluded from every timing: generating and perturbing the parameters (new ones before every run), ' +
        'a full GC before each run, opening the round log and creating the experiment (once). ' +
        'Included in the roundlog time: encoding, hashing, blob write + fsync + link + dir fsync, ' +
        'the event append (log open with writer lock, append + fsync, read back, close), ' +
        'the breakpoint folder and the TensorBoard event file (written by recordRound).',
    );
    console.log();
    console.log(samplesTable(samples, 'ms per round', [BASELINE, ROUNDLOG, FEDBIOMED]));
    // The disk of a VM can switch between fast and throttled phases: show the repetitions paired.
    const series = [BASELINE, ROUNDLOG, FEDBIOMED].map((name) => samples.get(name)!);
    console.log(
      `per repetition, ms (baseline / roundlog / Fed-BioMed-style): ` +
        series[0]!.map((_, i) => series.map((s) => formatNumber(s[i]!)).join('/')).join('  '),
    );
    console.log();
    const base = medianOf(samples, BASELINE);
    const phaseRow = (label: string, values: number[]) => [
      label,
      formatNumber(median(values)),
      `${((median(values) / base) * 100).toFixed(1)}%`,
    ];
    console.log(
      formatTable(
        ['roundlog time split, ms', 'median', 'of baseline'],
        [
          phaseRow('putTensors: encode + blob put (write, fsync, link, dir fsync)', phases.put),
          phaseRow('RoundCompleted append (the rest of recordRound)', phases.append),
          phaseRow('writeBreakpoint (link, manifest, fsyncs, rename)', phases.breakpoint),
          phaseRow('TensorBoard event file (scalars of the round)', phases.tensorboard),
        ],
      ),
    );
    console.log();
    const ratio = medianOf(samples, ROUNDLOG) / base;
    console.log(
      ratioTable([
        {
          label: 'roundlog ÷ baseline write+fsync',
          ratio,
          paired: pairedRatio(samples, ROUNDLOG, BASELINE),
          target: { text: `<= ${TARGET_RATIO}x`, met: (r) => r <= TARGET_RATIO },
        },
        {
          label: 'roundlog ÷ Fed-BioMed-style naive save',
          ratio: medianOf(samples, ROUNDLOG) / medianOf(samples, FEDBIOMED),
          paired: pairedRatio(samples, ROUNDLOG, FEDBIOMED),
        },
        {
          label: 'Fed-BioMed-style naive ÷ baseline',
          ratio: medianOf(samples, FEDBIOMED) / base,
          paired: pairedRatio(samples, FEDBIOMED, BASELINE),
        },
      ]),
    );
    // Disk phases: this kind of host (a VM) switches between a fast disk (~2 GB/s write + fsync)
    // and a throttled one (~0.3 GB/s); the ratio differs between the two, so it is shown for each.
    const bases = samples.get(BASELINE)!;
    const fastMs = rawBytes / 1e6; // 1 GB/s
    const paired = (keep: (base: number) => boolean) => {
      const ratios = bases.flatMap((b, i) => (keep(b) ? [samples.get(ROUNDLOG)![i]! / b] : []));
      return ratios.length === 0
        ? 'no repetition'
        : `${median(ratios).toFixed(2)}x over ${ratios.length} repetition(s)`;
    };
    console.log(
      `paired roundlog ÷ baseline by disk phase: baseline >= 1 GB/s: ${paired((b) => b < fastMs)}; ` +
        `baseline < 1 GB/s: ${paired((b) => b >= fastMs)}`,
    );
    console.log(
      `throughput: baseline ${formatNumber(rawBytes / 1e3 / base)} MB/s, ` +
        `roundlog ${formatNumber(rawBytes / 1e3 / medianOf(samples, ROUNDLOG))} MB/s`,
    );
  } finally {
    await rl?.close();
    await removeTempDir(dir);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
