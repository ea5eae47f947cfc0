/**
 * Custom aggregators and strategies on a real root: registered by name on `Experiment.create` and
 * `Experiment.loadBreakpoint`, refused when unregistered before anything is recorded, their state
 * recorded with its version each round, upgraded or refused when that version changed.
 */
import test from 'ava';
import { Experiment, type ExperimentOptions } from '../../src/federated/experiment.ts';
import { StateVersionMismatchError, UnknownAggregatorError, UnknownStrategyError } from '../../src/federated/errors.ts';
import { allNodes, type Strategy } from '../../src/federated/strategies.ts';
import type { FederatedRoundState } from '../../src/federated/components.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { WORKSPACE, exampleOptions as options, federation } from '../support/example-experiment.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { scaffold, scaffoldRegistry } from '../support/scaffold.ts';

test.after.always(removeTempDirs);

/** A custom strategy: the first node in id order, every round. */
function firstNode(): Strategy {
  const all = allNodes();
  return {
    name: 'firstNode',
    config: {},
    initialState: all.initialState,
    select(nodes, round, state, rng) {
      const selection = all.select(nodes, round, state, rng);
      return { nodes: selection.nodes.slice(0, 1), state: selection.state };
    },
  };
}

async function revisionOf(root: string): Promise<bigint | null> {
  const rl = await openRoundLog({ root });
  try {
    const [entry] = await rl.listExperiments();
    if (entry === undefined) return null;
    const handle = await rl.openExperiment(entry.experimentId);
    return handle.state.revision;
  } finally {
    await rl.close();
  }
}

test(
  'a custom aggregator and strategy given to create run when ' +
    'registered, and each round records their state versions',
  async (t) => {
    const root = tempDir();
    const exp = await Experiment.create(
      options(root, {
        aggregator: scaffold({ scale: 0.5, eta: 0.3 }),
        strategy: firstNode(),
        registry: { aggregators: scaffoldRegistry(), strategies: { firstNode } },
      }),
    );
    try {
      await exp.run({ rounds: 2 });
      t.is(exp.roundCurrent(), 2);
      const [first, second] = exp.state.rounds.map((r) => r.state as FederatedRoundState);
      t.deepEqual(first!.stateVersions, { aggregator: 2, strategy: 1 });
      t.deepEqual(second!.stateVersions, { aggregator: 2, strategy: 1 });
      t.is(second!.aggregator.rounds, 2);
      const firstId = federation.nodes.map((n) => n.id).sort()[0]!;
      t.deepEqual(Object.keys(second!.aggregator.nodes as object), [firstId]);
      t.deepEqual(
        exp.state.rounds.map((r) => r.nodes.map((n) => n.node)),
        [[firstId], [firstId]],
      );
    } finally {
      await exp.close();
    }
  },
);

test(
  'create refuses an unregistered custom aggregator or strategy, naming it and ' +
    'registry.aggregators / registry.strategies, before recording anything',
  async (t) => {
    const root = tempDir();
    const aggregatorError = await t.throwsAsync(Experiment.create(options(root, { aggregator: scaffold({}) })), {
      instanceOf: UnknownAggregatorError,
    });
    t.is(aggregatorError.code, 'UNKNOWN_AGGREGATOR');
    t.is(aggregatorError.aggregator, 'scaffold');
    t.is(aggregatorError.option, 'registry.aggregators');
    t.regex(aggregatorError.message, /registry: \{ aggregators: \{ "scaffold": /);
    t.regex(aggregatorError.message, /Experiment\.create and Experiment\.loadBreakpoint/);
    const strategyError = await t.throwsAsync(Experiment.create(options(root, { strategy: firstNode() })), {
      instanceOf: UnknownStrategyError,
    });
    t.is(strategyError.strategy, 'firstNode');
    t.is(strategyError.option, 'registry.strategies');
    t.regex(strategyError.message, /registry: \{ strategies: \{ "firstNode": /);
    t.is(await revisionOf(root), null, 'no experiment was recorded');
    // The option the messages name is the one that works.
    const exp = await Experiment.create(
      options(root, { aggregator: scaffold({}), registry: { aggregators: scaffoldRegistry() } }),
    );
    await exp.close();
    t.not(await revisionOf(root), null);
  },
);

test(
  'loadBreakpoint without the registry is refused with ' +
    'UnknownAggregatorError before anything is appended; with it the run continues',
  async (t) => {
    const root = tempDir();
    const registry = { aggregators: scaffoldRegistry() };
    const exp = await Experiment.create(options(root, { aggregator: scaffold({ eta: 0.2 }), registry }));
    await exp.run({ rounds: 2 });
    await exp.close();
    const before = await revisionOf(root);
    const error = await t.throwsAsync(
      Experiment.loadBreakpoint(undefined, { root, federation, workspace: WORKSPACE }),
      {
        instanceOf: UnknownAggregatorError,
      },
    );
    t.is(error.aggregator, 'scaffold');
    t.is(await revisionOf(root), before, 'nothing appended');
    const resumed = await Experiment.loadBreakpoint(undefined, {
      root,
      federation,
      workspace: WORKSPACE,
      registry: () => registry,
    });
    try {
      await resumed.run();
      t.is(resumed.roundCurrent(), 4);
      t.is((resumed.state.rounds[3]!.state as FederatedRoundState).aggregator.rounds, 4);
    } finally {
      await resumed.close();
    }
  },
);

test(
  'a state recorded at an older version is upgraded by upgradeState; ' +
    'without one loading is refused with StateVersionMismatchError',
  async (t) => {
    const root = tempDir();
    const v1 = { aggregators: scaffoldRegistry({ stateVersion: 1 }) };
    const exp = await Experiment.create(options(root, { aggregator: scaffold({}, { stateVersion: 1 }), registry: v1 }));
    await exp.run({ rounds: 2 });
    t.deepEqual((exp.state.rounds[1]!.state as FederatedRoundState).stateVersions, { aggregator: 1, strategy: 1 });
    await exp.close();
    const before = await revisionOf(root);
    const load = (registry: ExperimentOptions['registry']) =>
      Experiment.loadBreakpoint(undefined, {
        root,
        federation,
        workspace: WORKSPACE,
        ...(registry ? { registry } : {}),
      });

    const error = await t.throwsAsync(load({ aggregators: scaffoldRegistry({ upgrade: false }) }), {
      instanceOf: StateVersionMismatchError,
    });
    t.is(error.code, 'STATE_VERSION_MISMATCH');
    t.like(error, {
      experiment: 'Experiment_0000',
      round: 1,
      component: 'aggregator',
      componentName: 'scaffold',
      recordedVersion: 1,
      expectedVersion: 2,
    });
    t.regex(error.message, /upgradeState\(state, fromVersion\)/);
    t.is(await revisionOf(root), before, 'nothing appended');

    const upgraded = await load({ aggregators: scaffoldRegistry() });
    try {
      await upgraded.runOnce();
      const state = upgraded.state.rounds[2]!.state as FederatedRoundState;
      t.deepEqual(state.stateVersions, { aggregator: 2, strategy: 1 });
      t.is(state.aggregator.rounds, 1, 'the upgraded state starts counting at the upgrade');
      t.deepEqual(
        Object.keys(state.aggregator.nodes as object).sort(),
        Object.keys((upgraded.state.rounds[1]!.state as FederatedRoundState).aggregator.nodes as object).sort(),
        'the per-node variates were carried through the upgrade',
      );
    } finally {
      await upgraded.close();
    }
  },
);
