/**
 * `roundlog node start|approve`: a data-holding node as a process (`src/federated/remote/`).
 *
 * `node approve FILE` records the digest of a training plan's local module closure (the plan file
 * and the local files it imports) in the node's approval list;
 * `node start` loads the node's dataset, connects out to the researcher and trains the rounds it is
 * asked to with approved plans, printing one line per event, connecting again (with a growing
 * delay) when the researcher is not there or goes away. SIGINT or SIGTERM close the connection and
 * exit 0; a second one exits at once. Its options are checked before anything is read (each given
 * once, not empty, tags not repeated, the researcher `HOST:PORT` with a port from 1 to 65535), and
 * the files it reads (dataset, approval list) once at start, as typed errors naming the file.
 */
import path from 'node:path';
import { createInterface } from 'node:readline';
import { datasetSummary } from '../../federated/fingerprints.ts';
import { approvePlan, APPROVALS_FILE, readApprovals } from '../../federated/remote/approvals.ts';
import { DATASET_LOADERS, loadNodeDataset } from '../../federated/remote/dataset.ts';
import { approveCommand, nodeFileError } from '../../federated/remote/errors.ts';
import { InvalidArgumentError } from '../../errors.ts';
import { HEART_DISEASE_SPLIT_SEED } from '../../federated/remote/heart-disease.ts';
import { FOREIGN_ATTEMPTS, RETRY_MAX_MS, RETRY_MIN_MS, runNode } from '../../federated/remote/node.ts';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../../federated/remote/protocol.ts';
import {
  UsageError,
  checkPathArgument,
  commaList,
  nonNegativeInt,
  positiveInt,
  shownValue,
  splitHostPort,
  type Io,
} from '../args.ts';
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

/**
 * The value of an option the command takes once: yargs gives an array for one given several times
 * (`--tags a --tags b`), which is refused rather than guessed at (a node's id, data and researcher
 * must not be ambiguous). `undefined` when absent.
 */
function once(option: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) {
    const hint = option === '--tags' ? ' (several tags: --tags a,b)' : '';
    throw new UsageError(
      `${option} is given ${value.length} times (${value.map((v) => shownValue(String(v))).join(', ')}): ` +
        `give it once${hint}`,
    );
  }
  return String(value);
}

/** A required option's value: once, not empty, not white space only, no white space around it. */
function word(option: string, value: unknown, what: string): string {
  const text = once(option, value) ?? '';
  if (text.trim() === '') throw new UsageError(`${option} must be ${what} (got ${shownValue(text)})`);
  if (text.trim() !== text) {
    throw new UsageError(`${option} has white space at its start or end (got ${shownValue(text)}): remove it`);
  }
  return text;
}

/** `--tags`: comma-separated, each tag non-empty and named once. */
export function parseTags(value: unknown): string[] {
  const text = word('--tags', value, 'one tag or more, separated by commas (--tags a,b)');
  const { items: tags, empty, repeated } = commaList(text);
  if (empty !== -1) {
    throw new UsageError(`--tags has an empty tag (tag ${empty + 1} of ${shownValue(text)}): write --tags a,b`);
  }
  if (repeated !== undefined) {
    throw new UsageError(`--tags names ${shownValue(repeated)} twice: name each tag once`);
  }
  return tags;
}

/**
 * `--researcher`: `HOST:PORT` or `[IPv6]:PORT`, the port a decimal from 1 to 65535 (a connection to
 * any other never succeeds: it would be retried for ever).
 */
export function parseResearcher(value: unknown): string {
  const text = word('--researcher', value, 'HOST:PORT, e.g. 10.0.0.5:50051');
  const address = splitHostPort(text);
  if (address === null) {
    throw new UsageError(
      `--researcher must be HOST:PORT (a name or IPv4 address, or [IPv6], then the port), e.g. ` +
        `10.0.0.5:50051 (got ${shownValue(text)})`,
    );
  }
  if (!(address.port >= 1 && address.port <= 65535)) {
    throw new UsageError(
      `--researcher's port must be from 1 to 65535 (got ${address.portText} in ${shownValue(text)})`,
    );
  }
  return text;
}

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
      describe:
        `N: seed of the held-out split the heart-disease format makes (default ${HEART_DISEASE_SPLIT_SEED}, the ` +
        "example experiment's); part of the node's dataset fingerprint",
    },
    tags: { type: 'string', demandOption: true, describe: "T[,T]: the dataset's tags, comma-separated" },
    researcher: {
      type: 'string',
      demandOption: true,
      describe:
        'HOST:PORT of the researcher (port 1-65535). The node connects again while nothing listens there or ' +
        `the connection is lost (the delay doubling from ${RETRY_MIN_MS} ms to ${RETRY_MAX_MS / 1000} s); it ` +
        `exits 1 (NOT_A_RESEARCHER) once the address answered ${FOREIGN_ATTEMPTS} times in a row but not as ` +
        'a roundlog researcher',
    },
    'node-dir': NODE_DIR,
    'max-message-bytes': {
      type: 'string',
      default: String(DEFAULT_MAX_MESSAGE_BYTES),
      describe:
        'largest parameter file (and message) sent or accepted; parameters travel in 1 MiB chunks ' +
        '(in one message with a researcher of protocol 1)',
      coerce: (value: unknown) => positiveInt('--max-message-bytes')(once('--max-message-bytes', value)!),
    },
  },
  examples: [
    [
      "roundlog node start --id hospital-a --data cardiac.csv --tags '#heart' --researcher 10.0.0.5:50051",
      "take part in the researcher's experiments tagged #heart (quoted: a word starting with # is a comment)",
    ],
    [
      'roundlog node start --id va --data examples/heart-disease/data/processed.va.data --tags heart-disease ' +
        '--researcher 127.0.0.1:50051',
      'one hospital of the heart-disease example, split and standardised on the node',
    ],
  ],
  run: async (args, { io }) => {
    const id = word('--id', args.id, 'the node id');
    const tags = parseTags(args.tags);
    const researcher = parseResearcher(args.researcher);
    const data = word('--data', args.data, 'the dataset file');
    const format = once('--format', args.format);
    const seedText = once('--split-seed', args['split-seed']);
    const splitSeed = seedText === undefined ? undefined : nonNegativeInt('--split-seed')(seedText);
    const nodeDirText = once('--node-dir', args['node-dir']);
    if (nodeDirText !== undefined && nodeDirText.trim() === '') {
      throw new UsageError(`--node-dir must be a folder (got ${shownValue(nodeDirText)})`);
    }
    const dir = nodeDir(nodeDirText, io);
    const file = checkPathArgument('--data', data, io.cwd);
    const dataset = await loadNodeDataset(file, {
      ...(format === undefined ? {} : { format }),
      ...(splitSeed === undefined ? {} : { splitSeed }),
    }).catch((error: unknown) => {
      // A loader option the file's format does not take is a usage error of the command line.
      if (error instanceof InvalidArgumentError && error.argument === '--split-seed') {
        throw new UsageError(`--split-seed ${error.rule}`);
      }
      throw error;
    });
    const say = (line: string) => io.out(`node ${id}: ${line}`);
    say(`dataset ${dataset.file}: ${datasetSummary(dataset)}`);
    const approved = await readNodeApprovals(dir);
    if (approved === 0) {
      say(
        `no training plan is approved in ${dir} yet: every request will be refused until ` + `'${approveCommand(dir)}'`,
      );
    }
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
        id,
        tags,
        dataset,
        researcher,
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

/**
 * How many plans the node's approval list holds, read once at start so that a list or folder that
 * cannot be read fails the start (typed, naming the file) rather than every request later.
 */
async function readNodeApprovals(dir: string): Promise<number> {
  try {
    return (await readApprovals(dir)).length;
  } catch (error) {
    throw nodeFileError(
      error,
      path.join(dir, APPROVALS_FILE),
      "the node's approval list",
      'check --node-dir (or $ROUNDLOG_NODE_DIR): it names the folder the node keeps its approvals in',
    );
  }
}

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
  // A node reads its own files and no roundlog root.
  globalOptions: false,
});
