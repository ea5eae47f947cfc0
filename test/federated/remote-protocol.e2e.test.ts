/**
 * The researcher-node protocol's refusals and reconnection, with real node processes (and a raw
 * gRPC client for a Hello no node of this release sends):
 * - a Hello of another protocol version is refused (PROTOCOL_VERSION_MISMATCH, naming the versions);
 * - a second node with a connected node's id is refused (DUPLICATE_NODE_ID) and keeps trying;
 * - a node started before its researcher, and one whose researcher goes away, connect again;
 * - a plan file changed after its approval is refused (PLAN_NOT_APPROVED, naming the change).
 */
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CLINICAL_FEATURES, syntheticClinicalFederation } from '../../examples/logistic-regression/data.ts';
import { planClosure } from '../../src/federated/plan-closure.ts';
import { approvePlan } from '../../src/federated/remote/approvals.ts';
import { numericCsv } from '../../src/federated/remote/dataset.ts';
import { NodePlanNotApprovedError } from '../../src/federated/remote/errors.ts';
import { federationProtocol, type ResearcherMessage } from '../../src/federated/remote/protocol.ts';
import { listenForNodes, type RemoteFederation } from '../../src/federated/remote/researcher.ts';
import { deriveRng } from '../../src/federated/rng.ts';
import { killSpawned, type Child } from '../support/child.ts';
import { REPO, startRoundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { requestParams } from '../support/reply-store.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

function dataFile(): string {
  const file = path.join(tempDir(), 'a.csv');
  const data = syntheticClinicalFederation({ seed: 3, nodes: 1, rows: [40] }).nodes[0]!.datasets[0]!.data;
  writeFileSync(file, numericCsv(CLINICAL_FEATURES, data));
  return file;
}

async function researcher(t: ExecutionContext, port = 0): Promise<RemoteFederation> {
  const federation = await listenForNodes({ port });
  t.teardown(() => federation.close());
  return federation;
}

function startNode(t: ExecutionContext, id: string, researcherAddress: string, nodeDir = tempDir()): Child {
  const args = ['node', 'start', '--id', id, '--data', dataFile(), '--tags', '#t', '--researcher', researcherAddress];
  const child = startRoundlog([...args, '--node-dir', nodeDir]);
  t.teardown(async () => {
    if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
    await child.exited;
  });
  return child;
}

/** Resolves once `child` has printed `count` lines matching `pattern` (lines repeat word for word). */
const nthLine = (child: Child, pattern: RegExp, count: number) =>
  child.waitFor((line) => pattern.test(line) && child.lines.filter((l) => pattern.test(l)).length >= count);

const CONNECTED = / connected to /;
const connectedLine = (child: Child, count = 1) => nthLine(child, CONNECTED, count);

test.serial('a Hello of another protocol version is refused, naming the versions spoken', async (t) => {
  const federation = await researcher(t);
  const { Client } = federationProtocol();
  const client = new Client(federation.address, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  const stream = client.Connect();
  const messages: ResearcherMessage[] = [];
  const ended = new Promise<void>((resolve) => {
    stream.on('data', (m: ResearcherMessage) => messages.push(m));
    stream.on('error', () => undefined);
    stream.on('close', resolve);
  });
  stream.write({
    hello: {
      protocol_version: 99,
      node_id: 'future-node',
      tags: ['#t'],
      dataset: { rows: 1, columns: 1, sha256: '0'.repeat(64), format: 'numeric-csv' },
    },
  });
  stream.end();
  await ended;
  t.is(messages.length, 1);
  const [message] = messages;
  t.is(message!.body, 'refusal');
  if (message!.body !== 'refusal') return;
  t.is(message!.refusal.code, 'PROTOCOL_VERSION_MISMATCH');
  t.deepEqual(message!.refusal.supported_versions, [1, 2]);
  t.regex(message!.refusal.message, /speaks protocol 99; this researcher speaks 1, 2/);
  t.deepEqual(federation.nodes, []);
});

test.serial('a second node with a connected id and other data is refused as another node', async (t) => {
  const federation = await researcher(t);
  const first = startNode(t, 'same', federation.address);
  await connectedLine(first);
  const { Client } = federationProtocol();
  const client = new Client(federation.address, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  const stream = client.Connect();
  stream.on('error', () => undefined);
  const answered = new Promise<ResearcherMessage>((resolve) => stream.once('data', resolve));
  const other = 'c'.repeat(64);
  stream.write({
    hello: {
      protocol_version: 2,
      node_id: 'same',
      tags: ['#t'],
      dataset: { rows: 1, columns: 1, sha256: other, format: 'numeric-csv' },
    },
  });
  const answer = await answered;
  stream.cancel();
  const refusal = answer.body === 'refusal' ? answer.refusal : undefined;
  t.is(refusal?.code, 'DUPLICATE_NODE_ID');
  t.regex(
    refusal!.message,
    new RegExp(
      `^a node "same" is already connected \\(since \\S+\\) holding other data \\(sha256 [0-9a-f]{64}; ` +
        `this one's is ${other}\\): this is most likely another node: start it with its own --id$`,
    ),
  );
});

test.serial('a second node with a connected id is refused and keeps trying', async (t) => {
  const federation = await researcher(t);
  const first = startNode(t, 'same', federation.address);
  await connectedLine(first);
  const second = startNode(t, 'same', federation.address);
  const refused = await second.waitFor((l) => /refused by the researcher at .* with code DUPLICATE_NODE_ID/.test(l));
  t.regex(
    refused,
    new RegExp(
      `^node same: refused by the researcher at ${federation.address} with code DUPLICATE_NODE_ID: ` +
        `a node "same" is already connected \\(since \\S+\\): if this is another node, start it with its own ` +
        `--id; if it is the same node started twice, stop one \\(this one is let in once the other has gone\\); ` +
        `connecting again in \\d+ ms$`,
    ),
  );
  t.deepEqual(
    federation.connected().map((n) => n.id),
    ['same'],
  );
  // Once the first goes, the second gets in.
  first.process.kill('SIGTERM');
  t.deepEqual(await first.exited, { code: 0, signal: null });
  await connectedLine(second);
  t.deepEqual(
    federation.nodes.map((n) => n.id),
    ['same'],
  );
});

test.serial('a node started before its researcher, and one whose researcher goes away, connect again', async (t) => {
  // A port that was free a moment ago: the researcher starts there later.
  const probe = await listenForNodes({ port: 0 });
  const { port, address } = probe;
  await probe.close();
  const node = startNode(t, 'early', address);
  // Nothing listens yet: said plainly, with the address and the delay, never the raw gRPC status.
  const absent = await node.waitFor((l) => /; connecting again in \d+ ms/.test(l));
  t.is(
    absent,
    `node early: the researcher at ${address} is not listening (connection refused); connecting again in 250 ms`,
  );
  const federation = await researcher(t, port);
  await connectedLine(node);
  t.deepEqual(
    federation.nodes.map((n) => n.id),
    ['early'],
  );
  // The researcher goes away, and comes back.
  const disconnects = node.lines.filter((l) => /; connecting again in /.test(l)).length;
  await federation.close();
  const lost = await nthLine(node, /; connecting again in /, disconnects + 1);
  t.regex(lost, new RegExp(`^node early: (lost the connection to|the researcher at ${address} closed)`));
  t.false(
    node.lines.some((l) => /UNAVAILABLE|No connection established/.test(l)),
    node.lines.join('\n'),
  );
  const again = await researcher(t, port);
  await connectedLine(node, 2);
  t.deepEqual(
    again.nodes.map((n) => n.id),
    ['early'],
  );
});

/** A train request for plan `plan.ts` (export `logisticRegressionPlan`) with digest `sha256`, to node `a`. */
function trainRequest(sha256: string) {
  return {
    experiment: 'Experiment_x',
    experimentId: 'x',
    node: 'a',
    round: 4,
    attempt: 1,
    ...requestParams({
      weights: { dtype: 'float32' as const, shape: [5], data: new Float32Array(5) },
      bias: { dtype: 'float32' as const, shape: [1], data: new Float32Array(1) },
    }),
    trainingArgs: { epochs: 1, batchSize: 8, learningRate: 0.1 },
    modelArgs: { columns: 5 },
    plan: { module: 'plan.ts', export: 'logisticRegressionPlan', sha256 },
    rng: deriveRng(1, 4, 'a', 'train').state(),
  };
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test.serial('a plan file changed after its approval is refused, naming the change', async (t) => {
  const workspace = tempDir();
  const planFile = path.join(workspace, 'plan.ts');
  const example = path.join(REPO, 'examples/logistic-regression/plan.ts');
  writeFileSync(planFile, `export { logisticRegressionPlan } from ${JSON.stringify(example)};\n`);
  const nodeDir = tempDir();
  const entry = await approvePlan(nodeDir, planFile);
  appendFileSync(planFile, '\n// changed after review\n');
  const federation = await researcher(t);
  const node = startNode(t, 'a', federation.address, nodeDir);
  await connectedLine(node);
  const error = await t.throwsAsync(federation.remote.train(trainRequest(entry.sha256), new AbortController().signal), {
    instanceOf: NodePlanNotApprovedError,
  });
  t.like(error, { node: 'a', round: 4, experiment: 'Experiment_x', sha256: entry.sha256 });
  t.regex(error.nodeMessage, new RegExp(`it approved ${escape(planFile)} with that digest`));
  t.regex(error.nodeMessage, /plan\.ts changed \(sha256 [0-9a-f]{12}… approved, [0-9a-f]{12}… now\)/);
  t.regex(error.nodeMessage, new RegExp(`roundlog node approve ${escape(planFile)} --node-dir ${escape(nodeDir)}$`));
});

test.serial(
  'a module the plan imports, changed after approval, is refused naming it; the unchanged closure trains',
  async (t) => {
    const workspace = tempDir();
    const planFile = path.join(workspace, 'plan.ts');
    const helperFile = path.join(workspace, 'lib', 'helper.ts');
    mkdirSync(path.dirname(helperFile));
    writeFileSync(helperFile, 'export const extra = (sampleSize: number) => ({ seen: sampleSize });\n');
    // The example plan, reached through a local module the node must also cover.
    const example = JSON.stringify(path.join(REPO, 'examples/logistic-regression/plan.ts'));
    writeFileSync(
      planFile,
      `import { logisticRegressionPlan as base } from ${example};
import { extra } from './lib/helper.ts';
export const logisticRegressionPlan = {
  init: base.init,
  async train(...args: Parameters<typeof base.train>) {
    const result = await base.train(...args);
    return { ...result, metrics: { ...result.metrics, ...extra(result.sampleSize) } };
  },
};
`,
    );
    const nodeDir = tempDir();
    const entry = await approvePlan(nodeDir, planFile);
    const covered = entry.files!.map((f) => f.path);
    t.deepEqual(covered.slice(-2), ['lib/helper.ts', 'plan.ts']);
    t.regex(covered[0]!, /^(\.\.\/)+.*examples\/logistic-regression\/plan\.ts$/);
    t.is(covered.length, 3, 'roundlog itself (src/) is not covered');
    // The researcher computes the same digest the node approved.
    t.is((await planClosure(planFile)).sha256, entry.sha256);
    const federation = await researcher(t);
    const node = startNode(t, 'a', federation.address, nodeDir);
    await connectedLine(node);
    const reply = await federation.remote.train(trainRequest(entry.sha256), new AbortController().signal);
    t.is(reply.metrics.seen, reply.sampleSize);
    writeFileSync(helperFile, 'export const extra = () => ({ seen: -1 });\n');
    const error = await t.throwsAsync(
      federation.remote.train(trainRequest(entry.sha256), new AbortController().signal),
      {
        instanceOf: NodePlanNotApprovedError,
      },
    );
    t.regex(error.nodeMessage, /lib\/helper\.ts changed \(sha256 [0-9a-f]{12}… approved, [0-9a-f]{12}… now\)/);
    t.notRegex(error.nodeMessage, / plan\.ts changed/);
  },
);

test.serial('a digest the node has not approved is refused, saying what it approved and the command', async (t) => {
  const nodeDir = tempDir();
  const federation = await researcher(t);
  const node = startNode(t, 'a', federation.address, nodeDir);
  await connectedLine(node);
  const asked = 'ab'.repeat(32);
  const none = await t.throwsAsync(federation.remote.train(trainRequest(asked), new AbortController().signal), {
    instanceOf: NodePlanNotApprovedError,
  });
  t.regex(
    none.nodeMessage,
    new RegExp(`training plan plan\\.ts#logisticRegressionPlan \\(digest ${asked} asked for\\)`),
  );
  t.regex(none.nodeMessage, /approved-plans\.json holds no plan/);
  t.regex(
    none.nodeMessage,
    new RegExp(`run on the node: roundlog node approve plan\\.ts --node-dir ${escape(nodeDir)}$`),
  );
  const other = await approvePlan(nodeDir, path.join(REPO, 'examples/logistic-regression/plan.ts'));
  const error = await t.throwsAsync(federation.remote.train(trainRequest(asked), new AbortController().signal), {
    instanceOf: NodePlanNotApprovedError,
  });
  // Approved under the name the request gives: said to differ, most likely edited since.
  t.regex(
    error.nodeMessage,
    new RegExp(`approved .*plan\\.ts \\(digest ${other.sha256}\\) under that name, with another digest: that file`),
  );
  t.regex(error.nodeMessage, /changed since it was approved, there or here\); review the difference/);
  // Approved under another name only: listed.
  const elsewhere = tempDir();
  const otherName = path.join(tempDir(), 'other-plan.ts');
  const example = JSON.stringify(path.join(REPO, 'examples/logistic-regression/plan.ts'));
  writeFileSync(otherName, `export { logisticRegressionPlan } from ${example};\n`);
  const lone = await approvePlan(elsewhere, otherName);
  const another = startNode(t, 'b', federation.address, elsewhere);
  await connectedLine(another);
  const listed = await t.throwsAsync(
    federation.remote.train({ ...trainRequest(asked), node: 'b' }, new AbortController().signal),
    { instanceOf: NodePlanNotApprovedError },
  );
  t.regex(
    listed.nodeMessage,
    new RegExp(`approved one other plan only: .*other-plan\\.ts \\(digest ${lone.sha256}\\)`),
  );
});
