/**
 * A round attempt failed (a node failed or timed out, training threw): nothing is recorded. Its
 * `RoundStarted` stays in the log without a `RoundCompleted`: an aborted attempt, which replay
 * ignores and audit shows; the next start of the round gets the next attempt number.
 */
import { InvalidArgumentError } from '../../errors.ts';
import type { ExperimentEvent } from '../events.ts';
import type { ExperimentState } from '../state.ts';
import { requireCreated } from './context.ts';

export type FailRound = {
  round: number;
  attempt: number;
  /** The node that failed. */
  node: string;
  reason: string;
};

/**
 * Decides no event for a failed attempt, after checking it is the attempt open in the state.
 *
 * Errors: `ExperimentNotCreatedError`; `InvalidArgumentError` when `round` and `attempt` are not
 * those of the open attempt (no round started, or another one).
 */
export function decideFail(state: ExperimentState, command: FailRound): readonly ExperimentEvent[] {
  const created = requireCreated(state, 'fail a round');
  const open = state.openAttempt;
  if (open === null || open.round !== command.round || open.attempt !== command.attempt) {
    const rule =
      open === null
        ? `must name the open attempt of experiment ${created.folder}, which has none (no round started)`
        : `must name the open attempt of experiment ${created.folder}: round ${open.round}, attempt ${open.attempt}`;
    throw new InvalidArgumentError('attempt', rule, { round: command.round, attempt: command.attempt });
  }
  return [];
}
