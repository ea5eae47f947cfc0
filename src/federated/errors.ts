/** Typed errors of the federated domain: aggregation, node selection, dataset selection, registries. */
import { RoundlogError, formatValue } from '../errors.ts';

/** An aggregator was asked to aggregate a round in which no node replied. */
export class NoRepliesError extends RoundlogError {
  readonly code = 'NO_REPLIES' as const;
  constructor(readonly aggregator: string) {
    super(
      `aggregator ${JSON.stringify(aggregator)} got no node replies to aggregate; a round needs at least one ` +
        `successful reply: check that the selected nodes are running and that their training did not fail`,
    );
  }
}

/** What differs between a node's parameters and those of the reference node. */
export type TensorMismatchKind = 'missing' | 'unexpected' | 'dtype' | 'shape';

/**
 * Two nodes replied with parameters of different structure: a tensor one has and the other lacks, or
 * a tensor whose dtype or shape differs. The reference node is the first reply in node-id order.
 */
export class MismatchedTensorsError extends RoundlogError {
  readonly code = 'MISMATCHED_TENSORS' as const;
  constructor(
    readonly aggregator: string,
    readonly node: string,
    readonly tensor: string,
    readonly kind: TensorMismatchKind,
    readonly referenceNode: string,
    /** The reference node's dtype or shape; `undefined` when it lacks the tensor. */
    readonly expected: unknown,
    /** This node's dtype or shape; `undefined` when it lacks the tensor. */
    readonly received: unknown,
  ) {
    super(
      `aggregator ${JSON.stringify(aggregator)} cannot combine the parameters of node ${JSON.stringify(node)}: ` +
        `${describeMismatch(kind, node, tensor, referenceNode, expected, received)}. Every node must train the ` +
        `same model: check that all nodes ran the same training plan with the same model args`,
    );
  }
}

/** The replies to aggregate hold no samples at all, so no weighted average exists. */
export class ZeroSampleSizeError extends RoundlogError {
  readonly code = 'ZERO_SAMPLE_SIZE' as const;
  constructor(
    readonly aggregator: string,
    /** The nodes that replied, each with a sample size of 0. */
    readonly nodes: readonly string[],
  ) {
    super(
      `aggregator ${JSON.stringify(aggregator)} cannot weight the replies of nodes ${formatValue(nodes)}: ` +
        `their sample sizes add up to 0. A training plan must report how many samples it trained on: ` +
        `check the plan's sampleSize and that the nodes' datasets are not empty`,
    );
  }
}

/** A strategy was given no node to select from. */
export class NoEligibleNodesError extends RoundlogError {
  readonly code = 'NO_ELIGIBLE_NODES' as const;
  constructor(
    readonly strategy: string,
    readonly round: number,
  ) {
    super(
      `strategy ${JSON.stringify(strategy)} has no node to select from for round ${round}: ` +
        `the experiment's federation has no node with a dataset matching its tags; add one, or change the tags`,
    );
  }
}

/** A strategy needs more nodes than the experiment has. */
export class NotEnoughNodesError extends RoundlogError {
  readonly code = 'NOT_ENOUGH_NODES' as const;
  constructor(
    readonly strategy: string,
    readonly round: number,
    readonly required: number,
    readonly available: readonly string[],
  ) {
    super(
      `strategy ${JSON.stringify(strategy)} needs at least ${required} nodes for round ${round} but only ` +
        `${available.length} are available (${formatValue(available)}): add nodes, or lower minNodes`,
    );
  }
}

/** The tags and datasets a node holds, as reported in dataset-selection errors. */
export type NodeDatasetsSummary = Readonly<{
  node: string;
  datasets: readonly Readonly<{ id: string; tags: readonly string[] }>[];
}>;

/** No node of the federation holds a dataset carrying all of the experiment's tags. */
export class NoMatchingDatasetError extends RoundlogError {
  readonly code = 'NO_MATCHING_DATASET' as const;
  constructor(
    readonly tags: readonly string[],
    /** Every node that was searched, with the datasets it holds. */
    readonly nodes: readonly NodeDatasetsSummary[],
  ) {
    const found =
      nodes.length === 0
        ? 'no node was searched: the federation is empty, or the node filter names none of its nodes'
        : nodes
            .map(
              ({ node, datasets }) =>
                `node ${JSON.stringify(node)} has ${
                  datasets.length === 0
                    ? 'no dataset'
                    : datasets.map(({ id, tags }) => `${JSON.stringify(id)} ${formatValue(tags)}`).join(', ')
                }`,
            )
            .join('; ');
    super(
      `no node holds a dataset tagged with all of ${formatValue(tags)} (${found}): ` +
        `tag a dataset on a node with every one of these tags, or run the experiment with tags that exist`,
    );
  }
}

/** A node holds several datasets carrying all of the experiment's tags, so which to train on is ambiguous. */
export class AmbiguousDatasetError extends RoundlogError {
  readonly code = 'AMBIGUOUS_DATASET' as const;
  constructor(
    readonly node: string,
    readonly tags: readonly string[],
    readonly datasets: readonly string[],
  ) {
    super(
      `node ${JSON.stringify(node)} holds ${datasets.length} datasets tagged with all of ${formatValue(tags)} ` +
        `(${formatValue(datasets)}); a node trains on exactly one: give the experiment a tag that only one ` +
        `of them carries, or retag the datasets`,
    );
  }
}

/**
 * An aggregator name that this process does not know: a custom one not registered. Raised when an
 * experiment is created or loaded, before anything is recorded. `option` is where to register it.
 */
export class UnknownAggregatorError extends RoundlogError {
  readonly code = 'UNKNOWN_AGGREGATOR' as const;
  readonly option = 'registry.aggregators' as const;
  constructor(
    readonly aggregator: string,
    readonly known: readonly string[],
  ) {
    super(
      `unknown aggregator ${JSON.stringify(aggregator)}; known aggregators: ${formatValue(known)}. ` +
        `A custom aggregator is registered by the name it records: pass ` +
        `{ registry: { aggregators: { ${JSON.stringify(aggregator)}: (config) => anAggregator } } } to ` +
        `Experiment.create and Experiment.loadBreakpoint, or export it in the definition module's registry ` +
        `for roundlog run and roundlog resume`,
    );
  }
}

/**
 * A node-selection strategy name that this process does not know: a custom one not registered.
 * Raised when an experiment is created or loaded, before anything is recorded. `option` is where
 * to register it.
 */
export class UnknownStrategyError extends RoundlogError {
  readonly code = 'UNKNOWN_STRATEGY' as const;
  readonly option = 'registry.strategies' as const;
  constructor(
    readonly strategy: string,
    readonly known: readonly string[],
  ) {
    super(
      `unknown node-selection strategy ${JSON.stringify(strategy)}; known strategies: ${formatValue(known)}. ` +
        `A custom strategy is registered by the name it records: pass ` +
        `{ registry: { strategies: { ${JSON.stringify(strategy)}: (config) => aStrategy } } } to ` +
        `Experiment.create and Experiment.loadBreakpoint, or export it in the definition module's registry ` +
        `for roundlog run and roundlog resume`,
    );
  }
}

/**
 * A round's recorded aggregator or strategy state has a version the component in this process does
 * not read (`stateVersion`), and the component has no `upgradeState` for it (or the recorded
 * version is newer). Raised when the experiment is loaded, before anything is recorded.
 */
export class StateVersionMismatchError extends RoundlogError {
  readonly code = 'STATE_VERSION_MISMATCH' as const;
  constructor(
    readonly experiment: string,
    readonly round: number,
    readonly component: 'aggregator' | 'strategy',
    /** The name the component is recorded and registered by. */
    readonly componentName: string,
    readonly recordedVersion: number,
    readonly expectedVersion: number,
  ) {
    super(
      `experiment ${experiment}, round ${round}: the ${component} ${JSON.stringify(componentName)} state ` +
        `was recorded at version ${recordedVersion} but the registered ${component} reads version ${expectedVersion}` +
        (recordedVersion > expectedVersion
          ? `: register the ${component} version that recorded it (or a newer one)`
          : `: give it an upgradeState(state, fromVersion) that converts version ${recordedVersion} states, ` +
            `or register the ${component} version that recorded them`),
    );
  }
}

function describeMismatch(
  kind: TensorMismatchKind,
  node: string,
  tensor: string,
  referenceNode: string,
  expected: unknown,
  received: unknown,
): string {
  const t = JSON.stringify(tensor);
  const n = JSON.stringify(node);
  const ref = JSON.stringify(referenceNode);
  switch (kind) {
    case 'missing':
      return `it has no tensor ${t}, which node ${ref} sent`;
    case 'unexpected':
      return `it sent tensor ${t}, which node ${ref} did not`;
    case 'dtype':
      return `tensor ${t} is ${formatValue(received)} on node ${n} but ${formatValue(expected)} on node ${ref}`;
    case 'shape':
      return `tensor ${t} has shape ${formatValue(received)} on node ${n} but ${formatValue(expected)} on node ${ref}`;
  }
}

/**
 * An experiment definition module exports no definition, or one with a field of the wrong type or
 * shape: the module, the export, the field and what is wrong.
 */
export class InvalidDefinitionError extends RoundlogError {
  readonly code = 'INVALID_DEFINITION' as const;
  constructor(
    /** The module as given or recorded (relative to the workspace). */
    readonly module: string,
    readonly exportName: string,
    /** The module's file. */
    readonly file: string,
    /** The field's path (`default.trainingPlan.module`). */
    readonly field: string,
    readonly problem: string,
  ) {
    super(
      `the experiment definition ${module} (${file}) cannot be used: ${field} ${problem}. Fix the module's ` +
        `${exportName} export: an object with tags, trainingPlan { module, export } and a federation() ` +
        'function, as in examples/logistic-regression/experiment.ts',
    );
  }
}

/**
 * A resume of a carried breakpoint folder failed after the folder was imported: the imported
 * experiment stays in the root (the log records it), and continues with `roundlog resume <folder>`.
 * `cause` is the failure; `causeCode` its code when it is a roundlog error.
 */
export class ImportedNotResumedError extends RoundlogError {
  readonly code = 'IMPORTED_NOT_RESUMED' as const;
  readonly causeCode: string | null;
  constructor(
    /** The imported experiment's folder, under `<root>/experiments`. */
    readonly folder: string,
    readonly experimentId: string,
    /** The workspace the resume used. */
    readonly workspace: string,
    cause: unknown,
  ) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(
      `${reason}. The breakpoint was imported before this failed: it is experiment ${folder} (${experimentId}), ` +
        `which stays in the root and has not run; fix the above, then continue it with: ` +
        `roundlog resume ${folder} --workspace ${workspace}`,
      { cause },
    );
    this.causeCode = cause instanceof RoundlogError ? cause.code : null;
  }
}

/**
 * An averaging aggregator was given a tensor whose dtype has no average: `bool` (a mean of flags is
 * not a flag, and no rounding of it is the obvious one). Keep such tensors out of the parameters
 * the nodes reply with, or aggregate with a custom aggregator that says how to combine them.
 */
export class NotAverageableError extends RoundlogError {
  readonly code = 'NOT_AVERAGEABLE' as const;
  constructor(
    readonly aggregator: string,
    readonly tensor: string,
    readonly dtype: string,
  ) {
    super(
      `aggregator ${JSON.stringify(aggregator)} cannot average tensor ${JSON.stringify(tensor)} of dtype ${dtype}: ` +
        `it has no weighted average. Leave ${dtype} tensors out of the parameters the nodes reply with, or ` +
        `register a custom aggregator that decides how to combine them`,
    );
  }
}

/**
 * A node the run requires (`--nodes`, `listenForNodes`' `expected`) holds no dataset carrying every
 * tag of the experiment: no round would ever select it, and the rounds would run without it.
 * Refused before the first round (and before a round whose node came back with other tags).
 */
export class NodeTagsMismatchError extends RoundlogError {
  readonly code = 'NODE_TAGS_MISMATCH' as const;
  constructor(
    readonly node: string,
    /** The tags the node reported (every dataset's). */
    readonly nodeTags: readonly string[],
    /** The experiment's tags. */
    readonly tags: readonly string[],
  ) {
    super(
      `node ${JSON.stringify(node)} is one of the nodes every round needs (--nodes), but its tags ` +
        `${nodeTags.join(',') || '(none)'} do not include all of the experiment's tags ${tags.join(',')}: no round ` +
        `would select it. Start the node with --tags ${tags.join(',')}, or leave it out of --nodes`,
    );
  }
}

/**
 * A node the run requires (`--nodes`, `listenForNodes`' `expected`) is not among the experiment's
 * own nodes (its `nodes` option): no round would select it, and the rounds would run without it.
 */
export class NodeNotInExperimentError extends RoundlogError {
  readonly code = 'NODE_NOT_IN_EXPERIMENT' as const;
  constructor(
    readonly node: string,
    /** The experiment's nodes. */
    readonly nodes: readonly string[],
  ) {
    super(
      `node ${JSON.stringify(node)} is one of the nodes every round needs (--nodes), but the experiment takes ` +
        `only nodes ${nodes.join(', ')} (its nodes option): no round would select it. Leave it out of --nodes`,
    );
  }
}
