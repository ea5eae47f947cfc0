/**
 * Nodes as processes: real `roundlog node start` processes connect to a researcher listening in
 * this process (`listenForNodes`), and `Experiment` runs its rounds on them.
 *
 * - Three node processes, three rounds: the parameters after each round are bit for bit those of
 *   the same experiment on in-process nodes holding the same data.
 * - A plan a node has not approved fails the round with `NodePlanNotApprovedError` naming the node
 *   and round; no `RoundCompleted` is recorded.
 * - A node SIGKILLed while it holds a request fails the round (`NodeFailedError` naming it); nothing
 *   is committed; started again, it takes part in the next round.
 * - A node SIGSTOPped: the round times out naming the node and round; once the researcher closes,
 *   no socket of this process stays open.
 * - Parameters of 100 MiB travel both ways (above gRPC's default 4 MiB limit).
 *
 * Every node process is killed in the test's teardown. Nodes announce each request they receive on
 * stdout; a node started with ROUNDLOG_TEST_NODE_GATE=stdin then waits for a line on its stdin, so
 * the tests act on a node known to hold a request, never after a sleep.
 */
import test, { type ExecutionContext } from 'ava';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { CLINICAL_FEATURES, syntheticClinicalFederation } from '../../examples/logistic-regression/data.ts';
import { encodeSafetensors } from '../../src/codec/safetensors.ts';
import type { TensorSet } from '../../src/codec/tensors.ts';
import { Experiment, type ExperimentOptions } from '../../src/federated/experiment.ts';
import { approvePlan } from '../../src/federated/remote/approvals.ts';
import { loadNodeDataset, numericCsv } from '../../src/federated/remote/dataset.ts';
import { NodePlanNotApprovedError } from '../../src/federated/remote/errors.ts';
import { listenForNodes, type RemoteFederation } from '../../src/federated/remote/researcher.ts';
import { deriveRng } from '../../src/federated/rng.ts';
import type { Federation } from '../../src/federated/training-plan.ts';
import { openFileEventLog } from '../../src/log/file/index.ts';
import { NodeFailedError } from '../../src/model/errors.ts';
import { killSpawned, killedAfter, type Child } from '../support/child.ts';
import { REPO, startRoundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { replyStore, requestParams } from '../support/reply-store.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const PLAN_FILE = path.join(REPO, 'examples/logistic-regression/plan.ts');
const NODES = ['hospital-a', 'hospital-b', 'hospital-c'] as const;
const TAGS = ['#clinical', '#heart'];

type Setup = { dir: string; files: Record<string, string>; nodeDirs: Record<string, string> };

/** Each hospital's data as a numeric CSV file, and an empty node folder for each. */
function setup(): Setup {
  const dir = tempDir();
  const federation = syntheticClinicalFederation({ seed: 11, rows: [120, 60, 90] });
  const files: Record<string, string> = {};
  const nodeDirs: Record<string, string> = {};
  for (const node of federation.nodes) {
    const file = path.join(dir, `${node.id}.csv`);
    writeFileSync(file, numericCsv(CLINICAL_FEATURES, node.datasets[0]!.data));
    files[node.id] = file;
    nodeDirs[node.id] = path.join(dir, `node-${node.id}`);
  }
  return { dir, files, nodeDirs };
}

/** The same data, as in-process nodes (read by the node's own loader). */
async function inProcess(s: Setup): Promise<Federation> {
  return {
    nodes: await Promise.all(
      NODES.map(async (id) => ({
        id,
        datasets: [{ id: `${id}/data`, tags: TAGS, data: (await loadNodeDataset(s.files[id]!)).data }],
      })),
    ),
  };
}

async function researcher(t: ExecutionContext): Promise<RemoteFederation> {
  const federation = await listenForNodes({ host: '127.0.0.1', port: 0 });
  t.teardown(() => federation.close());
  return federation;
}

function startNode(
  t: ExecutionContext,
  s: Setup,
  federation: RemoteFederation,
  id: string,
  env: NodeJS.ProcessEnv = {},
): Child {
  const child = startRoundlog(
    [
      'node',
      'start',
      '--id',
      id,
      '--data',
      s.files[id]!,
      '--tags',
      TAGS.join(','),
      '--researcher',
      federation.address,
      '--node-dir',
      s.nodeDirs[id]!,
    ],
    env,
  );
  return killedAfter(t, child);
}

const connected = (child: Child) => child.waitFor((line) => / connected to /.test(line));

function options(root: string, federation: Federation, overrides: Partial<ExperimentOptions> = {}): ExperimentOptions {
  return {
    root,
    tags: TAGS,
    trainingPlan: { module: 'examples/logistic-regression/plan.ts', export: 'logisticRegressionPlan' },
    federation,
    modelArgs: { columns: 5, initScale: 0.1 },
    trainingArgs: { epochs: 2, batchSize: 16, learningRate: 0.2 },
    roundLimit: 3,
    seed: 4242,
    workspace: REPO,
    nodeTimeoutMs: 60_000,
    ...overrides,
  };
}

async function streamTypes(root: string, experimentId: string): Promise<string[]> {
  const log = await openFileEventLog({ dir: path.join(root, 'log'), readOnly: true });
  try {
    return (await log.readStream(`experiment-${experimentId}`)).events.map((e) => e.type);
  } finally {
    await log.close();
  }
}

const bytes = (params: TensorSet) => encodeSafetensors(params);

test.serial('three node processes run three rounds to the parameters of in-process nodes, bit for bit', async (t) => {
  const s = setup();
  for (const id of NODES) await approvePlan(s.nodeDirs[id]!, PLAN_FILE);
  const federation = await researcher(t);
  const children = NODES.map((id) => startNode(t, s, federation, id));
  await Promise.all(children.map(connected));
  t.deepEqual(
    federation.nodes.map((n) => n.id),
    [...NODES],
  );

  const remote = await Experiment.create(options(tempDir(), federation));
  const local = await Experiment.create(options(tempDir(), await inProcess(s)));
  try {
    for (let round = 0; round < 3; round++) {
      const [a, b] = [await remote.runOnce(), await local.runOnce()];
      t.deepEqual(
        a.nodes.map((n) => [n.node, n.sampleSize, n.metrics]),
        b.nodes.map((n) => [n.node, n.sampleSize, n.metrics]),
      );
      t.true(bytes(await remote.parameters()).equals(bytes(await local.parameters())), `round ${round}`);
    }
    t.is(remote.roundCurrent(), 3);
  } finally {
    await remote.close();
    await local.close();
  }
  // Each node announced and answered three requests.
  for (const child of children) {
    t.is(child.lines.filter((l) => / train-reply round=\d/.test(l)).length, 3, child.lines.join('\n'));
  }
});

test.serial(
  'a plan a node has not approved fails the round naming the node and round; nothing is committed',
  async (t) => {
    const s = setup();
    for (const id of ['hospital-a', 'hospital-b']) await approvePlan(s.nodeDirs[id]!, PLAN_FILE);
    const federation = await researcher(t);
    const children = NODES.map((id) => startNode(t, s, federation, id));
    await Promise.all(children.map(connected));
    const root = tempDir();
    const exp = await Experiment.create(options(root, federation));
    try {
      const error = await t.throwsAsync(exp.runOnce(), { instanceOf: NodePlanNotApprovedError });
      t.like(error, { code: 'PLAN_NOT_APPROVED', node: 'hospital-c', round: 0 });
      // The researcher names the digest the node computes when it approves.
      t.is(error.sha256, (await approvePlan(tempDir(), PLAN_FILE)).sha256);
      t.regex(error.message, /node "hospital-c" refused round 0 of experiment Experiment_0000/);
      t.regex(error.message, /roundlog node approve/);
      // The node said why, naming the plan, its hash and the command.
      const said = await children[2]!.waitFor((l) => /train-error round=0 PLAN_NOT_APPROVED/.test(l));
      t.regex(
        said,
        new RegExp(
          `${error.sha256} asked for\\): .* holds no plan.*` +
            'roundlog node approve examples/logistic-regression/plan\\.ts --node-dir',
        ),
      );
      t.is(exp.roundCurrent(), 0);
      const types = await streamTypes(root, exp.id);
      t.true(types.includes('RoundStarted'));
      t.false(types.includes('RoundCompleted'), types.join(' '));
    } finally {
      await exp.close();
    }
  },
);

test.serial('a node SIGKILLed while it holds a request fails the round; started again, it takes part', async (t) => {
  const s = setup();
  for (const id of NODES) await approvePlan(s.nodeDirs[id]!, PLAN_FILE);
  const federation = await researcher(t);
  const a = startNode(t, s, federation, 'hospital-a');
  const b = startNode(t, s, federation, 'hospital-b', { ROUNDLOG_TEST_NODE_GATE: 'stdin' });
  const c = startNode(t, s, federation, 'hospital-c');
  await Promise.all([a, b, c].map(connected));
  const root = tempDir();
  const exp = await Experiment.create(options(root, federation));
  try {
    const round = exp.runOnce();
    round.catch(() => undefined);
    await b.waitFor((l) => / train-request .* round=0 attempt=1 /.test(l));
    b.process.kill('SIGKILL');
    const error = await t.throwsAsync(round, { instanceOf: NodeFailedError });
    t.like(error, { node: 'hospital-b', round: 0 });
    t.regex(error.reason, /disconnected/);
    t.is(exp.roundCurrent(), 0);
    t.false((await streamTypes(root, exp.id)).includes('RoundCompleted'));

    // Started again (without the gate), it is selected and trains the round's next attempt.
    const again = startNode(t, s, federation, 'hospital-b');
    await connected(again);
    const record = await exp.runOnce();
    t.deepEqual(
      record.nodes.map((n) => n.node),
      [...NODES],
    );
    t.is(record.round, 0);
    t.truthy(again.lines.find((l) => / train-reply round=0 attempt=2 /.test(l)));
    t.is(exp.roundCurrent(), 1);
  } finally {
    await exp.close();
  }
});

test.serial(
  'a node SIGSTOPped times out naming the node and round; closed, the researcher leaves no socket',
  async (t) => {
    const s = setup();
    for (const id of NODES) await approvePlan(s.nodeDirs[id]!, PLAN_FILE);
    const federation = await researcher(t);
    const children = NODES.map((id) => startNode(t, s, federation, id));
    await Promise.all(children.map(connected));
    const root = tempDir();
    const exp = await Experiment.create(options(root, federation, { nodeTimeoutMs: 1500 }));
    const stopped = children[0]!;
    try {
      stopped.process.kill('SIGSTOP');
      const error = await t.throwsAsync(exp.runOnce(), { instanceOf: NodeFailedError });
      t.like(error, { node: 'hospital-a', round: 0 });
      t.regex(
        error.message,
        /node "hospital-a" failed in round 0 of experiment Experiment_0000: no reply within 1500 ms/,
      );
      t.false((await streamTypes(root, exp.id)).includes('RoundCompleted'));
    } finally {
      await exp.close();
    }
    await federation.close();
    stopped.process.kill('SIGCONT');
    for (const child of children) child.process.kill('SIGTERM');
    const exits = await Promise.all(children.map((child) => child.exited));
    // The running nodes stop cleanly on SIGTERM.
    t.deepEqual(exits[1], { code: 0, signal: null });
    // No TCP server or socket of this process is left (the children's pipes are closed too).
    const open = process.getActiveResourcesInfo().filter((r) => /^TCP/.test(r));
    t.deepEqual(open, []);
  },
);

test.serial('parameters of 100 MiB travel to a node and back', async (t) => {
  const s = setup();
  const workspace = tempDir();
  const planFile = path.join(workspace, 'big-plan.ts');
  writeFileSync(
    planFile,
    `export const bigPlan = {
  init: () => ({ w: { dtype: 'float32', shape: [4], data: new Float32Array(4) } }),
  train: (params, data) => {
    const w = params.w.data;
    for (let i = 0; i < w.length; i++) w[i] += 1;
    return { params, sampleSize: data.rows, metrics: { n: w.length } };
  },
};
`,
  );
  const entry = await approvePlan(s.nodeDirs['hospital-a']!, planFile);
  const federation = await researcher(t);
  const child = startNode(t, s, federation, 'hospital-a');
  await connected(child);
  const length = (100 * 1024 * 1024) / 4;
  const data = new Float32Array(length);
  for (let i = 0; i < length; i += 4096) data[i] = i;
  const store = replyStore();
  const result = await federation.remote.train(
    {
      experiment: 'Experiment_big',
      experimentId: 'big',
      node: 'hospital-a',
      round: 0,
      attempt: 1,
      ...requestParams({ w: { dtype: 'float32', shape: [length], data } }, store),
      trainingArgs: {},
      modelArgs: {},
      plan: { module: 'big-plan.ts', export: 'bigPlan', sha256: entry.sha256 },
      rng: deriveRng(1, 0, 'hospital-a', 'train').state(),
    },
    new AbortController().signal,
  );
  const w = (await store.tensors(result.stored)).w!;
  t.deepEqual(w.shape, [length]);
  t.is(result.sampleSize, 120);
  const out = w.data as Float32Array;
  t.is(out.length, length);
  t.is(out[0], 1);
  t.is(out[4096], 4097);
  t.is(out[length - 1], 1);
});
