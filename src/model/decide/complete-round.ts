/**
 * Complete a round: the nodes' replies (`NodeReplied`, in the order given) and the round's
 * `RoundCompleted`, appended at once; the round is committed when they are durable.
 */
import type { BlobRef } from '../../blobs/types.ts';
import { InvalidArgumentError } from '../../errors.ts';
import { InvalidMetricNameError, MAX_METRIC_NAME_LENGTH } from '../errors.ts';
import type { ExperimentEvent, NodeReplied, RoundCompleted } from '../events.ts';
import { roundCurrent, type ExperimentState } from '../state.ts';
import { recordable } from '../values.ts';
import { requireCreated, requireUnderRoundLimit } from './context.ts';

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
 * `state`, `metrics`, `nodes` or `replies` that the log and the breakpoint's JSON cannot both hold;
 * `InvalidMetricNameError` for a metric name (of the round, a node or a reply) that is empty, holds
 * a control character or is longer than `MAX_METRIC_NAME_LENGTH` (256). Checked here, in the
 * decision, so every entry point (library, CLI, federated runner) refuses it; events already in a
 * log are read as they are.
 */
export function decideCompleteRound(state: ExperimentState, command: CompleteRound): readonly ExperimentEvent[] {
  const created = requireCreated(state, 'complete a round');
  requireUnderRoundLimit(state, created);
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
  checkMetricNames(created.folder, round, 'metrics', metrics);
  nodes.forEach((n, i) => checkMetricNames(created.folder, round, `nodes[${i}].metrics (node ${n.node})`, n.metrics));
  replies.forEach((r, i) =>
    checkMetricNames(created.folder, round, `replies[${i}].metrics (node ${r.node})`, r.metrics),
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

/** Control characters (C0, DEL, C1): invisible in a tag, unreadable on a command line. */
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

function checkMetricNames(
  experiment: string,
  round: number,
  where: string,
  metrics: Readonly<Record<string, unknown>> | undefined,
): void {
  for (const name of Object.keys(metrics ?? {})) {
    const rule =
      name.length === 0
        ? 'is empty'
        : CONTROL_CHARACTER.test(name)
          ? 'holds a control character'
          : name.length > MAX_METRIC_NAME_LENGTH
            ? `is ${name.length} characters long, more than ${MAX_METRIC_NAME_LENGTH}`
            : null;
    if (rule !== null) throw new InvalidMetricNameError(experiment, round, name, where, rule);
  }
}
