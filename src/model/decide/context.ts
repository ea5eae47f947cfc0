/**
 * What every decider shares: the context a command runs in (who acts; no clock, no randomness:
 * ids, seeds and blob refs come in the command), and the guard that an experiment exists.
 */
import type { Actor, ExperimentCreated } from '../events.ts';
import { ExperimentNotCreatedError, RoundLimitReachedError } from '../errors.ts';
import { roundCurrent, type ExperimentState } from '../state.ts';

/** Who runs the command, recorded in the events that say who did something. */
export type DecideContext = Readonly<{ actor: Actor }>;

/** The experiment's creation event; `ExperimentNotCreatedError` naming `command` when there is none. */
export function requireCreated(state: ExperimentState, command: string): ExperimentCreated {
  if (state.created === null) throw new ExperimentNotCreatedError(command);
  return state.created;
}

/**
 * `RoundLimitReachedError` when the experiment has a round limit and has already run that many
 * rounds (`roundCurrent()` is at or past it): no round may be started or recorded. Rounds a log
 * already holds past the limit are left as they are; only new ones are refused.
 */
export function requireUnderRoundLimit(state: ExperimentState, created: ExperimentCreated): void {
  const limit = state.settings.roundLimit;
  const round = roundCurrent(state);
  if (limit !== null && round >= limit) throw new RoundLimitReachedError(created.folder, round, limit);
}
