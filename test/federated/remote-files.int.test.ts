/**
 * A node's files: its approval list (`roundlog node approve`) and its dataset file (numeric CSV,
 * or one hospital of the UCI heart-disease data, prepared on the node as the example prepares it).
 */
import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { APPROVALS_FILE, approvePlan, readApprovals, sha256Hex } from '../../src/federated/remote/approvals.ts';
import { loadNodeDataset, numericCsv } from '../../src/federated/remote/dataset.ts';
import {
  ApprovalListError,
  NodeDatasetError,
  NodeFileError,
  PlanFileError,
} from '../../src/federated/remote/errors.ts';
import { planClosure } from '../../src/federated/plan-closure.ts';
import {
  HEART_DISEASE_DATA_DIR,
  HEART_DISEASE_HOSPITALS,
  loadHeartDiseaseHospital,
} from '../../examples/heart-disease/data.ts';
import { SEED } from '../../examples/heart-disease/experiment.ts';
import { InvalidArgumentError } from '../../src/errors.ts';
import { HeartDiseaseFormatError } from '../../src/federated/remote/heart-disease.ts';
import { roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

test('node approve records the digest of the plan and its imports; approving again replaces its entry', async (t) => {
  const dir = tempDir();
  const plan = path.join(dir, 'plan.ts');
  const helper = path.join(dir, 'helper.ts');
  writeFileSync(helper, 'export const rate = 0.1;\n');
  writeFileSync(plan, "import { rate } from './helper.ts';\nexport const plan = { train: () => rate };\n");
  const nodeDir = path.join(dir, 'node');
  const run = await roundlog(['node', 'approve', 'plan.ts', '--node-dir', 'node'], {}, { cwd: dir });
  t.is(run.code, 0, run.stderr);
  const closure = await planClosure(plan);
  t.deepEqual(
    closure.files.map((f) => f.path),
    ['helper.ts', 'plan.ts'],
  );
  const lines = run.stdout.trimEnd().split('\n');
  t.true(lines[0]!.startsWith(`approved ${plan} sha256 ${closure.sha256} (in ${nodeDir}/${APPROVALS_FILE})`));
  t.deepEqual(lines.slice(1), [
    `  helper.ts sha256 ${sha256Hex(readFileSync(helper))}`,
    `  plan.ts sha256 ${sha256Hex(readFileSync(plan))}`,
  ]);
  const [entry] = await readApprovals(nodeDir);
  t.like(entry, { sha256: closure.sha256, file: plan, files: closure.files });
  await approvePlan(nodeDir, plan);
  t.is((await readApprovals(nodeDir)).length, 1);
  writeFileSync(helper, 'export const rate = 0.2;\n');
  await approvePlan(nodeDir, plan);
  t.deepEqual(
    (await readApprovals(nodeDir)).map((e) => e.sha256),
    [closure.sha256, (await planClosure(plan)).sha256],
  );
});

test('node approve refuses a file that is not a plan module, or is missing, naming it', async (t) => {
  const dir = tempDir();
  writeFileSync(path.join(dir, 'data.csv'), 'a,b\n1,0\n');
  writeFileSync(path.join(dir, 'noplan.ts'), 'export const x = { init() {} };\n');
  const cases: Array<[string, RegExp]> = [
    ['data.csv', /it is not a module \(a \.csv file\)/],
    ['missing.ts', /it does not exist/],
    ['noplan.ts', /it exports no training plan: its exports \(x\) have no train\(\)/],
  ];
  for (const [name, reason] of cases) {
    const file = path.join(dir, name);
    const error = await t.throwsAsync(approvePlan(path.join(dir, 'node'), file), { instanceOf: PlanFileError });
    t.like(error, { code: 'INVALID_PLAN_FILE', file });
    t.regex(error.message, reason);
    const run = await roundlog(['node', 'approve', name, '--node-dir', 'node'], {}, { cwd: dir });
    t.is(run.code, 1);
    t.regex(run.stderr, new RegExp(`cannot approve ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
    t.notRegex(run.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('an approval list that is not one is refused, naming the file', async (t) => {
  const nodeDir = tempDir();
  writeFileSync(path.join(nodeDir, APPROVALS_FILE), '{"version": 1, "plans": [{"sha256": "x"}]}');
  const error = await t.throwsAsync(readApprovals(nodeDir), { instanceOf: ApprovalListError });
  t.regex(error.message, new RegExp(`${APPROVALS_FILE} has an entry plans\\[0\\]`));
});

test('a numeric CSV reads back exactly; a bad cell is refused naming the file, line and column', async (t) => {
  const dir = tempDir();
  const x = Float64Array.of(0.1, -1 / 3, 1e-300, 2.5, Math.PI, -0);
  const y = Uint8Array.of(1, 0, 1);
  const file = path.join(dir, 'd.csv');
  writeFileSync(file, numericCsv(['a', 'b'], { rows: 3, columns: 2, x, y }));
  const loaded = await loadNodeDataset(file);
  t.like(loaded, { rows: 3, columns: 2, format: 'numeric-csv', sha256: sha256Hex(readFileSync(file)) });
  t.deepEqual(loaded.data, { rows: 3, columns: 2, x: Float64Array.of(0.1, -1 / 3, 1e-300, 2.5, Math.PI, 0), y });

  writeFileSync(file, 'a,b,label\n1,2,1\n3,x,0\n');
  const error = await t.throwsAsync(loadNodeDataset(file), { instanceOf: NodeDatasetError });
  t.is(error.message, `dataset ${file} line 3: column "b" is not a finite number`);
  writeFileSync(file, 'a,label\n1,2\n');
  await t.throwsAsync(loadNodeDataset(file), { message: /line 2: the label "label" must be 0 or 1/ });
  // A file no loader takes by its name; a missing file and a folder are said as such first.
  writeFileSync(path.join(dir, 'd.parquet'), 'PAR1');
  await t.throwsAsync(loadNodeDataset(path.join(dir, 'd.parquet')), { message: /no loader reads this file/ });
  await t.throwsAsync(loadNodeDataset(path.join(dir, 'e.parquet')), {
    instanceOf: NodeFileError,
    message: /does not exist/,
  });
  const folder = await t.throwsAsync(loadNodeDataset(dir), { instanceOf: NodeDatasetError });
  t.is(
    folder.message,
    `dataset ${dir}: is a folder: --data names one dataset file ` +
      '(a node holds one dataset, e.g. processed.cleveland.data)',
  );
});

test("a hospital's heart-disease file, loaded by a node, holds the example's split and standardisation", async (t) => {
  for (const hospital of HEART_DISEASE_HOSPITALS) {
    const file = path.join(HEART_DISEASE_DATA_DIR, `processed.${hospital}.data`);
    // Chosen by the file's name; the split seeded as the example experiment seeds it.
    const loaded = await loadNodeDataset(file);
    const expected = loadHeartDiseaseHospital(hospital, { seed: SEED });
    t.like(loaded, { format: 'heart-disease', columns: 13, rows: expected.train.rows + expected.test.rows });
    t.deepEqual(loaded.data, expected, hospital);
  }
  // Another seed, another split; a name the loaders do not know, read with --format.
  const dir = tempDir();
  const copy = path.join(dir, 'va.txt');
  writeFileSync(copy, readFileSync(path.join(HEART_DISEASE_DATA_DIR, 'processed.va.data')));
  const reseeded = await loadNodeDataset(copy, { format: 'heart-disease', splitSeed: 7 });
  t.deepEqual(reseeded.data, { ...loadHeartDiseaseHospital('va', { seed: 7 }), file: copy });
  await t.throwsAsync(loadNodeDataset(copy), { instanceOf: NodeDatasetError, message: /name its --format/ });
  await t.throwsAsync(loadNodeDataset(copy, { format: 'parquet' }), { instanceOf: InvalidArgumentError });
  writeFileSync(copy, '63,1,1,145,233,1,2,150,0,2.3,3,0,6,x\n');
  await t.throwsAsync(loadNodeDataset(copy, { format: 'heart-disease' }), {
    instanceOf: HeartDiseaseFormatError,
    message: new RegExp(`^${copy} line 1, column 14 \\(num\\)`),
  });
});
