/**
 * The command line, parsed by yargs from the command declarations (`command.ts`): each declaration
 * becomes a yargs command module, the global options are declared once for all of them, and usage,
 * `--help`, `help <command>`, "did you mean" and the completion script come from yargs.
 *
 * Why yargs: of the well-kept parsers it is the one with typo suggestions (`recommendCommands`) and
 * generated bash/zsh completion (`completion`) built in, nested subcommands with a default one, and a
 * parse that captures output instead of printing or exiting, so `main(argv, io)` runs in the process
 * of a test (commander has suggestions but no completion; citty has neither).
 *
 * Parsing only selects: the chosen command runs afterwards in `main`, outside yargs, so its errors
 * and exit codes are roundlog's own. yargs' validation messages are restated in roundlog's words
 * (`unknown command "x"`, `Unknown option '--x'`, `<command> needs ...`) and end as `UsageError`s.
 *
 * yargs is loaded as CommonJS: its ES module build wraps help text in the middle of words
 * (yargs/yargs#2112, fixed in yargs 18); the CommonJS build wraps at word boundaries.
 */
const yargs = createRequire(import.meta.url)('yargs') as typeof import('yargs').default;
import { createRequire } from 'node:module';
import type { Argv, CommandModule, Options } from 'yargs';
import { RoundlogError } from '../errors.ts';
import { VERSION } from '../version.ts';
import { USAGE_HINT, UsageError, shownValue } from './args.ts';
import { GLOBAL_OPTIONS, positionalUsage, takesGlobalOptions, type Command } from './command.ts';

export type ParsedLine =
  /** A command to run, with the declarations from the top-level command down to it. */
  | { kind: 'run'; path: readonly Command[]; args: Record<string, unknown>; extra: string[] }
  /** Text yargs generated (help, version, completion): print it, exit 0. */
  | { kind: 'output'; text: string }
  /** `roundlog help [command..]`. */
  | { kind: 'help'; words: string[] }
  /** No command given. */
  | { kind: 'none' };

type State = { current: readonly Command[]; chosen: ParsedLine | null; words: readonly string[] };

const WIDTH = 100;

const COMPLETION_USAGE =
  'roundlog completion\n\n' +
  'Print a bash/zsh completion script for roundlog (it completes commands, audit queries and options).\n\n' +
  'Examples:\n' +
  '  roundlog completion >> ~/.bashrc    bash\n' +
  '  roundlog completion >> ~/.zshrc     zsh';

export function parseCommandLine(argv: readonly string[], commands: readonly Command[]): ParsedLine {
  refuseOptionAsValue(argv, commands);
  const state: State = { current: [], chosen: null, words: commandWords(argv) };
  // yargs answers `completion --help` with the script itself: the usage is ours to give.
  const asksHelp = argv.includes('--help') || argv.includes('-h') || state.words[0] === 'help';
  const words = state.words[0] === 'help' ? state.words.slice(1) : state.words;
  if (asksHelp && words[0] === 'completion') return { kind: 'output', text: COMPLETION_USAGE };
  let output = '';
  buildParser(commands, state).parse([...argv], {}, (_error, _args, text) => {
    output = text;
  });
  if (output !== '') return { kind: 'output', text: output };
  if (state.chosen !== null) return state.chosen;
  // No command matched: yargs suggests a near name ("did you mean"); any other word is no command.
  if (state.words.length > 0) throw new UsageError(unknownCommand(state.words[0]!, []));
  return { kind: 'none' };
}

/** The yargs parser of these declarations; `state` receives the command chosen. */
export function buildParser(
  commands: readonly Command[],
  state: State = { current: [], chosen: null, words: [] },
): Argv {
  const parser = yargs()
    .scriptName('roundlog')
    .usage(
      'roundlog: crash-proof, rewindable, auditable round logs for training experiments\n\n' +
        'Usage: $0 <command> [options]',
    )
    .parserConfiguration({ 'camel-case-expansion': false, 'parse-numbers': false, 'parse-positional-numbers': false })
    .wrap(WIDTH);
  for (const [name, option] of Object.entries(GLOBAL_OPTIONS)) {
    parser.option(name, {
      type: 'string',
      global: true,
      requiresArg: true,
      describe: option.describe,
      group: 'Global options:',
    });
  }
  for (const command of commands) parser.command(commandModule(command, [], state));
  parser.command(
    'help [command..]',
    'show the commands, or the usage and options of one command',
    (b) => b.positional('command', { type: 'string', array: true, describe: 'a command (and subcommand)' }),
    (args) => {
      state.chosen = { kind: 'help', words: (args.command ?? []).map(String) };
    },
  );
  return parser
    .completion('completion', 'print a bash/zsh completion script (roundlog completion >> ~/.bashrc)')
    .recommendCommands()
    .strictOptions()
    .help()
    .alias('help', 'h')
    .version(VERSION)
    .exitProcess(false)
    .fail((message: string | null, error: Error | undefined) => {
      if (error instanceof RoundlogError) throw error;
      throw new UsageError(restate(message ?? error?.message ?? 'invalid command line', state));
    });
}

function commandModule(command: Command, parents: readonly Command[], state: State): CommandModule {
  const path = [...parents, command];
  const usage = [command.name, positionalUsage(command)].filter((word) => word !== '').join(' ');
  return {
    command: command.isDefault ? [usage, '$0'] : usage,
    describe: command.describe,
    builder: (b: Argv) => {
      state.current = path;
      for (const [name, positional] of Object.entries(command.positionals ?? {})) b.positional(name, positional);
      if (!takesGlobalOptions(path)) for (const name of Object.keys(GLOBAL_OPTIONS)) b.hide(name);
      b.options(command.options ?? {});
      for (const sub of command.subcommands ?? []) b.command(commandModule(sub, path, state));
      for (const [line, what] of command.examples ?? []) b.example(line, what);
      return b;
    },
    handler: (args) => {
      // A default subcommand runs without its name on the line: its words start one earlier.
      const named = !command.isDefault || String(args._[parents.length]) === command.name;
      const extra = args._.slice(named ? path.length : parents.length).map(String);
      if (!named && extra.length > 0) throw new UsageError(unknownCommand(extra[0]!, parents));
      state.chosen = { kind: 'run', path, args, extra };
    },
  };
}

/**
 * An option that takes a value, followed by a word starting with '-': yargs would read that word
 * as flags (`--until -1h` as `-1 -h`, printing the help and exiting 0) and the option as given no
 * value. `UsageError` naming the option and saying how to give such a value (`--until=-1h`).
 */
function refuseOptionAsValue(argv: readonly string[], commands: readonly Command[]): void {
  const takesValue = new Set(Object.keys(GLOBAL_OPTIONS));
  const flags = new Set<string>();
  const visit = (command: Command) => {
    for (const [name, option] of Object.entries(command.options ?? {})) {
      const type = (option as Options).type;
      (type === 'boolean' || type === 'count' ? flags : takesValue).add(name);
    }
    for (const sub of command.subcommands ?? []) visit(sub);
  };
  for (const command of commands) visit(command);
  for (let i = 0; i + 1 < argv.length; i++) {
    const word = argv[i]!;
    if (word === '--') return;
    const name = word.startsWith('--') ? word.slice(2) : null;
    if (name === null || !takesValue.has(name) || flags.has(name)) continue;
    const next = argv[i + 1]!;
    if (next.startsWith('-') && next !== '-') {
      throw new UsageError(
        `${word} needs a value; got the option-like word ${shownValue(next)} ` +
          `(for a value that starts with '-', write ${word}=${next.slice(0, 60)})`,
      );
    }
  }
}

/** yargs' validation messages in roundlog's words, naming the command and the argument. */
function restate(yargsMessage: string, { current: path, words }: State): string {
  const message = yargsMessage.replace(`\n${USAGE_HINT}`, '');
  const where = path.map((c) => c.name).join(' ');
  const command = path.at(-1);
  let match: RegExpExecArray | null;
  if ((match = /^Did you mean (.+)\?$/.exec(message)) !== null) {
    return `${unknownCommand(words[path.length] ?? '', path)}; did you mean ${match[1]}?`;
  }
  if ((match = /^Unknown arguments?: (.+)$/.exec(message)) !== null) {
    const names = match[1]!
      .split(', ')
      .map((name) => `${name.length === 1 ? '-' : '--'}${name}`)
      .map((name) => (name.length > 60 ? shownValue(name) : `'${name}'`));
    return `Unknown option${names.length === 1 ? '' : 's'} ${names.join(', ')}`;
  }
  if ((match = /^Not enough arguments following: (.+)$/.exec(message)) !== null) return `--${match[1]} needs a value`;
  if (command !== undefined && /^(Missing required argument|Not enough non-option arguments)/.test(message)) {
    return `${where} needs ${command.needs ?? positionalUsage(command)}`;
  }
  return message;
}

/** `unknown command "x"`, or under a command with subcommands `unknown audit query "x"; use one of ...`. */
function unknownCommand(word: string, parents: readonly Command[]): string {
  const parent = parents.at(-1);
  if (parent === undefined) return `unknown command ${shownValue(word)}`;
  const where = parents.map((c) => c.name).join(' ');
  const names = (parent.subcommands ?? []).map((c) => c.name);
  const noun = parent.subcommandNoun ?? 'subcommand';
  const near = closest(word, names);
  const hint = near === null ? '' : `; did you mean ${near}?`;
  return `unknown ${where} ${noun} ${shownValue(word)}; use one of ${names.join(', ')}${hint}`;
}

/** The name nearest to a mistyped word (at most 2 edits away, as yargs' own suggestions), or null. */
function closest(word: string, names: readonly string[]): string | null {
  let best: { name: string; distance: number } | null = null;
  for (const name of names) {
    const distance = editDistance(word, name);
    if (distance <= 2 && (best === null || distance < best.distance)) best = { name, distance };
  }
  return best?.name ?? null;
}

/** Levenshtein distance: insertions, deletions and substitutions. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** The words of a command line that are not options nor values of global options: the command path first. */
function commandWords(argv: readonly string[]): string[] {
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') break;
    if (!arg.startsWith('-')) words.push(arg);
    else if (Object.hasOwn(GLOBAL_OPTIONS, arg.replace(/^--/, ''))) i++;
  }
  return words;
}
