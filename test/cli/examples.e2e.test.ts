/** The examples the README points to run as documented. */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

test('examples/quickstart.ts records rounds, reopens, and reads the last round back', (t) => {
  const root = tempDir();
  const run = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'examples/quickstart.ts'), root], { cwd: ROOT, encoding: 'utf8' });
  t.is(run.status, 0, run.stderr);
  t.regex(run.stdout, /last committed round: 1, loss 0\.27, weights \[0\.5, 1, 1\.5, 2, 2\.5, 3\]/);
  t.regex(run.stdout, /caught up at log position 1/);
});
