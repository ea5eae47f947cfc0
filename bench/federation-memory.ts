/**
 * Memory and wall time of one federated round with 100 MB of parameters, each configuration in its
 * own child process (a fresh researcher), all in the same invocation:
 *
 *   nodes: 3 or 10; in process (the plan trains in the researcher) or remote (real
 *   `roundlog node start` processes, connected over gRPC to `listenForNodes` in the child);
 *   aggregator: FedAvg, which aggregates from the stored replies (`aggregateStored`: each reply
 *   stored as it arrives, then read back a slice at a time), against two baselines: the same FedAvg
 *   folding each reply as its turn comes (`begin`/`fold`/`finish`, what a custom streaming
 *   aggregator gets), and through the batch path (`aggregate`: every reply held until the last).
 *
 * Measured in the researcher's process, for every round: its peak RSS during `runOnce()` (Linux
 * VmHWM, reset just before the round through /proc/self/clear_refs), minus its RSS just before the
 * round (after a full GC: the process, the experiment, the nodes' connections), divided by the
 * parameter bytes: what the round itself costs, in parameter sets. The absolute peak ÷ parameter
 * bytes is shown too (it adds the process's own ~100 MB). Remote nodes' own memory is theirs, not
 * counted. A round: the parameters are read from the blob store, every node trains (adds a step to
 * each element: cheap, so the round's own work dominates), the replies are stored and aggregated,
 * the round is committed. Wall time: median over the rounds of a child; reported as ratios (remote
 * ÷ in process for the same nodes, from stored ÷ each baseline), no lone absolute time as a result.
 *
 *   npx tsx bench/federation-memory.ts [--quick] [--mb=100] [--dtype=float32|float64] [--rounds=N]
 *     [--place=in-process|remote] (one place only: its rows and ratios)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import { fedAvg, type Aggregator } from '../src/federated/aggregators.ts';
import { Experiment } from '../src/federated/experiment.ts';
import { approvePlan } from '../src/federated/remote/approvals.ts';
import { listenForNodes, type RemoteFederation } from '../src/federated/remote/researcher.ts';
import type { Federation } from '../src/federated/training-plan.ts';
import { gcFunction } from './round-commit.ts';
import {
  argValue,
  describeMode,
  formatNumber,
  formatTable,
  heading,
  isQuick,
  makeTempDir,
  median,
  ratioTable,
  removeTempDir,
} from './lib.ts';

const THIS_FILE = fileURLToPath(import.meta.url);
const REPO_ROOT = path.resolve(path.dirname(THIS_FILE), '..');
const CLI = path.join(REPO_ROOT, 'src', 'cli', 'main.ts');
const CHILD_FLAG = '--federation-child';
/** A round's extra memory must stay within this many parameter sets, whatever the number of nodes. */
const TARGET = 3;

type Place = 'in-process' | 'remote';
type Mode = 'stored' | 'folded' | 'batch';
const MODES: readonly Mode[] = ['stored', 'folded', 'batch'];
const MODE_LABEL: Record<Mode, string> = {
  stored: 'FedAvg from stored replies',
  folded: 'FedAvg folded as replies come',
  batch: 'FedAvg batch (baseline)',
};
type Config = { place: Place; nodes: number; mode: Mode; mb: number; dtype: 'float32' | 'float64'; rounds: number };
type RoundMeasure = { beforeKb: number; peakKb: number; ms: number };
type ChildResult = { config: Config; paramBytes: number; rounds: RoundMeasure[] };

/** Four tensors of `elements / 4` each (a model's layers), every element set; trained in place. */
const PLAN = `export const plan = {
  init: ({ elements, dtype }) => {
    const per = Math.floor(elements / 4);
    const Ctor = dtype === 'float64' ? Float64Array : Float32Array;
    const params = {};
    for (let t = 0; t < 4; t++) {
      const data = new Ctor(per);
      for (let i = 0; i < per; i++) data[i] = ((i * 2654435761) % 1000) / 1e4 - 0.05;
      params['layer' + t] = { dtype, shape: [per], data };
    }
    return params;
  },
  train: (params, data, args, rng) => {
    const step = (rng.nextFloat() - 0.5) * 1e-3;
    for (const tensor of Object.values(params)) {
      const d = tensor.data;
      for (let i = 0; i < d.length; i++) d[i] += step;
    }
    return { params, sampleSize: data.rows, metrics: { loss: 1 / data.rows } };
  },
};
`;

/** FedAvg through the batch path: no `begin`, no `aggregateStored`, so the round holds every reply. */
const batchFedAvg = (): Aggregator => {
  const { aggregate, initialState } = fedAvg();
  return { name: 'batchFedAvg', config: {}, aggregate, initialState };
};

/** FedAvg folding each reply as its turn comes (`begin`), as a custom streaming aggregator does. */
const foldedFedAvg = (): Aggregator => {
  const { begin, aggregate, initialState } = fedAvg();
  return { name: 'foldedFedAvg', config: {}, begin, aggregate, initialState };
};

function kbOf(field: 'VmHWM' | 'VmRSS'): number {
  const line = fs
    .readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  if (line === undefined) throw new Error(`no ${field} in /proc/self/status: this bench needs Linux`);
  return Number(line.split(/\s+/)[1]);
}

function startNode(args: string[]): { child: ChildProcess; lines: string[] } {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'node', 'start', ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => lines.push(line));
  createInterface({ input: child.stderr! }).on('line', (line) => lines.push(line));
  return { child, lines };
}

async function childMain(config: Config): Promise<void> {
  const collectGarbage = gcFunction();
  const itemBytes = config.dtype === 'float64' ? 8 : 4;
  const elements = Math.floor((config.mb * 1e6) / itemBytes / 4) * 4;
  const dir = await makeTempDir('federation-memory');
  const workspace = path.join(dir, 'workspace');
  fs.mkdirSync(workspace);
  const planFile = path.join(workspace, 'big-plan.ts');
  fs.writeFileSync(planFile, PLAN);
  const ids = Array.from({ length: config.nodes }, (_, i) => `node-${String(i).padStart(2, '0')}`);
  const rows = (i: number) => 10 + i;
  let remote: RemoteFederation | undefined;
  const nodes: Array<{ child: ChildProcess; lines: string[] }> = [];
  let experiment: Experiment | undefined;
  try {
    let federation: Federation;
    if (config.place === 'remote') {
      remote = await listenForNodes({ host: '127.0.0.1', port: 0 });
      for (const [i, id] of ids.entries()) {
        const nodeDir = path.join(dir, `node-${id}`);
        await approvePlan(nodeDir, planFile);
        const csv = path.join(dir, `${id}.csv`);
        fs.writeFileSync(csv, `x,label\n${Array.from({ length: rows(i) }, () => '0.5,1').join('\n')}\n`);
        nodes.push(
          startNode([
            '--id',
            id,
            '--data',
            csv,
            '--tags',
            '#bench',
            '--researcher',
            remote.address,
            '--node-dir',
            nodeDir,
          ]),
        );
      }
      const connected = remote.waitForNodes(ids);
      const exited = Promise.race(
        nodes.map(
          ({ child, lines }) =>
            new Promise<never>((_, reject) =>
              child.once('exit', (code) => reject(new Error(`a node exited (${code}): ${lines.join('\n')}`))),
            ),
        ),
      );
      await Promise.race([connected, exited]);
      federation = remote;
    } else {
      federation = {
        nodes: ids.map((id, i) => ({
          id,
          datasets: [{ id: `${id}/data`, tags: ['#bench'], data: { rows: rows(i) } }],
        })),
      };
    }
    experiment = await Experiment.create({
      root: path.join(dir, 'root'),
      workspace,
      tags: ['#bench'],
      trainingPlan: { module: 'big-plan.ts', export: 'plan' },
      federation,
      modelArgs: { elements, dtype: config.dtype },
      seed: 7,
      nodeTimeoutMs: 600_000,
      ...(config.mode === 'stored'
        ? {}
        : {
            aggregator: config.mode === 'batch' ? batchFedAvg() : foldedFedAvg(),
            registry: { aggregators: { batchFedAvg, foldedFedAvg } },
          }),
    });
    const rounds: RoundMeasure[] = [];
    for (let r = 0; r < config.rounds; r++) {
      collectGarbage();
      collectGarbage();
      const beforeKb = kbOf('VmRSS');
      fs.writeFileSync('/proc/self/clear_refs', '5');
      const t0 = performance.now();
      await experiment.runOnce();
      const ms = performance.now() - t0;
      rounds.push({ beforeKb, peakKb: kbOf('VmHWM'), ms });
    }
    const result: ChildResult = { config, paramBytes: elements * itemBytes, rounds };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await experiment?.close();
    await remote?.close();
    for (const { child } of nodes) {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await gone;
      }
    }
    await removeTempDir(dir);
  }
}

function runChild(config: Config): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', THIS_FILE, CHILD_FLAG, JSON.stringify(config)], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const last = stdout.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !last.startsWith('{')) {
        reject(new Error(`federation-memory child exited with ${code}: ${stderr.trim() || stdout.trim()}`));
        return;
      }
      resolve(JSON.parse(last) as ChildResult);
    });
  });
}

const label = (c: Pick<Config, 'place' | 'nodes'>) => `${c.place}, ${c.nodes} nodes`;

export async function main(): Promise<void> {
  const quick = isQuick();
  const mbArg = Number(argValue('mb'));
  const mb = Number.isFinite(mbArg) && mbArg > 0 ? mbArg : 100;
  const dtype = argValue('dtype') === 'float64' ? 'float64' : 'float32';
  const roundsArg = Number(argValue('rounds'));
  const rounds = Number.isInteger(roundsArg) && roundsArg > 0 ? roundsArg : quick ? 1 : 3;

  heading(`federation-memory: one round of ${formatNumber(mb)} MB of ${dtype} parameters, 3 and 10 nodes`);
  console.log(`${describeMode()}; ${rounds} round(s) per child process, one child per configuration`);
  console.log(`node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown cpu'}, ${os.cpus().length} cpus`);

  const only = argValue('place');
  const places = (['in-process', 'remote'] as const).filter((p) => only === undefined || p === only);
  if (places.length === 0) throw new Error(`--place must be in-process or remote, not ${only}`);
  const results = new Map<string, ChildResult>();
  for (const place of places) {
    for (const nodes of [3, 10]) {
      // Alternated within each (place, nodes): the baselines and the candidate meet the same machine.
      for (const mode of MODES) {
        const config: Config = { place, nodes, mode, mb, dtype, rounds };
        results.set(`${label(config)}, ${mode}`, await runChild(config));
      }
    }
  }

  const growth = (r: ChildResult) => Math.max(...r.rounds.map((m) => ((m.peakKb - m.beforeKb) * 1024) / r.paramBytes));
  const absolute = (r: ChildResult) => Math.max(...r.rounds.map((m) => (m.peakKb * 1024) / r.paramBytes));
  const ms = (r: ChildResult) => median(r.rounds.map((m) => m.ms));
  const ratio = (value: number) => `${value.toFixed(2)}x`;
  const get = (place: Place, nodes: number, mode: Mode) => results.get(`${label({ place, nodes })}, ${mode}`)!;
  const paramBytes = [...results.values()][0]!.paramBytes;
  console.log(`parameter bytes: ${paramBytes}; per round: peak RSS during the round, RSS before it (after a full GC)`);
  console.log();
  const rows: string[][] = [];
  for (const place of places) {
    for (const nodes of [3, 10]) {
      for (const mode of MODES) {
        const r = get(place, nodes, mode);
        rows.push([
          `${label({ place, nodes })}, ${MODE_LABEL[mode]}`,
          ratio(growth(r)),
          ratio(absolute(r)),
          formatNumber(Math.max(...r.rounds.map((m) => m.peakKb / 1024))),
          mode === 'stored' ? `<= ${TARGET}x ${growth(r) <= TARGET ? '(met)' : '(NOT met)'}` : '',
        ]);
      }
    }
  }
  console.log(
    formatTable(['configuration', '(peak - before) ÷ params', 'peak ÷ params', 'peak MiB', 'target'], rows, [4]),
  );
  console.log();
  console.log(
    ratioTable([
      ...(places.length < 2 ? [] : [3, 10]).map((nodes) => ({
        label: `round wall time, remote ÷ in process, ${nodes} nodes (from stored replies)`,
        ratio: ms(get('remote', nodes, 'stored')) / ms(get('in-process', nodes, 'stored')),
      })),
      ...places.flatMap((place) =>
        [3, 10].flatMap((nodes) =>
          (['folded', 'batch'] as const).map((baseline) => ({
            label: `round wall time, from stored ÷ ${baseline}, ${label({ place, nodes })}`,
            ratio: ms(get(place, nodes, 'stored')) / ms(get(place, nodes, baseline)),
          })),
        ),
      ),
      ...places.map((place) => ({
        label: `round memory (peak - before), 10 ÷ 3 nodes, ${place} (from stored replies)`,
        ratio: growth(get(place, 10, 'stored')) / growth(get(place, 3, 'stored')),
        target: { text: '<= 1.2x (independent of the nodes)', met: (r: number) => r <= 1.2 },
      })),
    ]),
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf(CHILD_FLAG);
  if (i >= 0) await childMain(JSON.parse(process.argv[i + 1]!) as Config);
  else await main();
}
