/** The audit API: an experiment's history, and queries across the experiments of a root. */
export { EVENT_TYPES, isEventType, type ExperimentRef, type FollowOptions, type Followed } from './common.ts';
export { MetricNotFoundError } from './errors.ts';
export {
  HISTORY_KINDS,
  HistoryProjector,
  actorOf,
  experimentHistory,
  followHistory,
  historyOf,
  type AbortedEntry,
  type CreatedEntry,
  type FinishedEntry,
  type FollowHistoryOptions,
  type ForkedEntry,
  type ForkedFromEntry,
  type HistoryEntry,
  type HistoryKind,
  type HistoryOptions,
  type HistoryResult,
  type NodeResult,
  type PrunedEntry,
  type ResumedEntry,
  type RewoundEntry,
  type RoundEntry,
  type SettingsChange,
  type SettingsEntry,
  type StartedEntry,
} from './history.ts';
// The queries across experiments, one per module. Each takes a `RoundLog` and one options object
// and returns one typed result (live modes an Observable); none writes to the root.
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
export { describeEntry, describeEvent, formatActor, formatDuration, formatMetrics, formatNumber } from './describe.ts';
