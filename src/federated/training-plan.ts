/**
 * What a researcher implements (a training plan) and what it trains on (a federation of in-process
 * nodes holding tagged datasets). An experiment trains on the nodes holding a dataset that carries
 * all of its tags, one dataset per node, as in Fed-BioMed.
 */
import { InvalidArgumentError } from '../errors.ts';
import type { BlobRef, PutResult } from '../blobs/types.ts';
import type { TensorSet } from '../codec/tensors.ts';
import type { DatasetFingerprint, RemoteRun } from '../model/events.ts';
import {
  AmbiguousDatasetError,
  NoMatchingDatasetError,
  NodeNotInExperimentError,
  NodeTagsMismatchError,
} from './errors.ts';
import type { Rng, RngState } from './rng.ts';

/** Arguments that shape the model (recorded in the experiment, so plain data). */
export type ModelArgs = Readonly<Record<string, unknown>>;

/** Arguments of local training (recorded in the experiment and changeable between rounds, so plain data). */
export type TrainingArgs = Readonly<Record<string, unknown>>;

export type TrainResult = {
  params: TensorSet;
  /** How many samples training used: the node's weight in aggregation. */
  sampleSize: number;
  metrics: Record<string, number>;
};

/**
 * A model and its local training. Both methods must be deterministic given their arguments: every
 * random draw comes from `rng`, which the experiment derives from (seed, round, node), so a resumed
 * experiment trains to bit-identical parameters. `data` is the `data` of the node's dataset.
 *
 * Method syntax keeps a plan for a specific data type assignable to `TrainingPlan`; a plan should
 * therefore check the data it is given.
 */
export interface TrainingPlan<Data = unknown, M extends ModelArgs = ModelArgs, T extends TrainingArgs = TrainingArgs> {
  /** The parameters before round 0. */
  init(modelArgs: M, rng: Rng): TensorSet;
  /** Trains from the global parameters on one node's data. */
  train(params: TensorSet, data: Data, trainingArgs: T, rng: Rng): TrainResult | Promise<TrainResult>;
}

export type Dataset<Data = unknown> = Readonly<{ id: string; tags: readonly string[]; data: Data }>;

/** A data-holding node, in process. */
export type Node<Data = unknown> = Readonly<{ id: string; datasets: readonly Dataset<Data>[] }>;

/**
 * The nodes an experiment may train on. In process, each node's dataset holds its `data` and a
 * round calls the plan's `train` on it. With `remote` (nodes as processes, `listenForNodes`), the
 * nodes are those connected now, their datasets hold no data, and a round sends each selected node
 * a request through `remote.train` instead.
 */
export type Federation<Data = unknown> = Readonly<{ nodes: readonly Node<Data>[]; remote?: RemoteTrainer }>;

/** What a round asks of a node in another process: everything its training depends on. */
export type RemoteTrainRequest = Readonly<{
  /** The experiment's folder name (for messages) and id. */
  experiment: string;
  experimentId: string;
  node: string;
  round: number;
  attempt: number;
  /**
   * The global parameters as a safetensors file: read only (a round passes the same bytes to every
   * node it selects).
   */
  params: Uint8Array;
  /**
   * Stores the reply's parameters, a safetensors file whose bytes arrive in `chunks`, in the
   * experiment's blob store as they arrive (each chunk may be reused once the next is asked for);
   * resolves with the stored blob. The round reads the reply back from there (it checks the file's
   * header then), and deletes it if the round fails.
   */
  storeReply(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<PutResult>;
  trainingArgs: TrainingArgs;
  modelArgs: ModelArgs;
  /** The training plan as the experiment records it; the node trains only with a plan it approved. */
  plan: Readonly<{ module: string; export: string; sha256: string }>;
  /** The state of the RNG the node trains with: `deriveRng(seed, round, node, 'train')`, as in process. */
  rng: RngState;
  /**
   * The dataset the round checked the node holds (`RemoteTrainer.dataset`); a node that connected
   * again with another one since is refused (`NodeDatasetChangedError`), never trained on.
   */
  dataset?: DatasetFingerprint;
}>;

/** A node process's reply: its parameters already in the blob store (`RemoteTrainRequest.storeReply`). */
export type StoredTrainResult = {
  /** The reply's parameters, a safetensors file, as `storeReply` stored them. */
  stored: BlobRef;
  /** How many samples training used: the node's weight in aggregation. */
  sampleSize: number;
  metrics: Record<string, number>;
};

/**
 * Sends a round's training to a node and resolves with its reply, once its parameters are stored
 * (`RemoteTrainRequest.storeReply`). Rejects with a typed error naming the node and round
 * (`NodeFailedError`, `NodePlanNotApprovedError`); `signal` aborts when the round no longer waits
 * for the reply (the node timed out, or another node failed).
 */
export interface RemoteTrainer {
  train(request: RemoteTrainRequest, signal: AbortSignal): Promise<StoredTrainResult>;
  /**
   * The dataset the connected node `node` reported (its fingerprint), or null when it is not
   * connected; the round records it and compares it with what earlier rounds recorded.
   */
  dataset?(node: string): DatasetFingerprint | null;
  /**
   * Where these nodes connect and which ids every round needs, as the run records them
   * (`RunStarted.remote`) and as the commands that continue the experiment name them.
   */
  describe?(): RemoteRun;
  /**
   * The node ids every round needs (`listenForNodes`' `expected`), null when the rounds take the
   * nodes connected: a required node whose tags do not match the experiment's is refused
   * (`requireMatchingNodes`) rather than left out.
   */
  required?(): readonly string[] | null;
}

/**
 * Refuses a node `federation.remote` requires that no round would select, instead of leaving it out
 * of every round without a word: one outside the experiment's `nodes` (`NodeNotInExperimentError`),
 * or one seen holding no dataset that carries every one of `tags` (`NodeTagsMismatchError`).
 */
export function requireMatchingNodes(
  federation: Federation,
  tags: readonly string[],
  nodes: readonly string[] | null = null,
): void {
  for (const id of federation.remote?.required?.() ?? []) {
    if (nodes !== null && !nodes.includes(id)) throw new NodeNotInExperimentError(id, [...nodes]);
    const node = federation.nodes.find((n) => n.id === id);
    // Not seen yet: a round that starts without it fails naming it.
    if (node === undefined) continue;
    if (!node.datasets.some((dataset) => tags.every((tag) => dataset.tags.includes(tag)))) {
      throw new NodeTagsMismatchError(id, [...new Set(node.datasets.flatMap((d) => d.tags))], [...tags]);
    }
  }
}

/** A node taking part in an experiment, and the dataset it trains on. */
export type NodeDataset<Data = unknown> = Readonly<{ node: string; dataset: Dataset<Data> }>;

export type SelectDatasetsOptions = {
  /** Only these nodes may take part (Fed-BioMed's node filter). Default: every node. */
  nodes?: readonly string[];
};

/**
 * For each node (in node-id order) the dataset whose tags include every one of `tags`; nodes with
 * no such dataset are not part of the experiment. Throws `NoMatchingDatasetError` when no node has
 * one, `AmbiguousDatasetError` when a node has several, and `InvalidArgumentError` for empty tags
 * or repeated node ids.
 */
export function selectDatasets<Data>(
  federation: Federation<Data>,
  tags: readonly string[],
  options: SelectDatasetsOptions = {},
): NodeDataset<Data>[] {
  if (!Array.isArray(tags) || tags.length === 0 || !tags.every((tag) => typeof tag === 'string' && tag !== '')) {
    throw new InvalidArgumentError('tags', 'must be a non-empty array of non-empty strings', tags);
  }
  const ids = federation.nodes.map(({ id }) => id);
  ids.forEach((id, i) => {
    if (typeof id !== 'string' || id === '')
      throw new InvalidArgumentError('federation.nodes[].id', 'must be a non-empty string', id);
    if (ids.indexOf(id) !== i) throw new InvalidArgumentError('federation.nodes', 'must not repeat a node id', id);
  });
  const allowed = options.nodes === undefined ? undefined : new Set(options.nodes);
  const searched = federation.nodes
    .filter(({ id }) => allowed === undefined || allowed.has(id))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const selected: NodeDataset<Data>[] = [];
  for (const node of searched) {
    const matches = node.datasets.filter((dataset) => tags.every((tag) => dataset.tags.includes(tag)));
    if (matches.length > 1)
      throw new AmbiguousDatasetError(
        node.id,
        [...tags],
        matches.map(({ id }) => id),
      );
    if (matches[0] !== undefined) selected.push({ node: node.id, dataset: matches[0] });
  }
  if (selected.length === 0) {
    throw new NoMatchingDatasetError(
      [...tags],
      searched.map(({ id, datasets }) => ({
        node: id,
        datasets: datasets.map(({ id, tags }) => ({ id, tags: [...tags] })),
      })),
    );
  }
  return selected;
}
