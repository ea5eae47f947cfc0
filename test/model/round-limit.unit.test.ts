/**
 * The round limit is the number of rounds an experiment may run: once it has run them, a round can
 * be neither started nor recorded, whichever entry point asks; rounds a log already holds past the
 * limit are read as they are.
 */
import test from 'ava';
import { RoundLimitReachedError } from '../../src/model/errors.ts';
import { replay, roundCurrent } from '../../src/model/state.ts';
import { ACTOR, completed, created, history, table } from './support.ts';

const raised = (roundLimit: number) => ({ type: 'SettingsChanged', data: { v: 1, roundLimit, by: ACTOR } }) as const;
const started = (round: number) =>
  ({ type: 'RoundStarted', data: { v: 1, round, attempt: 1, nodes: ['node-a'] } }) as const;

table([
  {
    title: 'the fixture ran its limit of 6: a seventh round cannot be recorded',
    given: history,
    when: { type: 'CompleteRound', params: { digest: 'a'.repeat(64), size: 1, encoding: 'raw' } as never },
    throws: RoundLimitReachedError,
    fields: { code: 'ROUND_LIMIT_REACHED', experiment: 'Experiment_0000', round: 6, roundLimit: 6 },
    message: /experiment Experiment_0000 has run its round limit of 6 rounds: round 6 .*setRoundLimit/,
  },
  {
    title: 'nor started',
    given: history,
    when: { type: 'StartRound', nodes: ['node-a'] },
    throws: RoundLimitReachedError,
    fields: { round: 6, roundLimit: 6 },
  },
  {
    title: 'a limit of 3: the fourth round (index 3) is refused',
    given: [created({ roundLimit: 3 }), completed(0), completed(1), completed(2)],
    when: { type: 'CompleteRound', round: 3, params: { digest: 'a'.repeat(64), size: 1, encoding: 'raw' } as never },
    throws: RoundLimitReachedError,
    fields: { round: 3, roundLimit: 3 },
  },
  {
    title: 'a limit of 0 refuses the first round',
    given: [created({ roundLimit: 0 })],
    when: { type: 'StartRound', nodes: [] },
    throws: RoundLimitReachedError,
    fields: { round: 0, roundLimit: 0 },
  },
  {
    title: 'below the limit the last round starts',
    given: [created({ roundLimit: 3 }), completed(0), completed(1)],
    when: { type: 'StartRound', nodes: ['node-a'] },
    then: [started(2)],
  },
  {
    title: 'once the limit is raised, the next round starts',
    given: [created({ roundLimit: 3 }), completed(0), completed(1), completed(2), raised(4)],
    when: { type: 'StartRound', nodes: ['node-a'] },
    then: [started(3)],
  },
]);

test('a log that already holds rounds past its limit replays as before', (t) => {
  const events = [created({ roundLimit: 1 }), completed(0), completed(1), completed(2)].map((e, i) => ({
    ...e,
    stream: 's',
    revision: BigInt(i),
    position: BigInt(i),
    timestamp: new Date(0),
  }));
  const state = replay(events as never);
  t.is(roundCurrent(state), 3);
  t.is(state.settings.roundLimit, 1);
});
