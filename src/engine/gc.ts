/**
 * Applying retention and garbage collection: `gc` (`roundlog gc`) over the experiments of a root,
 * `applyRetention` from an experiment's process, and the pruning both do.
 *
 * Pruning a round deletes its parameter bytes: the blobs of its `RoundCompleted` (the aggregated
 * parameters) and of its `NodeReplied` events (each node's reply), and its breakpoint folders (on
 * the branch and in `superseded/`). Every event stays; one `RoundsPruned` event per experiment and
 * run records which rounds (by index and `RoundCompleted` log position), the policy and who.
 *
 * Blobs are reference-counted across the whole root: a blob is deleted only when no event of any
 * stream references it outside pruned rounds. Initial parameters, training plan sources, imported
 * breakpoints' creation data, anything an event carries outside a round, and the rounds that are
 * kept (of any experiment, on any branch) hold their blobs. Blobs that no event references at all
 * (stored by a round that never committed) are not retention's business and are left alone.
 *
 * Order and crash safety: the `RoundsPruned` event is appended first, then the blobs are deleted,
 * both under the log's writer lock; then the folders are removed (each renamed to a temp name
 * first, so a crash never leaves half a folder under a breakpoint name). A crash after the event
 * leaves bytes that `gc` deletes on its next run. Writers check under the same lock that the blobs
 * their events reference still exist (`assertBlobsPresent`), so a blob stored by a concurrent
 * process is never deleted out from under its commit.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { EventData, EventLog } from '../log/types.ts';
import type { Retention } from '../model/events.ts';
import { decidePrune } from '../model/decide/prune.ts';
import { checkEventsToAppend } from '../model/schemas.ts';
import { ConcurrentModificationError, ExperimentNotFoundError } from '../model/errors.ts';
import { folderLocator, locatedState } from './names.ts';
import type { Projection } from './projection.ts';
import { checkRetention, planRetention, type RoundRef } from '../model/retention.ts';
import { readRegistryStream } from './registry.ts';
import { RootIndex } from './root-index.ts';
import { openRoundLog, type ExperimentHandle, type OpenRoundLogOptions, type RoundLog } from './round-log.ts';

/** What retention did (or, in a dry run, would do) to one experiment. */
export type ExperimentPruneReport = Readonly<{
  experimentId: string;
  folder: string;
  stream: string;
  /** The policy applied, and where it came from; null when the experiment has none and none was given. */
  retention: Retention | null;
  policyFrom: 'option' | 'experiment' | 'none';
  /** Rounds pruned by this run. */
  pruned: readonly RoundRef[];
  kept: readonly RoundRef[];
  alreadyPruned: readonly RoundRef[];
  /** The `RoundsPruned` event appended, or null (nothing to prune, or a dry run). */
  event: Readonly<{ revision: bigint; position: bigint }> | null;
}>;

export type PruneReport = Readonly<{
  root: string;
  dryRun: boolean;
  experiments: readonly ExperimentPruneReport[];
  /** Blobs deleted: nothing but pruned rounds referenced them. */
  blobsDeleted: ReadonlyArray<Readonly<{ sha256: string; bytes: number }>>;
  /** Blobs of pruned rounds kept, because a kept round or other data of some experiment references them. */
  blobsStillReferenced: number;
  /** Breakpoint folders of pruned rounds removed (absolute paths). */
  foldersRemoved: readonly string[];
  /**
   * Experiments whose history cannot be read (`UnreadableHistoryError`, naming the experiment):
   * left alone, every blob they reference kept; the others are pruned as ever.
   */
  damaged: ReadonlyArray<Readonly<{ folder: string; stream: string; code: string; message: string }>>;
  /** Bytes that left the disk: files whose last link was removed (a blob and its folder links count once). */
  bytesFreed: number;
}>;

export type GcOptions = OpenRoundLogOptions & {
  /** One experiment (id, folder name, stream or path); default every experiment of the root. */
  experiment?: string;
  /** The policy to apply; default each experiment's own (`SettingsChanged.retention`), none if unset. */
  retention?: Retention;
  /** Report what would be pruned and deleted; change nothing. */
  dryRun?: boolean;
};

/**
 * `roundlog gc`: applies retention to the experiments of a root, removes what it prunes, and sweeps
 * what earlier runs left (blobs and folders of rounds already pruned, e.g. after a crash).
 */
export async function gc(options: GcOptions = {}): Promise<PruneReport> {
  const retention = options.retention === undefined ? undefined : checkRetention(options.retention);
  const rl = await openRoundLog(options);
  try {
    const only = options.experiment === undefined ? null : (await rl.openExperiment(options.experiment)).stream;
    const run = async (log: EventLog) => {
      const index = new RootIndex();
      await index.catchUp(log);
      // Every registered experiment with a history (a registration without one holds nothing).
      // A registry that cannot be read does not hide an experiment: they are found from their streams.
      const entries = index.registryDamaged ? (await readRegistryStream(log)).entries : index.registry;
      const registered = only === null ? entries.filter((e) => index.state(e.stream) !== null) : [];
      const damaged = registered.flatMap((e) => {
        const damage = index.damage(e.stream);
        return damage === null
          ? []
          : [{ folder: e.folder, stream: e.stream, code: damage.code, message: damage.message }];
      });
      const streams = only === null ? registered.map((e) => e.stream).filter((s) => index.damage(s) === null) : [only];
      const dryRun = options.dryRun ?? false;
      const planned = await pruneWithIndex(rl, log, index, streams, { retention, dryRun, sweep: true, expected: null });
      return { ...planned, report: { ...planned.report, damaged } };
    };
    const planned = options.dryRun ? await rl.withReader(run) : await rl.withWriter(run);
    return await finish(rl, planned);
  } finally {
    await rl.close();
  }
}

/**
 * Applies an experiment's retention policy (or `retention`) now, from its process: prunes the
 * rounds outside it and deletes what only they referenced. The handle is refreshed. `index`, kept
 * between calls, makes each call read only the log appended since the last one.
 */
export async function applyRetention(
  handle: ExperimentHandle,
  options: { retention?: Retention; index?: RootIndex; dryRun?: boolean } = {},
): Promise<PruneReport> {
  const retention = options.retention === undefined ? undefined : checkRetention(options.retention);
  const rl = handle.roundLog;
  const index = options.index ?? new RootIndex();
  const run = async (log: EventLog) => {
    await index.catchUp(log);
    // Pruning by gc in another process since this handle last wrote is not a conflict.
    await handle.foldConcurrent(log);
    return pruneWithIndex(rl, log, index, [handle.stream], {
      retention,
      dryRun: options.dryRun ?? false,
      sweep: false,
      expected: handle.state.revision,
    });
  };
  const planned = options.dryRun ? await rl.withReader(run) : await rl.withWriter(run);
  const report = await finish(rl, planned);
  await handle.refresh();
  return report;
}

type Planned = {
  report: Omit<PruneReport, 'foldersRemoved' | 'bytesFreed'>;
  /** Views (breakpoint folders) to remove after the lock, and the bytes counted for them. */
  views: Array<{ path: string; projection: Projection }>;
  bytesFreed: number;
};

async function pruneWithIndex(
  rl: RoundLog,
  log: EventLog,
  index: RootIndex,
  streams: readonly string[],
  options: { retention: Retention | undefined; dryRun: boolean; sweep: boolean; expected: bigint | null },
): Promise<Planned> {
  const experiments: ExperimentPruneReport[] = [];
  const newlyPruned = new Map<string, Set<string>>();
  const allPruned = new Map<string, Set<string>>();
  // Where each folder is now: a folder moved under experiments/ is the one reported, and the one
  // whose views are removed (never the name the log records until a resume records the move).
  const locate = folderLocator(rl.layout.experiments, rl.projections);
  for (const stream of streams) {
    const state = index.state(stream);
    if (state === null) throw new ExperimentNotFoundError(stream, rl.root);
    const damage = index.damage(stream);
    if (damage !== null) throw damage;
    const folder = await locate(state.created!.experimentId, state.folder);
    if (options.expected !== null && state.revision !== options.expected) {
      throw new ConcurrentModificationError(folder, options.expected, state.revision);
    }
    const policy = options.retention ?? state.settings.retention;
    const base = { experimentId: state.created!.experimentId, folder, stream };
    if (policy === null) {
      experiments.push({
        ...base,
        retention: null,
        policyFrom: 'none',
        pruned: [],
        kept: [],
        alreadyPruned: [],
        event: null,
      });
      if (options.sweep) allPruned.set(stream, new Set(Object.keys(state.pruned)));
      continue;
    }
    const protectedPositions = index.protectedPositions(stream);
    const plan = planRetention(state, policy, protectedPositions);
    let event: ExperimentPruneReport['event'] = null;
    if (!options.dryRun) {
      const pruned = decidePrune(state, { retention: policy, protectedPositions }, { actor: rl.actor });
      if (pruned.length > 0) {
        checkEventsToAppend(pruned);
        const result = await log.append(stream, pruned as readonly EventData[], { expectedRevision: state.revision });
        event = { revision: result.nextExpectedRevision, position: result.lastPosition };
      }
    }
    const fresh = new Set(plan.prune.map((r) => r.position));
    newlyPruned.set(stream, fresh);
    allPruned.set(stream, new Set([...Object.keys(state.pruned), ...fresh]));
    experiments.push({
      ...base,
      retention: policy,
      policyFrom: options.retention === undefined ? 'experiment' : 'option',
      pruned: plan.prune,
      kept: plan.keep,
      alreadyPruned: plan.alreadyPruned,
      event,
    });
  }
  if (!options.dryRun) await index.catchUp(log);
  const candidates = options.sweep ? allPruned : newlyPruned;
  const { deletable, stillReferenced } = index.unreferencedBlobs(candidates, options.dryRun ? newlyPruned : new Map());

  // Views of pruned rounds (breakpoint folders, on the branch and in superseded/).
  const views: Array<{ path: string; projection: Projection }> = [];
  for (const stream of streams) {
    const state = await locatedState(locate, index.state(stream)!);
    const positions = candidates.get(stream);
    if (positions === undefined || positions.size === 0) continue;
    for (const projection of rl.projections) {
      for (const view of await projection.viewsOfRounds(state, positions)) views.push({ path: view, projection });
    }
  }
  const folders = views.map((v) => v.path);

  const blobFiles = new Map<string, string>();
  const storedElsewhere: string[] = [];
  for (const sha of [...deletable].sort()) {
    const file = rl.blobs.fileOf(sha);
    if (file === null) storedElsewhere.push(sha);
    else blobFiles.set(sha, file);
  }
  const sizes = await blobSizes(blobFiles);
  // A store without files (blobs in EventStoreDB streams): the length its references record.
  for (const sha of storedElsewhere) {
    if (await rl.blobs.has(sha)) sizes.set(sha, index.blobBytes.get(sha) ?? 0);
  }
  const bytesFreed =
    (await bytesReleased(
      [...blobFiles.keys()].filter((sha) => sizes.has(sha)).map((sha) => blobFiles.get(sha)!),
      folders,
    )) + storedElsewhere.reduce((sum, sha) => sum + (sizes.get(sha) ?? 0), 0);
  const blobsDeleted: Array<{ sha256: string; bytes: number }> = [];
  for (const [sha256, bytes] of sizes) {
    // Under the writer lock: no writer can append a reference to it meanwhile (see blob-refs.ts).
    if (!options.dryRun && !(await rl.blobs.delete(sha256)).deleted) continue;
    blobsDeleted.push({ sha256, bytes });
  }
  return {
    report: {
      root: rl.root,
      dryRun: options.dryRun,
      experiments,
      blobsDeleted,
      blobsStillReferenced: stillReferenced.size,
      damaged: [],
    },
    views,
    bytesFreed,
  };
}

async function finish(rl: RoundLog, planned: Planned): Promise<PruneReport> {
  const removed: string[] = [];
  for (const view of planned.views) {
    if (!planned.report.dryRun) await view.projection.removeView(view.path);
    removed.push(view.path);
  }
  return { ...planned.report, foldersRemoved: removed, bytesFreed: planned.bytesFreed };
}

async function blobSizes(files: ReadonlyMap<string, string>): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (const [sha, file] of files) {
    const stat = await fs.lstat(file).catch(() => null);
    if (stat !== null) sizes.set(sha, stat.size);
  }
  return sizes;
}

/** Bytes of the inodes whose every link is among `files` and the files of `folders`. */
async function bytesReleased(files: readonly string[], folders: readonly string[]): Promise<number> {
  const all = [...files];
  for (const folder of folders) {
    for (const entry of await fs.readdir(folder, { withFileTypes: true, recursive: true }).catch(() => [])) {
      if (entry.isFile()) all.push(path.join(entry.parentPath, entry.name));
    }
  }
  const links = new Map<string, { removed: number; nlink: number; size: number }>();
  for (const file of all) {
    const stat = await fs.lstat(file).catch(() => null);
    if (stat === null) continue;
    const key = `${stat.dev}:${stat.ino}`;
    const seen = links.get(key) ?? { removed: 0, nlink: stat.nlink, size: stat.size };
    seen.removed++;
    links.set(key, seen);
  }
  let bytes = 0;
  for (const { removed, nlink, size } of links.values()) if (removed >= nlink) bytes += size;
  return bytes;
}
