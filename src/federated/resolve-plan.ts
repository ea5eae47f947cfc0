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
import type { RootLayout } from '../root.ts';
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
  return storePlan(rl, await loadPlan(rl.layout, workspace, location, acceptChange, forbidden));
}

/** A training plan imported and checked (`loadPlan`), its source not stored yet. */
export type LoadedPlan = Readonly<{
  plan: TrainingPlan;
  source: Buffer;
  ref: Omit<TrainingPlanRef, 'source'>;
}>;

/**
 * The checks and the import of `resolvePlan`, writing nothing: a root that does not exist yet is
 * created only once the plan is known to load (`layout` names the root's data areas, which code
 * is never imported from).
 */
export async function loadPlan(
  layout: RootLayout,
  workspace: string,
  location: TrainingPlanLocation | TrainingPlanRef,
  acceptChange = false,
  forbidden: readonly string[] = [],
): Promise<LoadedPlan> {
  const file = await confinedModule(workspace, location.module, 'trainingPlan.module', [
    ...dataAreas(layout),
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
  // Recorded as the path was given, relative to the workspace (a shipped example keeps its `examples/…`).
  const given = path.resolve(workspace, location.module);
  const inWorkspace = workspaceModule(workspace, location.module) === given;
  const relative = inWorkspace ? path.relative(workspace, given).split(path.sep).join('/') : location.module;
  return { plan, source, ref: { module: relative, export: exportName, sha256 } };
}

/** Stores a loaded plan's source in the blob store: the plan and its reference as recorded. */
export async function storePlan(
  rl: RoundLog,
  loaded: LoadedPlan,
): Promise<{ plan: TrainingPlan; ref: TrainingPlanRef }> {
  const { ref: source } = await rl.blobs.put(loaded.source, { encoding: 'text/source' });
  return { plan: loaded.plan, ref: { ...loaded.ref, source } };
}
