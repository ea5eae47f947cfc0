/**
 * Rounds of an experiment's history, read from its log: which round a choice names (current
 * branch, superseded, or by log position) and the exact state right after it. The history
 * operations (replay, rewind, fork in `src/projections/history-ops.ts`) start here.
 *
 * Rounds are named by index (`R` as in `breakpoint_RRRR`, 0-based): by default on the current
 * branch; `superseded: true` names the latest round with that index a rewind took off the
 * branch; `position` names one `RoundCompleted` of the whole history by its log position.
 */
import { chooseRound, type Branch, type RoundChoice } from '../model/rounds.ts';
import { replay, type ExperimentState, type RoundRecord } from '../model/state.ts';
import { readHistory } from './registry.ts';
import type { ExperimentHandle, RoundLog } from './round-log.ts';

export { chooseRound, type Branch, type RoundChoice } from '../model/rounds.ts';
export { RoundNotInHistoryError } from '../model/errors.ts';

/** A round and the state after it, folded from the log. */
export type RoundAt = Readonly<{
  record: RoundRecord;
  branch: Branch;
  /** The experiment's state right after the round's `RoundCompleted`: the events after it are not folded. */
  state: ExperimentState;
}>;

/**
 * The state right after a round: the experiment's stream read from its start up to that round's
 * `RoundCompleted` (inclusive) and folded with the same `evolve` as everything else.
 */
export async function stateAfterRound(rl: RoundLog, handle: ExperimentHandle, choice: RoundChoice): Promise<RoundAt> {
  const { record, branch } = chooseRound(handle.state, choice);
  const named = { folder: handle.created.folder, stream: handle.stream };
  const events = await rl.withReader(
    async (log) => (await readHistory(log, named, { maxCount: Number(record.revision) + 1 })).events,
  );
  const state = replay(events);
  const replayed = state.rounds[record.round];
  if (
    replayed === undefined ||
    replayed.position !== record.position ||
    replayed.params.sha256 !== record.params.sha256
  ) {
    // The log changed under the handle's state: a stream is append-only, so this is a defect, not a user error.
    throw new Error(
      `replaying ${handle.state.folder} up to revision ${record.revision} ` +
        `did not give round ${record.round} at position ${record.position}`,
    );
  }
  return { record, branch, state };
}
