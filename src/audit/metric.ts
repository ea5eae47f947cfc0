/**
 * A metric's series over an experiment's current branch, the round aggregate or one node's value.
 * Read only.
 */
import type { RoundLog } from '../projections/index.ts';
import { InvalidArgumentError } from '../errors.ts';
import { openWithHistory, type ExperimentRef } from './common.ts';
import { MetricNotFoundError } from './errors.ts';

export type MetricOptions = {
  experiment: string;
  /** A metric of the rounds (`loss`), as `RoundCompleted.metrics` records it. */
  metric: string;
  /** The metric as this node reported it, instead of the round's aggregate. */
  node?: string;
};

export type MetricPoint = Readonly<{ round: number; attempt: number; value: number; time: Date; position: bigint }>;

export type MetricResult = Readonly<{
  experiment: ExperimentRef;
  metric: string;
  node: string | null;
  /** One point per round of the current branch that records the metric, by round. */
  points: readonly MetricPoint[];
}>;

/**
 * A metric over the current branch: the value each of its completed rounds recorded (superseded
 * rounds excluded). A name no round of the experiment records (current branch or superseded, for
 * `node` when given) is `MetricNotFoundError`, naming the ones they do, also when no round is
 * completed yet; a name some round records with no point on the current branch (recorded only by
 * superseded rounds) is an empty series. A fork's or an import's series starts with its own first
 * round (the rounds it continues are in its ancestor's).
 */
export async function metricSeries(rl: RoundLog, options: MetricOptions): Promise<MetricResult> {
  if (typeof options.metric !== 'string' || options.metric.length === 0) {
    throw new InvalidArgumentError('metric', 'must be a metric name', options.metric);
  }
  const node = options.node ?? null;
  if (node !== null && (typeof node !== 'string' || node.length === 0)) {
    throw new InvalidArgumentError('node', 'must be a node id', node);
  }
  const { ref, state } = await openWithHistory(rl, options.experiment);
  const metricsOf = (record: (typeof state.rounds)[number]): Readonly<Record<string, number>> | undefined =>
    node === null ? record.metrics : record.nodes.find((n) => n.node === node)?.metrics;
  const points: MetricPoint[] = [];
  for (const record of state.rounds) {
    if (record === undefined) continue; // rounds an imported breakpoint stands for
    const value = metricsOf(record)?.[options.metric];
    if (typeof value === 'number') {
      const { round, attempt, timestamp: time, position } = record;
      points.push({ round, attempt, value, time, position });
    }
  }
  if (points.length === 0) {
    // Rounds completed in this stream (an imported breakpoint's round stands in at revision 0, the creation).
    const completed = [...state.rounds, ...state.superseded].filter((r) => r !== undefined && r.revision > 0n);
    const available = [...new Set(completed.flatMap((r) => Object.keys(metricsOf(r) ?? {})))];
    if (!available.includes(options.metric)) {
      throw new MetricNotFoundError(ref.folder, options.metric, node, available, completed.length);
    }
  }
  return { experiment: ref, metric: options.metric, node, points };
}
