/** Where a roundlog root lives and what is inside it. */
import path from 'node:path';

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
