/** Small helpers shared by the CLI commands: option parsing, output, errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { RoundlogError } from '../errors.ts';

export class UsageError extends RoundlogError {
  readonly code = 'USAGE' as const;
  constructor(message: string) {
    super(`${message}\nRun 'roundlog help' for the commands and their options.`);
  }
}

export type Io = {
  out(line: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
};

export const processIo: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
};

type Parsed<T extends NonNullable<ParseArgsConfig['options']>> = ReturnType<
  typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>
>;

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T): Parsed<T> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** Renders rows as an aligned text table. */
export function table(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

/** JSON that also writes bigints (as decimal strings). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2);
}
