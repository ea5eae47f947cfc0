/** `decideStartRound`: the round is `roundCurrent()`, the attempt one more than those started for it. */
import { InvalidArgumentError } from '../../src/errors.ts';
import { ExperimentNotCreatedError, type RoundStarted } from '../../src/model/index.ts';
import { completed, created, dataAt, domain, table, upTo } from './support.ts';

const nodes = dataAt<RoundStarted>(1).nodes;
const started = (round: number, attempt: number, who: readonly string[] = nodes) =>
  ({ type: 'RoundStarted', data: { v: 1, round, attempt, nodes: who } }) as const;

table([
  {
    title: 'the first round of the fixture starts as recorded',
    given: upTo(0),
    when: { type: 'StartRound', nodes },
    then: [domain(1)],
  },
  {
    title: 'after a resume superseded rounds 1 and 2, round 1 starts as its second attempt, as recorded',
    given: upTo(18),
    when: { type: 'StartRound', nodes },
    then: [domain(19)],
  },
  {
    title: 'a round never started before, on the new branch, is a first attempt',
    given: upTo(28),
    when: { type: 'StartRound', nodes },
    then: [domain(29)],
  },
  {
    title: 'an attempt left open (crash or failed node) makes the retry the next attempt',
    given: [created(), started(0, 1, ['a'])],
    when: { type: 'StartRound', nodes: ['a', 'b'] },
    then: [started(0, 2, ['a', 'b'])],
  },
  {
    title: 'the round, when given, is checked: the next one passes',
    given: [created(), completed(0)],
    when: { type: 'StartRound', nodes: [], round: 1 },
    then: [started(1, 1, [])],
  },
  {
    title: 'a round given that is not the next one is refused',
    given: [created(), completed(0)],
    when: { type: 'StartRound', nodes, round: 3 },
    throws: InvalidArgumentError,
    fields: { argument: 'round', received: 3 },
    message: /must be the next round of experiment Experiment_0000, 1/,
  },
  {
    title: 'no experiment: refused',
    given: [],
    when: { type: 'StartRound', nodes },
    throws: ExperimentNotCreatedError,
    fields: { code: 'EXPERIMENT_NOT_CREATED', command: 'start a round' },
  },
]);
