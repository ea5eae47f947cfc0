/**
 * A definition module's `registry` is what `roundlog run` creates with and what `roundlog resume`
 * loads with: a custom aggregator runs from the CLI, and a run stopped and resumed ends with the
 * parameters of one that was not.
 */
import test from 'ava';
import { roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const DEFINITION = 'test/support/scaffold-experiment.ts';

type Listing = Array<{
  roundCurrent: number;
  status: string;
  breakpoints: Array<{ round: number; paramsSha256: string }>;
}>;

async function listing(root: string): Promise<Listing> {
  const ls = await roundlog(['ls', '--json', '--root', root]);
  return JSON.parse(ls.stdout) as Listing;
}

test('roundlog run and roundlog resume take a custom aggregator from the definition module registry', async (t) => {
  const whole = tempDir();
  const all = await roundlog(['run', DEFINITION, '--root', whole]);
  t.is(all.code, 0, all.stderr);

  const split = tempDir();
  const part = await roundlog(['run', DEFINITION, '--rounds', '2', '--root', split]);
  t.is(part.code, 0, part.stderr);
  t.like((await listing(split))[0], { roundCurrent: 2 });
  const resumed = await roundlog(['resume', '--root', split]);
  t.is(resumed.code, 0, resumed.stderr);
  t.regex(resumed.stdout, /resumed Experiment_0000 .* after round 1 \(round 2 runs next\), 2\/4 rounds done/);

  const [a, b] = [(await listing(whole))[0]!, (await listing(split))[0]!];
  t.like(b, { roundCurrent: 4, status: 'finished' });
  const hashes = (l: Listing[number]) => l.breakpoints.map(({ round, paramsSha256 }) => ({ round, paramsSha256 }));
  t.is(hashes(b).length, 4);
  t.deepEqual(hashes(b), hashes(a), 'the same parameters in every breakpoint');
});
