/**
 * The round log with its views: the engine's operations with the breakpoint-folder and TensorBoard
 * projections wired in, as users and the layers above get them. `openRoundLog` here keeps
 * `<root>/experiments/<folder>/breakpoint_RRRR/` and `<root>/experiments/<folder>/tensorboard/` in
 * step after every committed round; `gc`, `verifyRoot`, `projectRoot` and `followProjection` see
 * them too.
 */
import * as project from '../engine/project.ts';
import type { ProjectionFactory } from '../engine/projection.ts';
import * as retention from '../engine/retention.ts';
import * as roundLog from '../engine/round-log.ts';
import * as verify from '../engine/verify.ts';
import * as repair from '../engine/repair.ts';
import { breakpointProjection } from './breakpoints/index.ts';
import { tensorboardProjection } from './tensorboard/index.ts';

export * from '../engine/project.ts';
export * from '../engine/retention.ts';
export * from '../engine/round-log.ts';
export * from '../engine/verify.ts';
export * from '../engine/repair.ts';
export * from '../engine/history.ts';
export * from './history-ops.ts';
export * from './export.ts';

/** The views every root keeps beside its log: its breakpoint folders and its TensorBoard event files. */
export const defaultProjections: ProjectionFactory = (env) => [breakpointProjection(env), tensorboardProjection(env)];

/** `openRoundLog` of the engine, keeping the breakpoint folders (unless `projections` says otherwise). */
export function openRoundLog(options: roundLog.OpenRoundLogOptions = {}): Promise<roundLog.RoundLog> {
  return roundLog.openRoundLog({ projections: defaultProjections, ...options });
}

/** `roundlog gc`, removing the breakpoint folders of the rounds it prunes. */
export function gc(options: retention.GcOptions = {}): Promise<retention.PruneReport> {
  return retention.gc({ projections: defaultProjections, ...options });
}

/** `roundlog verify`, checking the breakpoint folders too. */
export function verifyRoot(options: verify.VerifyOptions = {}): Promise<verify.VerifyReport> {
  return verify.verifyRoot({ projections: defaultProjections, ...options });
}

/** `roundlog verify --repair`: the blob store and the breakpoint folders healed from each other and the log. */
export function repairRoot(options: verify.VerifyOptions = {}): Promise<repair.RepairReport> {
  return repair.repairRoot({ projections: defaultProjections, ...options });
}

/** `roundlog project`: the breakpoint folders of a root brought in step with its log. */
export function projectRoot(options: project.ProjectOptions = {}): Promise<project.ProjectReport> {
  return project.projectRoot({ projections: defaultProjections, ...options });
}

/** `roundlog project --follow`: the breakpoint folders kept in step as the log grows. */
export function followProjection(options: project.FollowProjectionOptions): Promise<void> {
  return project.followProjection({ projections: defaultProjections, ...options });
}
