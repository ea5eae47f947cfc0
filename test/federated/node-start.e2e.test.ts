/**
 * `roundlog node start` as a real process, around its dataset and its researcher:
 * - a heart-disease node restarted with another `--split-seed` (same file, other held-out split) is
 *   refused before the next round with NODE_DATASET_CHANGED naming `options.splitSeed`; the round
 *   records the seed in the node's fingerprint;
 * - the same data file under two node ids: the researcher warns naming both;
 * - a researcher address where an HTTP server answers: each attempt says so plainly, and the node
 *   gives up after `FOREIGN_ATTEMPTS` with NOT_A_RESEARCHER (exit 1), no gRPC status text shown.
 */
import test, { type ExecutionContext } from 'ava';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Experiment } from '../../src/federated/experiment.ts';
import { approvePlan, sha256Hex } from '../../src/federated/remote/approvals.ts';
import { NodeDatasetChangedError } from '../../src/federated/remote/errors.ts';
import { HEART_DISEASE_SPLIT_SEED } from '../../src/federated/remote/heart-disease.ts';
import { FOREIGN_ATTEMPTS } from '../../src/federated/remote/node.ts';
import { listenForNodes } from '../../src/federated/remote/researcher.ts';
import { openFileEventLog } from '../../src/log/file/index.ts';
import type { RoundCompleted } from '../../src/model/events.ts';
import { killSpawned, type Child } from '../support/child.ts';
import { REPO, startRoundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const HEART_PLAN = path.join(REPO, 'examples/heart-disease/plan.ts');
const VA = path.join(REPO, 'examples/heart-disease/data/processed.va.data');

function startNode(t: ExecutionContext, args: string[]): Child {
  const child = startRoundlog(['node', 'start', ...args]);
  t.teardown(async () => {
    if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
    await child.exited;
  });
  return child;
}

const connected = (child: Child) => child.waitFor((line) => / connected to /.test(line));

test.serial('a node restarted with another --split-seed is refused naming options.splitSeed', async (t) => {
  const federation = await listenForNodes();
  t.teardown(() => federation.close());
  const nodeDir = tempDir();
  await approvePlan(nodeDir, HEART_PLAN);
  const args = (seed: string[]) => [
    ...['--id', 'va', '--data', VA, '--tags', 'heart-disease', '--researcher', federation.address],
    ...['--node-dir', nodeDir, ...seed],
  ];
  const first = startNode(t, args([]));
  const said = await first.waitFor((line) => / dataset /.test(line));
  t.regex(said, new RegExp(`heart-disease 200×13 splitSeed ${HEART_DISEASE_SPLIT_SEED} sha256 [0-9a-f]{64}$`));
  await connected(first);
  const root = tempDir();
  const exp = await Experiment.create({
    root,
    tags: ['heart-disease'],
    trainingPlan: { module: 'examples/heart-disease/plan.ts', export: 'heartDiseasePlan' },
    federation,
    modelArgs: { columns: 13 },
    trainingArgs: { epochs: 1, learningRate: 0.5 },
    roundLimit: 3,
    seed: 5,
    workspace: REPO,
    nodeTimeoutMs: 60_000,
  });
  const experimentId = exp.id;
  const sha256 = sha256Hex(readFileSync(VA));
  try {
    await exp.runOnce();
    // The same file, another split: only the seed differs.
    first.process.kill('SIGTERM');
    t.deepEqual(await first.exited, { code: 0, signal: null });
    const second = startNode(t, args(['--split-seed', '7']));
    await connected(second);
    const error = await t.throwsAsync(exp.runOnce(), { instanceOf: NodeDatasetChangedError });
    t.like(error, { code: 'NODE_DATASET_CHANGED', node: 'va', round: 1, recordedRound: 0 });
    t.deepEqual(error.fields, ['options.splitSeed']);
    t.is(error.now.sha256, sha256);
    t.regex(
      error.message,
      new RegExp(
        `\\(heart-disease 200×13, splitSeed ${HEART_DISEASE_SPLIT_SEED}\\) then, sha256 ${sha256} ` +
          `\\(heart-disease 200×13, splitSeed 7\\) now \\(options\\.splitSeed differs\\)`,
      ),
    );
    t.regex(error.message, new RegExp(`Restart the node with --split-seed ${HEART_DISEASE_SPLIT_SEED} as before`));
    t.false(second.lines.some((l) => / train-request /.test(l)));
  } finally {
    await exp.close();
  }
  // Round 0 recorded the seed with the node's fingerprint.
  const log = await openFileEventLog({ dir: path.join(root, 'log'), readOnly: true });
  try {
    const events = (await log.readStream(`experiment-${experimentId}`)).events;
    const round0 = events.find((e) => e.type === 'RoundCompleted')!.data as RoundCompleted;
    t.deepEqual(round0.nodes[0]!.dataset, {
      sha256,
      rows: 200,
      columns: 13,
      format: 'heart-disease',
      options: { splitSeed: String(HEART_DISEASE_SPLIT_SEED) },
    });
  } finally {
    await log.close();
  }
});

test.serial('the same data file under two node ids: the researcher warns naming both', async (t) => {
  const lines: string[] = [];
  let warned: (line: string) => void = () => undefined;
  const warning = new Promise<string>((resolve) => (warned = resolve));
  const federation = await listenForNodes({
    onEvent: (line) => {
      lines.push(line);
      if (line.startsWith('warning: ')) warned(line);
    },
  });
  t.teardown(() => federation.close());
  const common = ['--data', VA, '--tags', 'heart-disease', '--researcher', federation.address];
  const a = startNode(t, ['--id', 'va', ...common, '--node-dir', tempDir()]);
  await connected(a);
  const b = startNode(t, ['--id', 'va-again', ...common, '--node-dir', tempDir()]);
  await connected(b);
  t.is(
    await warning,
    `warning: nodes "va" and "va-again" hold the same data file (sha256 ${sha256Hex(readFileSync(VA))}): ` +
      'their rows count twice in every round they both train; stop one of them unless this is meant',
  );
  t.is(lines.filter((l) => l.startsWith('warning: ')).length, 1);
});

test.serial('an address where an HTTP server answers: said at each attempt, then NOT_A_RESEARCHER', async (t) => {
  const server = createServer((_request, response) => response.end('not a researcher'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as { port: number };
  const address = `127.0.0.1:${port}`;
  const node = startNode(t, [
    ...['--id', 'x', '--data', VA, '--tags', 'heart-disease', '--researcher', address],
    ...['--node-dir', tempDir()],
  ]);
  const { code } = await node.exited;
  t.is(code, 1);
  const answered = node.lines.filter((l) => l.includes(`${address} answered, but not in HTTP/2`));
  t.is(answered.length, FOREIGN_ATTEMPTS, node.lines.join('\n'));
  t.regex(answered[0]!, /; connecting again in 250 ms \(1 of 5 such answers before giving up\)$/);
  t.regex(answered.at(-1)!, /; giving up after 5 such answers in a row$/);
  t.regex(
    node.stderr(),
    new RegExp(`^roundlog: node "x" gave up connecting to ${address}: 5 attempts in a row found something else`),
  );
  t.notRegex(node.stderr() + node.lines.join('\n'), /UNAVAILABLE|No connection established|\n\s+at /);
});
