/** Building an experiment's aggregator and strategy from what it records and the caller's registry. */
import test from 'ava';
import { InvalidArgumentError } from '../../src/errors.ts';
import { componentsOf, stateBeforeRound } from '../../src/federated/components.ts';
import { StateVersionMismatchError, UnknownAggregatorError, UnknownStrategyError } from '../../src/federated/errors.ts';
import type { AggregatorFactory } from '../../src/federated/aggregators.ts';
import type { ExperimentState } from '../../src/model/state.ts';
import { scaffold, scaffoldRegistry } from '../support/scaffold.ts';

const builtIn = { aggregator: { name: 'fedAvg', config: {} }, strategy: { name: 'allNodes', config: {} } };
const custom = { ...builtIn, aggregator: { name: 'scaffold', config: { eta: 0.1 } } };

/** Just what `stateBeforeRound` reads of an experiment's state. */
const afterRounds = (...states: unknown[]) =>
  ({
    folder: 'Experiment_0007',
    rounds: states.map((state, round) => ({ round, state })),
  }) as unknown as ExperimentState;

test('built-in names need no registry; custom ones are built from it with the recorded config', (t) => {
  t.is(componentsOf(builtIn).aggregator.name, 'fedAvg');
  const { aggregator, strategy } = componentsOf(custom, { aggregators: scaffoldRegistry() });
  t.like(aggregator, { name: 'scaffold', config: { eta: 0.1, scale: 1 }, stateVersion: 2 });
  t.is(strategy.name, 'allNodes');
  const error = t.throws(() => componentsOf(custom), { instanceOf: UnknownAggregatorError });
  t.is(error.option, 'registry.aggregators');
  t.throws(() => componentsOf({ ...builtIn, strategy: { name: 'mine', config: {} } }), {
    instanceOf: UnknownStrategyError,
  });
});

test(
  'a registry entry that is not a factory, or builds no aggregator, or ' +
    'a bad stateVersion: InvalidArgumentError naming it',
  (t) => {
    const notAFunction = { scaffold: 3 } as unknown as Record<string, AggregatorFactory>;
    const e1 = t.throws(() => componentsOf(custom, { aggregators: notAFunction }), {
      instanceOf: InvalidArgumentError,
    });
    t.is(e1.argument, 'registry.aggregators["scaffold"]');
    const e2 = t.throws(() => componentsOf(custom, { aggregators: { scaffold: () => ({}) as never } }), {
      instanceOf: InvalidArgumentError,
    });
    t.regex(e2.message, /initialState and aggregate/);
    const e3 = t.throws(
      () => componentsOf(custom, { aggregators: { scaffold: (c) => ({ ...scaffold(c), stateVersion: 1.5 }) } }),
      { instanceOf: InvalidArgumentError },
    );
    t.is(e3.argument, 'registry.aggregators["scaffold"].stateVersion');
  },
);

test(
  'stateBeforeRound: the recorded state at the same version, an ' +
    'older one upgraded, else StateVersionMismatchError',
  (t) => {
    const components = componentsOf(custom, { aggregators: scaffoldRegistry() });
    const strategy = { last: null, rounds: 1 };
    const v2 = { c: { w: [1] }, nodes: {}, rounds: 1 };
    t.deepEqual(stateBeforeRound(components, afterRounds()).aggregator, { c: {}, nodes: {}, rounds: 0 });
    const same = afterRounds({ aggregator: v2, strategy, stateVersions: { aggregator: 2, strategy: 1 } });
    t.is(stateBeforeRound(components, same).aggregator, v2);
    // Rounds recorded before versions were are version 1.
    const old = afterRounds({ aggregator: { nodes: { a: { w: [2] } } }, strategy });
    t.deepEqual(stateBeforeRound(components, old).aggregator, { c: {}, nodes: { a: { w: [2] } }, rounds: 0 });
    const strict = componentsOf(custom, { aggregators: scaffoldRegistry({ upgrade: false }) });
    const error = t.throws(() => stateBeforeRound(strict, old), { instanceOf: StateVersionMismatchError });
    t.like(error, { experiment: 'Experiment_0007', round: 0, recordedVersion: 1, expectedVersion: 2 });
    t.regex(
      error.message,
      /experiment Experiment_0007, round 0: the aggregator "scaffold" state was recorded at version 1/,
    );
    const newer = afterRounds({ aggregator: v2, strategy, stateVersions: { aggregator: 3, strategy: 1 } });
    t.throws(() => stateBeforeRound(components, newer), { instanceOf: StateVersionMismatchError });
  },
);
