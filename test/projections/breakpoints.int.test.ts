/** The breakpoint-folder projection: rebuildable from the log, idempotent, atomic. */
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { projectExperiment } from '../../src/projections/breakpoints/index.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { Experiment } from '../../src/federated/experiment.ts';
import { syntheticClinicalFederation } from '../../examples/logistic-regression/data.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const WORKSPACE = fileURLToPath(new URL('../..', import.meta.url));

/** The breakpoint folders' files (those of the TensorBoard projection, under `tensorboard/`, left out). */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    if (path.relative(dir, full).split(path.sep).includes('tensorboard')) continue;
    files[path.relative(dir, full)] = createHash('sha256').update(readFileSync(full)).digest('hex');
  }
  return files;
}

test(
  'deleting the whole experiments folder and projecting ' + 'again gives the same files with the same checksums',
  async (t) => {
    const root = tempDir();
    const exp = await Experiment.create({
      tags: ['#clinical'],
      trainingPlan: { module: 'examples/logistic-regression/plan.ts', export: 'logisticRegressionPlan' },
      federation: syntheticClinicalFederation({ seed: 3 }),
      modelArgs: { columns: 5 },
      roundLimit: 3,
      saveBreakpoints: true,
      seed: 9,
      root,
      workspace: WORKSPACE,
    });
    await exp.run();
    await exp.close();
    const experiments = path.join(root, 'experiments');
    const before = snapshot(experiments);
    t.is(Object.keys(before).length, 9);
    rmSync(experiments, { recursive: true });

    const rl = await openRoundLog({ root });
    const handle = await rl.openExperiment('Experiment_0000');
    const ctx = { experimentsDir: experiments, blobs: rl.blobs };
    t.deepEqual(await projectExperiment(ctx, handle.state), { written: 3, writtenRounds: [0, 1, 2], failed: [] });
    t.deepEqual(snapshot(experiments), before);
    // Idempotent: nothing to write the second time, nothing changed.
    t.deepEqual(await projectExperiment(ctx, handle.state), { written: 0, writtenRounds: [], failed: [] });
    t.deepEqual(snapshot(experiments), before);
    // Parameters are hard links to the blobs, not copies.
    t.is(statSync(path.join(experiments, 'Experiment_0000', 'breakpoint_0002', 'params.safetensors')).nlink, 2);
    await rl.close();
  },
);

test(
  'a temp folder left by a dead writer is removed; a stray ' +
    'folder that is not of this history is moved to superseded/',
  async (t) => {
    const root = tempDir();
    const rl = await openRoundLog({ root });
    const handle = await rl.createExperiment({ saveBreakpoints: true });
    await handle.recordRound({ params: { w: { dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) } } });
    rmSync(path.join(root, 'experiments', 'Experiment_0000', 'breakpoint_0000'), { recursive: true });
    const dir = path.join(root, 'experiments', 'Experiment_0000');
    mkdirSync(path.join(dir, '.tmp-breakpoint_0000-999999999-00000000-0000-0000-0000-000000000000'), {
      recursive: true,
    });
    mkdirSync(path.join(dir, 'breakpoint_0007'));
    writeFileSync(path.join(dir, 'breakpoint_0007', 'breakpoint.json'), '{}');
    await projectExperiment({ experimentsDir: path.join(root, 'experiments'), blobs: rl.blobs }, handle.state);
    t.deepEqual(readdirSync(dir).sort(), ['breakpoint_0000', 'superseded']);
    t.deepEqual(readdirSync(path.join(dir, 'superseded')), ['breakpoint_0007.1']);
    await rl.close();
  },
);
