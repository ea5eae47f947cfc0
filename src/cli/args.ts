/**
 * What every CLI module shares: the I/O a command writes to, the usage error, the checks of
 * arguments (every word bounded, paths bounded as the file system bounds them, numbers), tables and
 * JSON.
 */
import path from 'node:path';
import { z } from 'zod';
import { RoundlogError, shownText } from '../errors.ts';

/** The line every usage error ends with. */
export const USAGE_HINT = "Run 'roundlog help' for the commands and their options.";

export class UsageError extends RoundlogError {
  readonly code = 'USAGE' as const;
  constructor(message: string) {
    super(`${message}\n${USAGE_HINT}`);
  }
}

/**
 * Where a command writes, and the process facts it may read: the environment (for the global options'
 * fallbacks) and the current directory (relative paths). `signal` stops a `--follow` as SIGINT does.
 */
export type Io = {
  out(line: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  signal?: AbortSignal;
};

export const processIo: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
  cwd: process.cwd(),
};

/**
 * The longest word of a command line (characters): a path is at most 4096 bytes (`PATH_MAX`), a
 * name far less. Longer words are refused before anything reads them.
 */
export const MAX_ARGUMENT_LENGTH = 4096;
/** The longest command line (words). */
export const MAX_ARGUMENTS = 1024;
/** The longest name of one file or folder (bytes, `NAME_MAX`), and of a whole path (`PATH_MAX` less its NUL). */
export const MAX_NAME_BYTES = 255;
export const MAX_PATH_BYTES = 4095;

const word = z
  .string()
  .max(MAX_ARGUMENT_LENGTH, `is longer than ${MAX_ARGUMENT_LENGTH} characters`)
  .refine((w) => !w.includes('\0'), 'holds a NUL byte, which no name or path can');
const commandLine = z.array(word).max(MAX_ARGUMENTS, `has more than ${MAX_ARGUMENTS} words`);

/**
 * A word as an error shows it: JSON, cut at 60 characters, with its length when cut (a name, a
 * path or a number given on the command line is never echoed whole).
 */
export function shownValue(value: string): string {
  return shownText(value);
}

/**
 * Checks every word of a command line before it is parsed: at most `MAX_ARGUMENTS` words, each at
 * most `MAX_ARGUMENT_LENGTH` characters and without a NUL byte. `UsageError` naming the word.
 */
export function checkArguments(argv: readonly string[]): void {
  const checked = commandLine.safeParse(argv);
  if (checked.success) return;
  const issue = checked.error.issues[0]!;
  const at = issue.path[0];
  if (typeof at !== 'number') throw new UsageError(`the command line ${issue.message}`);
  const previous = argv[at - 1];
  const option = previous?.startsWith('--') === true ? ` (after ${previous})` : '';
  throw new UsageError(`word ${at + 1} of the command line${option} ${issue.message}: ${shownValue(argv[at]!)}`);
}

/**
 * A path given on the command line or in the environment (`--root`, `--out`, `--workspace`, a
 * folder to resume, a module), resolved against `cwd` and checked as the file system will check it:
 * no NUL byte, no name of one file or folder longer than `MAX_NAME_BYTES` bytes, the whole at most
 * `MAX_PATH_BYTES` bytes. `UsageError` naming the option, never `ENAMETOOLONG` later.
 */
export function checkPathArgument(option: string, value: string, cwd: string): string {
  if (value.includes('\0')) throw new UsageError(`${option} holds a NUL byte, which no path can: ${shownValue(value)}`);
  const absolute = path.resolve(cwd, value);
  const long = absolute.split(path.sep).find((name) => Buffer.byteLength(name) > MAX_NAME_BYTES);
  if (long !== undefined) {
    throw new UsageError(
      `${option} has a file or folder name of ${Buffer.byteLength(long)} bytes; names are at most ` +
        `${MAX_NAME_BYTES} bytes: ${shownValue(value)}`,
    );
  }
  if (Buffer.byteLength(absolute) > MAX_PATH_BYTES) {
    throw new UsageError(
      `${option} is a path of ${Buffer.byteLength(absolute)} bytes once resolved; paths are at most ` +
        `${MAX_PATH_BYTES} bytes: ${shownValue(value)}`,
    );
  }
  return absolute;
}

/** A checker of a positive integer option, for a declaration's `coerce`. */
export function positiveInt(name: string): (value: string) => number {
  return integerOption(name, 'positive', 1);
}

/** A checker of a non-negative integer option, for a declaration's `coerce`. */
export function nonNegativeInt(name: string): (value: string) => number {
  return integerOption(name, 'non-negative', 0);
}

/**
 * Decimal digits (a leading `+` allowed: `--rounds +1`) of an integer of at least `min` and at
 * most `Number.MAX_SAFE_INTEGER` (a larger one would be rounded: 99999999999999999999 is read as
 * 100000000000000000000); `UsageError` naming the option otherwise.
 */
function integerOption(name: string, kind: string, min: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\s*\+?\d+\s*$/.test(value) || n < min) {
      throw new UsageError(`${name} must be a ${kind} integer (got ${shownValue(value)})`);
    }
    if (!Number.isSafeInteger(n)) {
      throw new UsageError(
        `${name} must be a ${kind} integer of at most ${Number.MAX_SAFE_INTEGER} (got ${shownValue(value)})`,
      );
    }
    return n;
  };
}

/** Values of an option that may be given more than once (yargs gives one value or an array). */
export function repeated(value: string | string[]): string[] {
  return Array.isArray(value) ? value.map(String) : [String(value)];
}

/** Renders rows as an aligned text table. */
/**
 * `HOST:PORT` or `[IPv6]:PORT` split into its host (without brackets) and port: a host with no white
 * space, colon or bracket (a name or IPv4 address), or an IPv6 address in brackets, then a colon and
 * decimal digits. Null when `text` is not of that form; the port's range is the caller's to check.
 */
export function splitHostPort(text: string): { host: string; port: number; portText: string } | null {
  const match = /^(?:([^:\s[\]]+)|\[([^\]\s]+)\]):(\d+)$/.exec(text);
  if (match === null) return null;
  return { host: match[1] ?? match[2]!, port: Number(match[3]), portText: match[3]! };
}

/**
 * A comma-separated list (`--nodes a,b`, `--tags a,b`): its items with white space around each
 * removed, the index of the first empty item (-1 when none), and the first item named twice.
 */
export function commaList(text: string): { items: string[]; empty: number; repeated: string | undefined } {
  const items = text.split(',').map((item) => item.trim());
  return {
    items,
    empty: items.findIndex((item) => item === ''),
    repeated: items.find((item, i) => items.indexOf(item) !== i),
  };
}

export function table(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

/** JSON that also writes bigints (as decimal strings). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2);
}

/** One compact JSON line (bigints as decimal strings). */
export function jsonLine(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}
