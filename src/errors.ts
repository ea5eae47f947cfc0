/**
 * The error hierarchy of roundlog. Every error has a literal `code`, structured fields naming
 * the thing that failed, and a message that says what to do.
 */

export abstract class RoundlogError extends Error {
  abstract readonly code: string;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** An argument broke a documented rule. */
export class InvalidArgumentError extends RoundlogError {
  readonly code = 'INVALID_ARGUMENT' as const;
  constructor(
    readonly argument: string,
    readonly rule: string,
    readonly received: unknown,
  ) {
    super(`${argument} ${rule}. Value received: ${formatValue(received)}`);
  }
}

/** The object was closed and can no longer be used. */
export class ClosedError extends RoundlogError {
  readonly code = 'CLOSED' as const;
  constructor(readonly what: string) {
    super(`${what} is closed; open it again to continue`);
  }
}

/**
 * A feature needs an optional dependency that is not installed (e.g. `@eventstore/db-client`
 * for an EventStoreDB store): the message names the package and the command that installs it.
 */
export class MissingDependencyError extends RoundlogError {
  readonly code = 'MISSING_DEPENDENCY' as const;
  constructor(
    readonly dependency: string,
    readonly feature: string,
    options?: { cause?: unknown },
  ) {
    super(`${feature} needs the package ${dependency}, which is not installed: npm install ${dependency}`, options);
  }
}

/** Whether `error` is Node's "Cannot find package" for `dependency` (and not a failure inside it). */
export function isMissingPackage(error: unknown, dependency: string): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return code === 'ERR_MODULE_NOT_FOUND' && typeof message === 'string' && message.includes(`'${dependency}'`);
}

export function formatValue(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') return JSON.stringify(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
