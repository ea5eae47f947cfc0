/**
 * One federated round of an experiment: select the nodes, train each locally (with a timeout),
 * aggregate, and commit the round to the log. A node that fails or times out commits nothing.
 * The `Experiment` facade runs it and applies retention and progress reporting around it.
 */
import type { ExperimentHandle, RoundLog } from '../projections/index.ts';
import { NodeFailedError } from '../model/errors.ts';
import { decideStartRound } from '../model/decide/index.ts';
import type { RemoteRun, RoundStarted } from '../model/events.ts';
import { currentParams, type RoundRecord } from '../model/state.ts';
import type { BlobRef, PutResult } from '../blobs/types.ts';
import { SAFETENSORS_ENCODING, encodeSafetensors } from '../codec/safetensors.ts';
import { decodeTensors, type Tensor, type TensorSet } from '../codec/tensors.ts';
import { blobRefsIn } from '../engine/blob-refs.ts';
import {
  compareNodeIds,
  weightedMetrics,
  type AggregateContext,
  type AggregationRun,
  type Aggregator,
  type NodeReply,
  type StoredNodeReply,
} from './aggregators.ts';
import { openStoredTensors } from './stored-tensors.ts';
import { roundState, stateBeforeRound, type Components } from './components.ts';
import { checkFingerprints, DEFAULT_DATASET_CHANGE_POLICY, type DatasetChangePolicy } from './fingerprints.ts';
import { deriveRng } from './rng.ts';
import { NodeDatasetChangedError, NodePlanNotApprovedError } from './remote/errors.ts';
import {
  requireMatchingNodes,
  selectDatasets,
  type Federation,
  type StoredTrainResult,
  type TrainResult,
  type TrainingPlan,
} from './training-plan.ts';

/** What a round needs from its experiment. */
export type RoundContext = Readonly<{
  rl: RoundLog;
  handle: ExperimentHandle;
  plan: TrainingPlan;
  /**
   * The digest of the plan's local module closure, computed when the plan was imported: what a
   * request to a node process names (the recorded `sha256` of an experiment recorded before the
   * digest covered a plan's imports is the plan file's alone). Default: the recorded `sha256`.
   */
  planDigest?: string;
  federation: Federation;
  nodeTimeoutMs: number;
  /** The experiment's aggregator and strategy, built when it was created or loaded. */
  components: Components;
  /** A node process whose dataset differs from the one recorded for it: refused (default) or recorded. */
  onDatasetChange?: DatasetChangePolicy;
}>;

/** The round's committed record and the nodes the strategy selected. */
export type RoundOutcome = Readonly<{ record: RoundRecord; nodes: readonly string[] }>;

/** Runs the next round of the experiment: select nodes, train each locally, aggregate, commit. */
export async function runRound(context: RoundContext): Promise<RoundOutcome> {
  const { rl, handle, plan, federation, nodeTimeoutMs, components } = context;
  const state = handle.state;
  const setup = state.created!.federated!;
  const seed = state.created!.seed;
  const round = handle.roundCurrent();
  const started = Date.now();
  // A node every round needs that came back with other tags fails the round, never left out.
  requireMatchingNodes(federation, setup.tags, setup.nodes);
  const datasets = selectDatasets(federation, setup.tags, setup.nodes === null ? {} : { nodes: setup.nodes });
  const { aggregator, strategy } = components;
  // The recorded state (what a resume reads too), brought to the components' state versions.
  const previous = stateBeforeRound(components, state, round);
  const selection = strategy.select(
    datasets.map((d) => d.node),
    round,
    previous.strategy,
    deriveRng(seed, round, 'select'),
  );
  // Node processes: the dataset each reports now, checked against the one recorded before.
  const fingerprints =
    federation.remote === undefined
      ? new Map()
      : checkFingerprints(
          state,
          federation.remote,
          selection.nodes,
          round,
          context.onDatasetChange ?? DEFAULT_DATASET_CHANGE_POLICY,
        );
  const roundStarted = decideStartRound(state, { round, nodes: selection.nodes });
  const { attempt } = roundStarted[0]!.data as RoundStarted;
  const [startedEvent] = await handle.append(roundStarted);

  const paramsRef = currentParams(state)!;
  const trainingArgs = state.settings.trainingArgs;
  const { remote } = federation;
  // Read and hash-checked once; each in-process node trains on its own copy, and node processes are
  // sent the same safetensors bytes (the stored file's, which the tensors are views of).
  const { current, bytes: currentBytes } =
    remote === undefined
      ? { current: await handle.tensors(paramsRef), bytes: null }
      : await paramsToSend(rl, paramsRef);
  // Node processes: the commands a failure suggests name them.
  const remoteRun = remote?.describe?.() ?? null;
  const recordedPlan = setup.trainingPlan;
  const planDigest = context.planDigest ?? recordedPlan.sha256;
  const aggregateContext = { round, params: current };
  // A streaming aggregator folds each reply as its turn comes; any other gets them all at the end.
  const replies = new RoundReplies(
    rl,
    selection.nodes,
    aggregator,
    previous.aggregator,
    aggregateContext,
    startedEvent!.position,
    handle.state.folder,
    round,
    remoteRun,
  );
  // Aborted when the round stops waiting for a node (its timeout, or another node's failure).
  const controllers = new Map(selection.nodes.map((node) => [node, new AbortController()]));
  const trainNode = async (node: string): Promise<void> => {
    const dataset = datasets.find((d) => d.node === node)!.dataset;
    const controller = controllers.get(node)!;
    const t0 = Date.now();
    const rng = deriveRng(seed, round, node, 'train');
    const train: () => Promise<TrainResult | StoredTrainResult> | TrainResult =
      remote === undefined
        ? () => plan.train(copyTensors(current), dataset.data, trainingArgs, rng)
        : () =>
            // The request's parameters are only read: the same bytes for every node.
            remote.train(
              {
                experiment: handle.state.folder,
                experimentId: handle.id,
                node,
                round,
                attempt,
                params: currentBytes!,
                storeReply: (chunks) => replies.store(chunks),
                trainingArgs,
                modelArgs: setup.modelArgs,
                plan: { module: recordedPlan.module, export: recordedPlan.export, sha256: planDigest },
                rng: rng.state(),
                ...(fingerprints.has(node) ? { dataset: fingerprints.get(node) } : {}),
              },
              controller.signal,
            );
    const result = await withTimeout<TrainResult | StoredTrainResult>(
      Promise.resolve().then(train),
      nodeTimeoutMs,
      handle.state.folder,
      node,
      round,
      controller,
      remoteRun,
    );
    if (!Number.isInteger(result?.sampleSize) || result.sampleSize < 0) {
      const reason = `replied with sample size ${String(result?.sampleSize)}`;
      throw new NodeFailedError(handle.state.folder, node, round, reason, undefined, remoteRun);
    }
    const { sampleSize, metrics } = result;
    await replies.accept(
      'stored' in result
        ? { node, sampleSize, metrics, stored: result.stored }
        : { node, sampleSize, metrics, params: result.params },
      Date.now() - t0,
    );
  };
  let aggregated;
  try {
    if (remote === undefined) {
      // In process, one node at a time in node-id order: each reply is folded and stored before the
      // next node gets its copy, so a round holds one node's parameters whatever their number.
      for (const node of replies.order) await trainNode(node);
    } else {
      // Nodes as processes train at once; their replies are folded in node-id order as they come.
      await Promise.all(selection.nodes.map(trainNode));
    }
    aggregated = await replies.aggregate();
  } catch (error) {
    for (const controller of controllers.values()) controller.abort();
    // The round's own error is the one to report: blobs a failed clean-up leaves are unreferenced,
    // as a crash would leave them.
    await replies.discard().catch(() => undefined);
    throw error;
  }
  const replyEvents = replies.stored.map((reply) => ({ round, attempt, ...reply }));
  const record = await handle.recordRound({
    round,
    attempt,
    params: aggregated.params,
    // The aggregate is the round's own: written from its memory, not copied.
    borrowParams: true,
    state: roundState(components, aggregated.state, selection.state),
    metrics: weightedMetrics(
      replies.stored.map(({ node, sampleSize, metrics }) => ({ node, sampleSize, metrics, params: {} })),
    ),
    nodes: replyEvents.map((r) => ({
      node: r.node,
      sampleSize: r.sampleSize,
      metrics: r.metrics,
      ...(fingerprints.has(r.node) ? { dataset: fingerprints.get(r.node) } : {}),
    })),
    replies: replyEvents,
    durationMs: Date.now() - started,
  });
  return { record, nodes: selection.nodes };
}

/**
 * A copy of each tensor (its data copied once; `structuredClone` would serialize the set first,
 * holding it twice meanwhile).
 */
function copyTensors(tensors: TensorSet): TensorSet {
  return Object.fromEntries(
    Object.entries(tensors).map(([name, { dtype, shape, data }]) => [
      name,
      { dtype, shape: [...shape], data: data.slice() } as Tensor,
    ]),
  );
}

/** A node's reply as the round keeps it once stored: everything but its parameters, which are in the blob store. */
type StoredReply = Readonly<{
  node: string;
  sampleSize: number;
  params: BlobRef;
  metrics: Readonly<Record<string, number>>;
  durationMs: number;
}>;

/** A reply as it comes: its parameters in memory (a node in process), or already stored (a node process). */
type IncomingReply = Readonly<{ node: string; sampleSize: number; metrics: Readonly<Record<string, number>> }> &
  ({ params: TensorSet; stored?: undefined } | { stored: BlobRef; params?: undefined });

/**
 * The replies of one round as they arrive, and their aggregate. Each reply's parameters go to the
 * blob store at once: a node in process's are written from the reply's own memory (no copy of the
 * whole set), a node process's as their chunks arrive (`store`). Then, by the aggregator:
 *
 * - `aggregateStored` (FedAvg): nothing more is held; once every reply is in, the aggregate is
 *   taken from the stored replies a slice at a time.
 * - `begin` (a streaming aggregator): a reply is folded as soon as every node before it in node-id
 *   order has been, a reply arriving early waiting for them (a stored one waits as its blob, and is
 *   read back when its turn comes); it is let go once folded.
 * - neither: every reply is held (or read back) for `aggregate`.
 */
class RoundReplies {
  /** The selected nodes in the order replies are folded (`compareNodeIds`). */
  readonly order: readonly string[];
  private readonly run: AggregationRun | undefined;
  /** Replies for the batch path (`Aggregator.aggregate`), by node: in memory, or their blob. */
  private readonly kept = new Map<string, NodeReply | StoredReply>();
  /** Replies waiting for their turn to be folded (streaming aggregator). */
  private readonly early = new Map<string, NodeReply | StoredReply>();
  private next = 0;
  /** Folds in order, one after the other (a stored reply is read back first). */
  private folding: Promise<void> = Promise.resolve();
  private readonly byNode = new Map<string, StoredReply>();
  private readonly puts: Promise<PutResult>[] = [];
  private discarded = false;

  constructor(
    private readonly rl: RoundLog,
    private readonly nodes: readonly string[],
    private readonly aggregator: Aggregator,
    private readonly state: Readonly<Record<string, unknown>>,
    private readonly context: AggregateContext,
    /** Log position of the round's `RoundStarted`: an event referencing a blob the round stores comes after it. */
    private readonly startedAt: bigint,
    private readonly experiment: string,
    private readonly round: number,
    private readonly remote: RemoteRun | null,
  ) {
    this.order = [...this.nodes].sort(compareNodeIds);
    this.run = aggregator.aggregateStored === undefined ? aggregator.begin?.(state, context) : undefined;
  }

  /**
   * Stores a node process's reply as its safetensors bytes arrive (`RemoteTrainRequest.storeReply`);
   * refused once the round has failed (its blobs are being removed).
   */
  store(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<PutResult> {
    if (this.discarded)
      return Promise.reject(new Error(`round ${this.round} has failed: its replies are no longer stored`));
    const put = this.rl.blobs.putStream(chunks, { encoding: SAFETENSORS_ENCODING });
    this.puts.push(put);
    return put;
  }

  /** Stores a reply (or checks the one a node process stored) and folds what it can; resolves once stored. */
  async accept(reply: IncomingReply, durationMs: number): Promise<void> {
    // The round failed meanwhile (another node): nothing more of it is stored.
    if (this.discarded) return;
    const { node, sampleSize, metrics } = reply;
    let ref: BlobRef;
    if (reply.params !== undefined) {
      const put = this.rl.storeTensors(reply.params, { borrow: true });
      this.puts.push(put);
      const inMemory: NodeReply = { node, sampleSize, params: reply.params, metrics };
      if (this.run !== undefined) await this.fold(inMemory);
      else if (this.aggregator.aggregateStored === undefined) this.kept.set(node, inMemory);
      ({ ref } = await put);
    } else {
      ref = reply.stored;
      // Its header is checked now, so that a reply that is not safetensors fails the round naming the node.
      await openStoredTensors(this.rl.blobs, ref, this.source(node)).catch((error: unknown) => {
        const reason = `replied with parameters that cannot be read: ${(error as Error).message}`;
        throw new NodeFailedError(this.experiment, node, this.round, reason, error, this.remote);
      });
    }
    const stored: StoredReply = { node, sampleSize, params: ref, metrics, durationMs };
    if (reply.params === undefined) {
      if (this.run !== undefined) await this.fold(stored);
      else if (this.aggregator.aggregateStored === undefined) this.kept.set(node, stored);
    }
    this.byNode.set(node, stored);
  }

  /** The round's aggregate, once every reply is in. */
  async aggregate(): Promise<{ params: TensorSet; state: Readonly<Record<string, unknown>> }> {
    const { aggregator, state, context } = this;
    if (aggregator.aggregateStored !== undefined) {
      const stored = await Promise.all(
        this.stored.map(async ({ node, sampleSize, metrics, params }) => ({
          node,
          sampleSize,
          metrics,
          params: await openStoredTensors(this.rl.blobs, params, this.source(node)),
        })),
      );
      return aggregator.aggregateStored(stored satisfies StoredNodeReply[], state, context);
    }
    if (this.run !== undefined) {
      await this.folding;
      return this.run.finish();
    }
    const held = await Promise.all(this.nodes.flatMap((node) => this.kept.get(node) ?? []).map((r) => this.load(r)));
    return aggregator.aggregate(held, state, context);
  }

  /** Queues a reply for folding, then folds every reply whose turn has come; resolves once they are folded. */
  private fold(reply: NodeReply | StoredReply): Promise<void> {
    this.early.set(reply.node, reply);
    this.folding = this.folding.then(async () => {
      for (let waiting = this.early.get(this.order[this.next]!); waiting !== undefined;) {
        this.early.delete(waiting.node);
        this.next++;
        this.run!.fold(await this.load(waiting));
        waiting = this.early.get(this.order[this.next]!);
      }
    });
    return this.folding;
  }

  /** A reply with its parameters in memory (read back from the blob store when stored). */
  private async load(reply: NodeReply | StoredReply): Promise<NodeReply> {
    if (!('durationMs' in reply)) return reply;
    const { node, sampleSize, metrics, params } = reply;
    return { node, sampleSize, metrics, params: await this.rl.getTensors(params) };
  }

  private source(node: string): string {
    return `the reply of node ${node} to round ${this.round}`;
  }

  /** The stored replies in node-id order. */
  get stored(): StoredReply[] {
    return this.order.flatMap((node) => this.byNode.get(node) ?? []);
  }

  /**
   * After a failed round: waits for the puts in flight, then deletes the blobs this round created,
   * under the writer lock, except any that an event appended since references (a concurrent
   * experiment that stored the same bytes): a failed round leaves the blob store as it found it.
   */
  async discard(): Promise<void> {
    this.discarded = true;
    const results = await Promise.allSettled(this.puts);
    const created = results.flatMap((r) => (r.status === 'fulfilled' && r.value.created ? [r.value.ref.sha256] : []));
    if (created.length === 0) return;
    await this.rl.withWriter(async (log) => {
      const { events } = await log.readAll({ fromPosition: this.startedAt });
      const referenced = new Set(events.flatMap((event) => blobRefsIn(event.data)).map((ref) => ref.sha256));
      for (const sha256 of created) if (!referenced.has(sha256)) await this.rl.blobs.delete(sha256);
    });
  }
}

/**
 * The global parameters a round sends to node processes, as safetensors bytes, and the tensors
 * (views of those bytes). A safetensors blob is sent as stored (read and hash-checked once); one
 * of an earlier encoding is encoded once.
 */
async function paramsToSend(rl: RoundLog, ref: BlobRef): Promise<{ current: TensorSet; bytes: Uint8Array }> {
  if (ref.encoding === SAFETENSORS_ENCODING) {
    const bytes = await rl.blobs.get(ref);
    const source = `blob ${ref.sha256}`;
    return { current: decodeTensors(ref.encoding, bytes, { source, storedBytes: ref.bytes }), bytes };
  }
  const current = await rl.getTensors(ref);
  return { current, bytes: encodeSafetensors(current) };
}

/**
 * A node's training, failing the round as `NodeFailedError` if it throws or outlasts `ms` (then
 * `controller` aborts, so a remote request stops waiting). A remote node's typed refusal passes as it is.
 */
async function withTimeout<T>(
  work: Promise<T>,
  ms: number,
  experiment: string,
  node: string,
  round: number,
  controller: AbortController,
  remote: RemoteRun | null,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      // A node that is only slow needs a longer timeout: said where it is set.
      const longer =
        remote === null
          ? "the experiment's nodeTimeoutMs"
          : '--node-timeout SECONDS of run and resume (nodeTimeoutMs in code)';
      const reason = `no reply within ${ms} ms (if the node is only slow, raise ${longer})`;
      reject(new NodeFailedError(experiment, node, round, reason, undefined, remote));
      controller.abort();
    }, ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } catch (error) {
    if (
      error instanceof NodeFailedError ||
      error instanceof NodePlanNotApprovedError ||
      error instanceof NodeDatasetChangedError
    )
      throw error;
    const reason = `training threw: ${(error as Error)?.message ?? String(error)}`;
    throw new NodeFailedError(experiment, node, round, reason, error, remote);
  } finally {
    clearTimeout(timer);
  }
}
