/**
 * The training plan of an experiment: imported from the workspace (never from a breakpoint or
 * experiment folder), its identity (the digest of its local module closure: `plan-closure.ts`)
 * computed and its source stored, and checked against the plan the log records.
 * Creating an experiment records the plan; resuming one checks it.
 */
import { confinedModule, dataAreas, importModule, workspaceModule } from './load-module.ts';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { planClosure, type PlanClosure, type PlanClosureFile } from './plan-closure.ts';
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
): Promise<{ plan: TrainingPlan; ref: TrainingPlanRef; digest: string }> {
  return storePlan(rl, await loadPlan(rl.layout, workspace, location, acceptChange, forbidden));
}

/** A training plan imported and checked (`loadPlan`), its source not stored yet. */
export type LoadedPlan = Readonly<{
  plan: TrainingPlan;
  source: Buffer;
  /** The digest of the plan's local module closure now: what requests to node processes name. */
  digest: string;
  /** The closure's files (paths relative to the plan's folder). */
  files: readonly PlanClosureFile[];
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
  let closure: PlanClosure;
  try {
    closure = await planClosure(file);
  } catch (error) {
    if (error instanceof RoundlogError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    const reason = `must name a readable module (${code} at ${file})`;
    throw new InvalidArgumentError('trainingPlan.module', reason, location.module);
  }
  const { source } = closure;
  // The plan's identity: the digest of its local module closure. An experiment recorded before the
  // digest covered the files a plan imports holds the SHA-256 of the plan file alone: that one is
  // still recognised, and kept as recorded (nothing is rewritten), while node requests name the
  // closure's digest (`digest`).
  const recorded = 'sha256' in location ? location.sha256 : null;
  const sameFileOnly = recorded !== null && recorded !== closure.sha256 && recorded === sha256Hex(source);
  if (recorded !== null && recorded !== closure.sha256 && !sameFileOnly && !acceptChange) {
    throw new TrainingPlanChangedError(location.module, recorded, closure.sha256);
  }
  const sha256 = sameFileOnly ? recorded : closure.sha256;
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
  return {
    plan,
    source,
    digest: closure.sha256,
    files: closure.files,
    ref: { module: relative, export: exportName, sha256 },
  };
}

/** Stores a loaded plan's source in the blob store: the plan and its reference as recorded. */
export async function storePlan(
  rl: RoundLog,
  loaded: LoadedPlan,
): Promise<{ plan: TrainingPlan; ref: TrainingPlanRef; digest: string }> {
  const { ref: source } = await rl.blobs.put(loaded.source, { encoding: 'text/source' });
  return { plan: loaded.plan, ref: { ...loaded.ref, source }, digest: loaded.digest };
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
