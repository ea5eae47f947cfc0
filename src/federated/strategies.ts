/**
 * Node-selection strategies: which of the experiment's nodes train in a round. A strategy is named
 * and configured by plain data (`strategyFrom` rebuilds it on resume); its state records the last
 * selection (round, nodes, RNG state after selecting), which Fed-BioMed never saved. Every round's
 * selection is in the experiment's history (`RoundStarted`), so the state stays the same size
 * however many rounds run: it travels in every `RoundCompleted`.
 * Selection depends only on the set of nodes, the round, the state and the given RNG (which the
 * caller derives from the experiment seed and the round), never on the order nodes are listed in.
 */
import { InvalidArgumentError } from '../errors.ts';
import { NoEligibleNodesError, NotEnoughNodesError, UnknownStrategyError } from './errors.ts';
import type { Rng, RngState } from './rng.ts';

export type SelectionRecord = Readonly<{ round: number; nodes: readonly string[]; rng: RngState }>;

/** Plain data: the last selection, and how many rounds were selected so far. */
export type StrategyState = Readonly<{ last: SelectionRecord | null; rounds: number }>;

export type StrategySpec = Readonly<{ name: string; config: Readonly<Record<string, unknown>> }>;

export type Selection = { nodes: string[]; state: StrategyState };

export interface Strategy extends StrategySpec {
  /** The version of the state this strategy reads and returns, recorded with every round. Default 1. */
  readonly stateVersion?: number;
  /** A state recorded at version `from` (lower than `stateVersion`), converted to `stateVersion`. */
  upgradeState?(state: StrategyState, from: number): StrategyState;
  /** The state before the first round. */
  initialState(): StrategyState;
  /**
   * The nodes that train in `round`, in node-id order, and the state with that round recorded.
   * Throws `NoEligibleNodesError` when `nodes` is empty, and `InvalidArgumentError` for a repeated
   * node or a round not after every recorded round.
   */
  select(nodes: readonly string[], round: number, state: StrategyState, rng: Rng): Selection;
}

export type StrategyFactory = (config: Readonly<Record<string, unknown>>) => Strategy;

export type RandomFractionConfig = {
  /** The share of the nodes to select each round, in (0, 1]. */
  fraction: number;
  /** The fewest nodes to select; selecting fails when fewer exist. Default 1. */
  minNodes?: number;
};

const ALL_NODES = 'allNodes';
const RANDOM_FRACTION = 'randomFraction';

/** Every node, every round (Fed-BioMed's DefaultStrategy). Draws nothing from the RNG. */
export function allNodes(): Strategy {
  return {
    name: ALL_NODES,
    config: {},
    initialState: initialStrategyState,
    select(nodes, round, state, rng) {
      const eligible = checkSelect(ALL_NODES, nodes, round, state);
      return recorded(state, round, eligible, rng);
    },
  };
}

/**
 * A uniformly random subset of the nodes each round: the smallest count that is at least `fraction`
 * of them, and at least `minNodes`. Throws `NotEnoughNodesError` when fewer than `minNodes` exist.
 * Its recorded config always holds `minNodes`, so a changed default never changes a recorded run.
 */
export function randomFraction(config: RandomFractionConfig): Strategy {
  const { fraction, minNodes = 1 } = config;
  if (typeof fraction !== 'number' || !(fraction > 0 && fraction <= 1)) {
    throw new InvalidArgumentError(`${RANDOM_FRACTION}.fraction`, 'must be a number in (0, 1]', fraction);
  }
  if (!Number.isSafeInteger(minNodes) || minNodes < 1) {
    throw new InvalidArgumentError(`${RANDOM_FRACTION}.minNodes`, 'must be a positive integer', minNodes);
  }
  return {
    name: RANDOM_FRACTION,
    config: { fraction, minNodes },
    initialState: initialStrategyState,
    select(nodes, round, state, rng) {
      const eligible = checkSelect(RANDOM_FRACTION, nodes, round, state);
      if (eligible.length < minNodes) throw new NotEnoughNodesError(RANDOM_FRACTION, round, minNodes, eligible);
      // The tolerance keeps float error (0.7 * 10 = 7.000000000000001) from adding a node.
      const count = Math.min(eligible.length, Math.max(minNodes, Math.ceil(fraction * eligible.length - 1e-9)));
      return recorded(state, round, sortIds(rng.sample(eligible, count)), rng);
    },
  };
}

export const BUILTIN_STRATEGIES: Readonly<Record<string, StrategyFactory>> = {
  [ALL_NODES]: (config) => {
    checkConfigKeys(ALL_NODES, config, []);
    return allNodes();
  },
  [RANDOM_FRACTION]: (config) => {
    checkConfigKeys(RANDOM_FRACTION, config, ['fraction', 'minNodes']);
    return randomFraction(config as RandomFractionConfig);
  },
};

/**
 * The strategy recorded as `{ name, config }`: a built-in one, or one of `custom` (which take
 * precedence). Throws `UnknownStrategyError` for a name neither knows.
 */
export function strategyFrom(spec: StrategySpec, custom: Readonly<Record<string, StrategyFactory>> = {}): Strategy {
  const factory = Object.hasOwn(custom, spec.name)
    ? custom[spec.name]
    : Object.hasOwn(BUILTIN_STRATEGIES, spec.name)
      ? BUILTIN_STRATEGIES[spec.name]
      : undefined;
  if (factory === undefined) {
    throw new UnknownStrategyError(spec.name, [
      ...new Set([...Object.keys(BUILTIN_STRATEGIES), ...Object.keys(custom)]),
    ]);
  }
  return factory(spec.config);
}

export function initialStrategyState(): StrategyState {
  return { last: null, rounds: 0 };
}

function recorded(state: StrategyState, round: number, nodes: string[], rng: Rng): Selection {
  return { nodes, state: { last: { round, nodes: [...nodes], rng: rng.state() }, rounds: state.rounds + 1 } };
}

/** The eligible nodes in node-id order, once the arguments are checked. */
function checkSelect(strategy: string, nodes: readonly string[], round: number, state: StrategyState): string[] {
  if (!Number.isSafeInteger(round) || round < 0)
    throw new InvalidArgumentError('round', 'must be a non-negative integer', round);
  const last = state.last;
  if (last !== null && round <= last.round) {
    throw new InvalidArgumentError('round', `must come after the last recorded round (${last.round})`, round);
  }
  if (nodes.length === 0) throw new NoEligibleNodesError(strategy, round);
  const sorted = sortIds(nodes);
  sorted.forEach((node, i) => {
    if (typeof node !== 'string' || node === '')
      throw new InvalidArgumentError('nodes[]', 'must be a non-empty string', node);
    if (node === sorted[i - 1]) throw new InvalidArgumentError('nodes', 'must not repeat a node', node);
  });
  return sorted;
}

/** Ids in UTF-16 code-unit order (never locale order, which differs between hosts). */
function sortIds(ids: readonly string[]): string[] {
  return [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function checkConfigKeys(
  strategy: string,
  config: Readonly<Record<string, unknown>>,
  allowed: readonly string[],
): void {
  if (typeof config !== 'object' || config === null) {
    throw new InvalidArgumentError(`${strategy} config`, 'must be an object', config);
  }
  const unknown = Object.keys(config).filter((key) => !allowed.includes(key));
  if (unknown.length > 0) {
    throw new InvalidArgumentError(
      `${strategy} config`,
      allowed.length === 0 ? 'must be {} (this strategy takes no options)' : `takes only ${allowed.join(', ')}`,
      config,
    );
  }
}
