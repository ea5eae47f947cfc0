/**
 * Rewind an experiment to round R of its current branch: a `Rewound` (why, by whom, which rounds
 * it supersedes), and a `SettingsChanged` restoring the settings R ran under when they differ
 * from those in force (`settingsToRestore`), as a resume from R's breakpoint would.
 */
import { checkReason } from './checks.ts';
import { InvalidArgumentError } from '../../errors.ts';
import type { ExperimentEvent } from '../events.ts';
import { chooseRound } from '../rounds.ts';
import { settingsToRestore } from '../settings.ts';
import { roundCurrent, type ExperimentState } from '../state.ts';
import { requireCreated, type DecideContext } from './context.ts';

export type RewindExperiment = {
  /** Index of the last round kept: `roundCurrent()` becomes `round + 1`. On the current branch, before its last. */
  round: number;
  /** Why, recorded with who did it. */
  reason: string;
};

/**
 * Decides the rewind's events.
 *
 * Errors: `InvalidArgumentError` (`reason` empty; `round` not a non-negative integer, or the last
 * completed round, which would supersede nothing), `ExperimentNotCreatedError`,
 * `RoundNotFoundError` (not a round of the current branch), `RoundPrunedError` (its parameters
 * were deleted by retention).
 */
export function decideRewind(
  state: ExperimentState,
  command: RewindExperiment,
  context: DecideContext,
): readonly ExperimentEvent[] {
  const reason = checkReason(command.reason);
  requireCreated(state, 'rewind');
  const { record } = chooseRound(state, { round: command.round });
  const last = roundCurrent(state) - 1;
  if (record.round === last) {
    throw new InvalidArgumentError(
      'round',
      `must be before the last completed round of ${state.folder} (${last}): rewinding to it would supersede nothing`,
      record.round,
    );
  }
  const keep = record.round + 1;
  const supersededRounds = state.rounds
    .slice(keep)
    .filter((r) => r !== undefined && r !== null)
    .map((r) => r.round);
  const events: ExperimentEvent[] = [
    { type: 'Rewound', data: { v: 1, roundCurrent: keep, reason, supersededRounds, by: context.actor } },
  ];
  const restore = settingsToRestore(state.settings, record.settings);
  if (restore !== null) events.push({ type: 'SettingsChanged', data: { v: 1, ...restore, by: context.actor } });
  return events;
}
