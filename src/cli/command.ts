/**
 * A `roundlog` command as data: its name, description, typed positionals and options (with defaults
 * and aliases), subcommands, whether it reads an existing root, and the function that runs it. The
 * parser (`parser.ts`) turns these declarations into yargs commands, so usage, `--help` and shell
 * completion are generated from them and cannot drift from what the command accepts.
 *
 * The global options (--root, --store, --blobs, --namespace) are declared once, here, and parsed into
 * one `GlobalOptions` object handed to every command; the environment is read for their fallbacks and
 * never written.
 */
import type { InferredOptionTypes, Options, PositionalOptions } from 'yargs';
import type { OpenRoundLogOptions, RoundLog } from '../projections/index.ts';
import { openRoundLog } from '../projections/index.ts';
import { MAX_ARGUMENT_LENGTH, UsageError, checkPathArgument, type Io } from './args.ts';
import { shellWord } from '../model/events.ts';

type OptionDecls = { [name: string]: Options };
type PositionalDecls = { [name: string]: PositionalOptions };

/** The parsed arguments of a command: its positionals and options by name, typed from their declarations. */
export type Args<P extends PositionalDecls, O extends OptionDecls> = InferredOptionTypes<P & O>;

/** What a command runs with besides its own arguments. */
export type Context = {
  /** The global options, with their environment fallbacks applied. */
  global: GlobalOptions;
  io: Io;
  /** Positional words after the declared positionals (a command that takes none refuses them). */
  extra: string[];
};

export type CommandSpec<P extends PositionalDecls, O extends OptionDecls> = {
  /** The word that selects the command (under its parent, for a subcommand). */
  name: string;
  describe: string;
  /** In order. `demandOption: true` makes one required (`<name>` in the usage), `array: true` takes the rest. */
  positionals?: P;
  options?: O;
  /** What a usage error says the command needs when a required positional is missing ("an experiment: ..."). */
  needs?: string;
  /**
   * Fails on a --root that is not a root instead of creating it (on the file log; subcommands
   * inherit it); a function of the arguments when that depends on them.
   */
  readsRoot?: boolean | ((args: Readonly<Record<string, unknown>>) => boolean);
  /**
   * False for a command that reads no root or store (`node`, and its subcommands, which inherit it):
   * its `--help` does not list the global options, and giving one is a usage error.
   */
  globalOptions?: false;
  /** The subcommand that runs when none is named (`audit` = `audit events`). */
  isDefault?: boolean;
  /** What a subcommand is called in messages ("unknown audit query"); default 'subcommand'. */
  subcommandNoun?: string;
  subcommands?: readonly Command[];
  examples?: ReadonlyArray<readonly [command: string, what: string]>;
  /** Returns the exit code. A command with subcommands and no `run` needs one of them. */
  run?: (args: Args<P, O>, context: Context) => Promise<number>;
};

/** A declared command, its argument types erased so commands of every shape fit in one list. */
export type Command = Omit<CommandSpec<PositionalDecls, OptionDecls>, 'run'> & {
  run?: (args: Record<string, unknown>, context: Context) => Promise<number>;
};

export function defineCommand<
  P extends PositionalDecls = Record<never, never>,
  O extends OptionDecls = Record<never, never>,
>(spec: CommandSpec<P, O>): Command {
  return spec as unknown as Command;
}

// ---- global options ---------------------------------------------------------------------------

/** The options every command takes, before or after the command's name. */
export const GLOBAL_OPTIONS = {
  root: {
    placeholder: 'DIR',
    env: 'ROUNDLOG_DIR',
    describe: 'the roundlog root (default: $ROUNDLOG_DIR, else ./var)',
  },
  store: {
    placeholder: 'URL',
    env: 'ROUNDLOG_STORE',
    describe:
      'keep the history on EventStoreDB: esdb://host:2113?tls=false (default: $ROUNDLOG_STORE, else the file log ' +
      'under the root)',
  },
  blobs: {
    placeholder: 'DIR|esdb',
    env: 'ROUNDLOG_BLOBS',
    describe:
      "where parameters go: a folder (shared between machines when the history is on EventStoreDB), or 'esdb' " +
      'for chunked streams of the store (default: $ROUNDLOG_BLOBS, else <root>/blobs)',
  },
  namespace: {
    placeholder: 'P',
    env: 'ROUNDLOG_NAMESPACE',
    describe: 'prefix of every EventStoreDB stream of this root (default: $ROUNDLOG_NAMESPACE, else none)',
  },
} as const;

export type GlobalOptions = Readonly<{
  /** Absolute. */
  root: string;
  /** An EventStoreDB connection string, or undefined for the root's file log. */
  store: string | undefined;
  /** A folder (absolute) or 'esdb'; undefined for `<root>/blobs`. */
  blobs: string | undefined;
  namespace: string | undefined;
  /** The environment the options were read from, for anything else the engine reads from it. */
  env: NodeJS.ProcessEnv;
  cwd: string;
  /**
   * The global options given on the command line that the environment would not give again (`
   * --root /tmp/x/var`, each as typed, quoted for a shell when needed), or '': what a command this
   * one prints for the user to run next repeats, so that it acts on the same root and store.
   */
  flags: string;
}>;

/** The global options of a parsed command line: given values first, else the environment, else the defaults. */
export function globalOptions(given: Partial<Record<keyof typeof GLOBAL_OPTIONS, unknown>>, io: Io): GlobalOptions {
  const value = (name: keyof typeof GLOBAL_OPTIONS): string | undefined => {
    const option = given[name];
    if (option === undefined) {
      const fallback = io.env[GLOBAL_OPTIONS[name].env];
      return fallback === '' ? undefined : fallback;
    }
    // Given more than once: the last one counts, as with every other option.
    const last = Array.isArray(option) ? option.at(-1) : option;
    if (typeof last !== 'string' || last === '') throw new UsageError(`--${name} needs a value`);
    return last;
  };
  // From the command line or the environment: paths checked as the file system will, names bounded.
  const where = (name: keyof typeof GLOBAL_OPTIONS) =>
    given[name] === undefined ? `$${GLOBAL_OPTIONS[name].env}` : `--${name}`;
  const blobs = value('blobs');
  const store = value('store');
  const namespace = value('namespace');
  for (const [name, text] of [
    ['store', store],
    ['namespace', namespace],
  ] as const) {
    if (text !== undefined && text.length > MAX_ARGUMENT_LENGTH) {
      throw new UsageError(`${where(name)} is longer than ${MAX_ARGUMENT_LENGTH} characters`);
    }
  }
  const flags = (Object.keys(GLOBAL_OPTIONS) as (keyof typeof GLOBAL_OPTIONS)[])
    .filter((name) => given[name] !== undefined && value(name) !== (io.env[GLOBAL_OPTIONS[name].env] || undefined))
    .map((name) => ` --${name} ${shellWord(value(name)!)}`)
    .join('');
  return {
    flags,
    root: checkPathArgument(where('root'), value('root') ?? 'var', io.cwd),
    store,
    blobs: blobs === undefined || blobs === 'esdb' ? blobs : checkPathArgument(where('blobs'), blobs, io.cwd),
    namespace,
    env: io.env,
    cwd: io.cwd,
  };
}

/**
 * `command` (`roundlog <verb> ...`) with the global options this invocation was given on its
 * command line (`GlobalOptions.flags`) after its verb: the command acts on the same root and store.
 */
export function onSameRoot(command: string, global: Pick<GlobalOptions, 'flags'>): string {
  if (global.flags === '') return command;
  return command.replace(/^(roundlog [a-z][a-z-]*)/, `$1${global.flags}`);
}

/** The global options as the engine takes them (`openRoundLog`, `projectRoot`, `gc`, `verifyRoot`, ...). */
export function storeOptions(global: GlobalOptions): OpenRoundLogOptions & { root: string } {
  return {
    root: global.root,
    env: global.env,
    // Commands open an existing root; only `run` and `demo` create one (through Experiment.create).
    createRoot: false,
    // Paths naming an experiment are relative to the command's directory, as the user typed them.
    cwd: global.cwd,
    ...(global.store === undefined ? {} : { store: global.store }),
    ...(global.blobs === undefined ? {} : { blobs: global.blobs }),
    ...(global.namespace === undefined ? {} : { namespace: global.namespace }),
  };
}

/** Runs `fn` with a round log on the root of the global options, closed afterwards. */
export async function withRoundLog<T>(global: GlobalOptions, fn: (rl: RoundLog) => Promise<T>): Promise<T> {
  const rl = await openRoundLog(storeOptions(global));
  try {
    return await fn(rl);
  } finally {
    await rl.close();
  }
}

/** Whether the command `path` ends at takes the global options (none of its commands says it does not). */
export function takesGlobalOptions(path: readonly Command[]): boolean {
  return !path.some((command) => command.globalOptions === false);
}

/** The usage words of a command's positionals: `<experiment>`, `[path]`, `[rest..]`. */
export function positionalUsage(command: Command): string {
  return Object.entries(command.positionals ?? {})
    .map(([name, p]) => {
      const word = p.array ? `${name}..` : name;
      return p.demandOption ? `<${word}>` : `[${word}]`;
    })
    .join(' ');
}
