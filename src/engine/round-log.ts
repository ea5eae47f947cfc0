/**
 * The low-level API for any training loop: open a round log under a root, start an experiment,
 * record each round (parameters to the blob store, one `RoundCompleted` event that references
 * them), and ask for the state at the last or any round. The `Experiment` facade is built on it.
 *
 * The event log is opened for each write and closed after it, waiting for the writer lock, so
 * several processes can run experiments in one root; optimistic concurrency on the experiment's
 * stream keeps two processes from running the same experiment.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BlobRef, BlobStore, PutResult } from '../blobs/types.ts';
import { decodeTensors, type TensorSet } from '../codec/tensors.ts';
import { encodeSafetensorsChunks } from '../codec/safetensors.ts';
import { InvalidArgumentError } from '../errors.ts';
import { WrongExpectedRevisionError } from '../log/errors.ts';
import type { EventData, EventLog, RecordedEvent } from '../log/types.ts';
import { resolveRoot, rootLayout, type RootLayout } from '../root.ts';
import { openStore, type LogAccess, type StoreOptions } from './store.ts';
import {
  REGISTRY_STREAM,
  experimentStream,
  type Actor,
  type ExperimentCreated,
  type ExperimentEvent,
  type ExperimentRegistered,
  type FederatedSetup,
  type ForkedFrom,
  type ImportedFrom,
  type Retention,
} from '../model/events.ts';
import {
  checkFolderName,
  checkRoundLimit,
  checkSeed,
  decideCompleteRound,
  decideCreate,
  requireUnderRoundLimit,
  type CompleteRound,
} from '../model/decide/index.ts';
import {
  initialState,
  replay,
  roundCurrent,
  type ExperimentState,
  type RoundRecord,
  type Settings,
} from '../model/state.ts';
import {
  ConcurrentModificationError,
  isUnreadableHistory,
  ExperimentNotFoundError,
  FolderNameReservedError,
  RoundNotFoundError,
  RoundPrunedError,
} from '../model/errors.ts';
import { acceptsConcurrently } from '../model/concurrent.ts';
import { checkEventsToAppend } from '../model/schemas.ts';
import { recordable } from '../model/values.ts';
import { assertBlobsPresent } from './blob-refs.ts';
import {
  assertRegistryWritable,
  checkRegistryWritable,
  hasHistory,
  historyDamaged,
  readHistory,
  readRegistry,
  readRegistryStream,
} from './registry.ts';
import { currentFolder, folderLocator, resolveExperimentName, type FolderLocator } from './names.ts';
import { allocateExperimentFolder, isReservedFolderName } from '../model/names.ts';
import { readSnapshot, writeSnapshot } from './snapshots.ts';
import type { Projection, ProjectionFactory } from './projection.ts';
import { withProjectionLock } from './projection-lock.ts';
import { VERSION } from '../version.ts';

export type OpenRoundLogOptions = Omit<StoreOptions, 'env' | 'clock' | 'newId' | 'lockWaitMs'> & {
  /** The root folder; default `ROUNDLOG_DIR`, else `./var`. */
  root?: string;
  env?: NodeJS.ProcessEnv;
  /** Injected clock for event timestamps. */
  clock?: () => Date;
  /** Injected id source (experiment ids, event ids). */
  newId?: () => string;
  /** Who acts, recorded on creation, resume and rewind. Default: this user, host and process. */
  actor?: Actor;
  /** How long a write waits for another process's writer lock. Default 30 s. */
  lockWaitMs?: number;
  /**
   * The views kept beside the log (breakpoint folders), built once the store is open. Default none:
   * the package entry point's `openRoundLog` adds the breakpoint folders.
   */
  projections?: ProjectionFactory;
  /** Where a relative path naming an experiment is resolved (`openExperiment`). Default the process's. */
  cwd?: string;
};

export type CreateExperimentOptions = {
  /** Folder name under `<root>/experiments`; default `Experiment_NNNN` with the allocated number. */
  folder?: string;
  /** Rounds after which `run()` stops; null for none. Default null. */
  roundLimit?: number | null;
  /** Seed every random draw derives from. Default: a random one, recorded. */
  seed?: number;
  saveBreakpoints?: boolean;
  /** Parameters before the first round. */
  initialParams?: TensorSet | null;
  /** Any serializable settings of the caller's own, kept in the `ExperimentCreated` event. */
  config?: unknown;
  federated?: FederatedSetup | null;
  importedFrom?: ImportedFrom | null;
  /**
   * A retention policy for the experiment's parameters, recorded as a `SettingsChanged` in the same
   * atomic append as its creation. Checked by the caller (`checkRetention`). Default none.
   */
  retention?: Retention | null;
  /** For a fork: its lineage, recorded in the same atomic append as its creation. */
  forkedFrom?: ForkedFrom | null;
};

/** A round to record: `CompleteRound` of the model, with the parameters as tensors (stored first). */
export type RecordRoundOptions = Omit<CompleteRound, 'params'> & {
  params: TensorSet;
  /**
   * The caller leaves `params` unchanged until the returned promise settles: their bytes are then
   * written from the tensors' own memory instead of being copied first (a federated round's
   * aggregate, which nothing else holds). Default false: they are copied before the first await.
   */
  borrowParams?: boolean;
};

export type RoundState = Readonly<{
  round: number;
  params: TensorSet;
  paramsRef: BlobRef;
  state: unknown;
  metrics: Readonly<Record<string, number>>;
  settings: Settings;
  record: RoundRecord;
}>;

export type ExperimentSummary = Readonly<{ number: number; experimentId: string; folder: string; stream: string }>;

export interface RoundLog {
  readonly root: string;
  /** The folders of the root. */
  readonly layout: RootLayout;
  /** The views kept beside the log, updated after each append. */
  readonly projections: readonly Projection[];
  readonly blobs: BlobStore;
  /** Where the history is: the file log of the root, or an EventStoreDB store. */
  readonly log: LogAccess;
  readonly actor: Actor;
  createExperiment(options?: CreateExperimentOptions): Promise<ExperimentHandle>;
  /**
   * By id, by stream name, by folder name as `ls` lists it (`Experiment_0003`, or the name of a
   * renamed folder), or by path: an experiment folder or a breakpoint folder (absolute or relative
   * to `cwd`), even if moved. The one resolver every command uses: `src/engine/names.ts`.
   */
  openExperiment(experiment: string): Promise<ExperimentHandle>;
  /**
   * Where experiments' folders are now (`folderLocator`, `src/engine/names.ts`): the recorded folder,
   * or the folder it was moved to under `<root>/experiments`. One listing of that folder per locator.
   */
  folderLocator(): Promise<FolderLocator>;
  listExperiments(): Promise<readonly ExperimentSummary[]>;
  /** Runs `fn` with the log open for appends (on the file log: under the writer lock). */
  withWriter<T>(fn: (log: EventLog) => Promise<T>): Promise<T>;
  /** Runs `fn` with the log open for reads. */
  withReader<T>(fn: (log: EventLog) => Promise<T>): Promise<T>;
  /**
   * Encodes tensors into the blob store; their bytes are taken when it is called. With `{ borrow:
   * true }` they are read a slice at a time as they are written instead (no copy of the whole set
   * held meanwhile): the caller must not change them until the promise settles.
   */
  putTensors(tensors: TensorSet, options?: PutTensorsOptions): Promise<BlobRef>;
  /** `putTensors`, also saying whether this put stored the bytes (`created: false`: they were there already). */
  storeTensors(tensors: TensorSet, options?: PutTensorsOptions): Promise<PutResult>;
  /** Tensors back from the blob store, their hash checked. */
  getTensors(ref: BlobRef): Promise<TensorSet>;
  close(): Promise<void>;
}

export type PutTensorsOptions = {
  /** Read the tensors as they are written rather than copy them when called (see `putTensors`). */
  borrow?: boolean;
};

/** Bytes of each piece a borrowed put copies at a time. */
const BORROWED_SLICE_BYTES = 4 * 1024 * 1024;

/** The chunks as an async iterable of views of at most `BORROWED_SLICE_BYTES` (the put copies each as it comes). */
async function* slicesOf(chunks: readonly Buffer[]): AsyncGenerator<Buffer> {
  for (const chunk of chunks) {
    for (let from = 0; from < chunk.length; from += BORROWED_SLICE_BYTES) {
      yield chunk.subarray(from, Math.min(chunk.length, from + BORROWED_SLICE_BYTES));
    }
  }
}

export async function openRoundLog(options: OpenRoundLogOptions = {}): Promise<RoundLog> {
  const root = resolveRoot(options.root, options.env);
  const clock = options.clock ?? (() => new Date());
  const newId = options.newId ?? randomUUID;
  const { log, blobs } = await openStore(root, { ...options, clock, newId });
  const layout = rootLayout(root);
  const projections = options.projections?.({ root, layout, blobs }) ?? [];
  return new StoreRoundLog(root, layout, projections, log, blobs, clock, newId, options);
}

class StoreRoundLog implements RoundLog {
  readonly actor: Actor;
  private readonly cwd: string;

  constructor(
    readonly root: string,
    readonly layout: RootLayout,
    readonly projections: readonly Projection[],
    readonly log: LogAccess,
    readonly blobs: BlobStore,
    readonly clock: () => Date,
    readonly newId: () => string,
    options: OpenRoundLogOptions,
  ) {
    this.actor = options.actor ?? { user: os.userInfo().username, host: os.hostname(), pid: process.pid };
    this.cwd = options.cwd ?? process.cwd();
  }

  withWriter<T>(fn: (log: EventLog) => Promise<T>): Promise<T> {
    return this.log.withWriter(fn);
  }

  withReader<T>(fn: (log: EventLog) => Promise<T>): Promise<T> {
    return this.log.withReader(fn);
  }

  async listExperiments(): Promise<readonly ExperimentSummary[]> {
    return this.withReader(readRegistry);
  }

  async createExperiment(given: CreateExperimentOptions = {}): Promise<ExperimentHandle> {
    // Taken before the first await (the initial parameters by their put): the caller may change
    // its config or tensors once this is called.
    const { initialParams: tensors, ...rest } = given;
    const options = recordable(rest, '');
    // Checked before the initial parameters are stored: a refused creation stores nothing.
    const roundLimit = checkRoundLimit(options.roundLimit ?? null);
    const seed = checkSeed(options.seed ?? randomInt(0, 2 ** 31));
    if (options.folder !== undefined) {
      checkFolderName(options.folder);
      if (isReservedFolderName(options.folder)) throw new FolderNameReservedError('folder', options.folder);
    }
    // A registry that cannot be read refuses the creation before anything is stored (checked again
    // under the writer lock, where the registration is decided).
    // The initial parameters are encoded and copied first, before the check's await: the caller may
    // change its tensors as soon as this is called.
    const encoded = tensors ? encodeSafetensorsChunks(tensors) : null;
    const owned = encoded && { encoding: encoded.encoding, chunks: encoded.chunks.map((c) => Buffer.from(c)) };
    await checkRegistryWritable(this);
    const initialParams = owned ? (await this.blobs.putStream(owned.chunks, { encoding: owned.encoding })).ref : null;
    // On the file log the writer lock orders creations. On EventStoreDB two processes may read the
    // registry at once: the registration of the second fails its expected revision, and it tries
    // again under a new id and number (the stream it wrote is unregistered: nothing lists it).
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.createOnce(options, roundLimit, seed, initialParams);
      } catch (error) {
        if (!(error instanceof RegistryConflict) || attempt >= CREATE_ATTEMPTS)
          throw error instanceof RegistryConflict ? error.cause : error;
      }
    }
  }

  private async createOnce(
    options: CreateExperimentOptions,
    roundLimit: number | null,
    seed: number,
    initialParams: BlobRef | null,
  ): Promise<ExperimentHandle> {
    const experimentId = this.newId();
    const stream = experimentStream(experimentId);
    const events = await this.withWriter(async (log) => {
      // The number comes from the registry stream, past every number in use, so two experiments
      // never share one; its folder name is one no experiment has (registered, recorded by a
      // resume, or on disk), so a taken `Experiment_NNNN` is passed over, never refused for good.
      const registry = await readRegistryStream(log);
      assertRegistryWritable(registry);
      const from = Math.max(registry.entries.length, ...registry.entries.map((e) => e.number + 1));
      const { number, folder: numbered } =
        options.folder === undefined
          ? allocateExperimentFolder(from, await this.takenFolders(log, registry.entries))
          : { number: from, folder: options.folder };
      const folder = options.folder ?? numbered;
      const registered: ExperimentRegistered = { v: 1, number, experimentId, folder, stream };
      const first = decideCreate(
        initialState,
        {
          experimentId,
          number,
          folder,
          roundLimit,
          seed,
          saveBreakpoints: options.saveBreakpoints ?? false,
          initialParams,
          config: options.config ?? null,
          federated: options.federated ?? null,
          importedFrom: options.importedFrom ?? null,
          retention: options.retention ?? null,
          forkedFrom: options.forkedFrom ?? null,
          roundlogVersion: VERSION,
          foldersInUse: registry.entries.map((e) => e.folder),
        },
        { actor: this.actor },
      );
      checkEventsToAppend([...first, { type: 'ExperimentRegistered', data: registered }]);
      // Under the writer lock: retention in another process may have deleted a blob stored above.
      await assertBlobsPresent(this.blobs, folder, first);
      // The experiment's stream first, then its registration: a crash in between leaves an
      // unregistered stream, which nothing lists, never a registration without a history.
      await log.append(stream, first as readonly EventData[], { expectedRevision: 'no_stream' });
      try {
        await log.append(REGISTRY_STREAM, [{ type: 'ExperimentRegistered', data: registered }], {
          expectedRevision: registry.lastRevision ?? 'no_stream',
        });
      } catch (error) {
        if (error instanceof WrongExpectedRevisionError) throw new RegistryConflict(error);
        throw error;
      }
      return (await log.readStream(stream)).events;
    });
    return new ExperimentHandle(this, stream, replay(events), -1n);
  }

  /** Every folder name an experiment has: registered, recorded by a resume, or on disk under `experiments`. */
  private async takenFolders(log: EventLog, entries: readonly ExperimentRegistered[]): Promise<Set<string>> {
    const taken = new Set<string>(await fs.readdir(this.layout.experiments).catch(() => [] as string[]));
    for (const entry of entries) {
      taken.add(entry.folder);
      if (!(await hasHistory(log, entry.stream))) continue;
      // A damaged history still has the folder it was registered with (added above).
      const now = await currentFolder(log, entry, this.root).catch((error: unknown) => {
        if (isUnreadableHistory(error)) return null;
        throw error;
      });
      if (now !== null) taken.add(now);
    }
    return taken;
  }

  async openExperiment(experiment: string): Promise<ExperimentHandle> {
    const { stream, state, snapshotRevision } = await this.withReader(async (log) => {
      const context = {
        root: this.root,
        experimentsDir: this.layout.experiments,
        cwd: this.cwd,
        projections: this.projections,
      };
      const entry = await resolveExperimentName(log, context, experiment);
      if (entry === null) throw new ExperimentNotFoundError(experiment, this.root);
      const found = entry;
      try {
        // From the snapshot when it checks out against the log: only the events after it are
        // decoded, and the records before it are checked (damage there is damage of this history).
        const snapshot = await readSnapshot(this.root, found.experimentId, found.stream);
        if (snapshot !== null) {
          const tail = await log.readStream(found.stream, { fromRevision: snapshot.revision }).catch(() => null);
          const at = tail?.events[0];
          if (at !== undefined && at.revision === snapshot.revision && at.position === snapshot.position) {
            await log.checkStream?.(found.stream, { toRevision: snapshot.revision });
            return {
              stream: found.stream,
              state: replay(tail!.events.slice(1), snapshot.state),
              snapshotRevision: snapshot.revision,
            };
          }
        }
        return {
          stream: found.stream,
          state: replay((await log.readStream(found.stream)).events),
          snapshotRevision: -1n,
        };
      } catch (error) {
        throw historyDamaged(error, found);
      }
    });
    const located = await (await this.folderLocator())(state.created!.experimentId, state.folder);
    return new ExperimentHandle(this, stream, state, snapshotRevision, located);
  }

  async folderLocator(): Promise<FolderLocator> {
    return folderLocator(this.layout.experiments, this.projections);
  }

  async putTensors(tensors: TensorSet, options: PutTensorsOptions = {}): Promise<BlobRef> {
    return (await this.storeTensors(tensors, options)).ref;
  }

  async storeTensors(tensors: TensorSet, options: PutTensorsOptions = {}): Promise<PutResult> {
    // Encoded, and the chunks handed to the put (which copies them), before the first await.
    // Stored as a safetensors file: the blob is what a breakpoint folder links as params.safetensors.
    const { encoding, chunks } = encodeSafetensorsChunks(tensors);
    const source = options.borrow === true ? slicesOf(chunks) : chunks;
    return this.blobs.putStream(source, { encoding });
  }

  async getTensors(ref: BlobRef): Promise<TensorSet> {
    // Bounded by what the record says: exactly `ref.bytes` stored, the header's tensors within them.
    const bytes = await this.blobs.get(ref);
    return decodeTensors(ref.encoding, bytes, { source: `blob ${ref.sha256}`, storedBytes: ref.bytes });
  }

  async close(): Promise<void> {
    try {
      await this.blobs.close();
    } finally {
      await this.log.close();
    }
  }
}

/** How many times a creation is tried when other processes register experiments at the same moment. */
const CREATE_ATTEMPTS = 20;

class RegistryConflict extends Error {
  constructor(override readonly cause: WrongExpectedRevisionError) {
    super(cause.message);
  }
}

/** One experiment: its state, kept in step with its stream, and the operations that extend it. */
/** Events between two snapshots of an experiment's state. */
const SNAPSHOT_EVERY = 100;

/** How many times an append is made again after events a run accepts beside it (`foldConcurrent`). */
const CONCURRENT_APPEND_ATTEMPTS = 20;

export class ExperimentHandle {
  constructor(
    readonly roundLog: RoundLog,
    readonly stream: string,
    private current: ExperimentState,
    /** Revision of the newest snapshot known to be on disk. */
    private snapshotRevision: bigint,
    /** Where the experiment's folder is now (`folderLocator`), when it differs from the recorded one. */
    located: string = current.folder,
  ) {
    this.located = { recorded: current.folder, now: located };
  }

  /** The folder found when opened, for the recorded folder it stands in for (until an event records another). */
  private located: Readonly<{ recorded: string; now: string }>;
  private view: { of: ExperimentState; state: ExperimentState } | null = null;

  /** Saves the state as a snapshot, so the next open replays from here. */
  async snapshot(): Promise<void> {
    if (this.current.revision <= this.snapshotRevision) return;
    const { revision, position } = this.current;
    await writeSnapshot(this.roundLog.root, this.id, { stream: this.stream, revision, position, state: this.current });
    this.snapshotRevision = revision;
  }

  /**
   * The experiment's state, its `folder` where the folder is now: the recorded one, or the one it
   * was moved to under `<root>/experiments` (found when the handle was opened; see `recordedFolder`).
   */
  get state(): ExperimentState {
    const { recorded, now } = this.located;
    if (recorded === now || this.current.folder !== recorded) return this.current;
    if (this.view?.of !== this.current) this.view = { of: this.current, state: { ...this.current, folder: now } };
    return this.view.state;
  }

  /** The experiment as a damaged history names it (`readHistory`). */
  private get named(): { folder: string; stream: string } {
    return { folder: this.created.folder, stream: this.stream };
  }

  /** The folder the log records (the last `Resumed.folder`, else the one it was created with). */
  get recordedFolder(): string {
    return this.current.folder;
  }

  get id(): string {
    return this.created.experimentId;
  }

  get created(): ExperimentCreated {
    return this.current.created!;
  }

  roundCurrent(): number {
    return roundCurrent(this.current);
  }

  /** Reads the stream again, for changes made by other handles or processes. */
  async refresh(): Promise<ExperimentState> {
    const from = this.current.revision + 1n;
    const events = await this.roundLog.withReader(
      async (log) => (await readHistory(log, this.named, { fromRevision: from })).events,
    );
    this.current = replay(events, this.current);
    return this.state;
  }

  /**
   * Appends events to the experiment's stream, expecting it unchanged since this handle last saw
   * it. Events other processes may append beside a run (`acceptsConcurrently`: retention's
   * `RoundsPruned`, a fork's `Forked`) are folded and the append made again after them; anything
   * else in between is a `ConcurrentModificationError`. Returns the recorded events of this append.
   * The events are copied when it is called.
   */
  append(given: readonly ExperimentEvent[]): Promise<readonly RecordedEvent[]> {
    // Taken before the first await: the caller may change its events once this is called.
    let events: readonly ExperimentEvent[];
    try {
      events = recordable(given, 'events');
      // What is appended must read back: the schemas `upcast` reads with.
      checkEventsToAppend(events);
    } catch (error) {
      return Promise.reject(error);
    }
    // One append at a time per handle (a run's heartbeat may come while a round appends).
    const next = this.appending.then(() => this.appendNow(events));
    this.appending = next.catch(() => undefined);
    return next;
  }

  /** Appends queued by `append`, one after the other. */
  private appending: Promise<unknown> = Promise.resolve();

  private async appendNow(events: readonly ExperimentEvent[]): Promise<readonly RecordedEvent[]> {
    const recorded = await this.roundLog.withWriter(async (log) => {
      // Under the writer lock: retention in another process may have deleted a blob stored before it.
      await assertBlobsPresent(this.roundLog.blobs, this.created.folder, events, this.current.remote);
      for (let attempt = 1; ; attempt++) {
        const expected = this.current.revision;
        try {
          await log.append(this.stream, events as readonly EventData[], {
            expectedRevision: expected < 0n ? 'no_stream' : expected,
          });
          return (await readHistory(log, this.named, { fromRevision: expected + 1n })).events;
        } catch (error) {
          if (!(error instanceof WrongExpectedRevisionError)) throw error;
          // On EventStoreDB (no lock) pruning may keep coming: a bounded number of tries.
          if (attempt >= CONCURRENT_APPEND_ATTEMPTS || !(await this.foldConcurrent(log))) {
            throw new ConcurrentModificationError(
              this.created.folder,
              expected < 0n ? 'no_stream' : expected,
              error.actual,
              error,
            );
          }
        }
      }
    });
    this.current = replay(recorded, this.current);
    if (this.current.revision - this.snapshotRevision >= SNAPSHOT_EVERY) await this.snapshot();
    if (recorded.some((e) => e.type === 'RoundCompleted' && (e.data as { breakpoint?: unknown }).breakpoint === true))
      await this.followMove();
    // Under the projection lock: a `project --follow` in another process writes these folders too.
    const projections = this.roundLog.projections;
    if (projections.length > 0) {
      await withProjectionLock(this.roundLog.layout.experiments, async () => {
        for (const projection of projections) await projection.apply(this.state, recorded);
      });
    }
    return recorded;
  }

  /**
   * Before a breakpoint folder is written: when the experiment's folder is gone since the handle
   * was opened (moved while it runs, `mv Experiment_0000 mydir`), where it is now (`folderLocator`),
   * so the folder is written into the moved folder, never into a new one under the old name.
   */
  private async followMove(): Promise<void> {
    const dir = path.join(this.roundLog.layout.experiments, this.state.folder);
    if ((await fs.lstat(dir).catch(() => null)) !== null) return;
    const now = await (await this.roundLog.folderLocator())(this.id, this.current.folder);
    this.located = { recorded: this.current.folder, now };
    this.view = null;
  }

  /**
   * Reads what other processes appended since this handle last saw the stream and folds it when
   * every event is one a run accepts beside it (`acceptsConcurrently`); returns false, folding
   * nothing, otherwise. `log` is an open log (under the writer lock on the file log).
   */
  async foldConcurrent(log: EventLog): Promise<boolean> {
    const since = (await readHistory(log, this.named, { fromRevision: this.current.revision + 1n })).events;
    if (!acceptsConcurrently(since)) return false;
    this.current = replay(since, this.current);
    return true;
  }

  /**
   * Records a completed round: parameters to the blob store, then one atomic append. The
   * parameters, state, metrics and nodes are taken when it is called: the caller may change them
   * (train the next round) at once, without waiting for the promise.
   */
  async recordRound(options: RecordRoundOptions): Promise<RoundRecord> {
    const round = this.roundCurrent();
    if (options.round !== undefined && options.round !== round) {
      throw new InvalidArgumentError(
        'round',
        `must be the next round of experiment ${this.created.folder}, ${round}`,
        options.round,
      );
    }
    // Everything the caller handed over is taken before the first await (the parameters encoded and
    // their bytes copied by the put, the rest checked and copied): a training loop that changes its
    // weights or optimizer state for the next round without waiting for this promise records what
    // it passed. A value the log or the breakpoint's JSON cannot hold is refused here, before any write.
    // Over the round limit, refused before the parameters are stored (the decision checks it again).
    requireUnderRoundLimit(this.current, this.created);
    const { params: tensors, borrowParams, ...rest } = options;
    const command = recordable(rest, '');
    const stored = this.roundLog.putTensors(tensors, { borrow: borrowParams === true });
    const params = await stored;
    const events = decideCompleteRound(this.current, { ...command, params });
    // The projections write the round's breakpoint folder once the append is durable.
    await this.append(events);
    return this.current.rounds[round]!;
  }

  /**
   * The state after round `round` (0-based) of the current branch, or after the last one.
   * A round whose parameters retention deleted is a `RoundPrunedError` saying when.
   */
  async loadRound(round: number | 'last' = 'last'): Promise<RoundState> {
    const index = round === 'last' ? this.roundCurrent() - 1 : round;
    const record = this.current.rounds[index];
    if (record === undefined) throw new RoundNotFoundError(this.created.folder, index, this.roundCurrent());
    const pruned = this.current.pruned[String(record.position)];
    if (pruned !== undefined) throw new RoundPrunedError(this.current.folder, index, pruned.timestamp);
    return {
      round: index,
      params: await this.roundLog.getTensors(record.params),
      paramsRef: record.params,
      state: record.state,
      metrics: record.metrics,
      settings: record.settings,
      record,
    };
  }

  /** Tensors stored under a ref (initial parameters, a node's reply). */
  async tensors(ref: BlobRef): Promise<TensorSet> {
    return this.roundLog.getTensors(ref);
  }
}

export { initialState };
