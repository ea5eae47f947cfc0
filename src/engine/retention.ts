/**
 * Retention: which rounds keep their parameter bytes, and garbage collection of the rest. The
 * entry point of its modules: the pure policy (src/model/retention.ts), the root's blob references
 * (root-index.ts), and pruning and gc with their I/O (gc.ts).
 */
export {
  checkRetention,
  formatRounds,
  planRetention,
  type Retention,
  type RetentionPlan,
  type RoundRef,
} from '../model/retention.ts';
export { RootIndex } from './root-index.ts';
export { applyRetention, gc, type ExperimentPruneReport, type GcOptions, type PruneReport } from './gc.ts';
