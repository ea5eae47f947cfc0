/**
 * `decideFail`: a failed run records a `RunFailed` with the error's code and message, the round it
 * was at and the attempt open then; it ends the run's lease, the attempt stays aborted, and the
 * retry of the round gets the next attempt number.
 */
import test from 'ava';
import { InvalidArgumentError } from '../../src/errors.ts';
import { ExperimentNotCreatedError, experimentStatus, replay, type ExperimentEvent } from '../../src/model/index.ts';
import { given, GIVEN_TIMESTAMP } from '../../src/testing/index.ts';
import { ACTOR, completed, created, table, upTo } from './support.ts';

const owner = { ...ACTOR, processStart: 'boot:1' };
const runStarted: ExperimentEvent = {
  type: 'RunStarted',
  data: { v: 1, runId: 'run-1', owner, heartbeatMs: 60_000, tookOver: null },
};
const started: ExperimentEvent = { type: 'RoundStarted', data: { v: 1, round: 1, attempt: 1, nodes: ['a'] } };
const failure = {
  type: 'FailRun',
  code: 'NODE_FAILED',
  message: 'node b failed round 1: training threw: NaN',
} as const;
const failed = (runId: string | null, round: number, attempt: number | null): ExperimentEvent => ({
  type: 'RunFailed',
  data: { v: 1, runId, round, attempt, code: failure.code, message: failure.message },
});

table([
  {
    title: 'the run fails during an attempt: RunFailed with code, message, round and attempt',
    given: [created(), runStarted, completed(0), started],
    when: failure,
    then: [failed('run-1', 1, 1)],
  },
  {
    title: 'the run fails between rounds: no attempt',
    given: [created(), runStarted, completed(0)],
    when: failure,
    then: [failed('run-1', 1, null)],
  },
  {
    title: 'a loop that holds no lease fails: RunFailed without a run id',
    given: upTo(19),
    when: failure,
    then: [failed(null, 1, 2)],
  },
  {
    title: 'then the retry of the round starts as its next attempt',
    given: [created(), runStarted, completed(0), started, failed('run-1', 1, 1)],
    when: { type: 'StartRound', nodes: ['a'] },
    then: [{ type: 'RoundStarted', data: { v: 1, round: 1, attempt: 2, nodes: ['a'] } }],
  },
  {
    title: 'an empty code: refused',
    given: [created()],
    when: { ...failure, code: '' },
    throws: InvalidArgumentError,
    fields: { argument: 'code' },
  },
  {
    title: 'no experiment: refused',
    given: [],
    when: failure,
    throws: ExperimentNotCreatedError,
    fields: { command: 'record a failure' },
  },
]);

test('a message longer than the limit is cut and marked', (t) => {
  const [event] = given([created()])
    .when({ type: 'FailRun', code: 'E', message: 'x'.repeat(10_000) })
    .events();
  const message = (event!.data as { message: string }).message;
  t.is(message.length, 4000);
  t.true(message.endsWith('…'));
});

test('after RunFailed the lease is released, the failure kept, the attempt closed: status failed', (t) => {
  const spec = given([created(), runStarted, completed(0), started, failed('run-1', 1, 1)]);
  t.is(spec.state.run, null);
  t.is(spec.state.openAttempt, null);
  t.like(spec.state.failure, { code: 'NODE_FAILED', round: 1, attempt: 1, runId: 'run-1' });
  t.is(experimentStatus(spec.state, { liveness: 'unknown', now: GIVEN_TIMESTAMP }), 'failed');
  // A new run clears it.
  const again = replay(
    [{ ...spec.recorded[0]!, type: 'RunStarted', data: { ...runStarted.data, runId: 'run-2' }, revision: 5n }],
    spec.state,
  );
  t.is(again.failure, null);
});
