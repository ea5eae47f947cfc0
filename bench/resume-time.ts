/**
 * Resume time of an experiment with 1000 rounds vs one with 10: does resuming cost the history?
 *
 * Resume = what a restarted process does to continue: `openRoundLog({ root })` +
 * `openExperiment(id)` (read the experiment's stream, replay it) + `loadRound('last')` (read,
 * hash-check and decode the last parameters) + `close()`. (`Experiment.loadBreakpoint` does this
 * and more: it also reads and re-hashes the breakpoint folder, imports the training plan and
 * appends a `Resumed` event; none of that depends on the number of rounds but the re-hash.)
 *
 * The two histories are built once, with the low-level API, the way the `Experiment` facade
 * records a federated round: a `RoundStarted` append, then `recordRound` with the replies of 3
 * nodes (3 `NodeReplied` events, each referencing its own blob) and a `RoundCompleted` event,
 * so 5 events and 4 blobs of 10k float32 (40 KB) per round, and a breakpoint folder per round.
 * Measured, in repetitions alternating the histories:
 *   - in a fresh child process (the child loads the code first; only the resume is timed, by
 *     the child, so node and tsx start-up are excluded);
 *   - in this process, reopening (a sample is the median of 5 resumes).
 * In-process, openExperiment's steps are also timed one by one, and, separately, projectExperiment
 * (which `Experiment.loadBreakpoint()` without a path runs: it reads every breakpoint's manifest).
 * The page cache stays warm (nothing is dropped); a full GC runs before each in-process sample.
 * Target: 1000-round resume ÷ 10-round resume under 1.5x.
 * Full mode also measures both histories with a 100 MB last round (the same history of small
 * rounds, copied, then a last round of 100 MB float32), against a baseline: fs.readFile of
 * that round's blob file.
 *
 *   npx tsx bench/resume-time.ts [--quick] [--reps=N] [--rounds=1000] [--no-100mb]
 */
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { TensorSet } from '../src/codec/tensors.ts';
import { openFileBlobStore } from '../src/blobs/file.ts';
import { openRoundLog, type ExperimentHandle } from '../src/projections/index.ts';
import { projectExperiment } from '../src/projections/breakpoints/index.ts';
import { replay } from '../src/model/state.ts';
import { REGISTRY_STREAM, experimentStream } from '../src/model/events.ts';
import { openFileEventLog } from '../src/log/file/index.ts';
import type { RecordedEvent } from '../src/log/types.ts';
import { rootLayout } from '../src/root.ts';
import {
  argValue,
  describeMode,
  dirBytes,
  formatNumber,
  formatTable,
  heading,
  interleave,
  isQuick,
  makeTempDir,
  median,
  medianOf,
  msSince,
  now,
  pairedRatio,
  ratioTable,
  removeTempDir,
  repsOr,
  samplesTable,
  type Samples,
} from './lib.ts';
import { gcFunction, modelParams, mulberry32, perturb, rawBytesOf, roundMetrics, roundState } from './round-commit.ts';

const THIS_FILE = fileURLToPath(import.meta.url);
const REPO_ROOT = path.resolve(path.dirname(THIS_FILE), '..');
const CHILD_FLAG = '--resume-child';
const NODES = ['node-001', 'node-002', 'node-003'];
const SMALL_ELEMENTS = 10_000;
const IN_PROCESS_INNER = 5;
const TARGET = 1.5;

type ResumeMeasure = {
  /** openRoundLog (opens the blob store). */
  openMs: number;
  /** openExperiment: log opened read-only, registry and stream read, replay, log closed. */
  experimentMs: number;
  /** loadRound('last'): blob read + SHA-256 check + decode. */
  loadMs: number;
  closeMs: number;
  totalMs: number;
  round: number;
  paramsBytes: number;
};

// ---------------------------------------------------------------------------------------------
// Building the histories

/** Appends `rounds` facade-like rounds of small parameters to the experiment. */
async function addRounds(
  handle: ExperimentHandle,
  params: TensorSet,
  rounds: number,
  random: () => number,
): Promise<void> {
  const rl = handle.roundLog;
  for (let i = 0; i < rounds; i++) {
    const round = handle.roundCurrent();
    await handle.append([{ type: 'RoundStarted', data: { v: 1, round, attempt: 1, nodes: NODES } }]);
    const replies = [];
    for (const [k, node] of NODES.entries()) {
      perturb(params, random);
      replies.push({
        round,
        attempt: 1,
        node,
        sampleSize: 1000 + 100 * k,
        params: await rl.putTensors(params),
        metrics: { loss: 2 / (round + 1) + k * 0.01, accuracy: 1 - 1 / (round + 2) },
        durationMs: 1500 + k,
      });
    }
    perturb(params, random);
    await handle.recordRound({
      round,
      attempt: 1,
      params,
      state: roundState(round),
      metrics: roundMetrics(round),
      nodes: replies.map((r) => ({ node: r.node, sampleSize: r.sampleSize, metrics: r.metrics })),
      replies,
      durationMs: 1600,
      breakpoint: true,
    });
  }
}

export type History = {
  root: string;
  experimentId: string;
  rounds: number;
  lastParamsFile: string;
  lastParamsBytes: number;
};

export async function buildHistory(
  root: string,
  rounds: number,
  seed: number,
): Promise<{ history: History; params: TensorSet; random: () => number }> {
  const rl = await openRoundLog({ root });
  try {
    const params = modelParams(SMALL_ELEMENTS, seed);
    const random = mulberry32(seed);
    const handle = await rl.createExperiment({
      seed,
      saveBreakpoints: true,
      initialParams: params,
      config: { model: 'mlp', lr: 0.01 },
    });
    await addRounds(handle, params, rounds, random);
    const last = handle.state.rounds.at(-1)!;
    return {
      history: {
        root,
        experimentId: handle.id,
        rounds: handle.roundCurrent(),
        lastParamsFile: rl.blobs.fileOf(last.params.sha256)!,
        lastParamsBytes: last.params.bytes,
      },
      params,
      random,
    };
  } finally {
    await rl.close();
  }
}

/** A copy of `history` (its whole root) with one more round of `params`. */
async function withLastRound(history: History, root: string, params: TensorSet): Promise<History> {
  await fsp.cp(history.root, root, { recursive: true });
  const rl = await openRoundLog({ root });
  try {
    const handle = await rl.openExperiment(history.experimentId);
    const round = handle.roundCurrent();
    await handle.recordRound({
      round,
      params,
      state: roundState(round),
      metrics: roundMetrics(round),
      breakpoint: true,
    });
    const last = handle.state.rounds.at(-1)!;
    return {
      root,
      experimentId: history.experimentId,
      rounds: handle.roundCurrent(),
      lastParamsFile: rl.blobs.fileOf(last.params.sha256)!,
      lastParamsBytes: last.params.bytes,
    };
  } finally {
    await rl.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Measuring

async function resumeOnce(root: string, experimentId: string): Promise<ResumeMeasure> {
  const t0 = now();
  const rl = await openRoundLog({ root });
  const openMs = msSince(t0);
  try {
    let t = now();
    const handle = await rl.openExperiment(experimentId);
    const experimentMs = msSince(t);
    t = now();
    const last = await handle.loadRound('last');
    const loadMs = msSince(t);
    t = now();
    await rl.close();
    const closeMs = msSince(t);
    const paramsBytes = rawBytesOf(last.params);
    return { openMs, experimentMs, loadMs, closeMs, totalMs: msSince(t0), round: last.round, paramsBytes };
  } catch (error) {
    await rl.close();
    throw error;
  }
}

type ExperimentSplit = {
  logOpenMs: number;
  registryMs: number;
  streamMs: number;
  events: number;
  replayMs: number;
  logCloseMs: number;
  projectMs: number;
};

/**
 * What openExperiment does, step by step with the same public pieces (log opened read-only,
 * registry stream read, experiment stream read, replay, close), each timed: where the time goes.
 */
async function openExperimentSplit(root: string, experimentId: string): Promise<ExperimentSplit> {
  let t = now();
  const log = await openFileEventLog({ dir: rootLayout(root).log, readOnly: true });
  const logOpenMs = msSince(t);
  t = now();
  await log.readStream(REGISTRY_STREAM);
  const registryMs = msSince(t);
  t = now();
  const { events } = await log.readStream(experimentStream(experimentId));
  const streamMs = msSince(t);
  t = now();
  const state = replay(events);
  const replayMs = msSince(t);
  t = now();
  await log.close();
  const logCloseMs = msSince(t);
  if (state.created?.experimentId !== experimentId) throw new Error('replay produced another experiment');
  // Not part of openExperiment: what Experiment.loadBreakpoint() without a path adds, bringing the
  // breakpoint folders in line with the log (it reads every breakpoint's manifest).
  const blobs = await openFileBlobStore({ dir: rootLayout(root).blobs });
  t = now();
  const { written } = await projectExperiment({ experimentsDir: rootLayout(root).experiments, blobs }, state);
  const projectMs = msSince(t);
  await blobs.close();
  if (written !== 0) throw new Error(`projectExperiment wrote ${written} breakpoint folders: the history lacked them`);
  return { logOpenMs, registryMs, streamMs, events: events.length, replayMs, logCloseMs, projectMs };
}

/**
 * The stream of an n-round experiment, in memory: the first event of `events` (ExperimentCreated),
 * then the per-round events of `events` repeated with their round numbers shifted.
 */
function syntheticStream(events: readonly RecordedEvent[], rounds: number): RecordedEvent[] {
  const created = events[0]!;
  const body = events.slice(1);
  const perRound = body.length / (events.filter((e) => e.type === 'RoundCompleted').length || 1);
  const out: RecordedEvent[] = [created];
  for (let r = 0; r < rounds; r++) {
    const group = body.slice((r * perRound) % body.length, ((r * perRound) % body.length) + perRound);
    for (const event of group) {
      const i = BigInt(out.length);
      out.push({ ...event, revision: i, position: i, data: { ...(event.data as object), round: r } });
    }
  }
  return out;
}

async function resumeRepeated(history: History, times: number, gc: () => void): Promise<ResumeMeasure> {
  const all: ResumeMeasure[] = [];
  for (let i = 0; i < times; i++) {
    gc();
    all.push(await resumeOnce(history.root, history.experimentId));
  }
  const pick = (key: keyof ResumeMeasure) => median(all.map((m) => m[key]));
  return {
    openMs: pick('openMs'),
    experimentMs: pick('experimentMs'),
    loadMs: pick('loadMs'),
    closeMs: pick('closeMs'),
    totalMs: pick('totalMs'),
    round: all[0]!.round,
    paramsBytes: all[0]!.paramsBytes,
  };
}

function resumeInChild(history: History): Promise<ResumeMeasure> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', THIS_FILE, CHILD_FLAG, history.root, history.experimentId],
      {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const last = stdout.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !last.startsWith('{')) {
        reject(new Error(`resume-time child exited with ${code}: ${stderr.trim() || stdout.trim()}`));
        return;
      }
      resolve(JSON.parse(last) as ResumeMeasure);
    });
  });
}

async function childMain(root: string, experimentId: string): Promise<void> {
  // Everything the resume needs is imported statically above, before the clock starts.
  const measure = await resumeOnce(root, experimentId);
  process.stdout.write(`${JSON.stringify(measure)}\n`);
}

async function readFileMs(file: string, times: number, gc: () => void): Promise<number> {
  const all: number[] = [];
  for (let i = 0; i < times; i++) {
    gc();
    const t = now();
    const bytes = await fsp.readFile(file);
    all.push(msSince(t));
    if (bytes.length === 0) throw new Error(`${file} is empty`);
  }
  return median(all);
}

// ---------------------------------------------------------------------------------------------

export async function main(): Promise<void> {
  const quick = isQuick();
  const reps = repsOr(quick ? 3 : 9);
  const roundsArg = Number(argValue('rounds'));
  const bigRounds = Number.isInteger(roundsArg) && roundsArg > 10 ? roundsArg : 1000;
  const smallRounds = 10;
  const with100 = !quick && !process.argv.includes('--no-100mb');
  const gc = gcFunction();

  heading(`resume-time: resume of a ${bigRounds}-round experiment vs a ${smallRounds}-round one`);
  console.log(
    `${describeMode()}; ${reps} alternating repetitions (+1 warm-up); ` +
      `in-process samples are the median of ${IN_PROCESS_INNER} resumes` +
      (with100 ? '; with the 100 MB last-round variant' : '; 100 MB variant skipped (quick mode or --no-100mb)'),
  );

  const dir = await makeTempDir('resume-time');
  try {
    let t = now();
    const small = (await buildHistory(path.join(dir, 'small'), smallRounds, 1)).history;
    const bigBuild = await buildHistory(path.join(dir, 'big'), bigRounds, 2);
    const big = bigBuild.history;
    const logBytes = async (h: History) => dirBytes(path.join(h.root, 'log'));
    console.log(
      `(setup) built ${smallRounds} and ${bigRounds} rounds in ${formatNumber(msSince(t) / 1000)} s: ` +
        'per round 1 RoundStarted + 3 NodeReplied + 1 RoundCompleted, ' +
        `4 blobs of ${SMALL_ELEMENTS} float32, 1 breakpoint folder; ` +
        `log ${formatNumber((await logBytes(small)) / 1024)} KiB vs ${formatNumber((await logBytes(big)) / 1024)} KiB`,
    );

    const histories: { label: string; history: History }[] = [
      { label: `${smallRounds} rounds`, history: small },
      { label: `${bigRounds} rounds`, history: big },
    ];
    let small100: History | undefined;
    let big100: History | undefined;
    if (with100) {
      t = now();
      const large = modelParams(25_000_000, 3);
      small100 = await withLastRound(small, path.join(dir, 'small-100mb'), large);
      perturb(large, mulberry32(4));
      big100 = await withLastRound(big, path.join(dir, 'big-100mb'), large);
      console.log(
        `(setup) copied both roots and added a last round of ${rawBytesOf(large)} raw bytes ` +
          `(${Object.keys(large).length} tensors) in ${formatNumber(msSince(t) / 1000)} s`,
      );
      histories.push(
        { label: `${small100.rounds} rounds, last 100 MB`, history: small100 },
        { label: `${big100.rounds} rounds, last 100 MB`, history: big100 },
      );
    }

    const splits = new Map<string, ResumeMeasure[]>();
    const experimentSplits = new Map<string, ExperimentSplit[]>();
    const contender = (name: string, history: History, measure: () => Promise<ResumeMeasure>) => ({
      name,
      run: async (rep: number) => {
        const m = await measure();
        if (m.round !== history.rounds - 1)
          throw new Error(`${name}: resumed at round ${m.round}, expected ${history.rounds - 1}`);
        if (rep >= 0) (splits.get(name) ?? splits.set(name, []).get(name)!).push(m);
        return m.totalMs;
      },
    });
    const child = (label: string) => `child process, ${label}`;
    const inproc = (label: string) => `in-process, ${label}`;
    const READ_BASELINE = 'in-process, fs.readFile of the 100 MB blob';
    const contenders = histories.flatMap(({ label, history }) => [
      contender(child(label), history, () => resumeInChild(history)),
      contender(inproc(label), history, async () => {
        const measure = await resumeRepeated(history, IN_PROCESS_INNER, gc);
        // Not part of the sample: openExperiment's steps timed one by one, for the split table.
        gc();
        const split = await openExperimentSplit(history.root, history.experimentId);
        (experimentSplits.get(label) ?? experimentSplits.set(label, []).get(label)!).push(split);
        return measure;
      }),
    ]);
    if (big100 !== undefined) {
      const file = big100.lastParamsFile;
      contenders.push({ name: READ_BASELINE, run: () => readFileMs(file, IN_PROCESS_INNER, gc) });
    }
    const samples: Samples = await interleave(contenders, { reps, warmup: 1 });

    console.log();
    console.log(
      samplesTable(
        samples,
        'resume, ms',
        contenders.map((c) => c.name),
      ),
    );
    console.log();
    const splitRows = [...splits.entries()].map(([name, ms]) => {
      const m = (key: keyof ResumeMeasure) => formatNumber(median(ms.map((x) => x[key])));
      return [name, m('openMs'), m('experimentMs'), m('loadMs'), m('closeMs'), m('totalMs')];
    });
    console.log(
      formatTable(
        [
          'resume split, median ms',
          'openRoundLog',
          'openExperiment (read + replay)',
          "loadRound('last')",
          'close',
          'total',
        ],
        splitRows,
      ),
    );
    console.log();
    const experimentRows = [...experimentSplits.entries()]
      .sort((a, b) => a[0].localeCompare(b[0], 'en', { numeric: true }))
      .map(([label, all]) => {
        const m = (key: keyof ExperimentSplit) => formatNumber(median(all.map((x) => x[key])));
        return [
          label,
          m('logOpenMs'),
          m('registryMs'),
          m('streamMs'),
          m('events'),
          m('replayMs'),
          m('logCloseMs'),
          m('projectMs'),
        ];
      });
    console.log(
      formatTable(
        [
          'openExperiment step by step, in-process, median ms',
          'log open (read-only)',
          'registry read',
          'stream read',
          'events',
          'replay (evolve fold)',
          'log close',
          'projectExperiment (separate)',
        ],
        experimentRows,
      ),
    );
    console.log();

    const under = { text: `< ${TARGET}x`, met: (r: number) => r < TARGET };
    const ratio = (a: string, b: string, label: string, target?: typeof under) => ({
      label,
      ratio: medianOf(samples, a) / medianOf(samples, b),
      paired: pairedRatio(samples, a, b),
      ...(target === undefined ? {} : { target }),
    });
    const S = `${smallRounds} rounds`;
    const B = `${bigRounds} rounds`;
    const lines = [
      ratio(child(B), child(S), `resume ${B} ÷ ${S}, child process`, under),
      ratio(inproc(B), inproc(S), `resume ${B} ÷ ${S}, in-process`, under),
    ];
    if (small100 !== undefined && big100 !== undefined) {
      const S1 = `${small100.rounds} rounds, last 100 MB`;
      const B1 = `${big100.rounds} rounds, last 100 MB`;
      lines.push(
        ratio(child(B1), child(S1), `resume ${B1} ÷ ${S1}, child process`, under),
        ratio(inproc(B1), inproc(S1), `resume ${B1} ÷ ${S1}, in-process`, under),
        ratio(inproc(B1), READ_BASELINE, `resume ${B1} ÷ fs.readFile of its blob, in-process`),
      );
    }
    console.log(ratioTable(lines));
    for (const kind of [child, inproc]) {
      const perRound = (medianOf(samples, kind(B)) - medianOf(samples, kind(S))) / (bigRounds - smallRounds);
      console.log(
        `marginal resume cost per round of history, ${kind('').replace(/, $/, '')}: ` +
          `${formatNumber(perRound * 1000)} µs`,
      );
    }
    // Is replay linear in the number of rounds? The big stream's events, repeated in memory.
    const stream = await (async () => {
      const log = await openFileEventLog({ dir: rootLayout(big.root).log, readOnly: true });
      try {
        return (await log.readStream(experimentStream(big.experimentId))).events;
      } finally {
        await log.close();
      }
    })();
    const scaling: string[][] = [];
    let previous: number | undefined;
    for (const n of [1000, 2000, 4000]) {
      const events = syntheticStream(stream, n);
      const times: number[] = [];
      for (let k = 0; k < 3; k++) {
        gc();
        const t0 = now();
        const state = replay(events);
        times.push(msSince(t0));
        if (state.rounds.length !== n)
          throw new Error(`synthetic replay gave ${state.rounds.length} rounds, expected ${n}`);
      }
      const ms = median(times);
      scaling.push([
        String(n),
        String(events.length),
        formatNumber(ms),
        previous === undefined ? '' : `${(ms / previous).toFixed(2)}x`,
      ]);
      previous = ms;
    }
    console.log();
    console.log(
      formatTable(
        ['replay alone, rounds (in memory)', 'events', 'median ms', 'vs half as many rounds (2x = linear)'],
        scaling,
      ),
    );
  } finally {
    await removeTempDir(dir);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf(CHILD_FLAG);
  if (i >= 0) await childMain(process.argv[i + 1]!, process.argv[i + 2]!);
  else await main();
}
