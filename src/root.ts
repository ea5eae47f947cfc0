/** Where a roundlog root lives and what is inside it: the one place that names its folders. */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { syncDir, writeStep } from './durable.ts';
import { RoundlogError } from './errors.ts';

/** A command that reads a root was pointed at a folder that does not exist. */
export class RootNotFoundError extends RoundlogError {
  readonly code = 'ROOT_NOT_FOUND' as const;
  constructor(readonly root: string) {
    super(
      `there is no roundlog root at ${root}; check --root or ROUNDLOG_DIR (the default is ./var), ` +
        'or run an experiment first',
    );
  }
}

/** `--root` names something that is not a folder (a file, a device). */
export class RootNotADirectoryError extends RoundlogError {
  readonly code = 'ROOT_NOT_A_DIRECTORY' as const;
  constructor(readonly root: string) {
    super(
      `${root} is not a folder, so it cannot be a roundlog root; check --root or ROUNDLOG_DIR (the default is ./var)`,
    );
  }
}

/**
 * A command that reads a root was pointed at a folder that is not one: it has no root marker
 * (`roundlog-root.json`) and no log. Nothing is created in it.
 */
export class NotARootError extends RoundlogError {
  readonly code = 'NOT_A_ROOT' as const;
  constructor(
    readonly root: string,
    readonly marker: string,
  ) {
    super(
      `${root} is not a roundlog root: it has no ${path.basename(marker)} and no log; check --root or ` +
        'ROUNDLOG_DIR (the default is ./var), or create a root there with roundlog run',
    );
  }
}

/** The root marker cannot be read as one, or is of a format this release does not know. */
export class RootMarkerInvalidError extends RoundlogError {
  readonly code = 'ROOT_MARKER_INVALID' as const;
  constructor(
    readonly marker: string,
    readonly reason: string,
  ) {
    super(`the root marker ${marker} ${reason}`);
  }
}

/** The root folder: the given option, else `ROUNDLOG_DIR`, else `./var`, as an absolute path. */
export function resolveRoot(root?: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(root ?? env.ROUNDLOG_DIR ?? 'var');
}

/** The folders of a root (absolute paths). */
export type RootLayout = Readonly<{
  root: string;
  /** The embedded file log. */
  log: string;
  /** The content-addressed blob store (unless blobs are kept elsewhere). */
  blobs: string;
  /** Breakpoint folders, one folder per experiment. */
  experiments: string;
  /** Snapshots of experiment states. */
  snapshots: string;
  /** Rounds rebuilt by `roundlog replay`. */
  replays: string;
  /** The checkpoint of `roundlog project --follow`. */
  projectionCheckpoint: string;
  /** The projection lock: held by the one process writing the views of the root's experiments. */
  projectionLock: string;
  /** The file that makes the folder a root (`roundlog-root.json`). */
  marker: string;
}>;

/** The folder under the root where `replay` writes by default. */
export const REPLAYS_DIR = 'replays';
export const SNAPSHOTS_DIR = 'snapshots';
export const PROJECTION_CHECKPOINT_FILE = '.projection-checkpoint.json';
/** The projection lock's file name, in the folder whose views it guards (`experiments/`). */
export const PROJECTION_LOCK_FILE = '.projection-lock';

/** The layout of the root at `root` (made absolute). */
export function rootLayout(root: string): RootLayout {
  const base = path.resolve(root);
  const experiments = path.join(base, 'experiments');
  return Object.freeze({
    root: base,
    log: path.join(base, 'log'),
    blobs: path.join(base, 'blobs'),
    experiments,
    snapshots: path.join(base, SNAPSHOTS_DIR),
    replays: path.join(base, REPLAYS_DIR),
    projectionCheckpoint: path.join(experiments, PROJECTION_CHECKPOINT_FILE),
    projectionLock: path.join(experiments, PROJECTION_LOCK_FILE),
    marker: path.join(base, ROOT_MARKER_FILE),
  });
}

/** The file at the top of every root, written when the root is created. */
export const ROOT_MARKER_FILE = 'roundlog-root.json';
/** The format of the root's layout; a marker of a higher version is refused. */
export const ROOT_FORMAT_VERSION = 1;

export type RootMarker = Readonly<{ format: 'roundlog-root'; formatVersion: number; createdAt: string }>;

/** What a root check found: a marked root, or a root written before markers existed (it has a log). */
export type RootKind = 'marked' | 'unmarked-with-log';

/**
 * Checks, creating nothing, that `root` is a roundlog root: a folder with a valid marker, or,
 * for roots written before markers existed, a folder with no marker whose `log/` holds a segment.
 * Throws `RootNotFoundError`, `RootNotADirectoryError`, `NotARootError` or `RootMarkerInvalidError`.
 */
export async function checkRoot(root: string): Promise<RootKind> {
  const layout = rootLayout(root);
  const stat = await fs.stat(layout.root).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw new RootNotFoundError(layout.root);
    if (error.code === 'ENOTDIR') throw new RootNotADirectoryError(layout.root);
    throw error;
  });
  if (!stat.isDirectory()) throw new RootNotADirectoryError(layout.root);
  if (await readMarker(layout.marker)) return 'marked';
  if (await hasLogSegment(layout.log)) return 'unmarked-with-log';
  throw new NotARootError(layout.root, layout.marker);
}

/**
 * Makes `root` a root for a writer: creates the folder if needed and writes the marker if it has
 * none (a new root, or one written before markers existed is adopted). Throws
 * `RootNotADirectoryError` for a file, `RootMarkerInvalidError` for a bad marker.
 */
export async function prepareRoot(root: string): Promise<void> {
  const layout = rootLayout(root);
  const stat = await fs.stat(layout.root).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    if (error.code === 'ENOTDIR') throw new RootNotADirectoryError(layout.root);
    throw error;
  });
  if (stat !== null && !stat.isDirectory()) throw new RootNotADirectoryError(layout.root);
  if (stat === null)
    await writeStep(layout.root, 'creating the root folder', () => fs.mkdir(layout.root, { recursive: true }));
  if (await readMarker(layout.marker)) return;
  const marker: RootMarker = {
    format: 'roundlog-root',
    formatVersion: ROOT_FORMAT_VERSION,
    createdAt: new Date().toISOString(),
  };
  const temp = `${layout.marker}.${process.pid}.tmp`;
  await writeStep(layout.marker, 'writing the root marker', async () => {
    try {
      const handle = await fs.open(temp, 'w');
      try {
        await handle.writeFile(`${JSON.stringify(marker, null, 2)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(temp, layout.marker);
    } catch (error) {
      await fs.rm(temp, { force: true });
      throw error;
    }
    await syncDir(layout.root);
  });
}

/** True for a valid marker, false when there is none; throws `RootMarkerInvalidError` for a bad one. */
async function readMarker(file: string): Promise<boolean> {
  let text: string;
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) throw new RootMarkerInvalidError(file, 'is not a regular file; remove it');
    if (stat.size > 64 * 1024) throw new RootMarkerInvalidError(file, `is ${stat.size} bytes, not a marker; remove it`);
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new RootMarkerInvalidError(file, 'is not JSON; remove it (the next roundlog run writes it again)');
  }
  const { format, formatVersion } = (value ?? {}) as Partial<RootMarker>;
  if (format !== 'roundlog-root' || !Number.isInteger(formatVersion) || formatVersion! < 1) {
    throw new RootMarkerInvalidError(
      file,
      'is not a roundlog root marker (format "roundlog-root", an integer formatVersion); remove it',
    );
  }
  if (formatVersion! > ROOT_FORMAT_VERSION) {
    throw new RootMarkerInvalidError(
      file,
      `has format version ${formatVersion}, newer than this release of roundlog reads (${ROOT_FORMAT_VERSION}); ` +
        'upgrade roundlog',
    );
  }
  return true;
}

/** Whether the log folder holds a segment file (a root written before markers existed). */
async function hasLogSegment(logDir: string): Promise<boolean> {
  const names = await fs.readdir(logDir).catch(() => [] as string[]);
  return names.some((name) => /^\d{20}\.seg$/.test(name));
}
