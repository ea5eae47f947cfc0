/**
 * One federated round of an experiment: select the nodes, train each locally (with a timeout),
 * aggregate, and commit the round to the log. A node that fails or times out commits nothing.
 * The `Experiment` facade runs it and applies retention and progress reporting around it.
 */
import type { ExperimentHandle, RoundLog } from '../projections/index.ts';
import { NodeFailedError } from '../model/errors.ts';
import { decideStartRound } from '../model/decide/index.ts';
import type { RoundStarted } from '../model/events.ts';
import { currentParams, type RoundRecord } from '../model/state.ts';
import { weightedMetrics, type NodeReply } from './aggregators.ts';
import { roundState, stateBeforeRound, type Components } from './components.ts';
import { checkFingerprints, DEFAULT_DATASET_CHANGE_POLICY, type DatasetChangePolicy } from './fingerprints.ts';
import { deriveRng } from './rng.ts';
import { NodeDatasetChangedError, NodePlanNotApprovedError } from './remote/errors.ts';
import { selectDatasets, type Federation, type TrainingPlan } from './training-plan.ts';

/** What a round needs from its experiment. */
export type RoundContext = Readonly<{
  rl: RoundLog;
  handle: ExperimentHandle;
  plan: TrainingPlan;
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
  await handle.append(roundStarted);

  const paramsRef = currentParams(state)!;
  const trainingArgs = state.settings.trainingArgs;
  // Read and hash-checked once; each node trains on its own copy.
  const current = await handle.tensors(paramsRef);
  const { remote } = federation;
  const recordedPlan = setup.trainingPlan;
  // Aborted when the round stops waiting for a node (its timeout, or another node's failure).
  const controllers = selection.nodes.map(() => new AbortController());
  const replies = await Promise.all(
    selection.nodes.map(async (node, i): Promise<NodeReply & { durationMs: number }> => {
      const dataset = datasets.find((d) => d.node === node)!.dataset;
      const params = structuredClone(current);
      const t0 = Date.now();
      const rng = deriveRng(seed, round, node, 'train');
      const train =
        remote === undefined
          ? () => plan.train(params, dataset.data, trainingArgs, rng)
          : () =>
              remote.train(
                {
                  experiment: handle.state.folder,
                  experimentId: handle.id,
                  node,
                  round,
                  attempt,
                  params,
                  trainingArgs,
                  modelArgs: setup.modelArgs,
                  plan: { module: recordedPlan.module, export: recordedPlan.export, sha256: recordedPlan.sha256 },
                  rng: rng.state(),
                  ...(fingerprints.has(node) ? { dataset: fingerprints.get(node) } : {}),
                },
                controllers[i]!.signal,
              );
      const result = await withTimeout(
        Promise.resolve().then(train),
        nodeTimeoutMs,
        handle.state.folder,
        node,
        round,
        controllers[i]!,
      );
      if (!Number.isInteger(result?.sampleSize) || result.sampleSize < 0) {
        const reason = `replied with sample size ${String(result?.sampleSize)}`;
        throw new NodeFailedError(handle.state.folder, node, round, reason);
      }
      const { sampleSize, params: trained, metrics } = result;
      return { node, sampleSize, params: trained, metrics, durationMs: Date.now() - t0 };
    }),
  ).catch((error: unknown) => {
    for (const controller of controllers) controller.abort();
    throw error;
  });
  const aggregated = aggregator.aggregate(replies, previous.aggregator, { round, params: current });
  const replyEvents = [];
  for (const reply of [...replies].sort((a, b) => (a.node < b.node ? -1 : 1))) {
    replyEvents.push({
      round,
      attempt,
      node: reply.node,
      sampleSize: reply.sampleSize,
      params: await rl.putTensors(reply.params),
      metrics: reply.metrics,
      durationMs: reply.durationMs,
    });
  }
  const record = await handle.recordRound({
    round,
    attempt,
    params: aggregated.params,
    state: roundState(components, aggregated.state, selection.state),
    metrics: weightedMetrics(replies),
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
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new NodeFailedError(experiment, node, round, `no reply within ${ms} ms`));
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
    throw new NodeFailedError(experiment, node, round, reason, error);
  } finally {
    clearTimeout(timer);
  }
}
