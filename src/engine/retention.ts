/**
 * Retention: which rounds keep their parameter bytes, and garbage collection of the rest. The
 * entry point of its modules: the pure policy (retention-policy.ts), the root's blob references
 * (root-index.ts), and pruning and gc with their I/O (gc.ts).
 */
export {
  checkRetention,
  formatRounds,
  planRetention,
  type Retention,
  type RetentionPlan,
  type RoundRef,
} from './retention-policy.ts';
export { RootIndex } from './root-index.ts';
export { applyRetention, gc, type ExperimentPruneReport, type GcOptions, type PruneReport } from './gc.ts';
