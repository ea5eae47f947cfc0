/** The release of roundlog, recorded in every experiment it creates, and where the package is. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder of roundlog's package.json, found from this module's own location (in src/ or dist/). */
export const PACKAGE_ROOT: string = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    if (existsSync(candidate) && (JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string }).name === 'roundlog')
      return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`roundlog's package.json not found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
})();

export const VERSION: string = (
  JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
