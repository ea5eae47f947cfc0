/**
 * Nodes as processes, the failures beyond a node's own (issue 13): real `roundlog node start`
 * processes and, where it is the one killed, a researcher process of its own
 * (`fixtures/researcher.ts`, which creates an experiment or resumes the root's last breakpoint).
 *
 * - The researcher SIGKILLed while a node (SIGSTOPped) holds a request: on SIGCONT the node drops the
 *   orphaned request (never trains it, never replies to it), connects again by itself; the
 *   researcher started again resumes from the log, asks again under attempt 2 (the log numbers
 *   attempts: the aborted one stays attempt 1), and the run completes.
 * - A late reply to an attempt the round stopped waiting for (its node timed out) reaches the
 *   researcher on a live stream: it is recognised by (experiment, round, attempt), logged, ignored.
 * - The researcher SIGKILLed after committed rounds and resumed ends on the parameters of an
 *   uninterrupted run, bit for bit.
 * - A node id coming back with another data file is refused (`NodeDatasetChangedError` naming the
 *   node and both fingerprints), also by a researcher resumed from the log; with
 *   `onDatasetChange: 'record'` it trains and the new fingerprint is recorded in the round.
 *
 * Every process is killed in the test's teardown. Nodes announce each request on stdout; a node
 * started with ROUNDLOG_TEST_NODE_GATE=stdin waits for a line on its stdin before each request (one
 * line, one request, in the order they reached the gate), so the tests act on a node known to hold
 * a request, never after a sleep.
 */
import test, { type ExecutionContext } from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CLINICAL_FEATURES, syntheticClinicalFederation } from '../../examples/logistic-regression/data.ts';
import { Experiment, type ExperimentOptions } from '../../src/federated/experiment.ts';
import { approvePlan, sha256Hex } from '../../src/federated/remote/approvals.ts';
import { numericCsv } from '../../src/federated/remote/dataset.ts';
import { NodeDatasetChangedError } from '../../src/federated/remote/errors.ts';
import { listenForNodes, type RemoteFederation } from '../../src/federated/remote/researcher.ts';
import { deriveRng } from '../../src/federated/rng.ts';
import { openFileEventLog } from '../../src/log/file/index.ts';
import type { RecordedEvent } from '../../src/log/types.ts';
import { NodeFailedError } from '../../src/model/errors.ts';
import type { RoundCompleted, RoundStarted } from '../../src/model/events.ts';
import { killSpawned, killedAfter, spawnTs, type Child } from '../support/child.ts';
import { REPO } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { requestParams } from '../support/reply-store.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const PLAN_FILE = path.join(REPO, 'examples/logistic-regression/plan.ts');
const TAGS = ['#clinical', '#heart'];
const NODES = ['hospital-a', 'hospital-b'] as const;

type Setup = { files: Record<string, string>; nodeDirs: Record<string, string>; other: string };

/** Each hospital's data file and folder (the plan approved there), and one more data file (`other`). */
async function setup(): Promise<Setup> {
  const dir = tempDir();
  const federation = syntheticClinicalFederation({ seed: 11, nodes: 3, rows: [120, 60, 90] });
  const files: Record<string, string> = {};
  const nodeDirs: Record<string, string> = {};
  const csv = (i: number) => numericCsv(CLINICAL_FEATURES, federation.nodes[i]!.datasets[0]!.data);
  for (const [i, id] of NODES.entries()) {
    files[id] = path.join(dir, `${id}.csv`);
    writeFileSync(files[id], csv(i));
    nodeDirs[id] = path.join(dir, `node-${id}`);
    await approvePlan(nodeDirs[id], PLAN_FILE);
  }
  const other = path.join(dir, 'other.csv');
  writeFileSync(other, csv(2));
  return { files, nodeDirs, other };
}

/** `fixtures/researcher.ts` as a process; resolves once it listens, with its port. */
async function startResearcher(t: ExecutionContext, args: string[]): Promise<{ child: Child; port: number }> {
  const child = killedAfter(t, spawnTs('../federated/fixtures/researcher.ts', args));
  const line = await child.waitFor((l) => /^listening \d+$/.test(l) || /^failed /.test(l));
  t.regex(line, /^listening/);
  return { child, port: Number(line.split(' ')[1]) };
}

type NodeStart = { id: string; data: string; researcher: string; nodeDir: string };

/**
 * `roundlog node start` as a process. With `hold`, the node waits at its gate before each request,
 * and every request is let through at once except those `hold` matches (the test lets them through).
 */
function startNode(t: ExecutionContext, s: NodeStart, hold?: (request: string) => boolean): Child {
  const args = ['node', 'start', '--id', s.id, '--data', s.data, '--tags', TAGS.join(','), '--researcher'];
  const gate = hold === undefined ? {} : { ROUNDLOG_TEST_NODE_GATE: 'stdin' };
  const onLine = (line: string, child: Child) => {
    if (hold !== undefined && / train-request /.test(line) && !hold(line)) child.process.stdin!.write('\n');
  };
  const all = [...args, s.researcher, '--node-dir', s.nodeDir];
  return killedAfter(t, spawnTs('../../src/cli/main.ts', all, onLine, gate));
}

const nodeAt = (s: Setup, id: string, researcher: string, data = s.files[id]!): NodeStart => ({
  id,
  data,
  researcher,
  nodeDir: s.nodeDirs[id]!,
});

const connections = (child: Child) => child.lines.filter((l) => / connected to /.test(l)).length;
const connected = (child: Child, count = 1) =>
  child.waitFor((l) => / connected to /.test(l) && connections(child) >= count);

async function events(root: string, experimentId: string): Promise<RecordedEvent[]> {
  const log = await openFileEventLog({ dir: path.join(root, 'log'), readOnly: true });
  try {
    return [...(await log.readStream(`experiment-${experimentId}`)).events];
  } finally {
    await log.close();
  }
}

const dataOf = <T>(list: RecordedEvent[], type: string) => list.filter((e) => e.type === type).map((e) => e.data as T);

test.serial(
  'a researcher SIGKILLed mid-round: the node drops the orphaned request, the researcher resumes under attempt 2',
  async (t) => {
    const s = await setup();
    const root = tempDir();
    const first = await startResearcher(t, ['--root', root, '--nodes', NODES.join(','), '--rounds', '3']);
    const address = `127.0.0.1:${first.port}`;
    const a = startNode(t, nodeAt(s, 'hospital-a', address));
    // hospital-b holds round 1's first request (as if training it) until the test lets it through.
    const b = startNode(t, nodeAt(s, 'hospital-b', address), (l) => / round=1 attempt=1 /.test(l));
    const experimentLine = await first.child.waitFor((l) => l.startsWith('experiment '));
    const experimentId = experimentLine.split(' ')[1]!;
    await b.waitFor((l) => / train-request experiment=Experiment_0000 round=1 attempt=1 /.test(l));
    b.process.kill('SIGSTOP');
    first.child.process.kill('SIGKILL');
    t.is((await first.child.exited).signal, 'SIGKILL');
    t.false(first.child.lines.includes('round-committed 1'));

    const out = path.join(tempDir(), 'final.safetensors');
    // Started again on the same address (the one the nodes know), resuming from the log.
    const again = await startResearcher(t, [
      '--root',
      root,
      '--nodes',
      NODES.join(','),
      '--port',
      String(first.port),
      '--resume',
      '--out',
      out,
    ]);
    b.process.kill('SIGCONT');
    // The node saw its researcher go and connects again by itself, with its backoff.
    await b.waitFor((l) => /the researcher at .*; connecting again in \d+ ms/.test(l));
    await connected(b, 2);
    await connected(a, 2);
    // The resumed researcher asks for round 1 again, under a new attempt number.
    await b.waitFor((l) => / train-request experiment=Experiment_0000 round=1 attempt=2 /.test(l));
    // The line that let attempt 2 through reached the gate's first waiter, the orphaned attempt 1:
    // dropped, never trained. The next line lets attempt 2 through.
    const dropped = await b.waitFor((l) =>
      / (dropped experiment=Experiment_0000|train-reply) round=1 attempt=1 /.test(l),
    );
    t.regex(dropped, /dropped .* before training: the connection it came on is gone/);
    b.process.stdin!.write('\n');
    const final = await again.child.waitFor((l) => l.startsWith('final ') || l.startsWith('failed '));
    t.regex(final, /^final [0-9a-f]{64}$/, again.child.lines.join('\n'));
    t.deepEqual(await again.child.exited, { code: 0, signal: null });
    t.deepEqual(
      again.child.lines.filter((l) => l.startsWith('round-committed')),
      ['round-committed 1', 'round-committed 2'],
    );

    // hospital-b never trained or answered attempt 1; it answered attempt 2.
    t.false(
      b.lines.some((l) => / train-reply round=1 attempt=1 /.test(l)),
      b.lines.join('\n'),
    );
    t.true(
      b.lines.some((l) => / train-reply round=1 attempt=2 /.test(l)),
      b.lines.join('\n'),
    );
    // The log: round 1 started twice (attempt 1 aborted by the kill), committed once, as attempt 2.
    const list = await events(root, experimentId);
    const started = dataOf<RoundStarted>(list, 'RoundStarted').filter((e) => e.round === 1);
    t.deepEqual(
      started.map((e) => e.attempt),
      [1, 2],
    );
    const completed = dataOf<RoundCompleted>(list, 'RoundCompleted');
    t.deepEqual(
      completed.map((e) => [e.round, e.attempt]),
      [
        [0, 1],
        [1, 2],
        [2, 1],
      ],
    );
    t.is(list.filter((e) => e.type === 'Resumed').length, 1);
  },
);

test.serial(
  "a late reply to an attempt its round stopped waiting for is logged and ignored; the next attempt's reply counts",
  async (t) => {
    const s = await setup();
    let late: (line: string) => void = () => undefined;
    const ignored = new Promise<string>((resolve) => (late = resolve));
    const federation = await listenForNodes({
      onEvent: (line) => {
        if (/ignored a late reply/.test(line)) late(line);
      },
    });
    t.teardown(() => federation.close());
    const a = startNode(t, nodeAt(s, 'hospital-a', federation.address));
    const b = startNode(t, nodeAt(s, 'hospital-b', federation.address), (l) => / round=0 attempt=1 /.test(l));
    await Promise.all([connected(a), connected(b)]);
    const root = tempDir();
    const options: ExperimentOptions = {
      root,
      tags: TAGS,
      trainingPlan: { module: 'examples/logistic-regression/plan.ts', export: 'logisticRegressionPlan' },
      federation,
      modelArgs: { columns: 5, initScale: 0.1 },
      trainingArgs: { epochs: 2, batchSize: 16, learningRate: 0.2 },
      roundLimit: 2,
      seed: 4242,
      workspace: REPO,
      nodeTimeoutMs: 3000,
    };
    const exp = await Experiment.create(options);
    const error = await t.throwsAsync(exp.runOnce(), { instanceOf: NodeFailedError });
    t.like(error, { node: 'hospital-b', round: 0 });
    await exp.close();
    // A researcher resumed from the log (the same server) retries round 0 as attempt 2.
    const resumed = await Experiment.loadBreakpoint(undefined, {
      root,
      federation,
      workspace: REPO,
      nodeTimeoutMs: 60_000,
    });
    try {
      const round = resumed.runOnce();
      round.catch(() => undefined);
      await b.waitFor((l) => / round=0 attempt=2 /.test(l));
      // That line let the node's first waiter through: attempt 1, trained and answered late.
      await b.waitFor((l) => / train-reply round=0 attempt=1 /.test(l));
      t.is(
        await ignored,
        `ignored a late reply of node "hospital-b": experiment=${resumed.id} round=0 attempt=1: ` +
          'no request waits for it (the round waits for attempt 2)',
      );
      b.process.stdin!.write('\n');
      const record = await round;
      t.is(record.attempt, 2);
      t.deepEqual(
        record.nodes.map((n) => n.node),
        [...NODES],
      );
    } finally {
      await resumed.close();
    }
  },
);

test.serial(
  'a researcher SIGKILLed after committed rounds, resumed, ends on the parameters of an uninterrupted run',
  async (t) => {
    const s = await setup();
    const rounds = ['--nodes', NODES.join(','), '--rounds', '4'];
    const expected = path.join(tempDir(), 'expected.safetensors');
    const reference = await startResearcher(t, ['--root', tempDir(), ...rounds, '--out', expected]);
    const address = `127.0.0.1:${reference.port}`;
    const nodes = NODES.map((id) => startNode(t, nodeAt(s, id, address)));
    await reference.child.waitFor((l) => l.startsWith('final '));
    t.deepEqual(await reference.child.exited, { code: 0, signal: null });

    // The same experiment on the same nodes, its researcher killed once two rounds are committed.
    const root = tempDir();
    const port = ['--port', String(reference.port)];
    const killed = await startResearcher(t, ['--root', root, ...rounds, ...port]);
    await killed.child.waitFor((l) => l === 'round-committed 1');
    killed.child.process.kill('SIGKILL');
    t.is((await killed.child.exited).signal, 'SIGKILL');
    const out = path.join(tempDir(), 'resumed.safetensors');
    const resumed = await startResearcher(t, ['--root', root, ...rounds, ...port, '--resume', '--out', out]);
    const final = await resumed.child.waitFor((l) => l.startsWith('final ') || l.startsWith('failed '));
    t.regex(final, /^final /, resumed.child.lines.join('\n'));
    t.deepEqual(await resumed.child.exited, { code: 0, signal: null });
    t.true(readFileSync(out).equals(readFileSync(expected)), 'the final parameters differ');
    t.true(reference.child.lines.includes(final), reference.child.lines.join('\n'));
    // Each node trained in every run: no node failed.
    for (const node of nodes)
      t.false(
        node.lines.some((l) => / train-error /.test(l)),
        node.lines.join('\n'),
      );
  },
);

test.serial(
  'a node id back with another data file is refused naming both fingerprints, unless the change is to be recorded',
  async (t) => {
    const s = await setup();
    const federation: RemoteFederation = await listenForNodes();
    t.teardown(() => federation.close());
    const first = startNode(t, nodeAt(s, 'hospital-a', federation.address));
    await connected(first);
    const root = tempDir();
    const options: ExperimentOptions = {
      root,
      tags: TAGS,
      trainingPlan: { module: 'examples/logistic-regression/plan.ts', export: 'logisticRegressionPlan' },
      federation,
      modelArgs: { columns: 5, initScale: 0.1 },
      trainingArgs: { epochs: 1, batchSize: 16, learningRate: 0.2 },
      roundLimit: 3,
      saveBreakpoints: true,
      seed: 7,
      workspace: REPO,
      nodeTimeoutMs: 60_000,
    };
    const exp = await Experiment.create(options);
    const before = sha256Hex(readFileSync(s.files['hospital-a']!));
    const after = sha256Hex(readFileSync(s.other));
    const experimentId = exp.id;
    try {
      await exp.runOnce();
      // The node restarts on another file.
      first.process.kill('SIGTERM');
      t.deepEqual(await first.exited, { code: 0, signal: null });
      const second = startNode(t, nodeAt(s, 'hospital-a', federation.address, s.other));
      await connected(second);
      const error = await t.throwsAsync(exp.runOnce(), { instanceOf: NodeDatasetChangedError });
      t.like(error, { code: 'NODE_DATASET_CHANGED', node: 'hospital-a', round: 1, recordedRound: 0 });
      t.is(error.recorded.sha256, before);
      t.is(error.now.sha256, after);
      t.is(error.now.rows, 90);
      t.regex(
        error.message,
        new RegExp(
          `node "hospital-a" holds another dataset than experiment Experiment_0000 recorded for it \\(in round 0\\): ` +
            `sha256 ${before} \\(numeric-csv 120×5\\) then, sha256 ${after} \\(numeric-csv 90×5\\) now`,
        ),
      );
      t.is(exp.roundCurrent(), 1);
      // A request naming the fingerprint its round checked is refused by a node holding another
      // one (it connected again with other data in between): it never reaches the node.
      const request = {
        experiment: 'Experiment_0000',
        experimentId: exp.id,
        node: 'hospital-a',
        round: 1,
        attempt: 1,
        ...requestParams(await exp.parameters()),
        trainingArgs: {},
        modelArgs: {},
        plan: { module: 'examples/logistic-regression/plan.ts', export: 'logisticRegressionPlan', sha256: '0' },
        rng: deriveRng(7, 1, 'hospital-a', 'train').state(),
        dataset: error.recorded,
      };
      const raced = await t.throwsAsync(federation.remote.train(request, new AbortController().signal), {
        instanceOf: NodeDatasetChangedError,
      });
      t.like(raced, { node: 'hospital-a', round: 1, recordedRound: null });
      t.regex(raced.message, /\(when round 1 started\)/);
      t.false(
        second.lines.some((l) => / train-request /.test(l)),
        second.lines.join('\n'),
      );
    } finally {
      await exp.close();
    }
    // Nothing of round 1 was started; round 0 recorded the node's fingerprint.
    let list = await events(root, experimentId);
    t.false(dataOf<RoundStarted>(list, 'RoundStarted').some((e) => e.round === 1));
    const [round0] = dataOf<RoundCompleted>(list, 'RoundCompleted');
    t.deepEqual(round0!.nodes[0]!.dataset, { sha256: before, rows: 120, columns: 5, format: 'numeric-csv' });

    // A researcher resumed from the log refuses it too: the fingerprint is read from the log.
    const resumed = await Experiment.loadBreakpoint(undefined, { root, federation, workspace: REPO });
    try {
      await t.throwsAsync(resumed.runOnce(), { instanceOf: NodeDatasetChangedError });
    } finally {
      await resumed.close();
    }
    // Resumed with onDatasetChange: 'record', the round trains on it and records the new fingerprint.
    const accepting = await Experiment.loadBreakpoint(undefined, {
      root,
      federation,
      workspace: REPO,
      onDatasetChange: 'record',
    });
    try {
      const record = await accepting.runOnce();
      t.is(record.round, 1);
      t.is(record.nodes[0]!.dataset?.sha256, after);
    } finally {
      await accepting.close();
    }
    list = await events(root, experimentId);
    const recorded = dataOf<RoundCompleted>(list, 'RoundCompleted').map((e) => e.nodes[0]!.dataset?.sha256);
    t.deepEqual(recorded, [before, after]);
  },
);
