/**
 * Resuming a breakpoint folder carried from another root imports it as a new experiment. What can
 * refuse the resume (the definition and training plan modules confined to the workspace and
 * present, the plan's source unchanged) is checked before the import, so a refused resume imports
 * nothing, however often it is tried; the same carried folder resumed again continues the
 * experiment that imported it; an imported experiment that never ran is `created`; and a failure
 * after the import says the experiment stays and how to continue it.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { sealManifest } from '../../src/projections/breakpoints/schema.ts';
import type { BreakpointManifest } from '../../src/model/manifest.ts';
import { REPO, roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const example = (file: string) => JSON.stringify(path.join(REPO, 'examples/logistic-regression', file));

/** A workspace with its own definition and plan modules, run one round; its breakpoint folder carried out. */
async function carriedFolder(t: import('ava').ExecutionContext): Promise<{ workspace: string; folder: string }> {
  const workspace = path.join(tempDir(), 'ws');
  mkdirSync(workspace, { recursive: true });
  writeFileSync(path.join(workspace, 'plan.ts'), `export * from ${example('plan.ts')};\n`);
  writeFileSync(
    path.join(workspace, 'experiment.ts'),
    `import { definition } from ${example('experiment.ts')};\n` +
      "export default { ...definition, trainingPlan: { module: 'plan.ts', export: 'logisticRegressionPlan' } };\n",
  );
  const root = path.join(tempDir(), 'origin');
  const run = await roundlog(['run', 'experiment.ts', '--rounds', '1', '--root', root], {}, { cwd: workspace });
  t.is(run.code, 0, run.stderr);
  const folder = path.join(tempDir(), 'carried');
  cpSync(path.join(root, 'experiments', 'Experiment_0000', 'breakpoint_0000'), folder, { recursive: true });
  return { workspace, folder };
}

const experimentsOf = (root: string): string[] =>
  existsSync(path.join(root, 'experiments'))
    ? readdirSync(path.join(root, 'experiments')).filter((n) => n.startsWith('Experiment_'))
    : [];

async function statusOf(root: string): Promise<Array<{ folder: string; status: string; roundCurrent: number }>> {
  const ls = await roundlog(['ls', '--json', '--root', root]);
  return JSON.parse(ls.stdout) as Array<{ folder: string; status: string; roundCurrent: number }>;
}

test('a refused resume of a carried folder imports nothing, however often it is tried', async (t) => {
  const { workspace, folder } = await carriedFolder(t);
  const root = path.join(tempDir(), 'root');
  // Modules missing: a workspace without them.
  const empty = path.join(tempDir(), 'empty');
  mkdirSync(empty);
  for (let i = 0; i < 2; i++) {
    const refused = await roundlog(['resume', folder, '--rounds', '1', '--root', root, '--workspace', empty]);
    t.is(refused.code, 1, refused.stderr);
    t.regex(refused.stderr, /experiment\.ts/);
    t.deepEqual(experimentsOf(root), [], 'nothing imported');
    // The root did not exist: refused before anything was committed, it is not left behind.
    t.false(existsSync(root), 'no root created');
  }
  // Into a folder that exists and is empty: left as it was.
  const emptyRoot = tempDir();
  const refusedInFolder = await roundlog(['resume', folder, '--root', emptyRoot, '--workspace', empty]);
  t.is(refusedInFolder.code, 1, refusedInFolder.stderr);
  t.deepEqual(readdirSync(emptyRoot), [], 'the folder is left empty');
  // A definition module recorded as an absolute path (refused as leading outside the workspace).
  const evil = path.join(tempDir(), 'evil');
  cpSync(folder, evil, { recursive: true });
  const file = path.join(evil, 'breakpoint.json');
  const manifest = JSON.parse(readFileSync(file, 'utf8')) as BreakpointManifest;
  const config = manifest.experiment.config as { definition: { module: string } };
  config.definition.module = path.join(tempDir(), 'evil.ts');
  writeFileSync(file, JSON.stringify(sealManifest(manifest), null, 2));
  for (let i = 0; i < 2; i++) {
    const refused = await roundlog(['resume', evil, '--rounds', '1', '--root', root, '--workspace', workspace]);
    t.is(refused.code, 1, refused.stderr);
    t.regex(refused.stderr, /is absolute/);
    t.deepEqual(experimentsOf(root), [], 'nothing imported');
  }
  // The training plan changed since the folder was written.
  appendFileSync(path.join(workspace, 'plan.ts'), '// changed\n');
  for (let i = 0; i < 2; i++) {
    const refused = await roundlog(['resume', folder, '--rounds', '1', '--root', root, '--workspace', workspace]);
    t.is(refused.code, 1, refused.stderr);
    t.regex(refused.stderr, /training plan/);
    t.deepEqual(experimentsOf(root), [], 'nothing imported');
  }
});

test('the same carried folder resumed again continues the experiment that imported it, never a copy', async (t) => {
  const { workspace, folder } = await carriedFolder(t);
  const root = path.join(tempDir(), 'root');
  const first = await roundlog(['resume', folder, '--rounds', '1', '--root', root, '--workspace', workspace]);
  t.is(first.code, 0, first.stderr);
  t.deepEqual(experimentsOf(root), ['Experiment_0000']);
  // Round 0 is older than the last round now: going back to it is a rewind, refused without --rewind.
  const again = await roundlog(['resume', folder, '--rounds', '1', '--root', root, '--workspace', workspace]);
  t.is(again.code, 1, again.stderr);
  t.deepEqual(experimentsOf(root), ['Experiment_0000'], 'no second import');
  const rewound = await roundlog([
    ...['resume', folder, '--rounds', '1', '--rewind', '--root', root, '--workspace', workspace],
  ]);
  t.is(rewound.code, 0, rewound.stderr);
  t.regex(rewound.stdout, /resumed Experiment_0000/);
  t.deepEqual(experimentsOf(root), ['Experiment_0000'], 'no second import');
  t.like((await statusOf(root))[0], { folder: 'Experiment_0000', roundCurrent: 2 });
});

test('a failure after the import keeps the imported experiment, created, and says how to continue it', async (t) => {
  const { workspace, folder } = await carriedFolder(t);
  // A breakpoint whose aggregator state is of a version the aggregator does not know: refused
  // only once the imported state is read, after the import.
  const file = path.join(folder, 'breakpoint.json');
  const manifest = JSON.parse(readFileSync(file, 'utf8')) as BreakpointManifest & {
    state: { stateVersions?: { aggregator: number; strategy: number } };
  };
  manifest.state.stateVersions = { aggregator: 99, strategy: 1 };
  writeFileSync(file, JSON.stringify(sealManifest(manifest), null, 2));
  const root = path.join(tempDir(), 'root');
  const failed = await roundlog(['resume', folder, '--rounds', '1', '--root', root, '--workspace', workspace]);
  t.is(failed.code, 1, failed.stderr);
  t.notRegex(failed.stderr, /unexpected error/);
  const imported = path.join(root, 'experiments', 'Experiment_0000');
  t.true(
    failed.stderr.includes(`continue it with: roundlog resume --root ${root} ${imported} --workspace ${workspace}`),
    failed.stderr,
  );
  t.deepEqual(experimentsOf(root), ['Experiment_0000']);
  // It never ran here: created, not stopped.
  t.like((await statusOf(root))[0], { folder: 'Experiment_0000', status: 'created', roundCurrent: 1 });
  // Tried again: the same experiment, no copy.
  const again = await roundlog(['resume', folder, '--rounds', '1', '--root', root, '--workspace', workspace]);
  t.is(again.code, 1, again.stderr);
  t.deepEqual(experimentsOf(root), ['Experiment_0000'], 'no second import');
});

test('resume of a carried folder with a hostile params.safetensors exits 1, naming file and fault', async (t) => {
  const { workspace, folder } = await carriedFolder(t);
  const file = path.join(folder, 'params.safetensors');
  // Two tensors whose byte ranges overlap, the manifest sealed over them as whoever edits it can.
  const header = Buffer.from(
    JSON.stringify({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    }),
  );
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  const bytes = Buffer.concat([length, header, Buffer.alloc(12)]);
  rmSync(file);
  writeFileSync(file, bytes);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const manifestFile = path.join(folder, 'breakpoint.json');
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as BreakpointManifest & Record<string, unknown>;
  const edited = {
    ...manifest,
    params: { ...manifest.params, sha256, bytes: bytes.length },
    files: { ...manifest.files, 'params.safetensors': sha256 },
  };
  rmSync(manifestFile);
  writeFileSync(manifestFile, JSON.stringify(sealManifest(edited as BreakpointManifest), null, 2) + '\n');
  const root = path.join(tempDir(), 'root');
  const refused = await roundlog(['resume', folder, '--rounds', '1', '--root', root], {}, { cwd: workspace });
  t.is(refused.code, 1, refused.stderr);
  t.true(refused.stderr.includes(file), refused.stderr);
  t.regex(refused.stderr, /corrupt tensors\/safetensors payload .*tensors "a" .* and "b" .* overlap/);
  t.deepEqual(experimentsOf(root), [], 'nothing imported');
});
