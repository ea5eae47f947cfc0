#!/usr/bin/env node
/**
 * The `roundlog` command: parses a command line against the declared commands (`commands/`), then
 * runs the chosen one with the global options. `main(argv, io)` never exits the process and never
 * touches its environment, so tests call it in process; typed roundlog errors print as
 * `roundlog: <message>` and exit 1, usage errors exit 2.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { storeOf } from '../engine/store.ts';
import { RoundlogError } from '../errors.ts';
import { checkRoot } from '../root.ts';
import { UsageError, processIo, type Io } from './args.ts';
import { globalOptions, type Command } from './command.ts';
import { COMMANDS } from './commands/index.ts';
import { parseCommandLine } from './parser.ts';

export type { Io } from './args.ts';

export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  try {
    let line = parseCommandLine(argv, COMMANDS);
    if (line.kind === 'help' || line.kind === 'none')
      line = parseCommandLine([...(line.kind === 'help' ? line.words : []), '--help'], COMMANDS);
    switch (line.kind) {
      case 'output':
        io.out(line.text.replace(/\n+$/, ''));
        return 0;
      case 'run':
        return await runCommand(line.path, line.args, line.extra, io);
      default:
        throw new UsageError('no command given');
    }
  } catch (error) {
    if (error instanceof RoundlogError) io.err(`roundlog: ${error.message}`);
    else io.err(`roundlog: unexpected error: ${(error as Error)?.stack ?? String(error)}`);
    return error instanceof UsageError ? 2 : 1;
  }
}

async function runCommand(
  path: readonly Command[],
  args: Record<string, unknown>,
  extra: string[],
  io: Io,
): Promise<number> {
  const command = path.at(-1)!;
  if (command.run === undefined) {
    const names = (command.subcommands ?? []).map((c) => c.name).join(', ');
    throw new UsageError(`${path.map((c) => c.name).join(' ')} needs a subcommand: one of ${names}`);
  }
  const global = globalOptions(args, io);
  // A command that reads a root refuses a folder that is not one (typed error), creating nothing.
  // On EventStoreDB the history is in the store: a new local root is only where folders go.
  if (path.some((c) => c.readsRoot) && storeOf({ store: global.store, env: global.env }) === null) {
    await checkRoot(global.root);
  }
  return command.run(args, { global, io, extra });
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
  // The reader of the output went away (`roundlog ls | head -1`): nothing left to print to, and
  // nothing went wrong, so stop quietly instead of dying on an unhandled EPIPE.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(0);
  });
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
