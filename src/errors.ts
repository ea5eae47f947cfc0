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

/**
 * A name, a word or a path as a message shows it: JSON, cut at `max` characters (default 60), with
 * its length when cut, so a value given from outside (a command line, an argument) is never echoed
 * whole.
 */
export function shownText(value: string, max = 60): string {
  return value.length > max
    ? `${JSON.stringify(value.slice(0, max - 3))}... (${value.length} characters)`
    : JSON.stringify(value);
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

/** What to do about a failed write, by the system's error code. */
function writeAdvice(errno: string | null): string {
  switch (errno) {
    case 'ENOSPC':
    case 'EDQUOT':
      return 'the file system holding it is full (or over quota): free space there and run the command again';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied: give this user write access to the folder, or use another folder';
    case 'EROFS':
      return 'the file system is mounted read-only: remount it read-write or use another folder';
    case 'EIO':
      return 'the storage reported an I/O error: check the disk before writing to it again';
    case 'ENOENT':
      return (
        'a file or folder it was writing was removed meanwhile, by another program: run the command ' +
        'again, and if this keeps happening stop what removes files in that folder'
      );
    default:
      return 'check the folder and the storage, then run the command again';
  }
}

/**
 * Writing a file of a root (a lock, a breakpoint folder, a snapshot, a checkpoint, a marker, an
 * index) failed in the file system: full disk, no permission, read-only or failing storage.
 * `errno` is the system's code (`ENOSPC`, `EACCES`, `EIO`, ...). A write that fails so leaves no
 * partial file under the final name; what was committed before is untouched.
 */
export class StorageWriteError extends RoundlogError {
  readonly code = 'STORAGE_WRITE_FAILED' as const;
  /** The system's error code, e.g. `ENOSPC`; null when the cause had none. */
  readonly errno: string | null;
  constructor(
    /** The file or folder being written. */
    readonly file: string,
    /** What was being done, e.g. `writing the writer lock`. */
    readonly operation: string,
    cause: unknown,
  ) {
    const errno = typeof (cause as { code?: unknown })?.code === 'string' ? (cause as { code: string }).code : null;
    super(
      `${operation} failed at ${file} (${errno ?? (cause as Error)?.message ?? formatValue(cause)}): ` +
        `${writeAdvice(errno)}; nothing committed before was lost`,
      { cause },
    );
    this.errno = errno;
  }
}

/** Whether `error` is a system error of the file system (has an `E...` code), not one of ours. */
export function isSystemError(error: unknown): error is NodeJS.ErrnoException {
  return (
    !(error instanceof RoundlogError) &&
    typeof (error as { code?: unknown })?.code === 'string' &&
    /^E[A-Z0-9]+$/.test((error as { code: string }).code)
  );
}
