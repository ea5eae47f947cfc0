/** `decideCompleteRound`: the nodes' replies, then the `RoundCompleted`, with the attempt and defaults of today. */
import { InvalidArgumentError } from '../../src/errors.ts';
import { ExperimentNotCreatedError, type NodeReplied, type RoundCompleted } from '../../src/model/index.ts';
import { ACTOR, blob, completed, created, dataAt, domain, table, upTo } from './support.ts';

/** The command the facade gives for the round recorded at revisions `first`..`last` (replies, then completion). */
function recordedRound(first: number, last: number, withAttempt: boolean) {
  const done = dataAt<RoundCompleted>(last);
  const replies = [];
  for (let r = first; r < last; r++) {
    const { v: _v, ...reply } = dataAt<NodeReplied>(r);
    replies.push(reply);
  }
  return {
    type: 'CompleteRound',
    round: done.round,
    ...(withAttempt ? { attempt: done.attempt } : {}),
    params: done.params,
    state: done.state,
    metrics: done.metrics as Record<string, number>,
    nodes: done.nodes,
    replies,
    durationMs: done.durationMs,
  } as const;
}

const completion = (data: Partial<RoundCompleted>) =>
  ({
    type: 'RoundCompleted',
    data: {
      v: 1,
      round: 0,
      attempt: 1,
      params: blob('a'),
      state: null,
      nodes: [],
      metrics: {},
      breakpoint: false,
      durationMs: 0,
      ...data,
    },
  }) as const;

table([
  {
    title: 'round 0 of the fixture: three replies then the completion, as recorded',
    given: upTo(1),
    when: recordedRound(2, 5, true),
    then: [domain(2), domain(3), domain(4), domain(5)],
  },
  {
    title: 'the second attempt of round 1, attempt given by the facade, as recorded',
    given: upTo(19),
    when: recordedRound(20, 23, true),
    then: [domain(20), domain(21), domain(22), domain(23)],
  },
  {
    title: 'without an attempt, the open attempt of the round is the one completed',
    given: upTo(19),
    when: recordedRound(20, 23, false),
    then: [domain(20), domain(21), domain(22), domain(23)],
  },
  {
    title: 'defaults: no state, nodes, metrics or duration; the breakpoint flag follows saveBreakpoints',
    given: [created({ saveBreakpoints: true })],
    when: { type: 'CompleteRound', params: blob('a') },
    then: [completion({ breakpoint: true })],
  },
  {
    title: 'attempts are counted from RoundStarted: a loop that never starts rounds records attempt 1 after a rewind',
    given: [
      created(),
      completed(0),
      completed(1),
      { type: 'Rewound', data: { v: 1, roundCurrent: 1, reason: 'r', supersededRounds: [1], by: ACTOR } },
    ],
    when: { type: 'CompleteRound', params: blob('a'), breakpoint: true },
    then: [completion({ round: 1, attempt: 1, breakpoint: true })],
  },
  {
    title: 'an open attempt of another round does not count: the round completed is a first attempt',
    given: [created(), { type: 'RoundStarted', data: { v: 1, round: 0, attempt: 3, nodes: [] } }, completed(0)],
    when: { type: 'CompleteRound', params: blob('a') },
    then: [completion({ round: 1, attempt: 1 })],
  },
  {
    title: 'a round given that is not the next one is refused, naming the experiment',
    given: [created(), completed(0)],
    when: { type: 'CompleteRound', params: blob('a'), round: 0 },
    throws: InvalidArgumentError,
    fields: { argument: 'round', received: 0 },
    message: /must be the next round of experiment Experiment_0000, 1/,
  },
  {
    title: 'no experiment: refused',
    given: [],
    when: { type: 'CompleteRound', params: blob('a') },
    throws: ExperimentNotCreatedError,
    fields: { command: 'complete a round' },
  },
]);
