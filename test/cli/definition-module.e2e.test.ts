/**
 * A definition module is a user's code: `roundlog run` and `resume` check its export with a schema
 * before using it. A field of the wrong type or shape is an `INVALID_DEFINITION` error naming the
 * module's file and the field, and nothing is recorded; never `unexpected error`, never a
 * definition half-used (a string of tags spread into one tag per character).
 */
import test from 'ava';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Experiment } from '../../src/federated/experiment.ts';
import { REPO, roundlog, roundlogProcess } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const example = (file: string) => JSON.stringify(path.join(REPO, 'examples/logistic-regression', file));

/** A workspace whose `experiment.ts` is `body`, with the example's `definition` in scope. */
function workspace(body: string): string {
  const dir = path.join(tempDir(), 'ws');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'experiment.ts'),
    `import { definition } from ${example('experiment.ts')};\n` +
      `const nested = (d: number): unknown => (d === 0 ? 1 : { a: nested(d - 1) });\n` +
      `void nested;\n${body}\n`,
  );
  return dir;
}

const BAD: ReadonlyArray<[title: string, body: string, field: string]> = [
  ['no default export', 'export const other = definition;', 'default is missing'],
  ['a default export that is a number', 'export default 42;', 'default is 42'],
  ['tags given as one string', "export default { ...definition, tags: '#clinical' };", 'default.tags is "#clinical"'],
  [
    'a training plan module that is a number',
    'export default { ...definition, trainingPlan: { module: 42 } };',
    'default.trainingPlan.module is 42',
  ],
  ['a federation that is not a function', 'export default { ...definition, federation: {} };', 'default.federation'],
  ['a round limit of 1.5', 'export default { ...definition, roundLimit: 1.5 };', 'default.roundLimit is 1.5'],
  ['a seed given as text', "export default { ...definition, seed: '7' };", 'default.seed is "7"'],
  [
    'a registry entry that is not a factory',
    'export default { ...definition, registry: { aggregators: { mine: 42 } } };',
    'default.registry.aggregators.mine is 42',
  ],
  [
    'an aggregator without its functions',
    "export default { ...definition, aggregator: { name: 'mine', config: {} } };",
    'default.aggregator.initialState',
  ],
  [
    'model arguments nested 100 deep',
    'export default { ...definition, modelArgs: nested(100) as Record<string, unknown> };',
    'default.modelArgs',
  ],
  [
    'a folder name of 300 characters',
    "export default { ...definition, experimentationFolder: 'a'.repeat(300) };",
    'default.experimentationFolder',
  ],
  [
    'a federation() that throws',
    "export default { ...definition, federation: () => { throw new TypeError('no data here'); } };",
    'default.federation() threw TypeError: no data here',
  ],
  [
    'a retention without keepLast',
    'export default { ...definition, retention: { keepEvery: 2 } };',
    'default.retention.keepLast is missing',
  ],
];

for (const [title, body, field] of BAD) {
  test(`run refuses a definition with ${title}, naming the file and the field`, async (t) => {
    const dir = workspace(body);
    const root = path.join(tempDir(), 'root');
    const result = await roundlog(['run', 'experiment.ts', '--rounds', '1', '--root', root], {}, { cwd: dir });
    const shown = `exit ${result.code}: ${result.stderr}${result.stdout}`;
    t.is(result.code, 1, shown);
    t.notRegex(result.stderr, /unexpected error/, shown);
    t.true(
      result.stderr.includes(`the experiment definition experiment.ts (${path.join(dir, 'experiment.ts')})`),
      shown,
    );
    t.true(result.stderr.includes(`cannot be used: ${field}`), shown);
    t.false(existsSync(path.join(root, 'experiments', 'Experiment_0000')), 'nothing was created');
  });
}

test('resume checks the definition it imports again: a module changed to a bad one is refused typed', async (t) => {
  const dir = workspace('export default definition;');
  const root = path.join(tempDir(), 'root');
  const run = await roundlog(['run', 'experiment.ts', '--rounds', '1', '--root', root], {}, { cwd: dir });
  t.is(run.code, 0, run.stderr);
  writeFileSync(
    path.join(dir, 'experiment.ts'),
    `import { definition } from ${example('experiment.ts')};\n` +
      'export default { ...definition, registry: { strategies: [] } };\n',
  );
  // A process of its own: this one has the module's first version in its import cache.
  const resumed = await roundlogProcess(['resume', '--rounds', '1', '--root', root]);
  t.is(resumed.code, 1, resumed.stderr);
  t.notRegex(resumed.stderr, /unexpected error/);
  t.regex(resumed.stderr, /cannot be used: default\.registry\.strategies is an array of 0/);
});

test('Experiment.create checks its options the same way: a wrong type is an INVALID_ARGUMENT', async (t) => {
  const { definition } = (await import('../../examples/logistic-regression/experiment.ts')) as {
    definition: Record<string, unknown> & { federation: () => unknown };
  };
  const federation = await definition.federation();
  const root = tempDir();
  const error = await t.throwsAsync(
    // @ts-expect-error: the wrong type, as JavaScript callers can give it
    Experiment.create({ ...definition, federation, tags: '#clinical', root, workspace: REPO }),
  );
  t.like(error, { code: 'INVALID_ARGUMENT', argument: 'options.tags' });
  t.false(existsSync(path.join(root, 'experiments', 'Experiment_0000')));
});

/** Every file of the root's log, with its bytes: what a refused command must leave as it was. */
function logBytes(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const dir = path.join(root, 'log');
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const file = path.join(dir, name);
    if (statSync(file).isFile()) out[name] = readFileSync(file).toString('base64');
  }
  return out;
}

const BAD_FEDERATIONS: ReadonlyArray<[body: string, field: string]> = [
  ['() => 42', 'default.federation() is 42'],
  ['() => ({ nodes: 7 })', 'default.federation().nodes is 7'],
  ["() => ({ nodes: [{ id: 'x' }] })", 'default.federation().nodes[0].datasets is missing'],
];

for (const [body, field] of BAD_FEDERATIONS) {
  test(`run and resume check what federation() returns (${body}): typed, named, nothing recorded`, async (t) => {
    const dir = workspace('export default { ...definition, federation: () => 42 };'.replace('() => 42', body));
    const root = path.join(tempDir(), 'root');
    const file = path.join(dir, 'experiment.ts');
    const run = await roundlog(['run', 'experiment.ts', '--rounds', '1', '--root', root], {}, { cwd: dir });
    t.is(run.code, 1, run.stderr);
    t.notRegex(run.stderr, /unexpected error/);
    t.true(
      run.stderr.includes(`the experiment definition experiment.ts (${file}) cannot be used: ${field}`),
      run.stderr,
    );
    t.false(existsSync(path.join(root, 'experiments', 'Experiment_0000')), 'nothing was created');

    // Resume: another workspace (this process has the bad module in its import cache), run with a good one first.
    const other = workspace('export default definition;');
    const good = await roundlog(['run', 'experiment.ts', '--rounds', '1', '--root', root], {}, { cwd: other });
    t.is(good.code, 0, good.stderr);
    const otherFile = path.join(other, 'experiment.ts');
    writeFileSync(
      otherFile,
      `import { definition } from ${example('experiment.ts')};\n` +
        `export default { ...definition, federation: ${body} };\n`,
    );
    const before = logBytes(root);
    // A process of its own: this one has the module's first version in its import cache.
    const resumed = await roundlogProcess(['resume', '--rounds', '1', '--root', root]);
    t.is(resumed.code, 1, resumed.stderr);
    t.notRegex(resumed.stderr, /unexpected error/);
    t.regex(resumed.stderr, /cannot be used: /);
    t.true(resumed.stderr.includes(`(${otherFile}) cannot be used: ${field}`), resumed.stderr);
    t.deepEqual(logBytes(root), before, 'nothing was appended');
    const ls = await roundlog(['ls', '--root', root]);
    t.notRegex(ls.stdout, /failed/);
  });
}

test('Experiment.loadBreakpoint checks what its federation function returns before recording the resume', async (t) => {
  const { definition } = (await import('../../examples/logistic-regression/experiment.ts')) as {
    definition: Record<string, unknown> & { federation: () => unknown };
  };
  const root = tempDir();
  const federation = await definition.federation();
  // @ts-expect-error: the definition's fields, loosely typed here
  const experiment = await Experiment.create({ ...definition, federation, root, workspace: REPO });
  await experiment.run({ rounds: 1 });
  await experiment.close();
  const before = logBytes(root);
  const error = await t.throwsAsync(
    // @ts-expect-error: the wrong type, as JavaScript callers can give it
    Experiment.loadBreakpoint(undefined, { root, workspace: REPO, federation: () => ({ nodes: 7 }) }),
  );
  t.like(error, { code: 'INVALID_ARGUMENT', argument: 'options.federation.nodes' });
  t.deepEqual(logBytes(root), before, 'nothing was appended');
});
