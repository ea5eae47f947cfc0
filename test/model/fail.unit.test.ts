/**
 * `decideFail`: a failed attempt records nothing; its `RoundStarted` stays open in the log (an
 * aborted attempt), and the retry gets the next attempt number.
 */
import { InvalidArgumentError } from '../../src/errors.ts';
import { ExperimentNotCreatedError } from '../../src/model/index.ts';
import { created, table, upTo } from './support.ts';

const failure = { type: 'FailRound', node: 'hospital-b', reason: 'no reply within 600000 ms' } as const;

table([
  {
    title: 'the open attempt fails: no event',
    given: upTo(19),
    when: { ...failure, round: 1, attempt: 2 },
    then: [],
  },
  {
    title: 'then the retry of the round starts as its next attempt',
    given: upTo(19),
    when: { type: 'StartRound', nodes: ['hospital-a'] },
    then: [{ type: 'RoundStarted', data: { v: 1, round: 1, attempt: 3, nodes: ['hospital-a'] } }],
  },
  {
    title: 'another attempt than the open one: refused',
    given: upTo(19),
    when: { ...failure, round: 1, attempt: 1 },
    throws: InvalidArgumentError,
    fields: { argument: 'attempt', received: { round: 1, attempt: 1 } },
    message: /round 1, attempt 2/,
  },
  {
    title: 'no attempt open (the round completed): refused',
    given: upTo(23),
    when: { ...failure, round: 1, attempt: 2 },
    throws: InvalidArgumentError,
    fields: { argument: 'attempt' },
    message: /has none \(no round started\)/,
  },
  {
    title: 'no experiment: refused',
    given: [],
    when: { ...failure, round: 0, attempt: 1 },
    throws: ExperimentNotCreatedError,
    fields: { command: 'fail a round' },
  },
  {
    title: 'a created experiment with no round started: refused',
    given: [created()],
    when: { ...failure, round: 0, attempt: 1 },
    throws: InvalidArgumentError,
  },
]);
