/**
 * Rounds of an experiment's history, read from its log: which round a choice names (current
 * branch, superseded, or by log position) and the exact state right after it. The history
 * operations (replay, rewind, fork in `src/projections/history-ops.ts`) start here.
 *
 * - `replayRound`: the exact state after a round, folded from the log up to that round's
 *   `RoundCompleted` (no breakpoint folder needed), written as a breakpoint folder outside the
 *   experiment's own folder (default `<root>/replays/<folder>/breakpoint_RRRR`).
 * - `rewindExperiment`: the experiment continues from round R in the same stream (`Rewound`, who and
 *   why); later rounds are superseded, their folders moved to `superseded/`, R's folder written.
 * - `forkExperiment`: a new experiment that starts from round R of another (its parameters, state,
 *   settings, federated setup and seed), lineage recorded in both streams (`ForkedFrom`, `Forked`).
 *
 * Rounds are named by index (`R` as in `breakpoint_RRRR`, 0-based): by default on the current
 * branch; `superseded: true` names the latest round with that index a rewind took off the
 * branch; `position` names one `RoundCompleted` of the whole history by its log position.
 */
import { InvalidArgumentError, RoundlogError } from '../errors.ts';
import { replay, roundCurrent, type ExperimentState, type RoundRecord } from '../model/state.ts';
import { RoundNotFoundError, RoundPrunedError } from '../model/errors.ts';
import type { ExperimentHandle, RoundLog } from './round-log.ts';

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

/** A round named by `superseded` or `position` is not in the experiment's history. */
export class RoundNotInHistoryError extends RoundlogError {
  readonly code = 'ROUND_NOT_IN_HISTORY' as const;
  constructor(
    readonly experiment: string,
    readonly round: number,
    readonly position: bigint | null,
    /** The superseded rounds the history does have: index and log position of their `RoundCompleted`. */
    readonly superseded: ReadonlyArray<Readonly<{ round: number; position: bigint }>>,
  ) {
    const asked = position === null ? `no superseded round ${round}` : `no round ${round} completed at log position ${position}`;
    const have =
      superseded.length === 0
        ? 'it has no superseded round'
        : `its superseded rounds are ${superseded.map((r) => `${r.round} (position ${r.position})`).join(', ')}`;
    super(`experiment ${experiment} has ${asked}; ${have}. Without --superseded or --position, --round names a round of the current branch`);
  }
}

/** A round and the state after it, folded from the log. */
export type RoundAt = Readonly<{
  record: RoundRecord;
  branch: Branch;
  /** The experiment's state right after the round's `RoundCompleted`: the events after it are not folded. */
  state: ExperimentState;
}>;

/** Finds a round in an experiment's history; refuses one whose parameters retention deleted. */
export function chooseRound(state: ExperimentState, choice: RoundChoice): { record: RoundRecord; branch: Branch } {
  const { round } = choice;
  if (!Number.isSafeInteger(round) || round < 0) throw new InvalidArgumentError('round', 'must be a non-negative integer', round);
  const superseded = state.superseded.filter((r): r is RoundRecord => r !== undefined && r !== null);
  let found: { record: RoundRecord; branch: Branch } | undefined;
  if (choice.position !== undefined) {
    const current = state.rounds.find((r) => r !== undefined && r !== null && r.position === choice.position);
    const old = superseded.find((r) => r.position === choice.position);
    found = current !== undefined ? { record: current, branch: 'current' } : old !== undefined ? { record: old, branch: 'superseded' } : undefined;
    if (found === undefined || found.record.round !== round) {
      throw new RoundNotInHistoryError(state.folder, round, choice.position, superseded.map((r) => ({ round: r.round, position: r.position })));
    }
  } else if (choice.superseded) {
    const candidates = superseded.filter((r) => r.round === round).sort((a, b) => (a.position < b.position ? -1 : 1));
    const latest = candidates.at(-1);
    if (latest === undefined) throw new RoundNotInHistoryError(state.folder, round, null, superseded.map((r) => ({ round: r.round, position: r.position })));
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

/**
 * The state right after a round: the experiment's stream read from its start up to that round's
 * `RoundCompleted` (inclusive) and folded with the same `evolve` as everything else.
 */
export async function stateAfterRound(rl: RoundLog, handle: ExperimentHandle, choice: RoundChoice): Promise<RoundAt> {
  const { record, branch } = chooseRound(handle.state, choice);
  const events = await rl.withReader(async (log) => (await log.readStream(handle.stream, { maxCount: Number(record.revision) + 1 })).events);
  const state = replay(events);
  const replayed = state.rounds[record.round];
  if (replayed === undefined || replayed.position !== record.position || replayed.params.sha256 !== record.params.sha256) {
    // The log changed under the handle's state: a stream is append-only, so this is a defect, not a user error.
    throw new Error(`replaying ${handle.state.folder} up to revision ${record.revision} did not give round ${record.round} at position ${record.position}`);
  }
  return { record, branch, state };
}

