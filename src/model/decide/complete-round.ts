/**
 * Complete a round: the nodes' replies (`NodeReplied`, in the order given) and the round's
 * `RoundCompleted`, appended at once; the round is committed when they are durable.
 */
import type { BlobRef } from '../../blobs/types.ts';
import { InvalidArgumentError } from '../../errors.ts';
import type { ExperimentEvent, NodeReplied, RoundCompleted } from '../events.ts';
import { roundCurrent, type ExperimentState } from '../state.ts';
import { recordable } from '../values.ts';
import { requireCreated } from './context.ts';

export type CompleteRound = {
  /** Must be `roundCurrent()`; given, it is checked. */
  round?: number;
  /** The parameters after the round, already in the blob store. */
  params: BlobRef;
  /** Anything else needed to continue (aggregator, strategy, RNG state); default null. */
  state?: unknown;
  /** Default `{}`. */
  metrics?: Record<string, number>;
  /** The nodes that replied; default none. */
  nodes?: RoundCompleted['nodes'];
  /** Recorded before the `RoundCompleted`, in this order; default none. */
  replies?: readonly Omit<NodeReplied, 'v'>[];
  /**
   * Default: the open attempt when it is of this round, else one more than the attempts started
   * for it (a loop that records rounds without starting them).
   */
  attempt?: number;
  /** Default 0. */
  durationMs?: number;
  /** Whether a breakpoint folder is materialized; default the experiment's `saveBreakpoints`. */
  breakpoint?: boolean;
};

/**
 * Decides the events of a completed round.
 *
 * Errors: `ExperimentNotCreatedError`; `InvalidArgumentError` when `round` is given and is not
 * `roundCurrent()`; `UnrecordableValueError` naming the path (`state.optimizer.step`) of a value in
 * `state`, `metrics`, `nodes` or `replies` that the log and the breakpoint's JSON cannot both hold.
 */
export function decideCompleteRound(state: ExperimentState, command: CompleteRound): readonly ExperimentEvent[] {
  const created = requireCreated(state, 'complete a round');
  const round = roundCurrent(state);
  if (command.round !== undefined && command.round !== round) {
    const rule = `must be the next round of experiment ${created.folder}, ${round}`;
    throw new InvalidArgumentError('round', rule, command.round);
  }
  // Checked and copied: what is recorded is what every projection can write back (`recordable`).
  const {
    state: given,
    metrics,
    nodes,
    replies,
  } = recordable(
    {
      state: command.state ?? null,
      metrics: command.metrics ?? {},
      nodes: command.nodes ?? [],
      replies: command.replies ?? [],
    },
    '',
  );
  const attempt = command.attempt ?? (state.attempts[round] ?? 0) + (state.openAttempt?.round === round ? 0 : 1);
  const completed: RoundCompleted = {
    v: 1,
    round,
    attempt,
    params: command.params,
    state: given,
    nodes,
    metrics,
    breakpoint: command.breakpoint ?? state.settings.saveBreakpoints,
    durationMs: command.durationMs ?? 0,
  };
  const replied: ExperimentEvent[] = replies.map((reply) => ({
    type: 'NodeReplied',
    data: { v: 1, ...reply },
  }));
  return [...replied, { type: 'RoundCompleted', data: completed }];
}
