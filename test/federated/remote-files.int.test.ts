/**
 * A node's files: its approval list (`roundlog node approve`) and its dataset file (numeric CSV).
 */
import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { APPROVALS_FILE, approvePlan, readApprovals, sha256Hex } from '../../src/federated/remote/approvals.ts';
import { loadNodeDataset, numericCsv } from '../../src/federated/remote/dataset.ts';
import { ApprovalListError, NodeDatasetError } from '../../src/federated/remote/errors.ts';
import { roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

test('node approve records the hash and path of the plan file; approving again replaces its entry', async (t) => {
  const dir = tempDir();
  const plan = path.join(dir, 'plan.ts');
  writeFileSync(plan, 'export const plan = {};\n');
  const nodeDir = path.join(dir, 'node');
  const run = await roundlog(['node', 'approve', 'plan.ts', '--node-dir', 'node'], {}, { cwd: dir });
  t.is(run.code, 0, run.stderr);
  const sha256 = sha256Hex(readFileSync(plan));
  t.is(run.stdout, `approved ${plan} sha256 ${sha256} (in ${nodeDir}/${APPROVALS_FILE})\n`);
  const [entry] = await readApprovals(nodeDir);
  t.like(entry, { sha256, file: plan });
  await approvePlan(nodeDir, plan);
  t.is((await readApprovals(nodeDir)).length, 1);
  writeFileSync(plan, 'export const plan = { changed: true };\n');
  await approvePlan(nodeDir, plan);
  t.deepEqual(
    (await readApprovals(nodeDir)).map((e) => e.sha256),
    [sha256, sha256Hex(readFileSync(plan))],
  );
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
  await t.throwsAsync(loadNodeDataset(path.join(dir, 'd.parquet')), { message: /no loader reads this file/ });
});
