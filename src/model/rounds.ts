/**
 * Naming one round of an experiment's history: by index on the current branch, the latest
 * superseded round with an index, or the `RoundCompleted` at a log position. Pure: the history
 * commands (rewind, fork, replay) and the engine name rounds the same way.
 */
import { InvalidArgumentError } from '../errors.ts';
import { RoundNotFoundError, RoundNotInHistoryError, RoundPrunedError } from './errors.ts';
import { roundCurrent, type ExperimentState, type RoundRecord } from './state.ts';

/** Which round of an experiment's history. */
export type RoundChoice = {
  /** Index of the round (0-based, as in `breakpoint_RRRR`). */
  round: number;
  /** The latest round with this index that a rewind took off the current branch, instead of the current branch's. */
  superseded?: boolean;
  /** The log position of the round's `RoundCompleted`: exactly one round of the history, current or superseded. */
  position?: bigint;
};

export type Branch = 'current' | 'superseded';

/**
 * Finds a round in an experiment's history; refuses one whose parameters retention deleted.
 *
 * Errors: `InvalidArgumentError` (`round` not a non-negative integer), `RoundNotFoundError` (no
 * such round on the current branch), `RoundNotInHistoryError` (no such superseded round, or no
 * round of that index at `position`), `RoundPrunedError` (its parameters were deleted).
 */
export function chooseRound(state: ExperimentState, choice: RoundChoice): { record: RoundRecord; branch: Branch } {
  const { round } = choice;
  if (!Number.isSafeInteger(round) || round < 0) {
    throw new InvalidArgumentError('round', 'must be a non-negative integer', round);
  }
  const superseded = state.superseded.filter((r): r is RoundRecord => r !== undefined && r !== null);
  const known = () => superseded.map((r) => ({ round: r.round, position: r.position }));
  let found: { record: RoundRecord; branch: Branch } | undefined;
  if (choice.position !== undefined) {
    const current = state.rounds.find((r) => r !== undefined && r !== null && r.position === choice.position);
    const old = superseded.find((r) => r.position === choice.position);
    found =
      current !== undefined
        ? { record: current, branch: 'current' }
        : old !== undefined
          ? { record: old, branch: 'superseded' }
          : undefined;
    if (found === undefined || found.record.round !== round) {
      throw new RoundNotInHistoryError(state.folder, round, choice.position, known());
    }
  } else if (choice.superseded) {
    const candidates = superseded.filter((r) => r.round === round).sort((a, b) => (a.position < b.position ? -1 : 1));
    const latest = candidates.at(-1);
    if (latest === undefined) throw new RoundNotInHistoryError(state.folder, round, null, known());
    found = { record: latest, branch: 'superseded' };
  } else {
    const record = state.rounds[round];
    if (record === undefined || record === null) throw new RoundNotFoundError(state.folder, round, roundCurrent(state));
    found = { record, branch: 'current' };
  }
  const pruned = state.pruned[String(found.record.position)];
  if (pruned !== undefined) throw new RoundPrunedError(state.folder, round, pruned.timestamp);
  return found;
}
