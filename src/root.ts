/** Where a roundlog root lives and what is inside it. */
import path from 'node:path';
import { RoundlogError } from './errors.ts';

/** A command that reads a root was pointed at a folder that does not exist. */
export class RootNotFoundError extends RoundlogError {
  readonly code = 'ROOT_NOT_FOUND' as const;
  constructor(readonly root: string) {
    super(`there is no roundlog root at ${root}; check --root or ROUNDLOG_DIR (the default is ./var), or run an experiment first`);
  }
}

/** The root folder: the given option, else `ROUNDLOG_DIR`, else `./var`, as an absolute path. */
export function resolveRoot(root?: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(root ?? env.ROUNDLOG_DIR ?? 'var');
}

export function rootLayout(root: string): { log: string; blobs: string; experiments: string } {
  return {
    log: path.join(root, 'log'),
    blobs: path.join(root, 'blobs'),
    experiments: path.join(root, 'experiments'),
  };
}
