#!/usr/bin/env node
/**
 * The `roundlog` command: parses a command line against the declared commands (`commands/`), then
 * runs the chosen one with the global options. `main(argv, io)` never exits the process and never
 * touches its environment, so tests call it in process (one exception: while `run` or `resume`
 * trains, SIGINT / SIGTERM are theirs, and a second one exits at once: `signals.ts`); typed
 * roundlog errors print as `roundlog: <message>` and exit 1, usage errors exit 2, a run stopped by
 * a signal 130 (SIGINT) or 143 (SIGTERM).
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { storeOf } from '../engine/store.ts';
import { RoundlogError } from '../errors.ts';
import { checkRoot } from '../root.ts';
import { UsageError, checkArguments, processIo, type Io } from './args.ts';
import { GLOBAL_OPTIONS, globalOptions, takesGlobalOptions, type Command } from './command.ts';
import { COMMANDS } from './commands/index.ts';
import { parseCommandLine } from './parser.ts';

export type { Io } from './args.ts';

export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  try {
    // Every word is bounded before anything parses or reads it.
    checkArguments(argv);
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
  if (!takesGlobalOptions(path)) {
    const given = Object.keys(GLOBAL_OPTIONS).filter((name) => args[name] !== undefined);
    if (given.length > 0) {
      const where = path.map((c) => c.name).join(' ');
      const verb = given.length === 1 ? 'does' : 'do';
      throw new UsageError(
        `${given.map((name) => `--${name}`).join(', ')} ${verb} not apply to ${where} (it reads no root)`,
      );
    }
  }
  const global = globalOptions(args, io);
  // A command that reads a root refuses a folder that is not one (typed error), creating nothing.
  // On EventStoreDB the history is in the store: a new local root is only where folders go.
  const readsRoot = path.some((c) => (typeof c.readsRoot === 'function' ? c.readsRoot(args) : c.readsRoot === true));
  if (readsRoot && storeOf({ store: global.store, env: global.env }) === null) {
    await checkRoot(global.root);
  }
  try {
    return await command.run(args, { global, io, extra });
  } catch (error) {
    // A command the message tells the user to run acts on this invocation's root and store.
    if (error instanceof RoundlogError && global.flags !== '')
      error.message = withGlobalFlags(error.message, global.flags);
    throw error;
  }
}

/** The commands that read a root (every one but `node`, `help` and the like). */
const ROOT_COMMANDS = COMMANDS.filter((command) => takesGlobalOptions([command])).map((command) => command.name);

/** `text` with `flags` after the verb of each `roundlog <verb>` in it whose verb reads a root. */
export function withGlobalFlags(text: string, flags: string): string {
  return text.replace(/\broundlog ([a-z][a-z-]*)\b/g, (whole, verb: string) =>
    ROOT_COMMANDS.includes(verb) ? `roundlog ${verb}${flags}` : whole,
  );
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

/**
 * The process's I/O, for a reader that may go away (`roundlog run … | head -1`, `roundlog events … |
 * head`): once a write finds stdout closed, output ends quietly (later lines are dropped, no EPIPE, no stack
 * trace) and the command goes on, so a run keeps training and committing rounds to its end; a
 * `--follow` stops at its next line (through `signal`) as it would on Ctrl-C, since nobody reads
 * it any more (as `tail -f | head -1` does, it learns of the closed pipe only when it writes).
 * Likewise for stderr. Returns the `Io` and whether stdout was closed.
 */
export function pipeSafeProcessIo(): Io {
  const stdoutClosed = new AbortController();
  const open = { stdout: true, stderr: true };
  const onError = (name: 'stdout' | 'stderr') => (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
    open[name] = false;
    if (name === 'stdout') stdoutClosed.abort();
  };
  process.stdout.on('error', onError('stdout'));
  process.stderr.on('error', onError('stderr'));
  return {
    ...processIo,
    out: (line) => {
      if (open.stdout && !process.stdout.destroyed) process.stdout.write(`${line}\n`);
    },
    err: (line) => {
      if (open.stderr && !process.stderr.destroyed) process.stderr.write(`${line}\n`);
    },
    signal: stdoutClosed.signal,
  };
}

if (invokedDirectly()) {
  main(process.argv.slice(2), pipeSafeProcessIo()).then((code) => {
    process.exitCode = code;
  });
}
