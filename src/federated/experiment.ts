/**
 * `Experiment`: the Fed-BioMed-style facade over the round log. It runs federated rounds on
 * in-process nodes (select nodes, train locally, aggregate), records every round in the log,
 * materializes breakpoint folders, and loads any breakpoint back, in this process or another.
 * The work is in its own modules: one round in round.ts, the resume from a breakpoint in
 * resume.ts, the training plan's import and check in resolve-plan.ts.
 */
import { randomInt, randomUUID } from 'node:crypto';
import path from 'node:path';
import type { TensorSet } from '../codec/tensors.ts';
import { InvalidArgumentError } from '../errors.ts';
import { NoBreakpointError } from '../model/errors.ts';
import { SIGNAL_NAME } from '../model/schemas.ts';
import {
  decideChangeSettings,
  decideEndRun,
  decideFail,
  decideFinish,
  decideHeartbeat,
  decideStartRun,
} from '../model/decide/index.ts';
import { ConcurrentModificationError } from '../model/errors.ts';
import { currentOwner, DEFAULT_HEARTBEAT_MS, runLiveness } from '../engine/lease.ts';
import { recordable } from '../model/values.ts';
import { applyRetention, checkRetention, RootIndex, type PruneReport } from '../projections/index.ts';
import { openRoundLog, type ExperimentHandle, type OpenRoundLogOptions, type RoundLog } from '../projections/index.ts';
import { checkRegistryWritable } from '../engine/registry.ts';
import { storeOf, type StoreOptions } from '../engine/store.ts';
import { roundOfFolder, writeBreakpoint } from '../projections/breakpoints/index.ts';
import { fedAvg, type Aggregator } from './aggregators.ts';
import { componentsOf, type ComponentRegistry, type Components, type RegistrySource } from './components.ts';
import { breakpointFolderName, type FederatedSetup, type Retention } from '../model/events.ts';
import { deriveRng } from './rng.ts';
import { currentParams, type ExperimentState, type RoundRecord } from '../model/state.ts';
import { loadPlan, storePlan, type TrainingPlanLocation } from './resolve-plan.ts';
import { resolveRoot, rootLayout } from '../root.ts';
import { checkFolderName, checkRoundLimit, checkSeed } from '../model/decide/index.ts';
import { checkCarriedBeforeNewRoot, removeUnusedRoot, resumeFromBreakpoint, type FederationSource } from './resume.ts';
import { checkExperimentOptions } from './options-schema.ts';
import { DEFAULT_DATASET_CHANGE_POLICY, type DatasetChangePolicy } from './fingerprints.ts';
import { runRound } from './round.ts';
import { allNodes, type Strategy } from './strategies.ts';
import { requireMatchingNodes, selectDatasets, type Federation, type TrainingPlan } from './training-plan.ts';

export type { TrainingPlanLocation } from './resolve-plan.ts';

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
  /**
   * Default `fedAvg()`. The experiment records its `name` and `config`, and every round (in this
   * process and after a resume) runs the aggregator built from them: a built-in one, or the factory
   * registered under its name in `registry.aggregators`. An unregistered custom name is refused here.
   */
  aggregator?: Aggregator;
  /** Default `allNodes()`; recorded and rebuilt as `aggregator` is, from `registry.strategies`. */
  strategy?: Strategy;
  /**
   * Custom aggregators and strategies by the name they record (`{ aggregators: { name: (config) =>
   * aggregator }, strategies: { ... } }`). Give the same registry to `loadBreakpoint` to resume.
   */
  registry?: ComponentRegistry;
  /** Modules are recorded relative to this folder. Default: the current directory. */
  workspace?: string;
  /** A node whose training takes longer fails the round. Default 10 minutes. */
  nodeTimeoutMs?: number;
  /**
   * A node process coming back with another dataset than an earlier round recorded for it (its
   * fingerprint: SHA-256 of the data file, shape): `'refuse'` (default) fails the round with
   * `NodeDatasetChangedError` before it starts; `'record'` trains on it and records the new
   * fingerprint in the round. Not recorded: it applies to this process's rounds.
   */
  onDatasetChange?: DatasetChangePolicy;
  /** Called after each committed round. */
  onRound?: (progress: RoundProgress) => void;
  /** Recorded in the experiment, for tools that re-create the federation on resume. */
  definition?: Readonly<{ module: string; export: string }> | null;
  /**
   * Keep the parameters of the last `keepLast` rounds and of every `keepEvery`-th round (index a
   * multiple of it); the others' are deleted after each committed round (events stay). Default none.
   */
  retention?: Retention | null;
  /**
   * How often the run gives a sign of life (a `RunHeartbeat`) while it appends nothing else, in ms.
   * Default 60 s. A run on another host silent for 3 intervals is taken for crashed.
   */
  heartbeatMs?: number;
};

export type LoadBreakpointOptions = {
  root?: string;
  store?: StoreOptions['store'];
  blobs?: StoreOptions['blobs'];
  namespace?: StoreOptions['namespace'];
  /**
   * The nodes; or a function of the experiment's recorded `config` (and of the workspace the
   * resume uses) that builds them.
   */
  federation: FederationSource;
  /**
   * Where the training plan's (and a definition's) module paths are resolved. Default: the
   * workspace the experiment recorded when it was created, else (older experiments) the current
   * directory. Not recorded: it applies to this resume only.
   */
  workspace?: string;
  /**
   * The current directory, used where no workspace is given or recorded (experiments recorded
   * before workspaces were, and the workspace recorded by an import). Default: `process.cwd()`.
   */
  cwd?: string;
  /** Continue even if the training plan's source changed; the change is recorded. */
  acceptPlanChange?: boolean;
  /**
   * The custom aggregators and strategies the experiment records, by name (as given to `create`);
   * or a function of the experiment's recorded `config` that gives them. Checked before anything is
   * recorded: an unregistered name is refused (`UnknownAggregatorError`, `UnknownStrategyError`), and
   * so is a recorded state version the registered component cannot upgrade (`StateVersionMismatchError`).
   */
  registry?: RegistrySource;
  /**
   * Go back to a breakpoint older than the experiment's last round: the rounds after it are
   * superseded (recorded, their folders moved to `superseded/`). Without it, loading such a
   * breakpoint is refused with `RewindNotRequestedError`, naming the rounds. Default false.
   */
  rewind?: boolean;
  nodeTimeoutMs?: number;
  /** As for `Experiment.create`. Default `'refuse'`. */
  onDatasetChange?: DatasetChangePolicy;
  onRound?: (progress: RoundProgress) => void;
  /**
   * Take over the run of a process that still looks alive (`ExperimentRunningError` otherwise);
   * recorded in the `RunStarted`. Only for a process you know is gone (e.g. on a lost machine).
   */
  takeOver?: boolean;
  /** As for `Experiment.create`. */
  heartbeatMs?: number;
};

export type RoundProgress = Readonly<{
  round: number;
  roundCurrent: number;
  roundLimit: number | null;
  nodes: readonly string[];
  metrics: Readonly<Record<string, number>>;
  breakpoint: string | null;
}>;

/** How long a round waits for a node's reply by default: 10 minutes. */
export const DEFAULT_NODE_TIMEOUT_MS = 10 * 60 * 1000;

export class Experiment {
  private constructor(
    private readonly rl: RoundLog,
    private readonly handle: ExperimentHandle,
    private readonly plan: TrainingPlan,
    /** The digest of the plan's local module closure: what requests to node processes name. */
    private readonly planDigest: string,
    private readonly federation: Federation,
    private readonly nodeTimeoutMs: number,
    private readonly onRound: ((progress: RoundProgress) => void) | undefined,
    /** This process's run of the experiment (the `RunStarted` it appended). */
    private runId: string,
    private readonly heartbeatMs: number,
    private readonly components: Components,
    private readonly onDatasetChange: DatasetChangePolicy,
  ) {
    // Gives a sign of life when the run appended nothing for a heartbeat interval; never keeps the process up.
    this.heartbeatTimer = setInterval(() => {
      const run = this.state.run;
      if (run === null || run.runId !== this.runId) return;
      if (Date.now() - run.lastSeen.getTime() < heartbeatMs / 2) return;
      this.heartbeat().catch(() => undefined);
    }, heartbeatMs);
    this.heartbeatTimer.unref();
  }

  private readonly heartbeatTimer: NodeJS.Timeout;

  /** This process's run ended with its `RunFailed`: the next run or runOnce starts a new one. */
  private failed = false;

  /** The root's references, caught up before each retention run so it reads only the new events. */
  private retentionIndex: RootIndex | null = null;

  static async create(given: ExperimentOptions): Promise<Experiment> {
    // The caller's options, checked before anything uses them (a field of the wrong type is typed).
    checkExperimentOptions(given);
    // What is recorded is taken before the first await: the caller may change its objects at once.
    const { federation, aggregator: givenAggregator, strategy: givenStrategy, onRound, registry, ...data } = given;
    const options = { ...recordable(data, ''), federation, onRound };
    const workspace = path.resolve(options.workspace ?? process.cwd());
    const aggregator = givenAggregator ?? fedAvg();
    const strategy = givenStrategy ?? allNodes();
    const aggregatorSpec = { name: aggregator.name, config: recordable(aggregator.config, 'aggregator.config') };
    const strategySpec = { name: strategy.name, config: recordable(strategy.config, 'strategy.config') };
    // Built now as every round and every resume builds them: an unregistered name fails here.
    const components = componentsOf({ aggregator: aggregatorSpec, strategy: strategySpec }, registry);
    const retention =
      options.retention === undefined || options.retention === null ? null : checkRetention(options.retention);
    // Everything that can be refused is checked before the store is opened: a root that does not
    // exist yet is created only for an experiment that will be created in it.
    const layout = rootLayout(resolveRoot(options.root));
    const loaded = await loadPlan(layout, workspace, options.trainingPlan);
    const tags = [...options.tags];
    const nodes = options.nodes === undefined ? null : [...options.nodes];
    requireMatchingNodes(options.federation, tags, nodes);
    selectDatasets(options.federation, tags, nodes === null ? {} : { nodes });
    const roundLimit = checkRoundLimit(options.roundLimit ?? null);
    const seed = checkSeed(options.seed ?? randomInt(0, 2 ** 31));
    if (options.experimentationFolder !== undefined) checkFolderName(options.experimentationFolder);
    const modelArgs = options.modelArgs ?? {};
    const initial = loaded.plan.init(modelArgs, deriveRng(seed, 'init'));
    const rl = await openRoundLog(roundLogOptions(options));
    try {
      // A root whose registry cannot be read creates no experiment: refused before the plan is stored.
      await checkRegistryWritable(rl);
      const { plan, ref, digest } = await storePlan(rl, loaded);
      const federated: FederatedSetup = {
        tags,
        nodes,
        trainingPlan: ref,
        modelArgs,
        trainingArgs: options.trainingArgs ?? {},
        aggregator: aggregatorSpec,
        strategy: strategySpec,
        workspace,
      };
      const handle = await rl.createExperiment({
        ...(options.experimentationFolder === undefined ? {} : { folder: options.experimentationFolder }),
        roundLimit,
        seed,
        saveBreakpoints: options.saveBreakpoints ?? false,
        initialParams: initial,
        config: { definition: options.definition ?? null },
        federated,
        retention,
      });
      // The run lease: this process runs the new experiment.
      const runId = randomUUID();
      const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
      const owner = currentOwner(rl.actor);
      await handle.append(
        decideStartRun(handle.state, {
          runId,
          owner,
          heartbeatMs,
          liveness: 'unknown',
          now: new Date(),
          remote: options.federation.remote?.describe?.() ?? null,
        }),
      );
      return new Experiment(
        rl,
        handle,
        plan,
        digest,
        options.federation,
        options.nodeTimeoutMs ?? DEFAULT_NODE_TIMEOUT_MS,
        options.onRound,
        runId,
        heartbeatMs,
        components,
        options.onDatasetChange ?? DEFAULT_DATASET_CHANGE_POLICY,
      );
    } catch (error) {
      await rl.close();
      throw error;
    }
  }

  /**
   * Loads a breakpoint: with no path, the last breakpoint of the last experiment; else a
   * breakpoint folder, or an experiment folder (its latest breakpoint), absolute or relative to
   * the current directory. State is rebuilt from the log and checked against the folder. A
   * breakpoint older than the last round is loaded only with `rewind: true`.
   */
  static async loadBreakpoint(breakpointPath: string | undefined, options: LoadBreakpointOptions): Promise<Experiment> {
    const workspace = options.workspace === undefined ? null : path.resolve(options.workspace);
    // A carried folder that would be refused creates no root; one refused later (its modules),
    // before anything is committed, leaves none either.
    // (On EventStoreDB the history is in the store: the local root is only where folders go.)
    const newRoot =
      storeOf({ store: options.store }) === null
        ? await checkCarriedBeforeNewRoot(resolveRoot(options.root), breakpointPath)
        : null;
    const rl = await openRoundLog(roundLogOptions(options));
    try {
      const runId = randomUUID();
      const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
      const { handle, plan, planDigest, federation, superseded, components } = await resumeFromBreakpoint(
        rl,
        breakpointPath,
        {
          workspace,
          cwd: path.resolve(options.cwd ?? process.cwd()),
          federation: options.federation,
          registry: options.registry ?? {},
          acceptPlanChange: options.acceptPlanChange ?? false,
          run: { runId, owner: currentOwner(rl.actor), heartbeatMs, takeOver: options.takeOver ?? false },
          rewind: options.rewind ?? false,
        },
      );
      const experiment = new Experiment(
        rl,
        handle,
        plan,
        planDigest,
        federation,
        options.nodeTimeoutMs ?? DEFAULT_NODE_TIMEOUT_MS,
        options.onRound,
        runId,
        heartbeatMs,
        components,
        options.onDatasetChange ?? DEFAULT_DATASET_CHANGE_POLICY,
      );
      experiment.superseded = superseded;
      return experiment;
    } catch (error) {
      const unused =
        newRoot !== null &&
        (await rl
          .withReader((log) => log.readAll({ maxCount: 1 }))
          .then(
            (read) => read.events.length === 0,
            () => false,
          ));
      await rl.close();
      if (unused) await removeUnusedRoot(newRoot!);
      throw error;
    }
  }

  private superseded: readonly number[] = [];

  /** The rounds `loadBreakpoint` superseded when asked to `rewind` (empty otherwise). */
  supersededOnLoad(): readonly number[] {
    return this.superseded;
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
    await this.handle.append(decideChangeSettings(this.state, { roundLimit }, { actor: this.rl.actor }));
  }

  saveBreakpoints(): boolean {
    return this.state.settings.saveBreakpoints;
  }

  async setSaveBreakpoints(saveBreakpoints: boolean): Promise<void> {
    await this.handle.append(decideChangeSettings(this.state, { saveBreakpoints }, { actor: this.rl.actor }));
  }

  async setTrainingArgs(trainingArgs: Record<string, unknown>): Promise<void> {
    await this.handle.append(decideChangeSettings(this.state, { trainingArgs }, { actor: this.rl.actor }));
  }

  retention(): Retention | null {
    return this.state.settings.retention;
  }

  /**
   * Sets (or, with null, removes) the retention policy, recorded as a `SettingsChanged`. It applies
   * after each committed round from then on; `applyRetention()` applies it at once.
   */
  async setRetention(retention: Retention | null): Promise<void> {
    await this.handle.append(decideChangeSettings(this.state, { retention }, { actor: this.rl.actor }));
  }

  /**
   * Prunes now the rounds outside the retention policy (the experiment's, or `retention`): their
   * parameter blobs that nothing else references and their breakpoint folders are deleted, and a
   * `RoundsPruned` event records it. Runs after each committed round when a policy is set.
   */
  async applyRetention(retention?: Retention): Promise<PruneReport> {
    this.retentionIndex ??= new RootIndex();
    try {
      return await applyRetention(this.handle, {
        index: this.retentionIndex,
        ...(retention === undefined ? {} : { retention }),
      });
    } catch (error) {
      this.retentionIndex = null;
      throw error;
    }
  }

  experimentationFolder(): string {
    return this.state.folder;
  }

  experimentationPath(): string {
    return path.join(this.rl.layout.experiments, this.state.folder);
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
    return this.recordingFailure(() => this.runRounds(options));
  }

  private async runRounds(options: { rounds?: number; increase?: boolean }): Promise<number> {
    const limit = this.roundLimit();
    let rounds = options.rounds;
    if (rounds === undefined) {
      if (limit === null)
        throw new InvalidArgumentError('rounds', 'must be given when the experiment has no round limit', rounds);
      rounds = Math.max(0, limit - this.roundCurrent());
    } else if (!Number.isInteger(rounds) || rounds < 0) {
      throw new InvalidArgumentError('rounds', 'must be a non-negative integer', rounds);
    }
    if (limit !== null && this.roundCurrent() + rounds > limit) {
      if (options.increase) await this.setRoundLimit(this.roundCurrent() + rounds);
      else rounds = Math.max(0, limit - this.roundCurrent());
    }
    // A stop asked for (`stop`) is seen between rounds: the round in flight completes and commits.
    let done = 0;
    for (; done < rounds && this.stopSignal === null; done++) await this.runOneRound();
    const finished = decideFinish(this.state);
    if (finished.length > 0) await this.handle.append(finished);
    return done;
  }

  private stopSignal: string | null = null;

  /**
   * Asks the run to stop cleanly (what `roundlog run` and `resume` do on SIGINT or SIGTERM): the
   * round in flight completes and is committed (a round is one atomic append, so none is ever half
   * recorded), no later round starts, `run` returns the rounds it ran, and `close` records
   * `RunEnded` with `signal` (the status is then `stopped`). The first call's signal is kept.
   * `signal` is a signal's name as Node gives it (`'SIGTERM'`, `'SIGINT'`, `/^SIG[A-Z0-9]{1,12}$/`);
   * anything else throws `InvalidArgumentError` (it is recorded in the log).
   */
  stop(signal: string): void {
    if (typeof signal !== 'string' || !SIGNAL_NAME.test(signal)) {
      throw new InvalidArgumentError('signal', "must be a signal's name, such as 'SIGTERM' or 'SIGINT'", signal);
    }
    this.stopSignal ??= signal;
  }

  /** The signal `stop` was called with, or null. */
  stoppedBy(): string | null {
    return this.stopSignal;
  }

  /** Runs one round: select nodes, train each locally, aggregate, commit; a failed node commits nothing. */
  async runOnce(): Promise<RoundRecord> {
    return this.recordingFailure(() => this.runOneRound());
  }

  private async runOneRound(): Promise<RoundRecord> {
    const { rl, handle, plan, planDigest, federation, nodeTimeoutMs, components, onDatasetChange } = this;
    const context = { rl, handle, plan, planDigest, federation, nodeTimeoutMs, components, onDatasetChange };
    const { record, nodes } = await runRound(context);
    if (this.state.settings.retention !== null) await this.applyRetention();
    const round = record.round;
    const breakpoint = record.breakpoint ? path.join(this.experimentationPath(), breakpointFolderName(round)) : null;
    this.onRound?.({
      round,
      roundCurrent: this.roundCurrent(),
      roundLimit: this.roundLimit(),
      nodes,
      metrics: record.metrics,
      breakpoint,
    });
    return record;
  }

  /** Writes the breakpoint folder of the last completed round now (whatever `saveBreakpoints` says). */
  async breakpoint(): Promise<string> {
    if (this.roundCurrent() === 0) throw new NoBreakpointError(this.state.folder, null, 'no-round');
    return writeBreakpoint(this.handle, this.roundCurrent() - 1);
  }

  /**
   * Records that the run is alive (`RunHeartbeat`). A timer calls it every `heartbeatMs` when the
   * run appended nothing else meanwhile. `RunNotOwnedError` when another process took the run over.
   */
  async heartbeat(): Promise<void> {
    await this.handle.append(decideHeartbeat(this.state, { runId: this.runId }));
  }

  /**
   * Runs `work`; if it throws, records the error's code and message as a `RunFailed` (which ends
   * this run's lease; the experiment's status is `failed`), then throws it on. Nothing is recorded
   * when this process no longer holds the run (another process changed the experiment).
   */
  private async recordingFailure<T>(work: () => Promise<T>): Promise<T> {
    // A run this process ended by a failure: going on (a retry in the same process) starts a new
    // run, with its lease, unless another process holds the experiment now.
    if (this.failed) {
      this.failed = false;
      const runId = randomUUID();
      await this.handle.append(
        decideStartRun(this.state, {
          runId,
          owner: currentOwner(this.rl.actor),
          heartbeatMs: this.heartbeatMs,
          liveness: runLiveness(this.state),
          now: new Date(),
          remote: this.federation.remote?.describe?.() ?? null,
        }),
      );
      this.runId = runId;
    }
    try {
      return await work();
    } catch (error) {
      if (this.state.run?.runId === this.runId && !(error instanceof ConcurrentModificationError)) {
        const e = error as { code?: unknown; name?: unknown; message?: unknown } | null;
        const code =
          typeof e?.code === 'string' && e.code !== '' ? e.code : typeof e?.name === 'string' ? e.name : 'Error';
        const message = typeof e?.message === 'string' ? e.message : String(error);
        await this.handle
          .append(decideFail(this.state, { code: code.slice(0, 200), message }))
          .then(() => {
            this.failed = true;
          })
          .catch(() => undefined);
      }
      throw error;
    }
  }

  /**
   * Ends this process's run (`RunEnded`, with the signal `stop` was given, unless it failed or was
   * taken over), saves a snapshot, closes the log.
   */
  async close(): Promise<void> {
    clearInterval(this.heartbeatTimer);
    try {
      try {
        const ended = decideEndRun(this.state, { runId: this.runId, signal: this.stopSignal });
        if (ended.length > 0) await this.handle.append(ended);
      } catch (error) {
        // Another process changed the experiment: its run is not this one's to end.
        if (!(error instanceof ConcurrentModificationError)) throw error;
      }
      await this.handle.snapshot();
    } finally {
      await this.rl.close();
    }
  }
}

export { breakpointFolderName, roundOfFolder };

/** The round-log options an experiment's options carry (absent ones stay absent: the environment decides). */
function roundLogOptions(
  options: Pick<ExperimentOptions, 'root' | 'store' | 'blobs' | 'namespace'>,
): OpenRoundLogOptions {
  const picked: OpenRoundLogOptions = {};
  if (options.root !== undefined) picked.root = options.root;
  if (options.store !== undefined) picked.store = options.store;
  if (options.blobs !== undefined) picked.blobs = options.blobs;
  if (options.namespace !== undefined) picked.namespace = options.namespace;
  return picked;
}
