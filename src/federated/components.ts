/**
 * The aggregator and the node-selection strategy of a federated experiment, built from what the
 * experiment records (`{ name, config }`) and the registry the caller gives: built-in names need
 * none, custom ones are registered by name (`registry.aggregators`, `registry.strategies`) on
 * `Experiment.create`, `Experiment.loadBreakpoint` and the experiment definition module. They are
 * built once, when an experiment is created or loaded, so an unknown name is refused before
 * anything is recorded, never in the first round.
 *
 * Each round records the state of both with its version (`stateVersion`, default 1). A round
 * continuing from a state of an older version passes it through the component's `upgradeState`;
 * without one, the experiment is refused when loaded (`StateVersionMismatchError`).
 */
import { InvalidArgumentError } from '../errors.ts';
import type { FederatedSetup } from '../model/events.ts';
import type { ExperimentState } from '../model/state.ts';
import { aggregatorFrom, type Aggregator, type AggregatorFactory, type AggregatorState } from './aggregators.ts';
import { StateVersionMismatchError } from './errors.ts';
import { strategyFrom, type Strategy, type StrategyFactory, type StrategyState } from './strategies.ts';

/** Custom aggregators and strategies by the name they record; built-in names may be overridden. */
export type ComponentRegistry = Readonly<{
  aggregators?: Readonly<Record<string, AggregatorFactory>>;
  strategies?: Readonly<Record<string, StrategyFactory>>;
}>;

/** A registry, or a function of the experiment's recorded `config` that gives one (as `federation`). */
/** The registry; or a function of the experiment's recorded `config` (and of the workspace in use) that gives it. */
export type RegistrySource =
  | ComponentRegistry
  | ((config: unknown, context: { workspace: string }) => ComponentRegistry | Promise<ComponentRegistry>);

export type Components = Readonly<{ aggregator: Aggregator; strategy: Strategy }>;

/** What a federated round records as its `state`. */
export type FederatedRoundState = Readonly<{
  aggregator: AggregatorState;
  strategy: StrategyState;
  /** The versions of the two states; absent in rounds recorded before versions were: version 1. */
  stateVersions?: Readonly<{ aggregator: number; strategy: number }>;
}>;

/** The aggregator and strategy a federated setup records, from the built-in ones and `registry`. */
export function componentsOf(
  setup: Pick<FederatedSetup, 'aggregator' | 'strategy'>,
  registry: ComponentRegistry = {},
): Components {
  const aggregators = checkRegistry('registry.aggregators', registry.aggregators);
  const strategies = checkRegistry('registry.strategies', registry.strategies);
  const aggregator = aggregatorFrom(setup.aggregator, aggregators);
  const strategy = strategyFrom(setup.strategy, strategies);
  checkComponent(`registry.aggregators[${JSON.stringify(setup.aggregator.name)}]`, aggregator, ['aggregate']);
  checkComponent(`registry.strategies[${JSON.stringify(setup.strategy.name)}]`, strategy, ['select']);
  return { aggregator, strategy };
}

function checkRegistry<F>(at: string, entries: Readonly<Record<string, F>> | undefined): Readonly<Record<string, F>> {
  if (entries === undefined) return {};
  if (typeof entries !== 'object' || entries === null) {
    throw new InvalidArgumentError(at, 'must be an object of factories by name', entries);
  }
  for (const [name, factory] of Object.entries(entries)) {
    if (typeof factory !== 'function') {
      throw new InvalidArgumentError(
        `${at}[${JSON.stringify(name)}]`,
        'must be a function (config) => component',
        factory,
      );
    }
  }
  return entries;
}

/** What a registered factory built: the methods a round calls, and a valid state version. */
function checkComponent(at: string, component: Aggregator | Strategy, methods: readonly string[]): void {
  const missing = ['initialState', ...methods].filter(
    (method) => typeof (component as unknown as Record<string, unknown>)?.[method] !== 'function',
  );
  if (missing.length > 0) {
    throw new InvalidArgumentError(at, `must build an object with ${missing.join(' and ')}()`, component);
  }
  const version = component.stateVersion;
  if (version !== undefined && (!Number.isSafeInteger(version) || version < 1)) {
    throw new InvalidArgumentError(`${at}.stateVersion`, 'must be a positive integer', version);
  }
}

export function stateVersionOf(component: Aggregator | Strategy): number {
  return component.stateVersion ?? 1;
}

/**
 * The state the next round of `state` starts from: the last round's (brought to the components'
 * versions by their `upgradeState`), or the initial one before any round. Throws
 * `StateVersionMismatchError` when a recorded version differs and the component cannot upgrade it.
 */
export function stateBeforeRound(
  components: Components,
  state: ExperimentState,
  round: number = state.rounds.length,
): { aggregator: AggregatorState; strategy: StrategyState } {
  const record = round === 0 ? undefined : state.rounds[round - 1];
  if (record === undefined) {
    return { aggregator: components.aggregator.initialState(), strategy: components.strategy.initialState() };
  }
  const recorded = record.state as FederatedRoundState;
  const versions = recorded.stateVersions ?? { aggregator: 1, strategy: 1 };
  const at = { experiment: state.folder, round: record.round };
  return {
    aggregator: upgraded(components.aggregator, 'aggregator', recorded.aggregator, versions.aggregator, at),
    strategy: upgraded(components.strategy, 'strategy', recorded.strategy, versions.strategy, at),
  };
}

/** The state a round records: both states with their versions. */
export function roundState(
  components: Components,
  aggregator: AggregatorState,
  strategy: StrategyState,
): FederatedRoundState {
  return {
    aggregator,
    strategy,
    stateVersions: { aggregator: stateVersionOf(components.aggregator), strategy: stateVersionOf(components.strategy) },
  };
}

function upgraded<S>(
  component: Readonly<{ name: string; stateVersion?: number; upgradeState?: (state: S, from: number) => S }>,
  kind: 'aggregator' | 'strategy',
  state: S,
  recorded: number,
  at: { experiment: string; round: number },
): S {
  const expected = component.stateVersion ?? 1;
  if (recorded === expected) return state;
  if (recorded > expected || component.upgradeState === undefined) {
    throw new StateVersionMismatchError(at.experiment, at.round, kind, component.name, recorded, expected);
  }
  return component.upgradeState(state, recorded);
}
