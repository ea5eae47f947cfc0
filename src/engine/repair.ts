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
 *    event the log does not hold there) are written again from the log.
 * 4. `verifyRoot` again: what it still finds cannot be healed from this root. Every blob still
 *    damaged or missing is named with the experiments and rounds that reference it.
 *
 * The log itself is never changed here: it is the truth, and its damage is reported by verify.
 */
import { promises as fs } from 'node:fs';
import { StreamNotFoundError } from '../log/errors.ts';
import type { EventLog, RecordedEvent } from '../log/types.ts';
import { REGISTRY_STREAM, type ExperimentRegistered } from '../model/events.ts';
import { replay, upcastRegistered } from '../model/state.ts';
import { resolveRoot, rootLayout } from '../root.ts';
import type { VerifiedExperiment, ViewProblem } from './projection.ts';
import { RootIndex } from './root-index.ts';
import { readSnapshot, snapshotFile, writeSnapshot } from './snapshots.ts';
import { openStore } from './store.ts';
import { verifyRoot, type VerifyOptions, type VerifyReport } from './verify.ts';

/** A blob still damaged or missing after the repair, with who references it. */
export type UnhealableBlob = Readonly<{
  sha256: string;
  /** `damaged` (the store's file does not hash to its name) or `missing`. */
  state: 'damaged' | 'missing';
  referencedBy: ReadonlyArray<
    Readonly<{ experiment: string; round: number | null; branch: 'current' | 'superseded' | null; what: string }>
  >;
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

  const store = await openStore(root, options);
  let log: EventLog | null = null;
  try {
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
      histories.push({ entry, events });
      experiments.push({ folder: entry.folder, state: index.state(entry.stream) });
    }

    for (const projection of options.projections?.({ root, layout, blobs: store.blobs }) ?? []) {
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
      if (snapshot !== null && at !== undefined && at.position === snapshot.position) continue;
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

  const after = await verifyRoot(options);
  const still = new Map<string, 'damaged' | 'missing'>();
  for (const p of after.blobs.problems)
    if ('sha256' in p && typeof p.sha256 === 'string') still.set(p.sha256, 'damaged');
  for (const p of after.references.problems) if (!still.has(p.sha256)) still.set(p.sha256, 'missing');
  const unhealable: UnhealableBlob[] = [];
  for (const [sha256, state] of still) {
    const referencedBy: Array<UnhealableBlob['referencedBy'][number]> = [];
    for (const [stream] of index.streams) {
      const folder = index.state(stream)?.folder ?? stream;
      for (const ref of index.retainedReferences(stream)) {
        if (ref.sha256 === sha256)
          referencedBy.push({ experiment: folder, round: ref.round, branch: ref.branch, what: ref.what });
      }
    }
    unhealable.push({ sha256, state, referencedBy });
  }
  return {
    root,
    before,
    blobsHealed,
    filesRelinked,
    foldersWritten,
    snapshotsRewritten,
    unhealable,
    problems,
    after,
    ok: after.ok,
  };
}

async function registry(log: EventLog): Promise<ExperimentRegistered[]> {
  try {
    return (await log.readStream(REGISTRY_STREAM)).events.map(upcastRegistered);
  } catch (error) {
    if (error instanceof StreamNotFoundError) return [];
    throw error;
  }
}
