/**
 * While the engine still has its own copies, the model's round choice and retention policy must
 * answer exactly as the engine's (same results, same errors and messages) over the committed
 * history. Remove this file once the engine imports them from the model.
 */
import test from 'ava';
import * as engineHistory from '../../src/engine/history.ts';
import * as engineRetention from '../../src/projections/index.ts';
import * as model from '../../src/model/index.ts';
import { history } from './support.ts';

const state = model.replay(history);

function outcome(fn: () => unknown): unknown {
  try {
    return { value: fn() };
  } catch (error) {
    const e = error as Error & { code?: string };
    return { error: e.name, code: e.code, message: e.message };
  }
}

const choices: model.RoundChoice[] = [
  { round: 0 },
  { round: 5 },
  { round: 6 },
  { round: -1 },
  { round: 1.5 },
  { round: 1, superseded: true },
  { round: 2, superseded: true },
  { round: 3, superseded: true },
  { round: 1, position: 11n },
  { round: 1, position: 24n },
  { round: 2, position: 24n },
  { round: 0, position: 999n },
];

test('chooseRound: the same round, branch or error for every kind of choice', (t) => {
  for (const choice of choices) {
    t.deepEqual(
      outcome(() => model.chooseRound(state, choice)),
      outcome(() => engineHistory.chooseRound(state, choice)),
    );
  }
});

test('planRetention, checkRetention, formatRounds: the same answers', (t) => {
  const policies = [
    { keepLast: 1, keepEvery: null },
    { keepLast: 2, keepEvery: 2 },
    { keepLast: 10, keepEvery: 1 },
    { keepLast: 0, keepEvery: null },
    { keepLast: 1, keepEvery: 0 },
    { keepLast: 1 },
  ];
  for (const policy of policies) {
    const protectedPositions = new Set(['6', '16']);
    t.deepEqual(
      outcome(() => model.planRetention(state, policy as model.Retention, protectedPositions)),
      outcome(() => engineRetention.planRetention(state, policy as model.Retention, protectedPositions)),
    );
    t.deepEqual(
      outcome(() => model.checkRetention(policy, 'x')),
      outcome(() => engineRetention.checkRetention(policy, 'x')),
    );
  }
  t.deepEqual(
    outcome(() => model.checkRetention(null)),
    outcome(() => engineRetention.checkRetention(null)),
  );
  t.is(model.formatRounds([4, 1, 2, 3, 8, 6]), engineRetention.formatRounds([4, 1, 2, 3, 8, 6]));
});

test('forkProtectedPositions: what the root index protects for the same children', (t) => {
  const index = new engineRetention.RootIndex();
  const child = (id: string, parentRound: number, parentPosition: string, at: number) => [
    {
      type: 'ExperimentCreated',
      data: { ...(history[0]!.data as object), experimentId: id, importedFrom: null },
      stream: `experiment-${id}`,
      revision: 0n,
      position: BigInt(at),
      id: `${id}-0`,
      timestamp: new Date(0),
    },
    {
      type: 'ForkedFrom',
      data: {
        v: 1,
        parentId: state.created!.experimentId,
        parentFolder: 'Experiment_0000',
        parentRound,
        parentPosition,
      },
      stream: `experiment-${id}`,
      revision: 1n,
      position: BigInt(at + 1),
      id: `${id}-1`,
      timestamp: new Date(0),
    },
  ];
  index.fold([...history, ...child('c1', 1, '11', 100), ...child('c2', 1, '20', 102), ...child('c3', 4, '39', 104)]);
  const children = [...index.streams.values()].map((s) => s.state.forkedFrom).filter((f) => f !== null);
  t.deepEqual(model.forkProtectedPositions(state, children), index.protectedPositions(history[0]!.stream));
});
