/** The given/when/then helper itself: it must fail when a decider is wrong, or it proves nothing. */
import test from 'ava';
import { AssertionError } from 'node:assert';
import { InvalidArgumentError } from '../../src/errors.ts';
import {
  ExperimentNotCreatedError,
  decide,
  type ExperimentEvent,
  type ExperimentState,
} from '../../src/model/index.ts';
import { GIVEN_TIMESTAMP, given } from '../../src/testing/index.ts';
import { ACTOR, completed, created, history, upTo } from './support.ts';

const finished: ExperimentEvent = { type: 'ExperimentFinished', data: { v: 1, roundCurrent: 6 } };

test('given events are recorded with increasing revisions and positions, after recorded ones, at a fixed time', (t) => {
  const spec = given([...upTo(2), completed(0)]);
  const last = spec.recorded.at(-1)!;
  t.is(last.revision, 3n);
  t.is(last.position, 4n);
  t.is(last.stream, history[0]!.stream);
  t.deepEqual(last.timestamp, GIVEN_TIMESTAMP);
  t.is(given([created()]).recorded[0]!.stream, 'experiment-e-1');
  t.is(given([created(), completed(0)]).state.rounds.length, 1);
});

test('then fails on other events, and on the same events with keys in another order', (t) => {
  const spec = given(upTo(43)).when({ type: 'FinishExperiment' });
  t.throws(() => spec.then([]), { instanceOf: AssertionError });
  t.throws(() => spec.then([{ type: 'ExperimentFinished', data: { v: 1, roundCurrent: 5 } }]), {
    instanceOf: AssertionError,
  });
  const reordered = { type: 'ExperimentFinished', data: { roundCurrent: 6, v: 1 } } as ExperimentEvent;
  t.throws(() => spec.then([reordered]), { instanceOf: AssertionError, message: /another order/ });
  t.deepEqual(spec.then([finished]), [finished]);
});

test('thenThrows fails when nothing is thrown, another error is, or a field differs', (t) => {
  t.throws(() => given(upTo(43)).when({ type: 'FinishExperiment' }).thenThrows(InvalidArgumentError), {
    instanceOf: AssertionError,
    message: /decided \["ExperimentFinished"\]/,
  });
  const none = given([]).when({ type: 'FinishExperiment' });
  t.throws(() => none.thenThrows(InvalidArgumentError), {
    instanceOf: AssertionError,
    message: /threw ExperimentNotCreatedError/,
  });
  t.throws(() => none.thenThrows(ExperimentNotCreatedError, { command: 'other' }), { instanceOf: AssertionError });
  t.is(none.thenThrows(ExperimentNotCreatedError, { command: 'finish the experiment' }).code, 'EXPERIMENT_NOT_CREATED');
});

test('a decider that changes the state it is given fails: the state is frozen', (t) => {
  const mutate = (state: ExperimentState) => {
    (state.settings as { roundLimit: number | null }).roundLimit = 1;
    return [];
  };
  t.throws(() => given(upTo(5)).when(mutate).then([]), { instanceOf: TypeError });
});

test('decided events must fold onto the state', (t) => {
  const unreadable = () => [
    { type: 'ExperimentFinished', data: { v: 2, roundCurrent: 0 } } as unknown as ExperimentEvent,
  ];
  t.throws(() => given(upTo(0)).when(unreadable).then(unreadable()), { message: /ExperimentFinished v2/ });
});

test('decide dispatches every command; one that records who acts needs a context', (t) => {
  const error = t.throws(() => decide(replay0(), { type: 'RewindExperiment', round: 0, reason: 'r' }), {
    instanceOf: InvalidArgumentError,
  });
  t.is(error.argument, 'context');
  t.deepEqual(decide(replay0(), { type: 'StartRound', nodes: ['a'] }), [
    { type: 'RoundStarted', data: { v: 1, round: 0, attempt: 1, nodes: ['a'] } },
  ]);
  t.is(decide(replay0(), { type: 'ChangeSettings', roundLimit: 3 }, { actor: ACTOR }).length, 1);
});

function replay0(): ExperimentState {
  return given(upTo(0)).state;
}
