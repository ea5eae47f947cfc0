/** `roundlog run`, `resume` and `ls`: experiments from the command line. */
import path from 'node:path';
import { Experiment } from '../../federated/experiment.ts';
import { UsageError, positiveInt, table, type Io } from '../args.ts';
import { defineCommand, storeOptions, type GlobalOptions } from '../command.ts';
import { displayPath, importDefinition, listExperiments, progressLine, type DefinitionRef } from '../experiments.ts';

const rounds = {
  type: 'string',
  describe: 'run this many more rounds (raising the round limit if needed)',
  coerce: positiveInt('--rounds'),
} as const;

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
  options: { rounds },
  needs: 'an experiment definition module, e.g. examples/logistic-regression/experiment.ts',
  examples: [['roundlog run examples/logistic-regression/experiment.ts --rounds 2', 'create it and run two rounds']],
  run: async (args, { global, io }) => {
    const workspace = global.cwd;
    const module = path
      .relative(workspace, path.resolve(workspace, args['definition-module']))
      .split(path.sep)
      .join('/');
    const definition = await importDefinition(workspace, { module, export: 'default' });
    const experiment = await Experiment.create({
      ...definition,
      federation: await definition.federation(),
      ...experimentStore(global),
      workspace,
      definition: { module, export: 'default' },
      onRound: (p) => io.out(progressLine(p, p.nodes.length)),
    });
    try {
      io.out(
        `experiment ${experiment.experimentationFolder()} (${experiment.id}) in ${experiment.experimentationPath()}`,
      );
      await experiment.run(args.rounds === undefined ? {} : { rounds: args.rounds, increase: true });
      io.out(`done: ${experiment.roundCurrent()} rounds completed`);
    } finally {
      await experiment.close();
    }
    return 0;
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
    rewind: {
      type: 'boolean',
      default: false,
      describe: 'go back to a breakpoint older than the last round: the rounds after it are superseded (recorded)',
    },
  },
  readsRoot: true,
  run: async (args, { global, io }) => {
    const workspace = global.cwd;
    const experiment = await Experiment.loadBreakpoint(
      args.path === undefined ? undefined : path.resolve(workspace, args.path),
      {
        ...experimentStore(global),
        workspace,
        acceptPlanChange: args['accept-plan-change'],
        rewind: args.rewind,
        federation: async (config) => (await definitionOf(workspace, config)).federation(),
        // The custom aggregators and strategies the definition module registers (imported once).
        registry: async (config) => (await definitionOf(workspace, config)).registry ?? {},
        onRound: (p) => io.out(progressLine(p, p.nodes.length)),
      },
    );
    try {
      const rewound = experiment.supersededOnLoad();
      io.out(
        `resumed ${experiment.experimentationFolder()} (${experiment.id}) at round ${experiment.roundCurrent()}` +
          (experiment.roundLimit() === null ? '' : `/${experiment.roundLimit()}`) +
          (rewound.length === 0
            ? ''
            : `, rewound: ${rewound.length === 1 ? 'round' : 'rounds'} ${rewound.join(', ')} superseded ` +
              `(still in the history, their folders in ${experiment.experimentationFolder()}/superseded/)`),
      );
      await experiment.run(args.rounds === undefined ? {} : { rounds: args.rounds, increase: true });
      io.out(`done: ${experiment.roundCurrent()} rounds completed`);
    } finally {
      await experiment.close();
    }
    return 0;
  },
});

export const ls = defineCommand({
  name: 'ls',
  describe: 'experiments with their rounds, status and breakpoints (round, path, params sha256)',
  options: { json: { type: 'boolean', default: false, describe: 'print JSON' } },
  readsRoot: true,
  run: async (args, { global, io }) => listCommand(global, args.json, io),
});

/** The definition module an experiment was created from (`roundlog run`), as its recorded config names it. */
async function definitionOf(workspace: string, config: unknown) {
  const ref = (config as { definition?: DefinitionRef | null } | null)?.definition;
  if (!ref) {
    throw new UsageError(
      'this experiment was not created from a definition module; ' +
        'resume it from your own code with Experiment.loadBreakpoint',
    );
  }
  return importDefinition(workspace, ref);
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
    `${e.roundCurrent}/${e.roundLimit ?? '-'}`,
    e.status,
    breakpoints(e),
  ]);
  for (const line of table(['folder', 'id', 'rounds', 'status', 'breakpoints'], rows)) io.out(line);
  for (const e of listing.filter((x) => x.breakpoints.length > 0)) {
    io.out('');
    io.out(`${e.folder}:`);
    const lines = table(
      ['round', 'params sha256', 'path'],
      e.breakpoints.map((b) => [String(b.round), b.paramsSha256, displayPath(b.path, global.cwd)]),
    );
    for (const line of lines) io.out(`  ${line}`);
  }
  return 0;
}
