/**
 * `roundlog node start|approve`: a data-holding node as a process (`src/federated/remote/`).
 *
 * `node approve FILE` records the digest of a training plan's local module closure (the plan file
 * and the local files it imports) in the node's approval list;
 * `node start` loads the node's dataset, connects out to the researcher and trains the rounds it is
 * asked to with approved plans, printing one line per event, connecting again (with a growing
 * delay) when the researcher is not there or goes away. SIGINT or SIGTERM close the connection and
 * exit 0; a second one exits at once.
 */
import path from 'node:path';
import { createInterface } from 'node:readline';
import { approvePlan, APPROVALS_FILE } from '../../federated/remote/approvals.ts';
import { DATASET_LOADERS, loadNodeDataset } from '../../federated/remote/dataset.ts';
import { HEART_DISEASE_SPLIT_SEED } from '../../federated/remote/heart-disease.ts';
import { runNode } from '../../federated/remote/node.ts';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../../federated/remote/protocol.ts';
import { UsageError, checkPathArgument, nonNegativeInt, positiveInt, type Io } from '../args.ts';
import { defineCommand } from '../command.ts';
import { SIGNAL_EXIT_CODES } from '../signals.ts';

/**
 * For tests and the demo: with this variable set to `stdin`, the node waits for a line on its standard
 * input after announcing each TrainRequest, so a test (or `roundlog demo`, which kills a node there)
 * can act on a node known to be holding a request.
 */
export const NODE_GATE_ENV = 'ROUNDLOG_TEST_NODE_GATE';

const NODE_DIR = {
  type: 'string',
  describe: "DIR: the node's folder, where its approval list is (default: $ROUNDLOG_NODE_DIR, else ./node)",
} as const;

function nodeDir(given: string | undefined, io: Io): string {
  const value = given ?? (io.env.ROUNDLOG_NODE_DIR || 'node');
  return checkPathArgument(given === undefined ? '$ROUNDLOG_NODE_DIR' : '--node-dir', value, io.cwd);
}

const approve = defineCommand({
  name: 'approve',
  describe: 'approve a training plan on this node (the digest of its file and the local files it imports)',
  positionals: { file: { type: 'string', demandOption: true, describe: 'the training plan module, as reviewed' } },
  needs: 'a training plan file',
  options: { 'node-dir': NODE_DIR },
  examples: [['roundlog node approve plans/logistic.ts --node-dir /srv/node', 'approve a reviewed plan']],
  run: async (args, { io }) => {
    const dir = nodeDir(args['node-dir'], io);
    const file = checkPathArgument('FILE', args.file, io.cwd);
    const entry = await approvePlan(dir, file);
    const files = entry.files ?? [];
    io.out(
      `approved ${entry.file} sha256 ${entry.sha256} (in ${dir}/${APPROVALS_FILE}), covering ${files.length} ` +
        `file(s), the plan and the local modules it imports (paths relative to ${path.dirname(entry.file)}; ` +
        'installed packages and roundlog itself are not covered):',
    );
    for (const covered of files) io.out(`  ${covered.path} sha256 ${covered.sha256}`);
    return 0;
  },
});

const start = defineCommand({
  name: 'start',
  describe: 'run a node: load its dataset, connect to the researcher, train the rounds it asks for',
  options: {
    id: { type: 'string', demandOption: true, describe: "ID: the node id, unique among the researcher's nodes" },
    data: {
      type: 'string',
      demandOption: true,
      describe: 'FILE: the dataset (*.csv: numeric CSV, label last; processed.<hospital>.data: UCI heart disease)',
    },
    format: {
      type: 'string',
      choices: DATASET_LOADERS.map((loader) => loader.format),
      describe: "the dataset's format (default: chosen by the file's name)",
    },
    'split-seed': {
      type: 'string',
      default: String(HEART_DISEASE_SPLIT_SEED),
      describe: 'seed of the held-out split the heart-disease format makes (the example experiment uses the default)',
      coerce: nonNegativeInt('--split-seed'),
    },
    tags: { type: 'string', demandOption: true, describe: "T[,T]: the dataset's tags, comma-separated" },
    researcher: { type: 'string', demandOption: true, describe: 'HOST:PORT of the researcher' },
    'node-dir': NODE_DIR,
    'max-message-bytes': {
      type: 'string',
      default: String(DEFAULT_MAX_MESSAGE_BYTES),
      describe: 'largest message sent or accepted (parameters travel in one message)',
      coerce: positiveInt('--max-message-bytes'),
    },
  },
  examples: [
    [
      'roundlog node start --id hospital-a --data cardiac.csv --tags #heart --researcher 10.0.0.5:50051',
      "take part in the researcher's experiments tagged #heart",
    ],
    [
      'roundlog node start --id va --data examples/heart-disease/data/processed.va.data --tags heart-disease ' +
        '--researcher 127.0.0.1:50051',
      'one hospital of the heart-disease example, split and standardised on the node',
    ],
  ],
  run: async (args, { io }) => {
    const tags = args.tags.split(',').map((tag) => tag.trim());
    if (tags.some((tag) => tag === '')) throw new UsageError('--tags must be non-empty tags separated by commas');
    if (args.id === '') throw new UsageError('--id must not be empty');
    if (!/^[^:\s]+:\d+$|^\[[^\]]+\]:\d+$/.test(args.researcher)) {
      throw new UsageError(`--researcher must be HOST:PORT (got ${JSON.stringify(args.researcher)})`);
    }
    const dir = nodeDir(args['node-dir'], io);
    const dataset = await loadNodeDataset(checkPathArgument('--data', args.data, io.cwd), {
      ...(args.format === undefined ? {} : { format: args.format }),
      splitSeed: args['split-seed'] as unknown as number,
    });
    const say = (line: string) => io.out(`node ${args.id}: ${line}`);
    say(`dataset ${dataset.file}: ${dataset.format} ${dataset.rows}×${dataset.columns} sha256 ${dataset.sha256}`);
    const controller = new AbortController();
    let stopped: 'SIGINT' | 'SIGTERM' | null = null;
    const onSignal = (signal: 'SIGINT' | 'SIGTERM') => {
      if (stopped !== null) process.exit(SIGNAL_EXIT_CODES[signal]);
      stopped = signal;
      say(`${signal}: stopping`);
      controller.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const gate = io.env[NODE_GATE_ENV] === 'stdin' ? stdinGate() : null;
    try {
      await runNode({
        id: args.id,
        tags,
        dataset,
        researcher: args.researcher,
        nodeDir: dir,
        maxMessageBytes: args['max-message-bytes'] as unknown as number,
        onEvent: say,
        signal: controller.signal,
        ...(gate === null ? {} : { beforeTrain: gate.next }),
      });
    } finally {
      gate?.close();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    say('stopped');
    return 0;
  },
});

/** Each call resolves at the next line of standard input. */
function stdinGate(): { next: () => Promise<void>; close: () => void } {
  const lines = createInterface({ input: process.stdin });
  const waiting: Array<() => void> = [];
  let ready = 0;
  lines.on('line', () => {
    const next = waiting.shift();
    if (next === undefined) ready++;
    else next();
  });
  return {
    next: () =>
      new Promise<void>((resolve) => {
        if (ready > 0) {
          ready--;
          resolve();
        } else waiting.push(resolve);
      }),
    close: () => lines.close(),
  };
}

export const node = defineCommand({
  name: 'node',
  describe: 'a data-holding node as a process: approve training plans, start the node',
  subcommands: [start, approve],
});
