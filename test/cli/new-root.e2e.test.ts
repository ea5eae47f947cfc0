/**
 * A command that may start a new root (`resume <carried folder>`, `run`) checks what it was given
 * first and creates the root only after: when the input is refused, the root path does not exist
 * afterwards (no marker, no log, no blobs/tmp, no lock).
 */
import test from 'ava';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Experiment } from '../../src/federated/experiment.ts';
import { REPO, roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const EXAMPLE = 'examples/logistic-regression/experiment.ts';

/** A breakpoint folder carried out of a root, `edit` applied to its manifest. */
async function carried(t: import('ava').ExecutionContext, edit: (manifest: Record<string, unknown>) => void) {
  const root = tempDir();
  const run = await roundlog(['run', EXAMPLE, '--rounds', '2', '--root', root]);
  t.is(run.code, 0, run.stderr);
  const folder = path.join(tempDir(), 'carried');
  cpSync(path.join(root, 'experiments', 'Experiment_0000', 'breakpoint_0001'), folder, { recursive: true });
  const file = path.join(folder, 'breakpoint.json');
  const manifest = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(manifest);
  writeFileSync(file, JSON.stringify(manifest, null, 2));
  return folder;
}

test('resume of a bad carried folder into a root that does not exist creates nothing', async (t) => {
  const folder = await carried(t, (m) => {
    m.round = 0;
  });
  for (const how of ['env', 'flag'] as const) {
    const root = path.join(tempDir(), 'new', 'root');
    const args = ['resume', folder, '--rounds', '1', ...(how === 'flag' ? ['--root', root] : [])];
    const refused = await roundlog(args, how === 'env' ? { ROUNDLOG_DIR: root } : {});
    t.is(refused.code, 1, `${how}: ${refused.stdout}`);
    t.regex(refused.stderr, /breakpoint\.json/, how);
    t.false(existsSync(root), `${how}: the root was not created`);
    t.false(existsSync(path.dirname(root)), `${how}: nor its parent`);
  }
  // A path that is no breakpoint folder at all: nothing created either.
  const root = path.join(tempDir(), 'root');
  const missing = await roundlog(['resume', path.join(tempDir(), 'nothing-here'), '--root', root]);
  t.is(missing.code, 1);
  t.false(existsSync(root));
});

test('resume of a good carried folder into a root that does not exist creates it and imports', async (t) => {
  const folder = await carried(t, () => {});
  const root = path.join(tempDir(), 'new', 'root');
  const resumed = await roundlog(['resume', folder, '--rounds', '1', '--root', root]);
  t.is(resumed.code, 0, resumed.stderr);
  t.true(existsSync(path.join(root, 'roundlog-root.json')));
});

/** A definition module of one's own in a new workspace, `overrides` spread over the example's. */
function definitionWith(overrides: string): string {
  const dir = path.join(tempDir(), 'project');
  mkdirSync(dir, { recursive: true });
  const example = JSON.stringify(path.join(REPO, 'examples/logistic-regression/experiment.ts'));
  writeFileSync(
    path.join(dir, 'experiment.ts'),
    `import { definition } from ${example};\nexport default { ...definition, ${overrides} };\n`,
  );
  return dir;
}

test('run with a definition that is refused creates no root', async (t) => {
  const cases = [
    "trainingPlan: { module: 'no-such-plan.ts', export: 'plan' }",
    'tags: ["#no-node-has-this-tag"]',
    'roundLimit: -1',
    'seed: 1.5',
    "experimentationFolder: '../out'",
  ];
  for (const overrides of cases) {
    const workspace = definitionWith(overrides);
    const root = path.join(tempDir(), 'root');
    const refused = await roundlog(['run', 'experiment.ts', '--root', root], {}, { cwd: workspace });
    t.is(refused.code, 1, `${overrides}: ${refused.stdout}${refused.stderr}`);
    t.false(existsSync(root), `${overrides}: no root created (${refused.stderr.trim()})`);
  }
});

test('Experiment.loadBreakpoint with no path on a root that does not exist says so and creates nothing', async (t) => {
  const root = path.join(tempDir(), 'root');
  const federation = { nodes: [] };
  await t.throwsAsync(Experiment.loadBreakpoint(undefined, { root, federation }), { code: 'NO_BREAKPOINT' });
  t.false(existsSync(root));
});
