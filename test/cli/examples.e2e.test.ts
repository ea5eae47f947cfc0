/** The examples the README points to run as documented. */
import test from 'ava';
import { spawnTs } from '../support/child.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

test('examples/quickstart.ts records rounds, reopens, and reads the last round back', async (t) => {
  const root = tempDir();
  const run = spawnTs('../../examples/quickstart.ts', [root]);
  const { code } = await run.exited;
  t.is(code, 0, run.stderr());
  const stdout = run.lines.join('\n');
  t.regex(stdout, /last committed round: 1, loss 0\.27, weights \[0\.5, 1, 1\.5, 2, 2\.5, 3\]/);
  t.regex(stdout, /caught up at log position 1/);
});
