#!/usr/bin/env node
/** The `roundlog` command. */
import { existsSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RoundlogError } from '../errors.ts';
import { storeOf } from '../engine/store.ts';
import { openRoundLog } from '../projections/index.ts';
import { RootNotFoundError, resolveRoot } from '../root.ts';
import { UsageError, parse, processIo, table, toJson, type Io } from './args.ts';
import { demo } from './demo.ts';
import { lsCommand, resumeCommand, runCommand } from './experiments.ts';
import { timeline } from './timeline.ts';
import { VERSION } from '../version.ts';
import { commands as historyCommands, help as historyHelp } from './history.ts';
import { commands as lineageCommands, help as lineageHelp } from './lineage.ts';
import { commands as maintenanceCommands, help as maintenanceHelp } from './maintenance.ts';

const HELP = `roundlog: crash-proof, rewindable, auditable round logs for training experiments

Usage: roundlog <command> [options]

Commands:
  run <definition-module> [--rounds N]  create an experiment from a definition module and run it
  resume [path] [--rounds N] [--accept-plan-change]
                                        continue from a breakpoint folder or an experiment folder
                                        (default: the last breakpoint of the last experiment)
  ls [--json]                           experiments with their rounds, status and breakpoints
  demo [--crash-after K]                run the example, SIGKILL it after K rounds, resume, check
  streams [--json]                      list the streams of the log with their last revision
  events <stream> [--json] [--from R] [--limit N]
                                        print the events of a stream
  help                                  this text

Options for every command:
  --root DIR        the roundlog root (default: $ROUNDLOG_DIR, else ./var)
  --store URL       keep the history on EventStoreDB: esdb://host:2113?tls=false
                    (default: $ROUNDLOG_STORE, else the file log under the root)
  --blobs DIR|esdb  where parameters go: a folder (shared between machines when the
                    history is on EventStoreDB), or 'esdb' for chunked streams of the
                    store (default: $ROUNDLOG_BLOBS, else <root>/blobs)
  --namespace P     prefix of every EventStoreDB stream of this root
                    (default: $ROUNDLOG_NAMESPACE, else none)
`;


const EXTRA_COMMANDS = { ...historyCommands, ...lineageCommands, ...maintenanceCommands };

/** Commands that read an existing root: pointed at a folder that is not there, they fail instead of creating it. */
const READS_ROOT = new Set(['ls', 'resume', 'streams', 'events', 'verify', 'history', 'audit', 'replay', 'rewind', 'fork', 'project', 'gc']);

function rootOption(args: readonly string[]): string | undefined {
  const i = args.indexOf('--root');
  if (i >= 0) return args[i + 1];
  return args.find((a) => a.startsWith('--root='))?.slice('--root='.length);
}

/** Options every command takes, given anywhere on the line: they set the environment the commands read. */
const GLOBAL_OPTIONS = { '--store': 'ROUNDLOG_STORE', '--blobs': 'ROUNDLOG_BLOBS', '--namespace': 'ROUNDLOG_NAMESPACE' } as const;

function takeGlobalOptions(args: readonly string[], env: NodeJS.ProcessEnv): string[] {
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const name = Object.keys(GLOBAL_OPTIONS).find((option) => arg === option || arg.startsWith(`${option}=`)) as keyof typeof GLOBAL_OPTIONS | undefined;
    if (name === undefined) {
      rest.push(arg);
      continue;
    }
    const value = arg === name ? args[++i] : arg.slice(name.length + 1);
    if (value === undefined || value === '') throw new UsageError(`${name} needs a value`);
    env[GLOBAL_OPTIONS[name]] = value;
  }
  return rest;
}

export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const [command, ...given] = argv;
  const rest = takeGlobalOptions(given, io.env);
  // On EventStoreDB the history is in the store: a new local root is only where folders go.
  if (command !== undefined && READS_ROOT.has(command) && !rest.includes('--help') && storeOf({ env: io.env }) === null) {
    const root = resolveRoot(rootOption(rest), io.env);
    if (!existsSync(root)) throw new RootNotFoundError(root);
  }
  const extra = command === undefined ? undefined : EXTRA_COMMANDS[command];
  if (extra !== undefined) return extra(rest, io);
  switch (command) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.out(HELP.replace('  help ', [...historyHelp, ...lineageHelp, ...maintenanceHelp].map((line) => `  ${line}\n`).join('') + '  help '));
      return 0;
    case '--version':
      io.out(VERSION);
      return 0;
    case 'demo': {
      const { values } = parse(rest, { root: { type: 'string' }, 'crash-after': { type: 'string', default: '4' } });
      const crashAfter = positiveInt('--crash-after', values['crash-after']);
      if (crashAfter >= 10) throw new UsageError(`--crash-after must be less than the example's 10 rounds (got ${crashAfter})`);
      return demo(resolveRoot(values.root, io.env), crashAfter, io);
    }
    case 'run': {
      const { values, positionals } = parse(rest, { root: { type: 'string' }, rounds: { type: 'string' } });
      const module = positionals[0];
      if (module === undefined) throw new UsageError('run needs an experiment definition module, e.g. examples/logistic-regression/experiment.ts');
      return runCommand(module, {
        root: resolveRoot(values.root, io.env),
        workspace: process.cwd(),
        ...(values.rounds === undefined ? {} : { rounds: positiveInt('--rounds', values.rounds) }),
      }, io);
    }
    case 'resume': {
      const { values, positionals } = parse(rest, {
        root: { type: 'string' },
        rounds: { type: 'string' },
        'accept-plan-change': { type: 'boolean', default: false },
      });
      return resumeCommand(positionals[0], {
        root: resolveRoot(values.root, io.env),
        workspace: process.cwd(),
        acceptPlanChange: values['accept-plan-change'],
        ...(values.rounds === undefined ? {} : { rounds: positiveInt('--rounds', values.rounds) }),
      }, io);
    }
    case 'ls': {
      const { values } = parse(rest, { root: { type: 'string' }, json: { type: 'boolean', default: false } });
      return lsCommand({ root: resolveRoot(values.root, io.env), json: values.json }, io);
    }
    case 'streams': {
      const { values } = parse(rest, { root: { type: 'string' }, json: { type: 'boolean', default: false } });
      const rl = await openRoundLog({ root: resolveRoot(values.root, io.env), env: io.env });
      try {
        const { streams } = await rl.withReader((log) => log.listStreams());
        if (values.json) io.out(toJson(streams));
        else {
          for (const line of table(
            ['stream', 'events', 'first position', 'last position'],
            streams.map((s) => [s.stream, String(s.lastRevision + 1n), String(s.firstPosition), String(s.lastPosition)]),
          )) {
            io.out(line);
          }
        }
      } finally {
        await rl.close();
      }
      return 0;
    }
    case 'events': {
      const { values, positionals } = parse(rest, {
        root: { type: 'string' },
        json: { type: 'boolean', default: false },
        from: { type: 'string' },
        limit: { type: 'string' },
      });
      const stream = positionals[0];
      if (stream === undefined) throw new UsageError('events needs a stream name (see roundlog streams)');
      const rl = await openRoundLog({ root: resolveRoot(values.root, io.env), env: io.env });
      try {
        const { events } = await rl.withReader((log) =>
          log.readStream(stream, {
            fromRevision: values.from === undefined ? 'start' : BigInt(nonNegativeInt('--from', values.from)),
            ...(values.limit === undefined ? {} : { maxCount: nonNegativeInt('--limit', values.limit) }),
          }),
        );
        if (values.json) io.out(toJson(events));
        else for (const line of timeline(events)) io.out(line);
      } finally {
        await rl.close();
      }
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

function positiveInt(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a positive integer (got ${JSON.stringify(value)})`);
  return n;
}

function nonNegativeInt(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${name} must be a non-negative integer (got ${JSON.stringify(value)})`);
  return n;
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      if (error instanceof RoundlogError) process.stderr.write(`roundlog: ${error.message}\n`);
      else process.stderr.write(`roundlog: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
      process.exitCode = error instanceof UsageError ? 2 : 1;
    },
  );
}
