/**
 * Which events another process may append to an experiment's stream while a process runs it,
 * without stopping that run. They change nothing the runner decides from its state: `RoundsPruned`
 * (retention never prunes the last round of the branch, the one the next round starts from, and
 * the next round's events do not depend on which older rounds keep their parameters) and `Forked`
 * (a fork of one of its rounds is a note in the parent). A writer whose expected revision was
 * overtaken by such events only folds them and appends again; any other event (a resume, a
 * rewind, a settings change, a round, a run of another process) means another process changed
 * the experiment, and the writer stops with `ConcurrentModificationError`.
 */
import type { ExperimentEventType } from './events.ts';

export const CONCURRENTLY_ACCEPTED: ReadonlySet<ExperimentEventType> = new Set<ExperimentEventType>([
  'RoundsPruned',
  'Forked',
]);

/** Whether a runner may fold `events`, appended by other processes since it last wrote, and go on. */
export function acceptsConcurrently(events: readonly Readonly<{ type: string }>[]): boolean {
  return events.every((e) => CONCURRENTLY_ACCEPTED.has(e.type as ExperimentEventType));
}
