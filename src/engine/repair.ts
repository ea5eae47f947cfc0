/**
 * `roundlog verify --repair`: heals what can be healed from good copies, and names what cannot.
 *
 * 1. `verifyRoot` finds the damage: blobs that no longer hash to their name, blobs kept rounds
 *    reference and the store lacks, view files (breakpoint folders) that do not hold their bytes.
 * 2. Each view heals the store and itself (`Projection.repair`): a damaged or missing blob is put
 *    again from a view file that holds its bytes (a copy, never the store's own file: a hard link
 *    shares its damage), and the put replaces the damaged file atomically; then view files whose
 *    bytes are not their blob's are linked again from the store where the store's blob is intact,
 *    and every experiment is projected from the log (folders whose manifest is unreadable are
 *    moved aside and written again).
 * 3. Snapshots that do not check out against the log (damaged, of another release, or of an
 *    event the log does not hold there) are written again from the log. Before all this, the
 *    log's own caches that verify named (file log): every segment index (`.idx`) is written again
 *    from its segment's records, and a damaged heads checkpoint is removed (the log reads the
 *    records instead, and writes it again at its next segment seal).
 * 4. `verifyRoot` again: what it still finds cannot be healed from this root. Every blob still
 *    damaged or missing is named with the experiments and rounds that reference it.
 *
 * The log's records are never changed here: they are the truth; verify reports their damage.
 */
import { promises as fs } from 'node:fs';
import { loadProjectionCheckpoint } from './project.ts';
import path from 'node:path';
import { emitFileLogWarning, openFileEventLog } from '../log/file/index.ts';
import { HEADS_FILE } from '../log/file/format.ts';
import type { EventLog, RecordedEvent } from '../log/types.ts';
import type { ExperimentRegistered } from '../model/events.ts';
import { replay } from '../model/state.ts';
import { resolveRoot, rootLayout } from '../root.ts';
import { ExperimentFolderAmbiguousError, ExperimentFolderTakenError, folderLocator, locatedState } from './names.ts';
import type { VerifiedExperiment, ViewProblem } from './projection.ts';
import { readRegistryStream } from './registry.ts';
import { RootIndex, type BlobUser } from './root-index.ts';
import { readSnapshot, sameState, snapshotFile, writeSnapshot } from './snapshots.ts';
import { openStore, storeOf } from './store.ts';
import { isFileBlobStore, verifyRoot, type VerifyOptions, type VerifyReport } from './verify.ts';

/** A blob still damaged or missing after the repair, with who references it. */
export type UnhealableBlob = Readonly<{
  sha256: string;
  /** `damaged` (the store's file does not hash to its name) or `missing`. */
  state: 'damaged' | 'missing';
  referencedBy: readonly BlobUser[];
}>;

export type RepairReport = Readonly<{
  root: string;
  /** What verify found before anything was changed. */
  before: VerifyReport;
  blobsHealed: ReadonlyArray<Readonly<{ sha256: string; from: string }>>;
  filesRelinked: ReadonlyArray<Readonly<{ file: string; sha256: string }>>;
  foldersWritten: readonly string[];
  /** Snapshot files written again from the log. */
  snapshotsRewritten: readonly string[];
  /**
   * The projection checkpoint, removed when verify found it damaged (a cache: `project --follow`
   * then projects from the beginning and writes it again); null when it was not.
   */
  projectionCheckpointRemoved: string | null;
  /** Temp files of uploads whose writer is gone (`<blobs>/tmp`), removed: path and size. */
  tempFilesRemoved: ReadonlyArray<Readonly<{ file: string; bytes: number }>>;
  /** The log's caches verify named as damaged: segment indexes written again, a heads checkpoint removed. */
  logCachesRebuilt: ReadonlyArray<Readonly<{ file: string; action: 'rebuilt' | 'removed' }>>;
  unhealable: readonly UnhealableBlob[];
  /** What a view could not heal, as it said. */
  problems: readonly ViewProblem[];
  /** What verify finds after the repair: the truth about the root now. */
  after: VerifyReport;
  ok: boolean;
}>;

export async function repairRoot(options: VerifyOptions = {}): Promise<RepairReport> {
  const root = resolveRoot(options.root, options.env);
  const layout = rootLayout(root);
  const before = await verifyRoot(options);
  const damaged = new Set<string>();
  for (const p of before.blobs.problems) if ('sha256' in p && typeof p.sha256 === 'string') damaged.add(p.sha256);
  for (const p of before.references.problems) damaged.add(p.sha256);

  const blobsHealed: Array<{ sha256: string; from: string }> = [];
  const filesRelinked: Array<{ file: string; sha256: string }> = [];
  const foldersWritten: string[] = [];
  const snapshotsRewritten: string[] = [];
  const problems: ViewProblem[] = [];
  const index = new RootIndex();

  const logCachesRebuilt = await rebuildLogCaches(root, options, before);
  const store = await openStore(root, options);
  let log: EventLog | null = null;
  let tempFilesRemoved: ReadonlyArray<{ file: string; bytes: number }> = [];
  try {
    if (isFileBlobStore(store.blobs)) {
      tempFilesRemoved = (await store.blobs.removeStaleTempFiles()).map(({ file, bytes }) => ({ file, bytes }));
    }
    log = await store.log.openFollower();
    const experiments: VerifiedExperiment[] = [];
    const histories: Array<{ entry: ExperimentRegistered; events: readonly RecordedEvent[] }> = [];
    for (const entry of await registry(log)) {
      const events = await log.readStream(entry.stream).then(
        (r) => r.events,
        () => null,
      );
      if (events === null) continue;
      index.fold(events);
      // A history that cannot be read is reported by verify; nothing here is healed from it.
      if (index.damage(entry.stream) !== null) continue;
      histories.push({ entry, events });
      experiments.push({ folder: entry.folder, state: index.state(entry.stream) });
    }

    const projections = options.projections?.({ root, layout, blobs: store.blobs }) ?? [];
    // Each experiment's folder where it is now: a folder moved under experiments/ is the one healed.
    const locate = folderLocator(layout.experiments, projections);
    for (const experiment of experiments) {
      if (experiment.state === null) continue;
      const state = await locatedState(locate, experiment.state).catch((error: unknown) => {
        if (error instanceof ExperimentFolderAmbiguousError || error instanceof ExperimentFolderTakenError) return null;
        throw error;
      });
      // Two folders claiming it, or its folder another's: none is written to (verify names them).
      experiments[experiments.indexOf(experiment)] = { ...experiment, state };
    }
    for (const projection of projections) {
      if (projection.repair === undefined) continue;
      const result = await projection.repair(experiments, damaged);
      blobsHealed.push(...result.blobsHealed);
      filesRelinked.push(...result.filesRelinked);
      foldersWritten.push(...result.written);
      problems.push(...result.problems);
    }

    for (const { entry, events } of histories) {
      const last = events.at(-1);
      const file = snapshotFile(root, entry.experimentId);
      if (
        last === undefined ||
        !(await fs.stat(file).then(
          () => true,
          () => false,
        ))
      )
        continue;
      const snapshot = await readSnapshot(root, entry.experimentId, entry.stream);
      const at = snapshot === null ? undefined : events.find((e) => e.revision === snapshot.revision);
      // Kept only when it checks out against the log: its position, and the state its events fold to.
      if (
        snapshot !== null &&
        at !== undefined &&
        at.position === snapshot.position &&
        sameState(snapshot.state, replay(events.slice(0, Number(snapshot.revision) + 1)))
      )
        continue;
      await writeSnapshot(root, entry.experimentId, {
        stream: entry.stream,
        revision: last.revision,
        position: last.position,
        state: replay(events),
      });
      snapshotsRewritten.push(file);
    }
  } finally {
    await store.blobs.close();
    await log?.close();
    await store.log.close();
  }

  // A damaged projection checkpoint (not JSON, a wrong checksum, a FIFO, a huge file) is removed.
  let projectionCheckpointRemoved: string | null = null;
  const checkpoint = await loadProjectionCheckpoint(root);
  if (checkpoint.kind === 'damaged') {
    await fs.rm(checkpoint.file, { force: true });
    projectionCheckpointRemoved = checkpoint.file;
  }

  const after = await verifyRoot(options);
  const still = new Map<string, 'damaged' | 'missing'>();
  for (const p of after.blobs.problems)
    if ('sha256' in p && typeof p.sha256 === 'string') still.set(p.sha256, 'damaged');
  for (const p of after.references.problems) if (!still.has(p.sha256)) still.set(p.sha256, 'missing');
  const users = index.usersOf(still.keys());
  const unhealable: UnhealableBlob[] = [...still].map(([sha256, state]) => ({
    sha256,
    state,
    referencedBy: users.get(sha256) ?? [],
  }));
  return {
    root,
    before,
    blobsHealed,
    filesRelinked,
    foldersWritten,
    snapshotsRewritten,
    projectionCheckpointRemoved,
    tempFilesRemoved,
    logCachesRebuilt,
    unhealable,
    problems,
    after,
    // Anything a view could not heal fails the repair, even when verify finds nothing left to report.
    ok: after.ok && problems.length === 0,
  };
}

/**
 * The file log's caches that `before` names as damaged: a segment index is written again from the
 * segment's records (every index is, by a writer opened with `rebuildIndexes`), a heads checkpoint
 * is removed. Nothing for a log of another store.
 */
async function rebuildLogCaches(
  root: string,
  options: VerifyOptions,
  before: VerifyReport,
): Promise<RepairReport['logCachesRebuilt']> {
  if (storeOf(options) !== null) return [];
  const dir = rootLayout(root).log;
  const indexes = new Set<string>();
  let heads: string | null = null;
  for (const p of before.log.problems) {
    if (path.dirname(p.file) !== dir) continue;
    if (/^\d{20}\.seg\.idx$/.test(path.basename(p.file))) indexes.add(p.file);
    else if (path.basename(p.file) === HEADS_FILE) heads = p.file;
  }
  if (indexes.size === 0 && heads === null) return [];
  const done: Array<{ file: string; action: 'rebuilt' | 'removed' }> = [];
  if (heads !== null) {
    await fs.rm(heads, { force: true });
    done.push({ file: heads, action: 'removed' });
  }
  const log = await openFileEventLog({
    dir,
    rebuildIndexes: indexes.size > 0,
    lockWaitMs: 30_000,
    onWarning: (warning) => {
      if (warning.code !== 'INDEX_REBUILT') emitFileLogWarning(warning);
    },
  });
  await log.close();
  for (const file of [...indexes].sort()) done.push({ file, action: 'rebuilt' });
  return done;
}

/** The experiments, found from their own streams when the registry is damaged (verify names that damage). */
async function registry(log: EventLog): Promise<readonly ExperimentRegistered[]> {
  return (await readRegistryStream(log, { warn: false })).entries;
}
