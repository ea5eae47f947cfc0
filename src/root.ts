/** Where a roundlog root lives and what is inside it: the one place that names its folders. */
import path from 'node:path';
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
}>;

/** The folder under the root where `replay` writes by default. */
export const REPLAYS_DIR = 'replays';
export const SNAPSHOTS_DIR = 'snapshots';
export const PROJECTION_CHECKPOINT_FILE = '.projection-checkpoint.json';

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
  });
}
