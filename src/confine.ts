/**
 * Paths that come from data (a manifest's file names, a recorded module path, a folder name, an
 * argument naming where to write) are confined to where they belong, and identities of files and
 * folders are decided on resolved paths, never on the string that was typed:
 *
 * - `resolvedPath` is the real path (symlinks resolved); for a path that does not exist yet, the
 *   real path of its nearest existing ancestor with the rest appended.
 * - `isInside` / `samePath` compare resolved paths.
 * - `confinedPath` resolves a relative name against a base folder and refuses anything that ends
 *   outside it (`..`, an absolute path, a symlink leading out) with a `PathOutsideError` naming
 *   the field and the value.
 * - `readConfinedFile` opens only a regular file inside the folder (never a FIFO, a device, a
 *   socket or a folder: `NotARegularFileError`, without blocking), and reads at most its size.
 *
 * Nothing is opened before these checks pass.
 */
import { constants, promises as fs, type BigIntStats, type Stats } from 'node:fs';
import path from 'node:path';
import { RoundlogError, formatValue } from './errors.ts';

/** A path taken from data leads outside the folder it must stay in. */
export class PathOutsideError extends RoundlogError {
  readonly code = 'PATH_OUTSIDE' as const;
  constructor(
    /** The field or argument the path came from (`trainingPlan.file`, `--out`, ...). */
    readonly field: string,
    /** The value as given. */
    readonly value: unknown,
    /** The folder it must stay in (or, for `forbidden`, the folder it must stay out of). */
    readonly base: string,
    /** Where it leads once resolved, when known. */
    readonly resolved: string | null,
    rule: string,
  ) {
    super(
      `${field} ${formatValue(value)}${resolved === null ? '' : ` (resolved: ${resolved})`} ${rule}; ` +
        'nothing was read from it',
    );
  }
}

/** A file that must be a regular file is something else (a FIFO, a device, a socket, a folder). */
export class NotARegularFileError extends RoundlogError {
  readonly code = 'NOT_A_REGULAR_FILE' as const;
  constructor(
    readonly file: string,
    /** What it is: `FIFO`, `character device`, `block device`, `socket`, `directory`, `symbolic link`. */
    readonly kind: string,
    readonly field: string | null,
  ) {
    super(
      `${file}${field === null ? '' : ` (${field})`} is a ${kind}, not a regular file; ` +
        'roundlog opens only regular files here: replace it with the file it should be',
    );
  }
}

/** A file is larger than what may be read from it. */
export class FileTooLargeError extends RoundlogError {
  readonly code = 'FILE_TOO_LARGE' as const;
  constructor(
    readonly file: string,
    readonly size: number,
    readonly maxBytes: number,
    readonly field: string | null,
  ) {
    super(
      `${file}${field === null ? '' : ` (${field})`} holds ${size} bytes, more than the ${maxBytes} ` +
        'that may be read from it: it is not the file it should be',
    );
  }
}

/** What `fileKind` asks of a `Stats` (from `stat`, `lstat` or a handle's `stat`). */
export type FileKindStats = Pick<
  Stats | BigIntStats,
  'isFile' | 'isDirectory' | 'isFIFO' | 'isSocket' | 'isCharacterDevice' | 'isBlockDevice' | 'isSymbolicLink'
>;

/** The kind of a file, in words. */
export function fileKind(stats: FileKindStats): string {
  if (stats.isFile()) return 'regular file';
  if (stats.isDirectory()) return 'directory';
  if (stats.isFIFO()) return 'FIFO';
  if (stats.isSocket()) return 'socket';
  if (stats.isCharacterDevice()) return 'character device';
  if (stats.isBlockDevice()) return 'block device';
  if (stats.isSymbolicLink()) return 'symbolic link';
  return 'special file';
}

/**
 * The real path of `target` (absolute, symlinks resolved). A path that does not exist resolves to
 * the real path of its nearest existing ancestor joined with the rest.
 */
export async function resolvedPath(target: string): Promise<string> {
  const absolute = path.resolve(target);
  try {
    return await fs.realpath(absolute);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const parent = path.dirname(absolute);
    if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === absolute) return absolute;
    return path.join(await resolvedPath(parent), path.basename(absolute));
  }
}

/** Whether `child` is `parent` or inside it; both must already be resolved (`resolvedPath`). */
export function isInside(parent: string, child: string): boolean {
  const relative = path.relative(parent, child);
  return relative === '' || (relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative));
}

/** Whether two paths name the same file or folder, once symlinks are resolved. */
export async function samePath(a: string, b: string): Promise<boolean> {
  return (await resolvedPath(a)) === (await resolvedPath(b));
}

/** Whether `target` is `area` or inside it, once symlinks of both are resolved. */
export async function resolvesInside(area: string, target: string): Promise<boolean> {
  return isInside(await resolvedPath(area), await resolvedPath(target));
}

/**
 * The resolved path of `name` (a relative path from data) inside `base`; a `PathOutsideError`
 * naming `field` if it is not a non-empty relative string or leads outside `base` once resolved.
 */
export async function confinedPath(base: string, name: unknown, field: string): Promise<string> {
  if (typeof name !== 'string' || name.length === 0 || name.includes('\0')) {
    throw new PathOutsideError(field, name, base, null, 'must be a non-empty relative path');
  }
  if (path.isAbsolute(name) || /^[A-Za-z]:[\\/]/.test(name)) {
    throw new PathOutsideError(field, name, base, null, `is absolute; it must be a path inside ${base}`);
  }
  const realBase = await resolvedPath(base);
  const resolved = await resolvedPath(path.join(realBase, name));
  if (resolved === realBase || !isInside(realBase, resolved)) {
    throw new PathOutsideError(field, name, base, resolved, `leads outside ${base}`);
  }
  return resolved;
}

/** A plain file or folder name (one path component, not `.`/`..`, no separator); else a `PathOutsideError`. */
export function checkPlainName(name: unknown, field: string, base: string): string {
  if (
    typeof name !== 'string' ||
    name.length === 0 ||
    name === '.' ||
    name === '..' ||
    name.includes('/') ||
    name.includes('\\') ||
    name.includes('\0')
  ) {
    throw new PathOutsideError(field, name, base, null, `must be a plain name of an entry directly in ${base}`);
  }
  return name;
}

export type ReadConfinedOptions = Readonly<{
  /** Refuse a file larger than this (default 1 GiB). */
  maxBytes?: number;
  /** Only a plain name directly in the folder (no sub-folder); default false. */
  plainName?: boolean;
}>;

/** The most bytes `readConfinedFile` reads from one file unless told otherwise. */
export const DEFAULT_MAX_READ_BYTES = 1024 * 1024 * 1024;

/**
 * Reads the regular file `name` (from data) inside `folder`: confined (`confinedPath`), never
 * through a symlink that leads out, never a FIFO, device, socket or folder (checked before it is
 * opened, and again on the open descriptor, opened non-blocking and without following a last
 * symlink), and at most its size (and `maxBytes`) read.
 */
export async function readConfinedFile(
  folder: string,
  name: unknown,
  field: string,
  options: ReadConfinedOptions = {},
): Promise<Buffer> {
  if (options.plainName === true) checkPlainName(name, field, folder);
  const file = await confinedPath(folder, name, field);
  return readRegularFile(file, field, options.maxBytes);
}

/** Reads `file` if it is a regular file of at most `maxBytes`; never opens anything else. */
export async function readRegularFile(
  file: string,
  field: string | null,
  maxBytes: number = DEFAULT_MAX_READ_BYTES,
): Promise<Buffer> {
  const before = await fs.lstat(file);
  if (!before.isFile()) throw new NotARegularFileError(file, fileKind(before), field);
  if (before.size > maxBytes) throw new FileTooLargeError(file, before.size, maxBytes, field);
  const handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new NotARegularFileError(file, fileKind(stats), field);
    if (stats.size > maxBytes) throw new FileTooLargeError(file, stats.size, maxBytes, field);
    const buffer = Buffer.alloc(stats.size);
    let read = 0;
    while (read < buffer.length) {
      const { bytesRead } = await handle.read(buffer, read, buffer.length - read, read);
      if (bytesRead === 0) break;
      read += bytesRead;
    }
    return read === buffer.length ? buffer : buffer.subarray(0, read);
  } finally {
    await handle.close();
  }
}

/**
 * `readRegularFile`, or null when `file` does not exist. Other read errors are thrown; a file that
 * is not a regular file (a symlink to `/dev/zero`, a FIFO) or is larger than `maxBytes` is a typed
 * error, never read.
 */
export async function readRegularFileIfAny(
  file: string,
  field: string | null,
  maxBytes: number = DEFAULT_MAX_READ_BYTES,
): Promise<Buffer | null> {
  try {
    return await readRegularFile(file, field, maxBytes);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Whether `error` is one of the typed refusals of `readRegularFile` (wrong kind of file, too large). */
export function isReadRefusal(error: unknown): error is NotARegularFileError | FileTooLargeError {
  return error instanceof NotARegularFileError || error instanceof FileTooLargeError;
}

/**
 * A folder roundlog writes into (a TensorBoard run, `superseded/`, a breakpoint folder) is not a
 * real folder: a symbolic link (followed, the writes would land wherever it points, outside the
 * root) or a regular file or other non-folder in its place. Nothing is written through it.
 */
export class NotARealFolderError extends RoundlogError {
  readonly code = 'NOT_A_REAL_FOLDER' as const;
  /** The message without the path, for reports that name the path already. */
  readonly problem: string;
  constructor(
    /** The path that should be a folder (absolute). */
    readonly folder: string,
    /** What it is: `symbolic link`, `regular file`, `FIFO`, ... */
    readonly kind: string,
    /** Where a symbolic link points, else null. */
    readonly target: string | null,
    /** What roundlog keeps there, e.g. `the TensorBoard runs of Experiment_0000`. */
    readonly what: string,
  ) {
    const problem =
      `a ${kind}${target === null ? '' : ` to ${target}`}, not a folder (roundlog keeps ${what} there): ` +
      (kind === 'symbolic link'
        ? 'roundlog never writes through a link out of its root, and wrote nothing there; remove the link ' +
          "(or run 'roundlog project --rebuild' or 'roundlog verify --repair', which replace the link itself, " +
          'never what it points to, by a real folder)'
        : 'roundlog wrote nothing there; move or remove it (it is not replaced, it may be yours), then run ' +
          "'roundlog project'");
    super(`${folder} is ${problem}`);
    this.problem = problem;
  }
}

/**
 * Checks that every existing path component of `dir` strictly below `base` is a real folder (not
 * a symbolic link, not a file); components that do not exist yet are fine (they are created as
 * real folders). `base` itself is not checked: a root reached through a symlink is the user's
 * choice. Throws `NotARealFolderError` naming the first component that is not, with `what`.
 */
export async function checkRealFolders(base: string, dir: string, what: string): Promise<void> {
  const relative = path.relative(base, dir);
  if (relative === '') return;
  if (relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative)) {
    throw new PathOutsideError(what, dir, base, null, `is not inside ${base}`);
  }
  let current = base;
  for (const part of relative.split(path.sep)) {
    current = path.join(current, part);
    const stat = await fs.lstat(current).catch(() => null);
    if (stat === null) return;
    if (stat.isDirectory()) continue;
    const target = stat.isSymbolicLink() ? await fs.readlink(current).catch(() => null) : null;
    throw new NotARealFolderError(current, fileKind(stat), target, what);
  }
}
