/**
 * `roundlog run`, `resume` and `ls`: experiments from the command line.
 *
 * With `--listen HOST:PORT --nodes IDS`, `run` and `resume` are the researcher of node processes
 * (`roundlog node start --researcher HOST:PORT`): the rounds train on the nodes that connect there
 * instead of the definition's in-process federation. The command waits until every node of
 * `--nodes` is connected before the first round; a round that starts while one of them is away
 * fails naming it (`listenForNodes`' `expected`), so that every round trains on the same nodes.
 */
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { kept } from '../../audit/describe.ts';
import { isPathLike } from '../../engine/names.ts';
import { ExperimentNotFoundError, TrainingPlanChangedError } from '../../model/errors.ts';
import { InvalidArgumentError } from '../../errors.ts';
import { DEFAULT_NODE_TIMEOUT_MS, Experiment } from '../../federated/experiment.ts';
import type { DatasetChangePolicy } from '../../federated/fingerprints.ts';
import { resumeCommand } from '../../model/events.ts';
import { dataAreas } from '../../federated/load-module.ts';
import { listenForNodes, type RemoteFederation } from '../../federated/remote/researcher.ts';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../../federated/remote/protocol.ts';
import { rootLayout } from '../../root.ts';
import { UsageError, checkPathArgument, commaList, positiveInt, splitHostPort, table, type Io } from '../args.ts';
import { defineCommand, onSameRoot, storeOptions, withRoundLog, type GlobalOptions } from '../command.ts';
import { stopOnSignals } from '../signals.ts';
import { displayPath, importDefinition, listExperiments, progressLine, type DefinitionRef } from '../experiments.ts';

const rounds = {
  type: 'string',
  describe: 'run this many more rounds (raising the round limit if needed)',
  coerce: positiveInt('--rounds'),
} as const;

const researcherOptions = {
  listen: {
    type: 'string',
    describe:
      "HOST:PORT: train on node processes that connect here (roundlog node start --researcher), not the definition's " +
      'in-process nodes; port 0 takes a free one; needs --nodes (resume needs both for an experiment whose last ' +
      'run was on node processes)',
  },
  nodes: {
    type: 'string',
    describe: 'ID[,ID]: with --listen, the nodes every round needs; the first round waits for all of them',
  },
  'node-timeout': {
    type: 'string',
    describe:
      "SECONDS: with --listen, a node that has not replied this long after a round's request fails the round " +
      `(default ${DEFAULT_NODE_TIMEOUT_MS / 1000})`,
    coerce: positiveInt('--node-timeout'),
  },
  'max-message-bytes': {
    type: 'string',
    describe:
      'BYTES: with --listen, the largest parameter file sent to or accepted from a node ' +
      `(default ${DEFAULT_MAX_MESSAGE_BYTES}; the nodes' own limit is their --max-message-bytes)`,
    coerce: positiveInt('--max-message-bytes'),
  },
  'on-dataset-change': {
    type: 'string',
    choices: ['refuse', 'record'],
    describe:
      'with --listen, a node back with another dataset than the experiment recorded for it: refuse the round ' +
      '(default), or record the new dataset in the round and train on it',
  },
} as const;

/** `--node-timeout` and `--on-dataset-change`, as `Experiment.create` and `loadBreakpoint` take them. */
function nodeOptions(
  address: ResearcherAddress | null,
  args: {
    'node-timeout'?: number | undefined;
    'on-dataset-change'?: string | undefined;
    'max-message-bytes'?: number | undefined;
  },
): { nodeTimeoutMs?: number; onDatasetChange?: DatasetChangePolicy } {
  const timeout = args['node-timeout'];
  const policy = args['on-dataset-change'];
  const bytes = args['max-message-bytes'];
  if (address === null && (timeout !== undefined || policy !== undefined || bytes !== undefined)) {
    const flag =
      timeout !== undefined ? '--node-timeout' : policy !== undefined ? '--on-dataset-change' : '--max-message-bytes';
    throw new UsageError(`${flag} applies to node processes: give it with --listen HOST:PORT --nodes ID[,ID]`);
  }
  return {
    ...(timeout === undefined ? {} : { nodeTimeoutMs: timeout * 1000 }),
    ...(policy === undefined ? {} : { onDatasetChange: policy as DatasetChangePolicy }),
  };
}

type ResearcherAddress = { host: string; port: number; ids: string[] };

/** `--listen` and `--nodes` checked: null without `--listen`. */
function researcherAddress(listen: string | undefined, nodes: string | undefined): ResearcherAddress | null {
  if (listen === undefined) {
    if (nodes !== undefined) throw new UsageError('--nodes names the nodes of --listen HOST:PORT; give both');
    return null;
  }
  const address = splitHostPort(listen);
  if (address === null || address.port > 65535) {
    throw new UsageError(`--listen must be HOST:PORT, the port at most 65535 (got ${JSON.stringify(listen)})`);
  }
  if (nodes === undefined) throw new UsageError('--listen needs --nodes ID[,ID]: the nodes every round trains on');
  const { items: ids, empty, repeated } = commaList(nodes);
  if (empty !== -1 || repeated !== undefined) {
    throw new UsageError(
      `--nodes must be distinct non-empty node ids separated by commas (got ${JSON.stringify(nodes)})`,
    );
  }
  return { host: address.host, port: address.port, ids };
}

/**
 * The researcher's server for `--listen`, once every node of `--nodes` is connected; rejects
 * when `signal` aborts first (a SIGINT or SIGTERM while waiting).
 */
async function startResearcher(
  address: ResearcherAddress,
  io: Io,
  signal: AbortSignal,
  maxMessageBytes: number | undefined,
): Promise<RemoteFederation> {
  const federation = await listenForNodes({
    host: address.host,
    port: address.port,
    ...(maxMessageBytes === undefined ? {} : { maxMessageBytes }),
    expected: address.ids,
    onEvent: (line) => io.out(`researcher: ${line}`),
  });
  try {
    io.out(`listening for nodes on ${federation.address}; waiting for ${address.ids.join(', ')}`);
    await federation.waitForNodes(address.ids, signal);
    return federation;
  } catch (error) {
    await federation.close();
    throw error;
  }
}

export const run = defineCommand({
  name: 'run',
  describe: 'create an experiment from a definition module and run it',
  positionals: {
    'definition-module': {
      type: 'string',
      demandOption: true,
      describe: 'a module whose default export defines the experiment',
    },
  },
  options: { rounds, ...researcherOptions },
  needs: 'an experiment definition module, e.g. examples/logistic-regression/experiment.ts',
  examples: [
    ['roundlog run examples/logistic-regression/experiment.ts --rounds 2', 'create it and run two rounds'],
    [
      'roundlog run examples/heart-disease/experiment.ts --listen 127.0.0.1:50051 --nodes cleveland,va',
      'run it on two node processes (roundlog node start --researcher 127.0.0.1:50051)',
    ],
  ],
  run: async (args, { global, io }) => {
    const address = researcherAddress(args.listen, args.nodes);
    const nodeSettings = nodeOptions(address, args);
    const workspace = global.cwd;
    const module = path
      .relative(workspace, checkPathArgument('<definition-module>', args['definition-module'], workspace))
      .split(path.sep)
      .join('/');
    const definition = await importDefinition(workspace, { module, export: 'default' }, dataFolders(global));
    // SIGINT / SIGTERM stop the run after its round in flight (a second one at once): `src/cli/signals.ts`.
    let experiment: Experiment | null = null;
    const waiting = new AbortController();
    let remote: RemoteFederation | null = null;
    const signals = stopOnSignals(
      io,
      (signal) => {
        waiting.abort(new Error(`${signal} while waiting for the nodes`));
        experiment?.stop(signal);
      },
      () => (experiment === null ? null : continueCommand(experiment, global, remote)),
    );
    try {
      if (address !== null) remote = await startResearcher(address, io, waiting.signal, args['max-message-bytes']);
      experiment = await Experiment.create({
        ...definition,
        federation: remote ?? (await definition.federation()),
        ...experimentStore(global),
        workspace,
        definition: { module, export: 'default' },
        ...nodeSettings,
        onRound: (p) => io.out(progressLine(p, p.nodes.length)),
      });
      if (signals.received !== null) experiment.stop(signals.received);
      try {
        io.out(
          `experiment ${experiment.experimentationFolder()} (${experiment.id}) in ${experiment.experimentationPath()}` +
            (existsSync(experiment.experimentationPath()) ? '' : ' (created with its first breakpoint)'),
        );
        await experiment.run(args.rounds === undefined ? {} : { rounds: args.rounds, increase: true });
        // What the run ended by is decided here: a later signal does not turn `done:` into a stop.
        signals.settle();
        io.out(endLine(experiment, signals.received, global, remote));
      } finally {
        await experiment.close();
      }
    } catch (error) {
      // Stopped while waiting for the nodes: nothing was created.
      if (waiting.signal.aborted && experiment === null) return signals.exitCode() ?? 1;
      throw error;
    } finally {
      await remote?.close();
      signals.dispose();
    }
    return signals.exitCode() ?? 0;
  },
});

export const resume = defineCommand({
  name: 'resume',
  describe:
    'continue from a breakpoint folder or an experiment folder (default: the last breakpoint of the last experiment)',
  positionals: {
    path: { type: 'string', describe: 'a breakpoint folder, or an experiment folder (its last breakpoint)' },
  },
  options: {
    rounds,
    'accept-plan-change': {
      type: 'boolean',
      default: false,
      describe: "continue even if the training plan's source changed (the change is recorded)",
    },
    'take-over': {
      type: 'boolean',
      default: false,
      describe: 'take over the run of a process that still looks alive (recorded); only when you know it is gone',
    },
    workspace: {
      type: 'string',
      describe: 'resolve the definition and training plan modules against DIR (default: the workspace recorded by run)',
    },
    rewind: {
      type: 'boolean',
      default: false,
      describe: 'go back to a breakpoint older than the last round: the rounds after it are superseded (recorded)',
    },
    ...researcherOptions,
  },
  // Resuming a breakpoint folder carried from elsewhere may start a new root; with no path, the
  // root must be one.
  readsRoot: (args) => args.path === undefined,
  run: async (args, { global, io, extra }) => {
    if (extra.length > 0)
      throw new UsageError(`resume takes one breakpoint or experiment (got also ${extra.join(' ')})`);
    const address = researcherAddress(args.listen, args.nodes);
    const nodeSettings = nodeOptions(address, args);
    const given = args.path === undefined ? undefined : (checkPathArgument('<path>', args.path, global.cwd), args.path);
    const target = given === undefined ? undefined : await resumeTarget(global, given);
    // The definition is never imported from the root's data nor from the folder being resumed.
    const forbidden = [...dataFolders(global), ...(target === undefined ? [] : [target])];
    // SIGINT / SIGTERM stop the run after its round in flight (a second one at once): `src/cli/signals.ts`.
    let loaded: Experiment | null = null;
    const waiting = new AbortController();
    // Started by the federation the resume asks for (a closure: typed wide so the finally block sees it).
    let remote = null as RemoteFederation | null;
    const signals = stopOnSignals(
      io,
      (signal) => {
        waiting.abort(new Error(`${signal} while waiting for the nodes`));
        loaded?.stop(signal);
      },
      () => (loaded === null ? null : continueCommand(loaded, global, remote)),
    );
    try {
      loaded = await load().catch((error: unknown) => {
        // The library names its option; the command line has a flag for it.
        if (error instanceof TrainingPlanChangedError) {
          throw new TrainingPlanChangedError(error.module, error.recorded, error.actual, '--accept-plan-change');
        }
        throw error;
      });
      if (signals.received !== null) loaded.stop(signals.received);
      await resumeRun(loaded);
    } catch (error) {
      // Stopped while waiting for the nodes: nothing was loaded.
      if (waiting.signal.aborted && loaded === null) return signals.exitCode() ?? 1;
      throw error;
    } finally {
      await remote?.close();
      signals.dispose();
    }
    return signals.exitCode() ?? 0;

    async function load() {
      if (args.workspace !== undefined)
        await checkWorkspace(checkPathArgument('--workspace', args.workspace, global.cwd));
      return Experiment.loadBreakpoint(target, {
        ...experimentStore(global),
        ...(args.workspace === undefined
          ? {}
          : { workspace: checkPathArgument('--workspace', args.workspace, global.cwd) }),
        cwd: global.cwd,
        acceptPlanChange: args['accept-plan-change'],
        takeOver: args['take-over'],
        rewind: args.rewind,
        ...nodeSettings,
        // With --listen, the researcher starts once the breakpoint is found and the run may start:
        // nothing to resume is said at once, not after every node has connected.
        federation: async (config, { workspace }) =>
          address !== null
            ? (remote ??= await startResearcher(address, io, waiting.signal, args['max-message-bytes']))
            : (await definitionOf(workspace, config, forbidden)).federation(),
        // The custom aggregators and strategies the definition module registers (imported once).
        registry: async (config, { workspace }) => (await definitionOf(workspace, config, forbidden)).registry ?? {},
        onRound: (p) => io.out(progressLine(p, p.nodes.length)),
      });
    }

    async function resumeRun(experiment: Experiment) {
      try {
        const rewound = experiment.supersededOnLoad();
        const limit = experiment.roundLimit();
        io.out(
          `resumed ${experiment.experimentationFolder()} (${experiment.id}) ${kept(experiment.roundCurrent())}` +
            (limit === null ? '' : `, ${experiment.roundCurrent()}/${limit} rounds done`) +
            (rewound.length === 0
              ? ''
              : `, rewound: ${rewound.length === 1 ? 'round' : 'rounds'} ${rewound.join(', ')} superseded ` +
                `(still in the history, their folders in ${experiment.experimentationFolder()}/superseded/)`) +
            // No round was completed before the crash: the run starts again from the recorded initial parameters.
            (experiment.roundCurrent() === 0 ? ' from its initial parameters' : ''),
        );
        await experiment.run(args.rounds === undefined ? {} : { rounds: args.rounds, increase: true });
        // What the run ended by is decided here: a later signal does not turn `done:` into a stop.
        signals.settle();
        io.out(endLine(experiment, signals.received, global, remote));
      } finally {
        await experiment.close();
      }
    }
  },
});

/** The last line of a run: `done: …`, or, stopped by a signal, how many rounds it kept and how to go on. */
function endLine(
  experiment: Experiment,
  signal: string | null,
  global: GlobalOptions,
  remote: RemoteFederation | null,
): string {
  const rounds = roundsCompleted(experiment.roundCurrent());
  if (signal === null) return `done: ${rounds}`;
  return `stopped by ${signal}: ${rounds}; continue with: ${continueCommand(experiment, global, remote)}`;
}

/** The command that continues `experiment` (on the same node processes when it trains on them). */
function continueCommand(experiment: Experiment, global: GlobalOptions, remote: RemoteFederation | null): string {
  // The folder when it exists (it is created with the first breakpoint), else the experiment's name.
  const folder = existsSync(experiment.experimentationPath())
    ? displayPath(experiment.experimentationPath(), global.cwd)
    : experiment.experimentationFolder();
  return onSameRoot(resumeCommand(folder, remote?.describe()), global);
}

export const ls = defineCommand({
  name: 'ls',
  describe: 'experiments with their rounds, status and breakpoints (round, path, params sha256)',
  options: { json: { type: 'boolean', default: false, describe: 'print JSON' } },
  readsRoot: true,
  run: async (args, { global, io, extra }) => {
    if (extra.length > 0)
      throw new UsageError(`ls lists every experiment and takes no argument (got ${extra.join(' ')})`);
    return listCommand(global, args.json, io);
  },
});

/** `1 round completed`, `3 rounds completed`. */
function roundsCompleted(count: number): string {
  return `${count} round${count === 1 ? '' : 's'} completed`;
}

/** `--workspace DIR`: an existing folder (a fact of the file system, exit 1, not a usage error). */
async function checkWorkspace(dir: string): Promise<void> {
  const stat = await fs.stat(dir).catch(() => null);
  if (stat === null || !stat.isDirectory()) {
    const what = stat === null ? 'nothing exists at this path' : 'it is not a folder';
    throw new InvalidArgumentError(
      '--workspace',
      `must be an existing folder, the one run was issued from (where the definition module is); ${what}`,
      dir,
    );
  }
}

/** The folders of the root that hold data, never code. */
function dataFolders(global: GlobalOptions): string[] {
  return dataAreas(rootLayout(storeOptions(global).root));
}

/** The definition module an experiment was created from (`roundlog run`), as its recorded config names it. */
async function definitionOf(workspace: string, config: unknown, forbidden: readonly string[]) {
  const ref = (config as { definition?: DefinitionRef | null } | null)?.definition;
  if (!ref) {
    // A fact of the experiment, not of the command line: exit 1, not a usage error.
    throw new InvalidArgumentError(
      'path',
      'must be an experiment created from a definition module (roundlog run); this one was not: ' +
        'resume it from your own code with Experiment.loadBreakpoint',
      ref ?? null,
    );
  }
  return importDefinition(workspace, ref, forbidden);
}

/**
 * The folder `resume <path>` continues from: the path when something is there; else, for a bare
 * word, the experiment it names as every other command names it (`src/engine/names.ts`: its
 * folder as `ls` lists it, or its id), at its folder under `<root>/experiments`.
 */
async function resumeTarget(global: GlobalOptions, given: string): Promise<string> {
  const target = path.resolve(global.cwd, given);
  if (isPathLike(given) || path.isAbsolute(given) || (await fs.stat(target).catch(() => null)) !== null) return target;
  return withRoundLog(global, async (rl) => {
    const moved = path.join(rl.layout.experiments, given);
    if ((await fs.stat(moved).catch(() => null)) !== null) return moved;
    const handle = await rl.openExperiment(given).catch((error: unknown) => {
      if (error instanceof ExperimentNotFoundError) return null;
      throw error;
    });
    return handle === null ? target : path.join(rl.layout.experiments, handle.state.folder);
  });
}

/** Where an experiment's history and parameters are, as `Experiment.create` and `loadBreakpoint` take it. */
function experimentStore(global: GlobalOptions) {
  const { env: _env, ...options } = storeOptions(global);
  return options;
}

async function listCommand(global: GlobalOptions, json: boolean, io: Io): Promise<number> {
  const { root, ...options } = storeOptions(global);
  const listing = await listExperiments(root, options);
  if (json) {
    io.out(JSON.stringify(listing, null, 2));
    return 0;
  }
  if (listing.length === 0) {
    io.out(`no experiment in ${root}`);
    return 0;
  }
  const breakpoints = (e: (typeof listing)[number]) =>
    String(e.breakpoints.length) +
    (e.missingBreakpoints.length > 0 ? ` (${e.missingBreakpoints.length} not yet written: resume writes them)` : '');
  const rows = listing.map((e) => [
    e.folder,
    e.id,
    e.roundCurrent === null ? '?' : `${e.roundCurrent}/${e.roundLimit ?? '-'}`,
    e.status,
    breakpoints(e),
  ]);
  for (const line of table(['folder', 'id', 'rounds', 'status', 'breakpoints'], rows)) io.out(line);
  for (const e of listing) {
    if (e.run !== null && (e.status === 'running' || e.status === 'crashed')) {
      const o = e.run.owner;
      const what = e.status === 'running' ? 'run by' : 'was run by (process gone)';
      io.out(`${e.folder}: ${what} ${o.user}@${o.host} pid ${o.pid} since ${e.run.since}, last seen ${e.run.lastSeen}`);
    }
    if (e.status === 'failed' && e.failure !== null) {
      const f = e.failure;
      const where = `round ${f.round}${f.attempt === null ? '' : ` attempt ${f.attempt}`}`;
      io.out(`${e.folder}: failed at ${where} (${f.at}): ${f.code}: ${f.message}`);
    }
    if (e.folderProblem !== null) {
      io.out('');
      io.out(`${e.folder}: ${e.folderProblem.code}: ${e.folderProblem.message}`);
    }
    if (e.damage !== null) {
      io.out('');
      const at =
        e.damage.file === null
          ? `event ${e.damage.revision} of its stream`
          : `${displayPath(e.damage.file, global.cwd)} byte ${e.damage.offset}`;
      io.out(
        `${e.folder}: its history is damaged at ${at} ` +
          `(${e.damage.reason}): its state past that record is unknown and resume refuses it; ` +
          "run 'roundlog verify' for every damaged record",
      );
    }
  }
  for (const e of listing.filter((x) => x.breakpoints.length > 0)) {
    io.out('');
    io.out(`${e.folder}:`);
    const lines = table(
      ['round', 'params sha256', 'path'],
      e.breakpoints.map((b) => [
        String(b.round),
        b.paramsSha256 ?? '(damaged: run roundlog verify)',
        displayPath(b.path, global.cwd),
      ]),
    );
    for (const line of lines) io.out(`  ${line}`);
  }
  return 0;
}
