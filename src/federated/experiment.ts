/**
 * `Experiment`: the Fed-BioMed-style facade over the round log. It runs federated rounds on
 * in-process nodes (select nodes, train locally, aggregate), records every round in the log,
 * materializes breakpoint folders, and loads any breakpoint back, in this process or another.
 */
import { createHash, randomInt } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { TensorSet } from '../codec/tensors.ts';
import { InvalidArgumentError } from '../errors.ts';
import {
  BreakpointCorruptError,
  ExperimentNotFoundError,
  NoBreakpointError,
  NodeFailedError,
  RoundPrunedError,
  TrainingPlanChangedError,
} from '../model/errors.ts';
import { applyRetention, checkRetention, RootIndex, type PruneReport } from '../engine/retention.ts';
import { openRoundLog, type ExperimentHandle, type OpenRoundLogOptions, type RoundLog } from '../engine/round-log.ts';
import type { StoreOptions } from '../engine/store.ts';
import { rootLayout } from '../root.ts';
import {
  listBreakpointFolders,
  readBreakpoint,
  removeStaleTemps,
  roundOfFolder,
  supersedeBreakpoints,
  type BreakpointManifest,
} from '../projections/breakpoints.ts';
import { aggregatorFrom, fedAvg, weightedMetrics, type Aggregator, type AggregatorState, type NodeReply } from './aggregators.ts';
import { breakpointFolderName, type ExperimentEvent, type FederatedSetup, type Retention, type TrainingPlanRef } from '../model/events.ts';
import { importModule } from './load-module.ts';
import { deriveRng } from './rng.ts';
import { currentParams, hasBreakpoint, type ExperimentState, type RoundRecord } from '../model/state.ts';
import { allNodes, strategyFrom, type Strategy, type StrategyState } from './strategies.ts';
import { selectDatasets, type Federation, type TrainingPlan } from './training-plan.ts';

/** Where the training plan is: a module of the workspace and the name of its export. */
export type TrainingPlanLocation = Readonly<{ module: string; export?: string }>;

export type ExperimentOptions = {
  tags: readonly string[];
  trainingPlan: TrainingPlanLocation;
  federation: Federation;
  /** Only these nodes may take part. Default: every node with a dataset carrying all the tags. */
  nodes?: readonly string[];
  trainingArgs?: Record<string, unknown>;
  modelArgs?: Record<string, unknown>;
  roundLimit?: number | null;
  /** Default false, as in Fed-BioMed. */
  saveBreakpoints?: boolean;
  /** Folder name under `<root>/experiments`; default `Experiment_NNNN`. */
  experimentationFolder?: string;
  /** Default `ROUNDLOG_DIR`, else `./var`. */
  root?: string;
  /** Where the history and the parameters are (EventStoreDB or the root's file log): see `StoreOptions`. */
  store?: StoreOptions['store'];
  blobs?: StoreOptions['blobs'];
  namespace?: StoreOptions['namespace'];
  seed?: number;
  aggregator?: Aggregator;
  strategy?: Strategy;
  /** Modules are recorded relative to this folder. Default: the current directory. */
  workspace?: string;
  /** A node whose training takes longer fails the round. Default 10 minutes. */
  nodeTimeoutMs?: number;
  /** Called after each committed round. */
  onRound?: (progress: RoundProgress) => void;
  /** Recorded in the experiment, for tools that re-create the federation on resume. */
  definition?: Readonly<{ module: string; export: string }> | null;
  /**
   * Keep the parameters of the last `keepLast` rounds and of every `keepEvery`-th round (index a
   * multiple of it); the others' are deleted after each committed round (events stay). Default none.
   */
  retention?: Retention | null;
};

export type LoadBreakpointOptions = {
  root?: string;
  store?: StoreOptions['store'];
  blobs?: StoreOptions['blobs'];
  namespace?: StoreOptions['namespace'];
  /** The nodes; or a function of the experiment's recorded `config` that builds them. */
  federation: Federation | ((config: unknown) => Federation | Promise<Federation>);
  workspace?: string;
  /** Continue even if the training plan's source changed; the change is recorded. */
  acceptPlanChange?: boolean;
  nodeTimeoutMs?: number;
  onRound?: (progress: RoundProgress) => void;
};

export type RoundProgress = Readonly<{
  round: number;
  roundCurrent: number;
  roundLimit: number | null;
  nodes: readonly string[];
  metrics: Readonly<Record<string, number>>;
  breakpoint: string | null;
}>;

type RoundState = { aggregator: AggregatorState; strategy: StrategyState };

const DEFAULT_NODE_TIMEOUT_MS = 10 * 60 * 1000;

export class Experiment {
  private constructor(
    private readonly rl: RoundLog,
    private readonly handle: ExperimentHandle,
    private readonly plan: TrainingPlan,
    private readonly federation: Federation,
    private readonly nodeTimeoutMs: number,
    private readonly onRound: ((progress: RoundProgress) => void) | undefined,
  ) {}

  /** The root's references, caught up before each retention run so it reads only the new events. */
  private retentionIndex: RootIndex | null = null;

  static async create(options: ExperimentOptions): Promise<Experiment> {
    const workspace = path.resolve(options.workspace ?? process.cwd());
    const retention = options.retention === undefined || options.retention === null ? null : checkRetention(options.retention);
    const rl = await openRoundLog(roundLogOptions(options));
    try {
      const { plan, ref } = await resolvePlan(rl, workspace, options.trainingPlan);
      const tags = [...options.tags];
      const nodes = options.nodes === undefined ? null : [...options.nodes];
      selectDatasets(options.federation, tags, nodes === null ? {} : { nodes });
      const aggregator = options.aggregator ?? fedAvg();
      const strategy = options.strategy ?? allNodes();
      const seed = options.seed ?? randomInt(0, 2 ** 31);
      const modelArgs = options.modelArgs ?? {};
      const initial = plan.init(modelArgs, deriveRng(seed, 'init'));
      const federated: FederatedSetup = {
        tags,
        nodes,
        trainingPlan: ref,
        modelArgs,
        trainingArgs: options.trainingArgs ?? {},
        aggregator: { name: aggregator.name, config: aggregator.config },
        strategy: { name: strategy.name, config: strategy.config },
      };
      const handle = await rl.createExperiment({
        ...(options.experimentationFolder === undefined ? {} : { folder: options.experimentationFolder }),
        roundLimit: options.roundLimit ?? null,
        seed,
        saveBreakpoints: options.saveBreakpoints ?? false,
        initialParams: initial,
        config: { definition: options.definition ?? null },
        federated,
        retention,
      });
      return new Experiment(rl, handle, plan, options.federation, options.nodeTimeoutMs ?? DEFAULT_NODE_TIMEOUT_MS, options.onRound);
    } catch (error) {
      await rl.close();
      throw error;
    }
  }

  /**
   * Loads a breakpoint: with no path, the last breakpoint of the last experiment; else a
   * breakpoint folder, or an experiment folder (its latest breakpoint), absolute or relative to
   * the current directory. State is rebuilt from the log and checked against the folder.
   */
  static async loadBreakpoint(breakpointPath: string | undefined, options: LoadBreakpointOptions): Promise<Experiment> {
    const workspace = path.resolve(options.workspace ?? process.cwd());
    const rl = await openRoundLog(roundLogOptions(options));
    try {
      const latest = breakpointPath === undefined ? await lastBreakpoint(rl) : null;
      if (latest === null) await refusePrunedPath(rl, path.resolve(breakpointPath!));
      let folder = latest?.folder ?? (await breakpointFolderOf(path.resolve(breakpointPath!)));
      let manifest = await readBreakpoint(folder);
      let handle =
        latest?.handle ??
        (await rl.openExperiment(manifest.experimentId).catch((error: unknown) => {
          if (error instanceof ExperimentNotFoundError) return null;
          throw error;
        }));
      const experimentsDir = rootLayout(rl.root).experiments;
      // An experiment folder means its latest breakpoint, which the log knows better than the
      // folder: a crash may have come between the last round's commit and its folder.
      if (latest === null && handle !== null && path.resolve(breakpointPath!) === path.join(experimentsDir, handle.state.folder)) {
        const round = lastBreakpointRound(handle.state);
        if (round !== null && round > manifest.round) {
          folder = await handle.writeBreakpoint(round);
          manifest = await readBreakpoint(folder);
        }
      }
      const experimentDir = path.dirname(folder);
      const renamed =
        handle !== null && path.dirname(experimentDir) === experimentsDir && path.basename(experimentDir) !== handle.state.folder
          ? path.basename(experimentDir)
          : null;
      const pruned = handle?.state.pruned[manifest.logPosition];
      if (handle !== null && pruned !== undefined && handle.state.created?.experimentId === manifest.experimentId) {
        throw new RoundPrunedError(handle.state.folder, manifest.round, pruned.timestamp);
      }
      if (handle === null) handle = await importBreakpoint(rl, folder, manifest);
      else checkAgainstLog(folder, manifest, handle.state);
      if (handle.state.settings.trainingPlan === null) {
        throw new InvalidArgumentError(
          'path',
          `must be a breakpoint of a federated experiment; ${handle.state.folder} was recorded by a training loop of its own: open it with openRoundLog().openExperiment(${JSON.stringify(handle.state.folder)}) and loadRound()`,
          folder,
        );
      }
      const federation = typeof options.federation === 'function' ? await options.federation(handle.created.config) : options.federation;

      const { plan, ref } = await resolvePlan(rl, workspace, handle.state.settings.trainingPlan!, options.acceptPlanChange ?? false);
      const events: ExperimentEvent[] = [];
      if (ref.sha256 !== handle.state.settings.trainingPlan!.sha256) {
        events.push({ type: 'SettingsChanged', data: { v: 1, trainingPlan: ref, by: rl.actor } });
      }
      const keep = manifest.round + 1;
      const superseded = handle.state.rounds.slice(keep).map((r) => r.round);
      if (superseded.length > 0) {
        events.push({
          type: 'Rewound',
          data: { v: 1, roundCurrent: keep, reason: `loaded the older breakpoint ${path.basename(folder)}`, supersededRounds: superseded, by: rl.actor },
        });
      }
      // The breakpoint's settings come back with it (settings changed after it are undone, on the record).
      const now = handle.state.settings;
      const then = manifest.settings;
      if (now.roundLimit !== then.roundLimit || now.saveBreakpoints !== then.saveBreakpoints || !sameJson(now.trainingArgs, then.trainingArgs)) {
        events.push({
          type: 'SettingsChanged',
          data: { v: 1, roundLimit: then.roundLimit, saveBreakpoints: then.saveBreakpoints, trainingArgs: then.trainingArgs, by: rl.actor },
        });
      }
      events.push({
        type: 'Resumed',
        data: { v: 1, roundCurrent: keep, breakpoint: path.basename(folder), folder: renamed, by: rl.actor },
      });
      // Appending first makes a concurrent resume of the same experiment fail before it touches any folder.
      await handle.append(events);
      if (superseded.length > 0) {
        await supersedeBreakpoints({ experimentsDir, blobs: rl.blobs }, handle.state.folder, keep);
      }
      await removeStaleTemps(path.join(experimentsDir, handle.state.folder));
      return new Experiment(rl, handle, plan, federation, options.nodeTimeoutMs ?? DEFAULT_NODE_TIMEOUT_MS, options.onRound);
    } catch (error) {
      await rl.close();
      throw error;
    }
  }

  get id(): string {
    return this.handle.id;
  }

  get state(): ExperimentState {
    return this.handle.state;
  }

  roundCurrent(): number {
    return this.handle.roundCurrent();
  }

  roundLimit(): number | null {
    return this.state.settings.roundLimit;
  }

  async setRoundLimit(roundLimit: number | null): Promise<void> {
    if (roundLimit !== null && (!Number.isInteger(roundLimit) || roundLimit < 0)) {
      throw new InvalidArgumentError('roundLimit', 'must be a non-negative integer or null', roundLimit);
    }
    if (roundLimit !== null && roundLimit < this.roundCurrent()) {
      throw new InvalidArgumentError('roundLimit', `must not be below the ${this.roundCurrent()} rounds already completed`, roundLimit);
    }
    await this.handle.append([{ type: 'SettingsChanged', data: { v: 1, roundLimit, by: this.rl.actor } }]);
  }

  saveBreakpoints(): boolean {
    return this.state.settings.saveBreakpoints;
  }

  async setSaveBreakpoints(saveBreakpoints: boolean): Promise<void> {
    await this.handle.append([{ type: 'SettingsChanged', data: { v: 1, saveBreakpoints, by: this.rl.actor } }]);
  }

  async setTrainingArgs(trainingArgs: Record<string, unknown>): Promise<void> {
    await this.handle.append([{ type: 'SettingsChanged', data: { v: 1, trainingArgs, by: this.rl.actor } }]);
  }

  retention(): Retention | null {
    return this.state.settings.retention;
  }

  /**
   * Sets (or, with null, removes) the retention policy, recorded as a `SettingsChanged`. It applies
   * after each committed round from then on; `applyRetention()` applies it at once.
   */
  async setRetention(retention: Retention | null): Promise<void> {
    const checked = retention === null ? null : checkRetention(retention);
    await this.handle.append([{ type: 'SettingsChanged', data: { v: 1, retention: checked, by: this.rl.actor } }]);
  }

  /**
   * Prunes now the rounds outside the retention policy (the experiment's, or `retention`): their
   * parameter blobs that nothing else references and their breakpoint folders are deleted, and a
   * `RoundsPruned` event records it. Runs after each committed round when a policy is set.
   */
  async applyRetention(retention?: Retention): Promise<PruneReport> {
    this.retentionIndex ??= new RootIndex();
    try {
      return await applyRetention(this.handle, { index: this.retentionIndex, ...(retention === undefined ? {} : { retention }) });
    } catch (error) {
      this.retentionIndex = null;
      throw error;
    }
  }

  experimentationFolder(): string {
    return this.state.folder;
  }

  experimentationPath(): string {
    return path.join(rootLayout(this.rl.root).experiments, this.state.folder);
  }

  /** Parameters after the last completed round (the initial ones before any). */
  async parameters(): Promise<TensorSet> {
    return this.handle.tensors(currentParams(this.state)!);
  }

  /**
   * Runs rounds: `rounds` of them, or up to the round limit. With `increase`, a run past the
   * limit raises it; without, it stops at the limit. Returns the number of rounds run.
   */
  async run(options: { rounds?: number; increase?: boolean } = {}): Promise<number> {
    const limit = this.roundLimit();
    let rounds = options.rounds;
    if (rounds === undefined) {
      if (limit === null) throw new InvalidArgumentError('rounds', 'must be given when the experiment has no round limit', rounds);
      rounds = Math.max(0, limit - this.roundCurrent());
    } else if (!Number.isInteger(rounds) || rounds < 0) {
      throw new InvalidArgumentError('rounds', 'must be a non-negative integer', rounds);
    }
    if (limit !== null && this.roundCurrent() + rounds > limit) {
      if (options.increase) await this.setRoundLimit(this.roundCurrent() + rounds);
      else rounds = Math.max(0, limit - this.roundCurrent());
    }
    for (let i = 0; i < rounds; i++) await this.runOnce();
    if (this.roundLimit() !== null && this.roundCurrent() >= this.roundLimit()!) {
      await this.handle.append([{ type: 'ExperimentFinished', data: { v: 1, roundCurrent: this.roundCurrent() } }]);
    }
    return rounds;
  }

  /** Runs one round: select nodes, train each locally, aggregate, commit; a failed node commits nothing. */
  async runOnce(): Promise<RoundRecord> {
    const state = this.state;
    const setup = state.created!.federated!;
    const seed = state.created!.seed;
    const round = this.roundCurrent();
    const started = Date.now();
    const datasets = selectDatasets(this.federation, setup.tags, setup.nodes === null ? {} : { nodes: setup.nodes });
    const aggregator = aggregatorFrom(setup.aggregator);
    const strategy = strategyFrom(setup.strategy);
    const previous = (state.rounds.at(-1)?.state as RoundState | undefined) ?? {
      aggregator: aggregator.initialState(),
      strategy: strategy.initialState(),
    };
    const selection = strategy.select(
      datasets.map((d) => d.node),
      round,
      previous.strategy,
      deriveRng(seed, round, 'select'),
    );
    const attempt = (state.attempts[round] ?? 0) + 1;
    await this.handle.append([{ type: 'RoundStarted', data: { v: 1, round, attempt, nodes: selection.nodes } }]);

    const paramsRef = currentParams(state)!;
    const trainingArgs = state.settings.trainingArgs;
    // Read and hash-checked once; each node trains on its own copy.
    const current = await this.handle.tensors(paramsRef);
    const replies = await Promise.all(
      selection.nodes.map(async (node): Promise<NodeReply & { durationMs: number }> => {
        const dataset = datasets.find((d) => d.node === node)!.dataset;
        const params = structuredClone(current);
        const t0 = Date.now();
        const result = await withTimeout(
          Promise.resolve().then(() => this.plan.train(params, dataset.data, trainingArgs, deriveRng(seed, round, node, 'train'))),
          this.nodeTimeoutMs,
          node,
          round,
        );
        if (!Number.isInteger(result?.sampleSize) || result.sampleSize < 0) {
          throw new NodeFailedError(node, round, `replied with sample size ${String(result?.sampleSize)}`);
        }
        return { node, sampleSize: result.sampleSize, params: result.params, metrics: result.metrics, durationMs: Date.now() - t0 };
      }),
    );
    const aggregated = aggregator.aggregate(replies, previous.aggregator);
    const replyEvents = [];
    for (const reply of [...replies].sort((a, b) => (a.node < b.node ? -1 : 1))) {
      replyEvents.push({
        round,
        attempt,
        node: reply.node,
        sampleSize: reply.sampleSize,
        params: await this.rl.putTensors(reply.params),
        metrics: reply.metrics,
        durationMs: reply.durationMs,
      });
    }
    const record = await this.handle.recordRound({
      round,
      attempt,
      params: aggregated.params,
      state: { aggregator: aggregated.state, strategy: selection.state } satisfies RoundState,
      metrics: weightedMetrics(replies),
      nodes: replyEvents.map((r) => ({ node: r.node, sampleSize: r.sampleSize, metrics: r.metrics })),
      replies: replyEvents,
      durationMs: Date.now() - started,
    });
    if (this.state.settings.retention !== null) await this.applyRetention();
    const breakpoint = record.breakpoint ? path.join(this.experimentationPath(), breakpointFolderName(round)) : null;
    this.onRound?.({
      round,
      roundCurrent: this.roundCurrent(),
      roundLimit: this.roundLimit(),
      nodes: selection.nodes,
      metrics: record.metrics,
      breakpoint,
    });
    return record;
  }

  /** Writes the breakpoint folder of the last completed round now (whatever `saveBreakpoints` says). */
  async breakpoint(): Promise<string> {
    if (this.roundCurrent() === 0) throw new NoBreakpointError(this.state.folder, null);
    return this.handle.writeBreakpoint(this.roundCurrent() - 1);
  }

  async close(): Promise<void> {
    try {
      await this.handle.snapshot();
    } finally {
      await this.rl.close();
    }
  }
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function withTimeout<T>(work: Promise<T>, ms: number, node: string, round: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new NodeFailedError(node, round, `no reply within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } catch (error) {
    if (error instanceof NodeFailedError) throw error;
    throw new NodeFailedError(node, round, `training threw: ${(error as Error)?.message ?? String(error)}`, error);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Imports the training plan from the workspace (never from a breakpoint or experiment folder)
 * and hashes its source; a source that differs from `recorded` is refused unless accepted.
 */
async function resolvePlan(
  rl: RoundLog,
  workspace: string,
  location: TrainingPlanLocation | TrainingPlanRef,
  acceptChange = false,
): Promise<{ plan: TrainingPlan; ref: TrainingPlanRef }> {
  const file = path.resolve(workspace, location.module);
  const experiments = rootLayout(rl.root).experiments;
  if (file === experiments || file.startsWith(experiments + path.sep)) {
    throw new InvalidArgumentError('trainingPlan.module', 'must be in the workspace, not inside an experiment or breakpoint folder', location.module);
  }
  let source: Buffer;
  try {
    source = await fs.readFile(file);
  } catch (error) {
    throw new InvalidArgumentError('trainingPlan.module', `must name a readable module (${(error as NodeJS.ErrnoException).code ?? String(error)} at ${file})`, location.module);
  }
  const sha256 = createHash('sha256').update(source).digest('hex');
  if ('sha256' in location && location.sha256 !== sha256 && !acceptChange) {
    throw new TrainingPlanChangedError(location.module, location.sha256, sha256);
  }
  const exportName = location.export ?? 'default';
  const module = await importModule(file);
  const plan = module[exportName] as TrainingPlan | undefined;
  if (typeof plan?.init !== 'function' || typeof plan.train !== 'function') {
    throw new InvalidArgumentError('trainingPlan.export', `must name an export of ${location.module} with init() and train()`, exportName);
  }
  const { ref: sourceRef } = await rl.blobs.put(source, { encoding: 'text/source' });
  const relative = path.relative(workspace, file).split(path.sep).join('/');
  return { plan, ref: { module: relative, export: exportName, sha256, source: sourceRef } };
}

/** The breakpoint folder a path names: itself, or the latest breakpoint of an experiment folder. */
async function breakpointFolderOf(target: string): Promise<string> {
  const stat = await fs.stat(target).catch(() => null);
  if (stat === null || !stat.isDirectory()) {
    throw new InvalidArgumentError('path', 'must be a breakpoint folder or an experiment folder', target);
  }
  if (await fs.stat(path.join(target, 'breakpoint.json')).catch(() => null)) return target;
  const folders = await listBreakpointFolders(target);
  if (folders.length === 0) throw new NoBreakpointError(target, null);
  return path.join(target, folders.at(-1)!);
}

/**
 * The last breakpoint of the last experiment, as Fed-BioMed's `load_breakpoint()` without
 * arguments, taken from the log: the last round of the current branch that asked for a
 * breakpoint. Its folder is written now if a crash came between the round's commit and its folder.
 */
async function lastBreakpoint(rl: RoundLog): Promise<{ folder: string; handle: ExperimentHandle }> {
  const experiments = await rl.listExperiments();
  const last = experiments.at(-1);
  if (last === undefined) throw new NoBreakpointError(`(none in ${rl.root})`, null);
  const handle = await rl.openExperiment(last.experimentId);
  const round = lastBreakpointRound(handle.state);
  const pruned = round === null ? undefined : handle.state.pruned[String(handle.state.rounds[round]!.position)];
  if (round !== null && pruned !== undefined) throw new RoundPrunedError(handle.state.folder, round, pruned.timestamp);
  if (round !== null) return { folder: await handle.writeBreakpoint(round), handle };
  let newest: string | null = null;
  for (const entry of experiments.slice(0, -1).reverse()) {
    const other = await rl.openExperiment(entry.experimentId);
    const otherRound = lastBreakpointRound(other.state);
    if (otherRound !== null) {
      newest = path.join(rootLayout(rl.root).experiments, other.state.folder, breakpointFolderName(otherRound));
      break;
    }
  }
  throw new NoBreakpointError(handle.state.folder, newest);
}

/**
 * A breakpoint path that no longer exists because retention pruned its round: a `RoundPrunedError`
 * saying when, rather than "no such folder".
 */
async function refusePrunedPath(rl: RoundLog, target: string): Promise<void> {
  const round = roundOfFolder(path.basename(target));
  if (round === null || (await fs.stat(target).catch(() => null)) !== null) return;
  const handle = await rl.openExperiment(path.dirname(target)).catch(() => null);
  const record = handle?.state.rounds[round];
  const pruned = record === undefined ? undefined : handle!.state.pruned[String(record.position)];
  if (pruned !== undefined) throw new RoundPrunedError(handle!.state.folder, round, pruned.timestamp);
}

/**
 * The last round of the current branch to continue from: one that asked for a breakpoint, or one
 * a rewind or a fork made the end of the branch (both write its folder, whatever its round asked).
 */
function lastBreakpointRound(state: ExperimentState): number | null {
  for (let i = state.rounds.length - 1; i >= 0; i--) if (hasBreakpoint(state, i)) return i;
  return null;
}

function checkAgainstLog(folder: string, manifest: BreakpointManifest, state: ExperimentState): void {
  const record = state.rounds[manifest.round];
  if (record === undefined || String(record.position) !== manifest.logPosition) {
    throw new BreakpointCorruptError(
      folder,
      'breakpoint.json',
      `records round ${manifest.round} at log position ${manifest.logPosition}, which is not a round of the experiment's current history`,
    );
  }
  if (record.params.sha256 !== manifest.params.sha256) {
    throw new BreakpointCorruptError(folder, manifest.params.file, `holds parameters ${manifest.params.sha256}, the log records ${record.params.sha256}`);
  }
}

/** A breakpoint folder carried to a root whose log does not know it: a new experiment that starts from it. */
async function importBreakpoint(rl: RoundLog, folder: string, manifest: BreakpointManifest): Promise<ExperimentHandle> {
  const params = await fs.readFile(path.join(folder, manifest.params.file));
  const { ref } = await rl.blobs.put(params, { encoding: manifest.params.encoding });
  let federated = manifest.experiment.federated;
  if (federated !== null && manifest.trainingPlan !== null) {
    const source = await fs.readFile(path.join(folder, manifest.trainingPlan.file));
    const { ref: sourceRef } = await rl.blobs.put(source, { encoding: 'text/source' });
    federated = { ...federated, trainingPlan: { ...federated.trainingPlan, ...manifest.settings.trainingPlan, source: sourceRef } };
  }
  const manifestBytes = await fs.readFile(path.join(folder, 'breakpoint.json'));
  return rl.createExperiment({
    roundLimit: manifest.roundLimit,
    seed: manifest.experiment.seed,
    saveBreakpoints: manifest.settings.saveBreakpoints,
    initialParams: null,
    config: manifest.experiment.config,
    federated: federated === null ? null : { ...federated, trainingArgs: manifest.settings.trainingArgs },
    importedFrom: {
      experimentId: manifest.experimentId,
      folder: manifest.experimentFolder,
      round: manifest.round,
      logPosition: manifest.logPosition,
      breakpointSha256: createHash('sha256').update(manifestBytes).digest('hex'),
      params: ref,
      state: manifest.state,
    },
  });
}

export { breakpointFolderName, roundOfFolder };

/** The round-log options an experiment's options carry (absent ones stay absent: the environment decides). */
function roundLogOptions(options: Pick<ExperimentOptions, 'root' | 'store' | 'blobs' | 'namespace'>): OpenRoundLogOptions {
  const picked: OpenRoundLogOptions = {};
  if (options.root !== undefined) picked.root = options.root;
  if (options.store !== undefined) picked.store = options.store;
  if (options.blobs !== undefined) picked.blobs = options.blobs;
  if (options.namespace !== undefined) picked.namespace = options.namespace;
  return picked;
}
