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

export function formatValue(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') return JSON.stringify(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
