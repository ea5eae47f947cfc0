/**
 * Only a command line that is wrong is a usage error (exit 2, "Run 'roundlog help'"). A definition
 * module that is missing or fails to load, or a `--workspace` that does not exist, is a fact of
 * the file system: exit 1 with a message naming the file and what to do. A changed training plan
 * on the command line names the flag that accepts it, not the library's option.
 */
import test from 'ava';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO, roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const example = (file: string) => JSON.stringify(path.join(REPO, 'examples/logistic-regression', file));

function workspace(): string {
  const dir = path.join(tempDir(), 'ws');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'plan.ts'), `export * from ${example('plan.ts')};\n`);
  writeFileSync(
    path.join(dir, 'experiment.ts'),
    `import { definition } from ${example('experiment.ts')};\n` +
      "export default { ...definition, trainingPlan: { module: 'plan.ts', export: 'logisticRegressionPlan' } };\n",
  );
  writeFileSync(path.join(dir, 'broken.ts'), "throw new Error('cannot start here');\nexport default {};\n");
  return dir;
}

test('a missing or failing definition module exits 1, naming the file and what to do (no usage error)', async (t) => {
  const dir = workspace();
  const root = path.join(tempDir(), 'root');
  for (const [module, why] of [
    ['missing.ts', /no such file/],
    ['broken.ts', /cannot start here/],
  ] as const) {
    const run = await roundlog(['run', module, '--rounds', '1', '--root', root], {}, { cwd: dir });
    t.is(run.code, 1, run.stderr);
    t.notRegex(run.stderr, /roundlog help/);
    t.true(run.stderr.includes(path.join(dir, module)), run.stderr);
    t.regex(run.stderr, why);
    t.regex(run.stderr, /check that it exists in the workspace/);
  }
});

test('resume --workspace of a folder that does not exist exits 1 saying so, not as a usage error', async (t) => {
  const dir = workspace();
  const root = path.join(tempDir(), 'root');
  const run = await roundlog(['run', 'experiment.ts', '--rounds', '1', '--root', root], {}, { cwd: dir });
  t.is(run.code, 0, run.stderr);
  const missing = path.join(tempDir(), 'nonexistent');
  const resumed = await roundlog(['resume', '--root', root, '--workspace', missing]);
  t.is(resumed.code, 1, resumed.stderr);
  t.notRegex(resumed.stderr, /roundlog help/);
  t.regex(resumed.stderr, /--workspace must be an existing folder/);
  t.true(resumed.stderr.includes(missing), resumed.stderr);
});

test('a changed training plan on the command line names --accept-plan-change, not the library option', async (t) => {
  const dir = workspace();
  const root = path.join(tempDir(), 'root');
  const run = await roundlog(['run', 'experiment.ts', '--rounds', '1', '--root', root], {}, { cwd: dir });
  t.is(run.code, 0, run.stderr);
  appendFileSync(path.join(dir, 'plan.ts'), '// changed\n');
  const refused = await roundlog(['resume', '--rounds', '1', '--root', root]);
  t.is(refused.code, 1, refused.stderr);
  t.regex(refused.stderr, /changed since the experiment recorded it/);
  t.regex(refused.stderr, /pass --accept-plan-change to continue/);
  t.notRegex(refused.stderr, /acceptPlanChange/);
  const accepted = await roundlog(['resume', '--rounds', '1', '--accept-plan-change', '--root', root]);
  t.is(accepted.code, 0, accepted.stderr);
});
