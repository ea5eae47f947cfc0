/**
 * The experiment state as a pure fold. A history recorded by this release is committed as a
 * fixture and replayed here, so a change that can no longer read old histories fails; a
 * damaged history fails with a typed error.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { UnknownEventError } from '../../src/model/errors.ts';
import { currentParams, evolve, initialState, replay, roundCurrent } from '../../src/model/state.ts';
import type { RecordedEvent } from '../../src/log/types.ts';

type Stored = {
  type: string;
  data: unknown;
  stream: string;
  revision: string;
  position: string;
  id: string;
  timestamp: string;
};

const history: RecordedEvent[] = (
  JSON.parse(readFileSync(new URL('../fixtures/experiment-history-v1.json', import.meta.url), 'utf8')) as Stored[]
).map((e) => ({
  ...e,
  revision: BigInt(e.revision),
  position: BigInt(e.position),
  timestamp: new Date(e.timestamp),
}));

test('a recorded v1 history replays to the state it had: rounds, rewind, settings, the final parameters', (t) => {
  const state = replay(history);
  t.is(state.created!.folder, 'Experiment_0000');
  // 3 rounds, a resume from breakpoint_0000 (rounds 1 and 2 superseded), limit raised to 6, run to 6.
  t.is(roundCurrent(state), 6);
  t.deepEqual(
    state.superseded.map((r) => r.round),
    [1, 2],
  );
  t.is(state.settings.roundLimit, 6);
  t.true(state.finished);
  t.is(currentParams(state)!.sha256, '421e4815ac2bae78f2fc0b130290f4310d375dcc7a9aa0ae21a3ad9351a643fd');
  t.deepEqual(
    state.rounds.map((r) => r.round),
    [0, 1, 2, 3, 4, 5],
  );
  t.is(state.rounds[0]!.settings.roundLimit, 4, 'round 0 ran under the first limit');
  t.is(state.rounds[1]!.settings.roundLimit, 6, 'the new branch ran after the limit was raised');
  t.is(state.revision, BigInt(history.length - 1));
});

test('replay is a pure fold: folding in two parts gives the same state, and the input is not changed', (t) => {
  const before = JSON.stringify(history, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  const whole = replay(history);
  const half = replay(history.slice(0, 20));
  t.deepEqual(replay(history.slice(20), half), whole);
  t.is(
    JSON.stringify(history, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)),
    before,
  );
  t.is(roundCurrent(initialState), 0);
});

test('an event of an unknown type or version is an UnknownEventError naming the stream, revision and type', (t) => {
  const first = history[0]!;
  const unknownType = { ...first, type: 'RoundTeleported' };
  const e1 = t.throws(() => evolve(initialState, unknownType), { instanceOf: UnknownEventError });
  t.is(e1!.eventType, 'RoundTeleported');
  t.is(e1!.revision, 0n);
  t.is(e1!.stream, first.stream);
  const newer = { ...first, data: { ...(first.data as object), v: 2 } };
  const e2 = t.throws(() => replay([newer]), { instanceOf: UnknownEventError });
  t.is(e2!.eventType, 'ExperimentCreated v2');
  t.regex(e2!.message, /upgrade roundlog/);
});
