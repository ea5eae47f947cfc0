/**
 * A round stores each reply as it arrives and aggregates without holding them (src/federated/round.ts),
 * on real roots:
 *
 * - Nodes whose replies arrive in shuffled orders (a `RemoteTrainer` that answers in an order the
 *   test draws), aggregated from the stored replies (FedAvg's `aggregateStored`) or folded as they
 *   come (`begin` alone), and in-process nodes aggregated from the stored replies, give, round after
 *   round, the parameters and the stored replies of the same experiment on in-process nodes
 *   aggregated by the batch path (FedAvg with `aggregate` alone), bit for bit: float32, float64,
 *   float16 and int32 tensors, sample sizes up to 2^26.
 * - A round that fails after other nodes' replies were stored leaves the blob store as it found it,
 *   in process and with remote nodes, and the retry commits.
 * - With a folding aggregator, in process, a node's reply is folded before the next node trains (the
 *   round holds one reply); remote replies answered out of order are folded in node-id order.
 */
import test from 'ava';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { decodeSafetensors, encodeSafetensors } from '../../src/codec/safetensors.ts';
import type { TensorSet } from '../../src/codec/tensors.ts';
import { numbersToHalfBits } from '../../src/codec/float16.ts';
import { fedAvg, type Aggregator } from '../../src/federated/aggregators.ts';
import { Experiment, type ExperimentOptions } from '../../src/federated/experiment.ts';
import { Rng } from '../../src/federated/rng.ts';
import type {
  Federation,
  RemoteTrainRequest,
  StoredTrainResult,
  TrainResult,
} from '../../src/federated/training-plan.ts';
import { openFileEventLog } from '../../src/log/file/index.ts';
import { NodeFailedError } from '../../src/model/errors.ts';
import type { NodeReplied } from '../../src/model/events.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const PLAN = `export const plan = {
  init: () => ({
    w: { dtype: 'float32', shape: [64, 16], data: new Float32Array(1024).fill(0.5) },
    v: { dtype: 'float64', shape: [300], data: new Float64Array(300).fill(-1.25) },
    h: { dtype: 'float16', shape: [200], data: new Uint16Array(200).fill(0x3c00) },
    n: { dtype: 'int32', shape: [3], data: new Int32Array([1, 2, 3]) },
  }),
  train: (params, data) => data.train(params),
};
`;

const NODES = ['clinic-10', 'clinic-2', 'Clinic-3', 'clinic-b', 'clinic-a', 'zeta'];
const SAMPLES: Record<string, number> = {
  'clinic-10': 2 ** 26 - 3,
  'clinic-2': 7,
  'Clinic-3': 40_001,
  'clinic-b': 0,
  'clinic-a': 2 ** 20 + 1,
  zeta: 999,
};

type Gate = { fail: string | null };

/** Node `id`'s training: a step of values over many magnitudes, drawn from the round's RNG stream. */
function trainOn(id: string, params: TensorSet, gate: Gate): TrainResult {
  if (gate.fail === id) throw new Error(`${id}: out of memory`);
  const rng = Rng.fromSeed(NODES.indexOf(id) * 7919 + Number((params.n!.data as Int32Array)[0]));
  const step = () => (rng.nextFloat() - 0.5) * 2 ** (rng.nextInt(40) - 20);
  const w = Float32Array.from(params.w!.data as Float32Array, (x) => x + step());
  const v = Float64Array.from(params.v!.data as Float64Array, (x) => x + step());
  const h = numbersToHalfBits(
    Array.from({ length: 200 }, () => step() / 2 ** 10),
    'float16',
  );
  const n = Int32Array.from(params.n!.data as Int32Array, (x) => x + rng.nextInt(9));
  return {
    params: {
      w: { dtype: 'float32', shape: [64, 16], data: w },
      v: { dtype: 'float64', shape: [300], data: v },
      h: { dtype: 'float16', shape: [200], data: h },
      n: { dtype: 'int32', shape: [3], data: n },
    },
    sampleSize: SAMPLES[id]!,
    metrics: { loss: rng.nextFloat() },
  };
}

function workspace(): string {
  const dir = tempDir();
  mkdirSync(path.join(dir, 'plan'));
  writeFileSync(path.join(dir, 'plan/node-plan.ts'), PLAN);
  return dir;
}

function nodes(gate: Gate): Federation['nodes'] {
  return NODES.map((id) => ({
    id,
    datasets: [{ id: `${id}/data`, tags: ['#t'], data: { train: (params: TensorSet) => trainOn(id, params, gate) } }],
  }));
}

/**
 * Nodes answering out of order: the trainer holds every request of an attempt until all have come,
 * then answers them in an order drawn from `rng` (each reply computed from its own request).
 */
function shuffledRemote(gate: Gate, rng: Rng, orders: string[][]): Federation {
  let held: Array<{ request: RemoteTrainRequest; answer: (r: StoredTrainResult) => void; fail: (e: Error) => void }> =
    [];
  return {
    nodes: nodes(gate),
    remote: {
      train: (request) =>
        new Promise<StoredTrainResult>((answer, fail) => {
          held.push({ request, answer, fail });
          if (held.length < NODES.length) return;
          const batch = held;
          held = [];
          for (let i = batch.length - 1; i > 0; i--) {
            const j = rng.nextInt(i + 1);
            [batch[i], batch[j]] = [batch[j]!, batch[i]!];
          }
          orders.push(batch.map(({ request: r }) => r.node));
          for (const { request: r, answer: ok, fail: ko } of batch) {
            try {
              // Each reply stored as a node process's is: its safetensors bytes, through the round.
              const { params, sampleSize, metrics } = trainOn(r.node, decodeSafetensors(r.params), gate);
              r.storeReply([encodeSafetensors(params)]).then(
                ({ ref }) => ok({ stored: ref, sampleSize, metrics }),
                (error: Error) => ko(error),
              );
            } catch (error) {
              ko(error as Error);
            }
          }
        }),
    },
  };
}

/** FedAvg through the batch path: no `begin`, so the round holds every reply and calls `aggregate`. */
const batchFedAvg = (): Aggregator => {
  const { aggregate, initialState } = fedAvg();
  return { name: 'batchFedAvg', config: {}, aggregate, initialState };
};

function options(root: string, federation: Federation, overrides: Partial<ExperimentOptions> = {}): ExperimentOptions {
  return {
    root,
    workspace: WORKSPACE,
    tags: ['#t'],
    trainingPlan: { module: 'plan/node-plan.ts', export: 'plan' },
    federation,
    roundLimit: 10,
    seed: 5,
    ...overrides,
  };
}

const WORKSPACE = workspace();

async function replied(root: string, experimentId: string): Promise<string[]> {
  const log = await openFileEventLog({ dir: path.join(root, 'log'), readOnly: true });
  try {
    return (await log.readStream(`experiment-${experimentId}`)).events
      .filter((e) => e.type === 'NodeReplied')
      .map((e) => {
        const d = e.data as NodeReplied;
        return `${d.round} ${d.node} ${d.sampleSize} ${d.params.sha256} ${JSON.stringify(d.metrics)}`;
      });
  } finally {
    await log.close();
  }
}

function blobFiles(root: string): string[] {
  const dir = path.join(root, 'blobs');
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => !f.startsWith('tmp') && statSync(path.join(dir, f)).isFile())
    .sort();
}

/** FedAvg folding each reply as it comes (`begin`), without `aggregateStored`. */
const foldingFedAvg = (): Aggregator => {
  const { begin, aggregate, initialState } = fedAvg();
  return { name: 'foldingFedAvg', config: {}, begin, aggregate, initialState };
};

test('replies stored, folded or held, arriving in shuffled orders, aggregate to the same bits', async (t) => {
  const orders: string[][] = [];
  const registry = { aggregators: { batchFedAvg, foldingFedAvg } };
  const arms = {
    // FedAvg's default: every reply stored, aggregated from the blob store a slice at a time.
    'stored, remote': options(tempDir(), shuffledRemote({ fail: null }, Rng.fromSeed(77), orders)),
    'stored, in process': options(tempDir(), { nodes: nodes({ fail: null }) }),
    'folded, remote': options(tempDir(), shuffledRemote({ fail: null }, Rng.fromSeed(78), []), {
      aggregator: foldingFedAvg(),
      registry,
    }),
    'held, in process': options(tempDir(), { nodes: nodes({ fail: null }) }, { aggregator: batchFedAvg(), registry }),
  };
  const experiments = await Promise.all(Object.values(arms).map((o) => Experiment.create(o)));
  const names = Object.keys(arms);
  try {
    for (let round = 0; round < 4; round++) {
      const records = [];
      for (const exp of experiments) records.push(await exp.runOnce());
      const params = await Promise.all(experiments.map(async (exp) => encodeSafetensors(await exp.parameters())));
      for (let i = 0; i < experiments.length - 1; i++) {
        t.deepEqual(records[i]!.metrics, records.at(-1)!.metrics, `round ${round}, ${names[i]}: the weighted metrics`);
        t.deepEqual(params[i], params.at(-1), `round ${round}, ${names[i]}, replies in the order ${orders.at(-1)!}`);
      }
    }
    const held = await replied(arms['held, in process'].root!, experiments.at(-1)!.id);
    for (let i = 0; i < experiments.length - 1; i++) {
      t.deepEqual(await replied(arms[names[i] as keyof typeof arms].root!, experiments[i]!.id), held, names[i]);
    }
    t.log(`arrival orders: ${orders.map((o) => o.join(',')).join(' | ')}`);
    t.true(
      orders.some((o) => o.join() !== [...o].sort().join()),
      'some round’s replies arrived out of node-id order',
    );
  } finally {
    for (const exp of experiments) await exp.close();
  }
});

for (const where of ['in process', 'remote'] as const) {
  test(`a round failing after other replies were stored leaves the blob store as it was (${where})`, async (t) => {
    const root = tempDir();
    const gate: Gate = { fail: null };
    const federation = where === 'remote' ? shuffledRemote(gate, Rng.fromSeed(3), []) : { nodes: nodes(gate) };
    const exp = await Experiment.create(options(root, federation));
    try {
      await exp.runOnce();
      const before = blobFiles(root);
      // The last node in node-id order: every other node has replied (and been stored) before it fails.
      gate.fail = 'zeta';
      const error = await t.throwsAsync(exp.runOnce(), { instanceOf: NodeFailedError });
      t.is(error!.node, 'zeta');
      t.deepEqual(blobFiles(root), before, 'no blob of the failed round is left');
      gate.fail = null;
      const record = await exp.runOnce();
      t.is(record.attempt, 2);
      t.is(blobFiles(root).length, before.length + NODES.length + 1, 'the retry stores every reply and the aggregate');
    } finally {
      await exp.close();
    }
  });
}

test('in process, each reply is folded before the next node trains; remote ones in node-id order', async (t) => {
  const events: string[] = [];
  /** FedAvg's run (without `aggregateStored`), logging each fold: what the round holds is one reply at a time. */
  const loggingFedAvg = (): Aggregator => {
    const base = foldingFedAvg();
    return {
      ...base,
      name: 'loggingFedAvg',
      begin(state, context) {
        const run = base.begin!(state, context);
        return {
          fold(reply) {
            events.push(`fold ${reply.node}`);
            run.fold(reply);
          },
          finish: () => run.finish(),
        };
      },
    };
  };
  const logged = (federation: Federation): Federation => ({
    ...federation,
    nodes: federation.nodes.map((node) => ({
      ...node,
      datasets: node.datasets.map((dataset) => ({
        ...dataset,
        data: {
          train: (params: TensorSet) => {
            events.push(`train ${node.id}`);
            return (dataset.data as { train: (p: TensorSet) => TrainResult }).train(params);
          },
        },
      })),
    })),
  });
  const registry = { aggregators: { loggingFedAvg } };
  const local = await Experiment.create(
    options(tempDir(), logged({ nodes: nodes({ fail: null }) }), { aggregator: loggingFedAvg(), registry }),
  );
  try {
    await local.runOnce();
    const order = [...NODES].sort();
    t.deepEqual(
      events,
      order.flatMap((node) => [`train ${node}`, `fold ${node}`]),
    );
  } finally {
    await local.close();
  }

  // Remote: every request is out before any reply; the replies, answered in a shuffled order, are
  // folded in node-id order, each as soon as the ones before it are in.
  events.length = 0;
  const orders: string[][] = [];
  const remote = await Experiment.create(
    options(tempDir(), shuffledRemote({ fail: null }, Rng.fromSeed(5), orders), {
      aggregator: loggingFedAvg(),
      registry,
    }),
  );
  try {
    await remote.runOnce();
    const arrived = orders[0]!;
    const sorted = [...NODES].sort();
    t.deepEqual(
      events,
      sorted.map((node) => `fold ${node}`),
    );
    t.notDeepEqual(arrived, sorted, 'the replies arrived out of node-id order');
  } finally {
    await remote.close();
  }
});
