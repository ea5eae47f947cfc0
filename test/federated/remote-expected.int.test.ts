/**
 * A researcher that names the nodes every round needs (`listenForNodes({ expected })`, `roundlog
 * run|resume --listen HOST:PORT --nodes IDS`): a round that starts while one of them is away fails
 * naming it, instead of training on the others (which would change the run's parameters). Nodes run
 * in this process (`runNode`) on two hospitals of the heart-disease data, loaded as a node process
 * loads them; each waits are on the researcher's event lines.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { HEART_DISEASE_DATA_DIR } from '../../examples/heart-disease/data.ts';
import { Experiment } from '../../src/federated/experiment.ts';
import { approvePlan } from '../../src/federated/remote/approvals.ts';
import { loadNodeDataset } from '../../src/federated/remote/dataset.ts';
import { runNode } from '../../src/federated/remote/node.ts';
import { listenForNodes } from '../../src/federated/remote/researcher.ts';
import { NodeNotInExperimentError } from '../../src/federated/errors.ts';
import { NodeFailedError } from '../../src/model/errors.ts';
import { REPO, roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

test('with expected nodes, a round that starts while one is away fails naming it', async (t) => {
  const dir = tempDir();
  const lines: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve: () => void }> = [];
  const federation = await listenForNodes({
    expected: ['cleveland', 'va'],
    onEvent: (line) => {
      lines.push(line);
      for (const w of [...waiters]) if (w.pattern.test(line)) waiters.splice(waiters.indexOf(w), 1)[0]!.resolve();
    },
  });
  const seen = (pattern: RegExp) =>
    lines.some((line) => pattern.test(line))
      ? Promise.resolve()
      : new Promise<void>((resolve) => waiters.push({ pattern, resolve }));
  const controllers = new Map<string, AbortController>();
  const running: Promise<void>[] = [];
  t.teardown(async () => {
    for (const c of controllers.values()) c.abort();
    await federation.close();
    await Promise.all(running);
  });
  for (const id of ['cleveland', 'va']) {
    const nodeDir = path.join(dir, id);
    await approvePlan(nodeDir, path.join(REPO, 'examples/heart-disease/plan.ts'));
    const controller = new AbortController();
    controllers.set(id, controller);
    running.push(
      runNode({
        id,
        tags: ['heart-disease'],
        dataset: await loadNodeDataset(path.join(HEART_DISEASE_DATA_DIR, `processed.${id}.data`)),
        researcher: federation.address,
        nodeDir,
        onEvent: () => undefined,
        signal: controller.signal,
      }),
    );
  }
  await federation.waitForNodes(['cleveland', 'va']);
  const experiment = await Experiment.create({
    root: path.join(dir, 'root'),
    tags: ['heart-disease'],
    trainingPlan: { module: 'examples/heart-disease/plan.ts', export: 'heartDiseasePlan' },
    federation,
    trainingArgs: { epochs: 2, learningRate: 0.5 },
    roundLimit: 3,
    seed: 5,
    workspace: REPO,
  });
  t.teardown(() => experiment.close());
  const first = await experiment.runOnce();
  t.deepEqual(
    first.nodes.map((n) => n.node),
    ['cleveland', 'va'],
  );
  t.is(typeof first.nodes[1]!.metrics.heldOutAccuracy, 'number');

  controllers.get('va')!.abort();
  await seen(/^node "va" disconnected/);
  // Still a node of the federation, as its last Hello described it.
  t.deepEqual(
    federation.nodes.map((n) => n.id),
    ['cleveland', 'va'],
  );
  const error = await t.throwsAsync(experiment.runOnce(), { instanceOf: NodeFailedError });
  t.like(error, { node: 'va', round: 1 });
  t.regex(error.message, /the node is not connected/);
  t.is(experiment.roundCurrent(), 1);
});

test('--listen and --nodes go together, HOST:PORT is checked, --max-message-bytes needs --listen', async (t) => {
  const definition = 'examples/heart-disease/experiment.ts';
  for (const [args, message] of [
    [['run', definition, '--listen', '127.0.0.1:0'], /--listen needs --nodes/],
    [['run', definition, '--nodes', 'a,b'], /--nodes names the nodes of --listen/],
    [['run', definition, '--listen', 'localhost', '--nodes', 'a'], /--listen must be HOST:PORT/],
    [
      ['resume', 'var/experiments/Experiment_0000', '--listen', '127.0.0.1:70000', '--nodes', 'a'],
      /--listen must be HOST:PORT/,
    ],
    [['run', definition, '--listen', '127.0.0.1:0', '--nodes', 'a,,b'], /--nodes must be distinct/],
    [
      ['run', definition, '--max-message-bytes', '1048576'],
      /--max-message-bytes applies to node processes: give it with --listen HOST:PORT/,
    ],
    [['run', definition, '--listen', '127.0.0.1:0', '--nodes', 'a', '--max-message-bytes', '0'], /--max-message-bytes/],
  ] as const) {
    const run = await roundlog([...args, '--root', tempDir()]);
    t.is(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    t.regex(run.stderr, message);
  }
});

test("an expected node outside the experiment's nodes is refused before anything is recorded", async (t) => {
  const dir = tempDir();
  const federation = await listenForNodes({ expected: ['cleveland', 'va'] });
  const controller = new AbortController();
  const running: Promise<void>[] = [];
  t.teardown(async () => {
    controller.abort();
    await federation.close();
    await Promise.all(running);
  });
  for (const id of ['cleveland', 'va']) {
    const nodeDir = path.join(dir, id);
    await approvePlan(nodeDir, path.join(REPO, 'examples/heart-disease/plan.ts'));
    const dataset = await loadNodeDataset(path.join(HEART_DISEASE_DATA_DIR, `processed.${id}.data`));
    const node = { id, tags: ['heart-disease'], dataset, researcher: federation.address, nodeDir };
    running.push(runNode({ ...node, onEvent: () => undefined, signal: controller.signal }));
  }
  await federation.waitForNodes(['cleveland', 'va']);
  const error = await t.throwsAsync(
    Experiment.create({
      root: path.join(dir, 'root'),
      tags: ['heart-disease'],
      nodes: ['cleveland'],
      trainingPlan: { module: 'examples/heart-disease/plan.ts', export: 'heartDiseasePlan' },
      federation,
      workspace: REPO,
    }),
    { instanceOf: NodeNotInExperimentError },
  );
  t.like(error, { code: 'NODE_NOT_IN_EXPERIMENT', node: 'va', nodes: ['cleveland'] });
  t.regex(error.message, /the experiment takes only nodes cleveland \(its nodes option\): no round would select it/);
  t.false(existsSync(path.join(dir, 'root')), 'no root was created');
});

test('resume --listen with nothing to resume says so at once, before listening for any node', async (t) => {
  const root = tempDir();
  const definition = 'test/lineage/no-breakpoints.experiment.ts';
  t.is((await roundlog(['run', definition, '--rounds', '1', '--root', root])).code, 0);
  const resumed = await roundlog([
    'resume',
    'Experiment_0000',
    '--root',
    root,
    '--listen',
    '127.0.0.1:0',
    '--nodes',
    'a',
  ]);
  t.is(resumed.code, 1, resumed.stderr);
  t.regex(resumed.stderr, /experiment Experiment_0000 has no breakpoint: it completed rounds without saving one/);
  t.notRegex(resumed.stdout, /listening for nodes/);
});
