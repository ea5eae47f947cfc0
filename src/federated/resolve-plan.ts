/**
 * The training plan of an experiment: imported from the workspace (never from a breakpoint or
 * experiment folder), its source hashed and stored, and checked against the plan the log records.
 * Creating an experiment records the plan; resuming one checks it.
 */
import { confinedModule, dataAreas, importModule, workspaceModule } from './load-module.ts';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { readRegularFile } from '../confine.ts';
import { InvalidArgumentError, RoundlogError } from '../errors.ts';
import { TrainingPlanChangedError } from '../model/errors.ts';
import type { TrainingPlanRef } from '../model/events.ts';
import type { RoundLog } from '../projections/index.ts';
import type { TrainingPlan } from './training-plan.ts';

/** Where the training plan is: a module of the workspace and the name of its export. */
export type TrainingPlanLocation = Readonly<{ module: string; export?: string }>;

/**
 * Imports the training plan from the workspace (never from a breakpoint or experiment folder, nor
 * from `forbidden`: the folder being resumed) and hashes its source; a source that differs from
 * `recorded` is refused unless accepted. The module path is confined (`confinedModule`) before
 * anything is read.
 */
export async function resolvePlan(
  rl: RoundLog,
  workspace: string,
  location: TrainingPlanLocation | TrainingPlanRef,
  acceptChange = false,
  forbidden: readonly string[] = [],
): Promise<{ plan: TrainingPlan; ref: TrainingPlanRef }> {
  const file = await confinedModule(workspace, location.module, 'trainingPlan.module', [
    ...dataAreas(rl.layout),
    ...forbidden,
  ]);
  let source: Buffer;
  try {
    source = await readRegularFile(file, 'trainingPlan.module');
  } catch (error) {
    if (error instanceof RoundlogError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    const reason = `must name a readable module (${code} at ${file})`;
    throw new InvalidArgumentError('trainingPlan.module', reason, location.module);
  }
  const sha256 = createHash('sha256').update(source).digest('hex');
  if ('sha256' in location && location.sha256 !== sha256 && !acceptChange) {
    throw new TrainingPlanChangedError(location.module, location.sha256, sha256);
  }
  const exportName = location.export ?? 'default';
  const module = await importModule(file);
  const plan = module[exportName] as TrainingPlan | undefined;
  if (typeof plan?.init !== 'function' || typeof plan.train !== 'function') {
    throw new InvalidArgumentError(
      'trainingPlan.export',
      `must name an export of ${location.module} with init() and train()`,
      exportName,
    );
  }
  const { ref: sourceRef } = await rl.blobs.put(source, { encoding: 'text/source' });
  // Recorded as the path was given, relative to the workspace (a shipped example keeps its `examples/…`).
  const given = path.resolve(workspace, location.module);
  const inWorkspace = workspaceModule(workspace, location.module) === given;
  const relative = inWorkspace ? path.relative(workspace, given).split(path.sep).join('/') : location.module;
  return { plan, ref: { module: relative, export: exportName, sha256, source: sourceRef } };
}
