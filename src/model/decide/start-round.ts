/**
 * Start a round: a `RoundStarted` naming the round (`roundCurrent()`), its attempt (one more than
 * the attempts already started for that index, so a retry after a crash or a failed node, or a
 * round run again after a rewind, is told apart) and the nodes the strategy selected.
 */
import { InvalidArgumentError } from '../../errors.ts';
import type { ExperimentEvent } from '../events.ts';
import { roundCurrent, type ExperimentState } from '../state.ts';
import { requireCreated, requireUnderRoundLimit } from './context.ts';

export type StartRound = {
  /** The nodes selected for the round, in the strategy's order. */
  nodes: readonly string[];
  /** Must be `roundCurrent()`; given, it is checked. */
  round?: number;
};

/** The attempt number the next start of `round` gets. */
export function nextAttempt(state: ExperimentState, round: number): number {
  return (state.attempts[round] ?? 0) + 1;
}

/**
 * Decides the `RoundStarted` of the next round.
 *
 * Errors: `ExperimentNotCreatedError`; `InvalidArgumentError` when `round` is given and is not
 * `roundCurrent()`.
 */
export function decideStartRound(state: ExperimentState, command: StartRound): readonly ExperimentEvent[] {
  const created = requireCreated(state, 'start a round');
  requireUnderRoundLimit(state, created);
  const round = roundCurrent(state);
  if (command.round !== undefined && command.round !== round) {
    const rule = `must be the next round of experiment ${created.folder}, ${round}`;
    throw new InvalidArgumentError('round', rule, command.round);
  }
  return [{ type: 'RoundStarted', data: { v: 1, round, attempt: nextAttempt(state, round), nodes: command.nodes } }];
}
