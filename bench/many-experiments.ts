/**
 * What the number of experiments in a root costs the operations that look at all of them: creating
 * an experiment (its folder must not be one another experiment has, or had recorded by a resume)
 * and naming an experiment by its folder (`history Experiment_0003` resolves the name against every
 * experiment's current folder).
 *
 * Builds two roots once, with the low-level API: one with 2 experiments and one with N (40; 10 in
 * quick mode), each experiment of R rounds (100; 5 events a round as the facade records them, small
 * parameters). Then measures, in interleaved repetitions, on each root:
 *   - create: `createExperiment` of one more experiment (in a copy of the root made beforehand,
 *     untimed, so every sample creates the same next experiment);
 *   - open by folder: `openExperiment('Experiment_0001')`;
 *   - open by id: `openExperiment(<its id>)` (the baseline: no look at the others).
 * Reports medians and the ratios many ÷ few for each.
 *
 *   npx tsx bench/many-experiments.ts [--quick] [--reps=N] [--experiments=N] [--rounds=R]
 */
import { cp } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TensorSet } from '../src/codec/tensors.ts';
import { openRoundLog, type ExperimentHandle } from '../src/projections/index.ts';
import {
  argValue,
  describeMode,
  heading,
  interleave,
  isQuick,
  makeTempDir,
  medianOf,
  msSince,
  now,
  pairedRatio,
  ratioTable,
  removeTempDir,
  repsOr,
  samplesTable,
} from './lib.ts';

const NODES = ['hospital-a', 'hospital-b', 'hospital-c'];

function params(seed: number): TensorSet {
  const data = new Float32Array(16).map((_, i) => seed + i / 16);
  return { weights: { dtype: 'float32', shape: [16], data } };
}

/** Appends `rounds` rounds as the facade records them: RoundStarted, 3 NodeReplied, RoundCompleted. */
async function addRounds(handle: ExperimentHandle, rounds: number): Promise<void> {
  const rl = handle.roundLog;
  for (let i = 0; i < rounds; i++) {
    const round = handle.roundCurrent();
    await handle.append([{ type: 'RoundStarted', data: { v: 1, round, attempt: 1, nodes: NODES } }]);
    const replies = [];
    for (const [k, node] of NODES.entries()) {
      replies.push({
        round,
        attempt: 1,
        node,
        sampleSize: 1000 + 100 * k,
        params: await rl.putTensors(params(round + k)),
        metrics: { loss: 2 / (round + 1) + k * 0.01 },
        durationMs: 1500 + k,
      });
    }
    await handle.recordRound({
      round,
      attempt: 1,
      params: params(round + 1),
      state: {},
      metrics: { loss: 1 / (round + 1) },
      nodes: replies.map((r) => ({ node: r.node, sampleSize: r.sampleSize, metrics: r.metrics })),
      replies,
      durationMs: 1600,
      breakpoint: false,
    });
  }
}

/** A root of `experiments` experiments of `rounds` rounds; returns the id of `Experiment_0001`. */
async function buildRoot(root: string, experiments: number, rounds: number): Promise<string> {
  const rl = await openRoundLog({ root });
  try {
    let second = '';
    for (let e = 0; e < experiments; e++) {
      const handle = await rl.createExperiment({ roundLimit: null, initialParams: params(e) });
      if (e === 1) second = handle.id;
      await addRounds(handle, rounds);
    }
    return second;
  } finally {
    await rl.close();
  }
}

export async function main(): Promise<void> {
  const many = Number(argValue('experiments') ?? (isQuick() ? 10 : 40));
  const rounds = Number(argValue('rounds') ?? 100);
  const reps = repsOr(isQuick() ? 5 : 11);
  heading(`many-experiments: 2 vs ${many} experiments of ${rounds} rounds (${describeMode()})`);
  const dir = await makeTempDir('many-experiments');
  try {
    const roots = { few: path.join(dir, 'few'), many: path.join(dir, 'many') };
    const ids = { few: await buildRoot(roots.few, 2, rounds), many: await buildRoot(roots.many, many, rounds) };
    const timed = async (fn: () => Promise<unknown>) => {
      const start = now();
      await fn();
      return msSince(start);
    };
    const contenders = (['few', 'many'] as const).flatMap((size) => [
      {
        name: `create, ${size}`,
        run: async (rep: number) => {
          const copy = path.join(dir, `copy-${size}-${rep}`);
          await cp(roots[size], copy, { recursive: true });
          const rl = await openRoundLog({ root: copy });
          try {
            return await timed(() => rl.createExperiment({ roundLimit: null, initialParams: params(0) }));
          } finally {
            await rl.close();
            await removeTempDir(copy);
          }
        },
      },
      ...(['folder', 'id'] as const).map((by) => ({
        name: `open by ${by}, ${size}`,
        run: async () => {
          const rl = await openRoundLog({ root: roots[size] });
          try {
            return await timed(() => rl.openExperiment(by === 'folder' ? 'Experiment_0001' : ids[size]));
          } finally {
            await rl.close();
          }
        },
      })),
    ]);
    const samples = await interleave(contenders, { reps });
    console.log(samplesTable(samples, 'ms'));
    const line = (what: string) => ({
      label: `${what}: ${many} experiments ÷ 2`,
      ratio: medianOf(samples, `${what}, many`) / medianOf(samples, `${what}, few`),
      paired: pairedRatio(samples, `${what}, many`, `${what}, few`),
    });
    console.log(ratioTable([line('create'), line('open by folder'), line('open by id')]));
  } finally {
    await removeTempDir(dir);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) await main();
