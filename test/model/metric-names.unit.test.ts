/**
 * `decideCompleteRound` refuses metric names that are empty, hold a control character or are longer
 * than `MAX_METRIC_NAME_LENGTH`, in the round's metrics, a node's or a reply's: a typed error naming
 * the metric, where it is, the round and the experiment. Events already recorded are folded as they are.
 */
import test from 'ava';
import { InvalidMetricNameError, MAX_METRIC_NAME_LENGTH, replay } from '../../src/model/index.ts';
import type { ExperimentEvent } from '../../src/model/index.ts';
import { blob, completed, created, table } from './support.ts';

const refused = (
  title: string,
  command: Record<string, unknown>,
  fields: Record<string, unknown>,
  message: RegExp,
) => ({
  title,
  given: [created(), completed(0)],
  when: { type: 'CompleteRound', params: blob('a'), ...command } as never,
  throws: InvalidMetricNameError,
  fields: { round: 1, ...fields },
  message,
});

table([
  refused(
    'an empty metric name is refused',
    { metrics: { '': 2, loss: 1 } },
    { metric: '', where: 'metrics' },
    /"" in metrics of round 1 of experiment .* is empty/,
  ),
  refused(
    'a metric name with a newline is refused',
    { metrics: { 'x\ny': 4 } },
    { metric: 'x\ny', where: 'metrics' },
    /"x\\ny" in metrics of round 1 .* holds a control character/,
  ),
  refused(
    'a metric name with DEL or a C1 control is refused',
    { metrics: { 'a\u0085': 4 } },
    { metric: 'a\u0085' },
    /holds a control character/,
  ),
  refused(
    'a metric name longer than the limit is refused',
    { metrics: { ['m'.repeat(MAX_METRIC_NAME_LENGTH + 1)]: 1 } },
    { metric: 'm'.repeat(MAX_METRIC_NAME_LENGTH + 1) },
    /is 257 characters long, more than 256/,
  ),
  refused(
    "a node's metric name is checked too",
    { nodes: [{ node: 'n1', sampleSize: 1, metrics: { '\t': 1 } }] },
    { metric: '\t', where: 'nodes[0].metrics (node n1)' },
    /in nodes\[0\]\.metrics \(node n1\)/,
  ),
  refused(
    "a reply's metric name is checked too",
    {
      replies: [
        { round: 1, attempt: 1, node: 'n2', sampleSize: 1, params: blob('b'), metrics: { '': 1 }, durationMs: 0 },
      ],
    },
    { metric: '', where: 'replies[0].metrics (node n2)' },
    /in replies\[0\]\.metrics \(node n2\)/,
  ),
  {
    title: 'names at the limit, with slashes, spaces and non-ASCII letters are accepted',
    given: [created()],
    when: {
      type: 'CompleteRound',
      params: blob('a'),
      metrics: { ['m'.repeat(MAX_METRIC_NAME_LENGTH)]: 1, 'a/b': 1, 'ünï cödé': 3 },
    } as never,
    then: [
      {
        type: 'RoundCompleted',
        data: {
          v: 1,
          round: 0,
          attempt: 1,
          params: blob('a'),
          state: null,
          nodes: [],
          metrics: { ['m'.repeat(MAX_METRIC_NAME_LENGTH)]: 1, 'a/b': 1, 'ünï cödé': 3 },
          breakpoint: false,
          durationMs: 0,
        },
      },
    ],
  },
]);

test('a round already recorded with such names folds as it is (old logs stay readable)', (t) => {
  const old = completed(0) as Extract<ExperimentEvent, { type: 'RoundCompleted' }>;
  const events = [created(), { ...old, data: { ...old.data, metrics: { '': 2, 'x\ny': 4 } } }].map((e, i) => ({
    ...e,
    id: `00000000-0000-0000-0000-00000000000${i}`,
    stream: 'roundlog-experiment-x',
    revision: BigInt(i),
    position: BigInt(i),
    timestamp: new Date(0),
    metadata: {},
  }));
  const state = replay(events as never);
  t.deepEqual(state.rounds[0]!.metrics, { '': 2, 'x\ny': 4 });
});
