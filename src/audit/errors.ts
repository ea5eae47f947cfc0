/** Typed errors of the audit queries. */
import { RoundlogError, shownText } from '../errors.ts';

/** No completed round of the experiment records the metric asked for (for that node, when one is named). */
export class MetricNotFoundError extends RoundlogError {
  readonly code = 'METRIC_NOT_FOUND' as const;
  constructor(
    readonly experiment: string,
    readonly metric: string,
    readonly node: string | null,
    /** The metric names its rounds do record (for that node). */
    readonly available: readonly string[],
    /** Rounds completed in the experiment's own history (current branch and superseded). */
    readonly completedRounds?: number,
  ) {
    super(
      `experiment ${experiment} has no metric ${shownText(metric)}` +
        `${node === null ? '' : ` for node ${shownText(node)}`}; ` +
        (completedRounds === 0
          ? 'it has no completed round of its own yet, so no metric is recorded (a series starts with its first round)'
          : available.length === 0
            ? node === null
              ? 'its rounds record no metric'
              : 'no round records metrics for that node ' +
                `(see 'roundlog audit rounds ${experiment}' for the nodes of each round)`
            : `its rounds record: ${available.join(', ')}`),
    );
  }
}
