/**
 * Node-selection strategies: counts, reproducibility from the seed, recorded history, resume, errors, and the
 * registry.
 */
import test from 'ava';
import { InvalidArgumentError } from '../../src/errors.ts';
import { NoEligibleNodesError, NotEnoughNodesError, UnknownStrategyError } from '../../src/federated/errors.ts';
import { Rng, deriveRng } from '../../src/federated/rng.ts';
import {
  allNodes,
  initialStrategyState,
  randomFraction,
  strategyFrom,
  type Strategy,
  type StrategyState,
} from '../../src/federated/strategies.ts';

const NODES = Array.from({ length: 10 }, (_, i) => `node-${i}`);
const SEED = 31337;
const selectRng = (round: number) => deriveRng(SEED, round, 'select');

/** Runs `rounds` rounds from `state`, as an experiment does: the RNG of each round derived from seed and round. */
function run(strategy: Strategy, nodes: readonly string[], rounds: readonly number[], state = strategy.initialState()) {
  const selections: string[][] = [];
  for (const round of rounds) {
    const selection = strategy.select(nodes, round, state, selectRng(round));
    selections.push(selection.nodes);
    state = selection.state;
  }
  return { selections, state };
}

test('allNodes selects every node, in node-id order, and records the round', (t) => {
  const rng = selectRng(0);
  const before = rng.state();
  const { nodes, state } = allNodes().select(['c', 'a', 'b'], 0, initialStrategyState(), rng);
  t.deepEqual(nodes, ['a', 'b', 'c']);
  t.deepEqual(state, { last: { round: 0, nodes: ['a', 'b', 'c'], rng: before }, rounds: 1 });
  t.deepEqual(rng.state(), before);
});

const count = test.macro({
  exec(t, nodes: number, config: { fraction: number; minNodes?: number }, expected: number) {
    const { nodes: selected } = randomFraction(config).select(
      NODES.slice(0, nodes),
      0,
      initialStrategyState(),
      selectRng(0),
    );
    t.is(selected.length, expected);
    t.is(new Set(selected).size, expected);
    t.true(selected.every((node) => NODES.includes(node)));
    t.deepEqual(selected, [...selected].sort());
  },
  title: (_, nodes, config, expected) =>
    `randomFraction(${JSON.stringify(config)}) selects ${expected} of ${nodes} nodes`,
});

test(count, 10, { fraction: 0.3 }, 3);
test(count, 10, { fraction: 0.7 }, 7);
test(count, 10, { fraction: 0.25 }, 3);
test(count, 10, { fraction: 1 }, 10);
test(count, 10, { fraction: 0.01 }, 1);
test(count, 10, { fraction: 0.1, minNodes: 4 }, 4);
test(count, 3, { fraction: 0.5 }, 2);
test(count, 3, { fraction: 0.5, minNodes: 3 }, 3);

test('randomFraction is reproducible from the seed and the round, whatever order the nodes are listed in', (t) => {
  const strategy = randomFraction({ fraction: 0.4 });
  const rounds = Array.from({ length: 20 }, (_, i) => i);
  const first = run(strategy, NODES, rounds);
  const again = run(strategy, Rng.fromSeed(1).shuffle(NODES), rounds);
  t.deepEqual(again, first);
  t.true(new Set(first.selections.map((s) => s.join())).size > 10, 'selections vary from round to round');
  const otherSeed = rounds.map(
    (round) => strategy.select(NODES, round, initialStrategyState(), deriveRng(SEED + 1, round, 'select')).nodes,
  );
  t.notDeepEqual(otherSeed, first.selections);
});

test('every node is selected about equally often', (t) => {
  const { selections } = run(
    randomFraction({ fraction: 0.5 }),
    ['a', 'b', 'c', 'd'],
    Array.from({ length: 400 }, (_, i) => i),
  );
  const counts = new Map<string, number>();
  for (const node of selections.flat()) counts.set(node, (counts.get(node) ?? 0) + 1);
  // 2 of 4 nodes per round: each node is expected 200 times, standard deviation 10.
  for (const node of ['a', 'b', 'c', 'd'])
    t.true(Math.abs(counts.get(node)! - 200) < 50, `${node}: ${counts.get(node)}`);
});

test(
  'the state records the last selection (round, nodes, RNG ' + 'state after selecting) and the count, in constant size',
  (t) => {
    const strategy = randomFraction({ fraction: 0.3 });
    const { selections, state } = run(strategy, NODES, [0, 1, 2, 5]);
    t.is(state.rounds, 4);
    t.is(state.last!.round, 5);
    t.deepEqual(state.last!.nodes, selections[3]);
    const rng = selectRng(5);
    rng.sample(NODES, 3);
    t.deepEqual(state.last!.rng, rng.state());
    const long = run(
      strategy,
      NODES,
      Array.from({ length: 200 }, (_, i) => i),
    ).state;
    t.is(long.rounds, 200);
    t.true(
      JSON.stringify(long).length < JSON.stringify(state).length + 40,
      'about as long after 200 rounds as after 4',
    );
  },
);

test('resuming from a recorded state (after a JSON round trip) selects what an uninterrupted run selects', (t) => {
  const strategy = randomFraction({ fraction: 0.5, minNodes: 2 });
  const uninterrupted = run(strategy, NODES, [0, 1, 2, 3, 4, 5]);
  const { state: atBreakpoint } = run(strategy, NODES, [0, 1, 2]);
  const saved: StrategyState = JSON.parse(JSON.stringify(atBreakpoint));
  const rebuilt = strategyFrom(JSON.parse(JSON.stringify({ name: strategy.name, config: strategy.config })));
  const resumed = run(rebuilt, NODES, [3, 4, 5], saved);
  t.deepEqual(resumed.state, uninterrupted.state);
  t.deepEqual(resumed.selections, uninterrupted.selections.slice(3));
});

test('select leaves the given state alone', (t) => {
  const state = Object.freeze({ last: null, rounds: 0 });
  const result = allNodes().select(['a'], 0, state, selectRng(0));
  t.is(state.last, null);
  t.is(result.state.rounds, 1);
});

test('too few nodes for minNodes is a NotEnoughNodesError naming them', (t) => {
  const error = t.throws(
    () =>
      randomFraction({ fraction: 0.5, minNodes: 4 }).select(['b', 'a', 'c'], 7, initialStrategyState(), selectRng(7)),
    {
      instanceOf: NotEnoughNodesError,
    },
  );
  t.is(error?.code, 'NOT_ENOUGH_NODES');
  t.like(error, { strategy: 'randomFraction', round: 7, required: 4, available: ['a', 'b', 'c'] });
  t.regex(error!.message, /needs at least 4 nodes for round 7 but only 3 are available/);
});

test('no nodes is a NoEligibleNodesError', (t) => {
  for (const strategy of [allNodes(), randomFraction({ fraction: 0.5 })]) {
    const error = t.throws(() => strategy.select([], 2, initialStrategyState(), selectRng(2)), {
      instanceOf: NoEligibleNodesError,
    });
    t.is(error?.code, 'NO_ELIGIBLE_NODES');
    t.like(error, { strategy: strategy.name, round: 2 });
  }
});

test('a round not after the recorded ones, a repeated node or a bad round is an InvalidArgumentError', (t) => {
  const { state } = run(allNodes(), ['a', 'b'], [0, 1]);
  const invalid = (fn: () => unknown, argument: string, received: unknown) => {
    const error = t.throws(fn, { instanceOf: InvalidArgumentError });
    t.like(error, { argument, received });
  };
  invalid(() => allNodes().select(['a', 'b'], 1, state, selectRng(1)), 'round', 1);
  invalid(() => allNodes().select(['a', 'b'], 0, state, selectRng(0)), 'round', 0);
  invalid(() => allNodes().select(['a', 'b', 'a'], 0, initialStrategyState(), selectRng(0)), 'nodes', 'a');
  invalid(() => allNodes().select(['a', ''], 0, initialStrategyState(), selectRng(0)), 'nodes[]', '');
  invalid(() => allNodes().select(['a'], -1, initialStrategyState(), selectRng(0)), 'round', -1);
  invalid(() => allNodes().select(['a'], 0.5, initialStrategyState(), selectRng(0)), 'round', 0.5);
});

test('randomFraction checks its config and records minNodes even when defaulted', (t) => {
  t.deepEqual(randomFraction({ fraction: 0.5 }).config, { fraction: 0.5, minNodes: 1 });
  for (const fraction of [0, -0.1, 1.5, Number.NaN]) {
    const error = t.throws(() => randomFraction({ fraction }), { instanceOf: InvalidArgumentError });
    t.is(error?.argument, 'randomFraction.fraction');
  }
  for (const minNodes of [0, 1.5]) {
    const error = t.throws(() => randomFraction({ fraction: 0.5, minNodes }), { instanceOf: InvalidArgumentError });
    t.is(error?.argument, 'randomFraction.minNodes');
  }
});

test('strategyFrom rebuilds built-in strategies from their recorded name and config', (t) => {
  for (const original of [allNodes(), randomFraction({ fraction: 0.3, minNodes: 2 })]) {
    const rebuilt = strategyFrom(JSON.parse(JSON.stringify({ name: original.name, config: original.config })));
    t.is(rebuilt.name, original.name);
    t.deepEqual(rebuilt.config, original.config);
    t.deepEqual(run(rebuilt, NODES, [0, 1, 2]), run(original, NODES, [0, 1, 2]));
  }
});

test('strategyFrom: an unknown name is an UnknownStrategyError, unknown config keys an InvalidArgumentError', (t) => {
  const error = t.throws(() => strategyFrom({ name: 'roundRobin', config: {} }), { instanceOf: UnknownStrategyError });
  t.is(error?.code, 'UNKNOWN_STRATEGY');
  t.is(error?.strategy, 'roundRobin');
  t.deepEqual(error?.known, ['allNodes', 'randomFraction']);
  t.regex(error!.message, /unknown node-selection strategy "roundRobin"/);
  t.throws(() => strategyFrom({ name: 'allNodes', config: { fraction: 1 } }), { instanceOf: InvalidArgumentError });
  t.throws(() => strategyFrom({ name: 'randomFraction', config: { fraction: 0.5, seed: 3 } }), {
    instanceOf: InvalidArgumentError,
  });
  t.throws(() => strategyFrom({ name: 'randomFraction', config: {} }), { instanceOf: InvalidArgumentError });
  const custom: Strategy = { ...allNodes(), name: 'mine' };
  t.is(strategyFrom({ name: 'mine', config: {} }, { mine: () => custom }), custom);
});
