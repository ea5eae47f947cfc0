/**
 * The audit queries under their former module path: each query now lives in its own file
 * (events.ts, rounds.ts, metric.ts, lineage.ts, actions.ts). This module re-exports them for
 * importers of `audit/queries.ts`; `audit/index.ts` is the entry point.
 */
export {
  auditEvents,
  followEvents,
  nodesOf,
  type AuditEvent,
  type AuditEventsOptions,
  type AuditEventsResult,
  type FollowEventsOptions,
} from './events.ts';
export { roundsTable, type RoundRow, type RoundStatus, type RoundsOptions, type RoundsResult } from './rounds.ts';
export { metricSeries, type MetricOptions, type MetricPoint, type MetricResult } from './metric.ts';
export {
  lineage,
  type LineageAncestor,
  type LineageDescendant,
  type LineageOptions,
  type LineageResult,
} from './lineage.ts';
export {
  ACTION_TYPES,
  asAction,
  auditActions,
  isActionType,
  type ActionType,
  type ActionsOptions,
  type ActionsResult,
  type AuditAction,
} from './actions.ts';
