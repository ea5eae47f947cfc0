/**
 * Finish an experiment: an `ExperimentFinished` once its round limit is reached. A run ends with
 * this decision; before the limit (or with none) there is nothing to record.
 */
import type { ExperimentEvent } from '../events.ts';
import { roundCurrent, type ExperimentState } from '../state.ts';
import { requireCreated } from './context.ts';

/** Nothing to give: whether the experiment is finished follows from its state. */
export type FinishExperiment = Record<never, never>;

/**
 * Decides `[ExperimentFinished]` when the experiment has a round limit and `roundCurrent()` has
 * reached it, else no event. A run that ends at the limit of an experiment already finished
 * records it again, as runs always have.
 *
 * Errors: `ExperimentNotCreatedError`.
 */
export function decideFinish(state: ExperimentState, _command: FinishExperiment = {}): readonly ExperimentEvent[] {
  requireCreated(state, 'finish the experiment');
  const limit = state.settings.roundLimit;
  const current = roundCurrent(state);
  if (limit === null || current < limit) return [];
  return [{ type: 'ExperimentFinished', data: { v: 1, roundCurrent: current } }];
}
