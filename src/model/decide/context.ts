/**
 * What every decider shares: the context a command runs in (who acts; no clock, no randomness:
 * ids, seeds and blob refs come in the command), and the guard that an experiment exists.
 */
import type { Actor, ExperimentCreated } from '../events.ts';
import { ExperimentNotCreatedError } from '../errors.ts';
import type { ExperimentState } from '../state.ts';

/** Who runs the command, recorded in the events that say who did something. */
export type DecideContext = Readonly<{ actor: Actor }>;

/** The experiment's creation event; `ExperimentNotCreatedError` naming `command` when there is none. */
export function requireCreated(state: ExperimentState, command: string): ExperimentCreated {
  if (state.created === null) throw new ExperimentNotCreatedError(command);
  return state.created;
}
