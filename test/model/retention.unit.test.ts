/** The pure retention policy of the model: rounds kept by forks, and the plan over the committed history. */
import test from 'ava';
import { forkProtectedPositions, formatRounds, planRetention, replay, type ForkedFrom } from '../../src/model/index.ts';
import { given } from '../../src/testing/index.ts';
import { ACTOR, completed, created, dataAt, history } from './support.ts';

const parentId = dataAt<{ experimentId: string }>(0).experimentId;
const from = (parentRound: number, parentPosition: string, id = parentId): ForkedFrom => ({
  v: 1,
  parentId: id,
  parentFolder: 'Experiment_0000',
  parentRound,
  parentPosition,
});

test("a child's ForkedFrom protects the round at its parent position; other parents' children are ignored", (t) => {
  const state = replay(history);
  t.deepEqual(forkProtectedPositions(state, [from(1, '11'), from(3, '34', 'someone-else')]), new Set(['11']));
});

test('a ForkedFrom whose position holds no round protects the round of that index committed last up to it', (t) => {
  const state = replay(history);
  // Position 20 is no RoundCompleted; round 1 was last committed before it at 11 (the superseded one).
  t.deepEqual(forkProtectedPositions(state, [from(1, '20')]), new Set(['11']));
  t.deepEqual(forkProtectedPositions(state, [from(1, 'not-a-position')]), new Set());
});

test("a Forked in the parent's own stream protects the round of its index committed last before it", (t) => {
  const state = given([
    created(),
    completed(0),
    completed(1),
    { type: 'Forked', data: { v: 1, childId: 'c', childFolder: 'C', round: 1, by: ACTOR } },
    { type: 'Rewound', data: { v: 1, roundCurrent: 1, reason: 'r', supersededRounds: [1], by: ACTOR } },
    completed(1, '7'),
  ]).state;
  t.deepEqual(forkProtectedPositions(state, []), new Set(['2']));
  t.deepEqual(forkProtectedPositions(given([]).state, [from(0, '1')]), new Set());
});

test('the plan over the fixture: current branch and superseded rounds, kept, pruned', (t) => {
  const plan = planRetention(replay(history), { keepLast: 3, keepEvery: 5 }, new Set(['11']));
  t.deepEqual(
    plan.keep.map((r) => `${r.branch}:${r.round}@${r.position}`),
    ['current:0@6', 'current:3@34', 'current:4@39', 'current:5@44', 'superseded:1@11'],
  );
  t.deepEqual(
    plan.prune.map((r) => `${r.branch}:${r.round}@${r.position}`),
    ['current:1@24', 'current:2@29', 'superseded:2@16'],
  );
  t.deepEqual(plan.alreadyPruned, []);
  t.is(formatRounds([5, 1, 2, 3, 9, 10, 7]), '1-3, 5, 7, 9, 10');
});
