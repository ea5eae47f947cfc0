/** What every CLI module shares: the I/O a command writes to, the usage error, number checks, tables and JSON. */
import { RoundlogError } from '../errors.ts';

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

/** A checker of a positive integer option, for a declaration's `coerce`. */
export function positiveInt(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1)
      throw new UsageError(`${name} must be a positive integer (got ${JSON.stringify(value)})`);
    return n;
  };
}

/** A checker of a non-negative integer option, for a declaration's `coerce`. */
export function nonNegativeInt(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0)
      throw new UsageError(`${name} must be a non-negative integer (got ${JSON.stringify(value)})`);
    return n;
  };
}

/** Values of an option that may be given more than once (yargs gives one value or an array). */
export function repeated(value: string | string[]): string[] {
  return Array.isArray(value) ? value.map(String) : [String(value)];
}

/** Renders rows as an aligned text table. */
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
