/** The retention policy as a pure function of an experiment's state, and its argument checks. */
import test from 'ava';
import { InvalidArgumentError } from '../../src/errors.ts';
import { blobRefsIn } from '../../src/engine/blob-refs.ts';
import { checkRetention, formatRounds, planRetention } from '../../src/projections/index.ts';
import { replay, type ExperimentState } from '../../src/model/state.ts';
import type { RecordedEvent } from '../../src/log/types.ts';

const STREAM = 'experiment-00000000-0000-0000-0000-000000000001';
const actor = { user: 'u', host: 'h', pid: 1 };
const ref = (n: number) => ({ sha256: n.toString(16).padStart(64, '0'), bytes: 10, encoding: 'raw' });

/** Builds a stream from `[type, data]` pairs, positions 100, 101, ... */
function history(events: Array<[string, Record<string, unknown>]>): ExperimentState {
  const recorded: RecordedEvent[] = events.map(([type, data], i) => ({
    type,
    data: { v: 1, ...data },
    stream: STREAM,
    revision: BigInt(i),
    position: BigInt(100 + i),
    id: `id-${i}`,
    timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, i)),
  }));
  return replay(recorded);
}

const created: [string, Record<string, unknown>] = [
  'ExperimentCreated',
  {
    experimentId: '00000000-0000-0000-0000-000000000001',
    number: 0,
    folder: 'Experiment_0000',
    roundLimit: null,
    seed: 1,
    saveBreakpoints: true,
    initialParams: ref(999),
    config: null,
    federated: null,
    createdBy: actor,
    roundlogVersion: 'test',
    importedFrom: null,
  },
];
const round = (r: number, sha = r + 1): [string, Record<string, unknown>] => [
  'RoundCompleted',
  { round: r, attempt: 1, params: ref(sha), state: null, nodes: [], metrics: {}, breakpoint: true, durationMs: 0 },
];
const rounds = (n: number) => Array.from({ length: n }, (_, r) => round(r));

test('keep the last N of the current branch and every K-th round index (0, K, 2K, ...)', (t) => {
  const state = history([created, ...rounds(10)]);
  const plan = planRetention(state, { keepLast: 3, keepEvery: 4 });
  t.deepEqual(
    plan.keep.map((r) => r.round),
    [0, 4, 7, 8, 9],
  );
  t.deepEqual(
    plan.prune.map((r) => r.round),
    [1, 2, 3, 5, 6],
  );
  t.true(plan.prune.every((r) => r.branch === 'current'));
  // Round r's RoundCompleted is at position 101 + r.
  t.deepEqual(
    plan.prune.map((r) => r.position),
    ['102', '103', '104', '106', '107'],
  );
  t.deepEqual(
    planRetention(state, { keepLast: 1, keepEvery: null }).keep.map((r) => r.round),
    [9],
  );
  t.deepEqual(planRetention(state, { keepLast: 20, keepEvery: null }).prune, []);
});

test(
  'superseded rounds are pruned unless the keep-every rule ' + 'keeps them; rounds already pruned are not pruned again',
  (t) => {
    const state = history([
      created,
      ...rounds(6),
      ['Rewound', { roundCurrent: 2, reason: 'test', supersededRounds: [2, 3, 4, 5], by: actor }],
      round(2, 50),
      round(3, 51),
      [
        'RoundsPruned',
        { rounds: [{ round: 0, position: '101' }], retention: { keepLast: 3, keepEvery: null }, by: actor },
      ],
    ]);
    t.deepEqual(
      state.superseded.map((r) => r.round),
      [2, 3, 4, 5],
    );
    const plan = planRetention(state, { keepLast: 2, keepEvery: 2 });
    t.deepEqual(
      plan.keep.map((r) => `${r.branch} ${r.round}`),
      ['current 2', 'current 3', 'superseded 2', 'superseded 4'],
    );
    t.deepEqual(
      plan.prune.map((r) => `${r.branch} ${r.round}`),
      ['current 1', 'superseded 3', 'superseded 5'],
    );
    t.deepEqual(
      plan.alreadyPruned.map((r) => r.round),
      [0],
    );
    // Without keep-every, every superseded round goes.
    t.deepEqual(
      planRetention(state, { keepLast: 2, keepEvery: null })
        .prune.filter((r) => r.branch === 'superseded')
        .map((r) => r.round),
      [2, 3, 4, 5],
    );
  },
);

test('protected positions (rounds forks started from) are kept whatever the policy says', (t) => {
  const state = history([created, ...rounds(5)]);
  const plan = planRetention(state, { keepLast: 1, keepEvery: null }, new Set(['102']));
  t.deepEqual(
    plan.keep.map((r) => r.round),
    [1, 4],
  );
  t.deepEqual(
    plan.prune.map((r) => r.round),
    [0, 2, 3],
  );
});

test('a policy must keep at least the last round; keepEvery is a positive integer or null', (t) => {
  t.deepEqual(checkRetention({ keepLast: 2 }), { keepLast: 2, keepEvery: null });
  t.deepEqual(checkRetention({ keepLast: 2, keepEvery: 5 }), { keepLast: 2, keepEvery: 5 });
  for (const bad of [
    { keepLast: 0 },
    { keepLast: 1.5 },
    { keepLast: -1 },
    { keepLast: 2, keepEvery: 0 },
    { keepLast: 2, keepEvery: 2.5 },
    null,
    3,
  ]) {
    const error = t.throws(() => checkRetention(bad), { instanceOf: InvalidArgumentError });
    t.is(error.code, 'INVALID_ARGUMENT');
  }
  t.regex(
    t.throws(() => checkRetention({ keepLast: 0 }))!.message,
    /retention\.keepLast must be an integer of at least 1/,
  );
});

test('blob references are found by shape anywhere in event data; rounds print as ranges', (t) => {
  const data = {
    params: ref(1),
    state: { nested: [ref(2), { not: 'a ref', sha256: 'short' }] },
    other: new Float32Array(3),
  };
  t.deepEqual(
    blobRefsIn(data).map((r) => r.sha256),
    [ref(1).sha256, ref(2).sha256],
  );
  t.is(formatRounds([6, 1, 2, 3, 5, 9, 10]), '1-3, 5, 6, 9, 10');
  t.is(formatRounds([]), '');
});
