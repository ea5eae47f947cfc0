/**
 * `roundlog verify`: checks a whole root against its log, which is the truth.
 *
 * - the log: every record of every segment (frame checksums, positions, revisions);
 * - the blob store: every blob re-hashed;
 * - the histories: every experiment's stream read in full and folded (a damaged record, or an
 *   event this release cannot read, is named with its experiment);
 * - references: every blob a kept round or the experiment itself references (initial parameters,
 *   training plan sources, aggregated and node parameters of rounds not pruned) is in the store;
 * - the views kept beside the log (the `projections` given: breakpoint folders), each checked by
 *   its own projection against the experiments' states (see `src/projections/breakpoints/check.ts`).
 *
 * Rounds that should have a view and have none are projection lag, reported but not a problem
 * (views are a projection: `roundlog project` writes them).
 */
import type { FileBlobStore, StaleTempFile } from '../blobs/file.ts';
import type { BlobProblem, BlobStore, VerifyResult as BlobVerifyResult } from '../blobs/types.ts';
import { CorruptLogError } from '../log/errors.ts';
import type { EventLog, RecordedEvent } from '../log/types.ts';
import { emitFileLogWarning, openFileEventLog } from '../log/file/index.ts';
import { openStore, storeOf, type LogAccess, type StoreOptions } from './store.ts';
import { inspectSnapshot, sameState } from './snapshots.ts';
import { checkpointMismatch, checkpointStore, loadProjectionCheckpoint } from './project.ts';
import type { VerifyResult as LogVerifyResult } from '../log/types.ts';
import { resolveRoot, rootLayout } from '../root.ts';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { REGISTRY_STREAM, type ExperimentRegistered } from '../model/events.ts';
import { replay, type ExperimentState } from '../model/state.ts';
import { registryDamageAt } from '../model/errors.ts';
import { readRegistryStream } from './registry.ts';
import { ExperimentFolderAmbiguousError, ExperimentFolderTakenError, folderLocator, locatedState } from './names.ts';
import type { ProjectionFactory, ViewProblem } from './projection.ts';
import { RootIndex, type BlobUser } from './root-index.ts';

export type { BlobUser } from './root-index.ts';

export type HistoryProblem = Readonly<{ experiment: string; stream: string; reason: string }>;

export type ReferenceProblem = Readonly<{
  experiment: string;
  sha256: string;
  /** The round whose parameters it is, or null for data of the experiment itself. */
  round: number | null;
  what: string;
  reason: string;
}>;

/** A cache beside the log (a snapshot, the projection checkpoint) that is damaged or disagrees with the log. */
export type CacheProblem = Readonly<{ file: string; reason: string }>;

/**
 * A problem of the blob store, with the experiments and kept rounds that reference the blob
 * (`RootIndex.usersOf`, as `verify --repair` names them; none for a stray file).
 */
export type BlobStoreProblem = BlobProblem & Readonly<{ referencedBy: readonly BlobUser[] }>;

/** A problem of a breakpoint folder (or another view): the experiment, folder, file, round and why. */
export type BreakpointProblem = ViewProblem;

/** The name of the breakpoint-folder projection, whose folders the report counts in `breakpoints`. */
const BREAKPOINTS_VIEW = 'breakpoints';

export type VerifyReport = Readonly<{
  ok: boolean;
  root: string;
  log: LogVerifyResult;
  blobs: Readonly<Omit<BlobVerifyResult, 'problems'> & { problems: readonly BlobStoreProblem[] }>;
  history: Readonly<{ experimentsChecked: number; eventsRead: number; problems: readonly HistoryProblem[] }>;
  references: Readonly<{ blobsChecked: number; problems: readonly ReferenceProblem[] }>;
  /** The breakpoint folders (the view named `breakpoints`). */
  breakpoints: Readonly<{ foldersChecked: number; problems: readonly BreakpointProblem[] }>;
  /** Every view checked (`breakpoints`, `tensorboard`), with what it checked and its problems. */
  views: ReadonlyArray<Readonly<{ name: string; checked: number; problems: readonly ViewProblem[] }>>;
  /**
   * The caches beside the log, each checked against its checksum and against the log: experiment
   * snapshots (`snapshots/*.snap`) and the checkpoint of `project --follow`. (The log's own caches,
   * `.seg.idx` and `heads.ckpt`, are in `log`.) Each problem says what the code does with the file.
   */
  caches: Readonly<{ filesChecked: number; problems: readonly CacheProblem[] }>;
  /**
   * Rounds whose view is not written yet, per experiment and view (not a problem): rounds that
   * asked for a breakpoint and have no folder, rounds whose scalars are not in the event file.
   */
  lag: ReadonlyArray<Readonly<{ experiment: string; view: string; rounds: readonly number[] }>>;
  /** Things worth knowing that are not damage. */
  notes: readonly string[];
}>;

export type VerifyOptions = Pick<StoreOptions, 'store' | 'blobs' | 'namespace'> & {
  root?: string;
  env?: NodeJS.ProcessEnv;
  /** The views to check beside the log (breakpoint folders); default none. */
  projections?: ProjectionFactory;
  /**
   * File log: first open it as a writer that cuts off stray bytes after the data of its last
   * segment (`repairTail`); what was cut is in the notes. Default false.
   */
  repairTail?: boolean;
};

export async function verifyRoot(options: VerifyOptions = {}): Promise<VerifyReport> {
  const root = resolveRoot(options.root, options.env);
  const layout = rootLayout(root);
  const notes: string[] = [];
  const historyProblems: HistoryProblem[] = [];
  const referenceProblems: ReferenceProblem[] = [];
  const folderProblems: BreakpointProblem[] = [];
  const lag: Array<{ experiment: string; view: string; rounds: number[] }> = [];
  const views: Array<{ name: string; checked: number; problems: ViewProblem[] }> = [];
  let experimentsChecked = 0;
  let eventsRead = 0;
  let foldersChecked = 0;
  let blobsChecked = 0;

  if (options.repairTail === true) notes.push(...(await repairLogTail(root, options)));
  const store = await openStore(root, options);
  let log: EventLog | null = null;
  let logResult: LogVerifyResult;
  try {
    log = await store.log.openFollower();
    logResult = await log.verify();
  } catch (error) {
    const where = store.log.kind === 'file' ? layout.log : store.log.description;
    logResult = {
      ok: false,
      eventsChecked: 0,
      bytesChecked: 0,
      problems: [{ file: where, offset: 0, reason: `the log cannot be opened: ${(error as Error).message}` }],
    };
  }
  const blobs = store.blobs;
  try {
    const blobResult = await blobs.verify();
    // A writer killed mid-upload leaves its temp file until the next upload (or verify --repair).
    for (const stale of await staleBlobTempFiles(blobs)) notes.push(staleTempNote(stale));
    const index = new RootIndex();
    const experiments: Array<{
      entry: ExperimentRegistered;
      state: ExperimentState | null;
      events: readonly RecordedEvent[] | null;
    }> = [];
    if (log !== null) {
      // Read as every command reads it: a record that cannot be read does not hide the experiments,
      // found from their own streams; the damage is reported once, here or by the log check above.
      const read = await readRegistryStream(log, { warn: false });
      const registry = read.entries;
      if (read.damage !== null) {
        const { file, offset, revision, reason } = read.damage;
        const reported = file !== null && logResult.problems.some((p) => p.file === file && p.offset === offset);
        const damage =
          `the registry of experiments (stream ${JSON.stringify(REGISTRY_STREAM)}) is damaged: ` +
          `${registryDamageAt(file, offset, revision)}: ${reason}`;
        const consequence =
          'the experiments were found from their own histories; creating an experiment is refused until the log ' +
          'is restored from a backup (nothing is appended after damage, and verify --repair does not rewrite the log)';
        if (reported) notes.push(`${damage} (reported above); ${consequence}`);
        else
          historyProblems.push({
            experiment: '(registry)',
            stream: REGISTRY_STREAM,
            reason: `${damage}; ${consequence}`,
          });
      }
      const known = new Set((await log.listStreams()).streams.map((s) => s.stream));
      // Streams of other code (the README's library example writes one) are tolerated by every command.
      const registered = new Set(registry.map((e) => e.stream));
      for (const stream of known) {
        if (stream === REGISTRY_STREAM || registered.has(stream) || stream.startsWith('roundlog.')) continue;
        notes.push(`stream ${stream} is not a registered experiment of this root (written by other code); ignored`);
      }
      for (const entry of registry) {
        if (!known.has(entry.stream)) {
          notes.push(`${entry.folder} is registered but has no history; nothing lists it`);
          continue;
        }
        try {
          const { events } = await log.readStream(entry.stream);
          index.fold(events);
          const damage = index.damage(entry.stream);
          if (damage !== null) throw damage;
          eventsRead += events.length;
          experimentsChecked++;
          experiments.push({ entry, state: index.state(entry.stream), events });
        } catch (error) {
          // Damage the log check reported already is named once; here only what it cuts off.
          const reported =
            error instanceof CorruptLogError &&
            logResult.problems.some((p) => p.file === error.file && p.offset === error.offset);
          if (reported) {
            notes.push(
              `${entry.folder}: its history cannot be read past the damaged log record reported above ` +
                `(${error.file} at byte ${error.offset}); its folders and references are not checked`,
            );
          } else {
            historyProblems.push({
              experiment: entry.folder,
              stream: entry.stream,
              reason: `its history cannot be read: ${(error as Error).message}`,
            });
          }
          experiments.push({ entry, state: null, events: null });
        }
      }
    }

    // The views kept beside the log (breakpoint folders), each checked by its own projection.
    const projections = options.projections?.({ root, layout, blobs }) ?? [];
    // Each experiment's folder where it is now: a folder moved under experiments/ is the one checked.
    const locate = folderLocator(layout.experiments, projections);
    const verified: Array<{ folder: string; state: ExperimentState | null }> = [];
    // Experiments whose folder cannot be told: their problem says what to do; no lag is reported
    // for them (`roundlog project` writes no folder of theirs until the folders are sorted out).
    const unlocated = new Set<string>();
    // Each experiment's folder where it is now, named in every problem of it.
    const locatedFolders = new Map<string, string>();
    for (const { entry, state } of experiments) {
      try {
        const located = state === null ? null : await locatedState(locate, state);
        if (located !== null) locatedFolders.set(entry.stream, located.folder);
        verified.push({ folder: entry.folder, state: located });
      } catch (error) {
        if (!(error instanceof ExperimentFolderAmbiguousError || error instanceof ExperimentFolderTakenError))
          throw error;
        unlocated.add(state?.folder ?? entry.folder);
        folderProblems.push({
          experiment: state?.folder ?? entry.folder,
          folder: layout.experiments,
          file: '.',
          round: null,
          reason: error.message,
        });
        verified.push({ folder: entry.folder, state });
      }
    }
    for (const { entry, state } of experiments) {
      if (state === null) continue;
      for (const ref of index.retainedReferences(entry.stream)) {
        blobsChecked++;
        if (await blobs.has(ref.sha256)) continue;
        referenceProblems.push({
          experiment: locatedFolders.get(entry.stream) ?? state.folder,
          sha256: ref.sha256,
          round: ref.round,
          what:
            ref.round === null
              ? `data of its ${ref.what}`
              : `parameters of ${ref.branch === 'superseded' ? 'superseded ' : ''}round ${ref.round}`,
          reason:
            `blob ${ref.sha256} ` +
            `(${ref.round === null ? `referenced by its ${ref.what}` : `parameters of round ${ref.round}`}) ` +
            `is missing from the blob store at ${store.blobsDescription}`,
        });
      }
    }

    for (const projection of projections) {
      const result = await projection.verify(verified);
      views.push({ name: projection.name, checked: result.checked, problems: [...result.problems] });
      if (projection.name === BREAKPOINTS_VIEW) {
        foldersChecked += result.checked;
        folderProblems.push(...result.problems);
      }
      for (const l of result.lag) {
        if (!unlocated.has(l.experiment))
          lag.push({ experiment: l.experiment, view: projection.name, rounds: [...l.rounds] });
      }
      notes.push(...result.notes);
    }

    const caches = await checkCaches(root, store.log, log, experiments, notes);
    const users = index.usersOf(blobResult.problems.flatMap((p) => ('sha256' in p ? [p.sha256] : [])));
    const blobProblems = blobResult.problems.map((p) => ({
      ...p,
      referencedBy: 'sha256' in p ? (users.get(p.sha256) ?? []) : [],
    }));

    const ok =
      logResult.ok &&
      caches.problems.length === 0 &&
      blobResult.ok &&
      historyProblems.length === 0 &&
      referenceProblems.length === 0 &&
      folderProblems.length === 0 &&
      views.every((v) => v.problems.length === 0);
    return {
      ok,
      root,
      log: logResult,
      blobs: { ...blobResult, problems: blobProblems },
      history: { experimentsChecked, eventsRead, problems: historyProblems },
      references: { blobsChecked, problems: referenceProblems },
      breakpoints: { foldersChecked, problems: folderProblems },
      views,
      caches,
      lag,
      notes,
    };
  } finally {
    await blobs.close();
    await (log as EventLog | null)?.close();
    await store.log.close();
  }
}

/** Opens the root's file log as a writer with `repairTail`; returns what it repaired. */
async function repairLogTail(root: string, options: VerifyOptions): Promise<string[]> {
  if (storeOf(options) !== null) return [];
  const repaired: string[] = [];
  const log = await openFileEventLog({
    dir: rootLayout(root).log,
    repairTail: true,
    lockWaitMs: 30_000,
    onWarning: (warning) => {
      if (warning.code === 'TAIL_REPAIRED') repaired.push(warning.message);
      else emitFileLogWarning(warning);
    },
  });
  await log.close();
  return repaired.length === 0 ? ['--repair-tail: the log had no stray bytes to cut off'] : repaired;
}

/**
 * The caches beside the log: every snapshot file (its checksum, and its state against the state
 * the experiment's events fold to at its revision) and the projection checkpoint (its checksum,
 * and its position against the log).
 */
async function checkCaches(
  root: string,
  access: LogAccess,
  log: EventLog | null,
  experiments: ReadonlyArray<{ entry: ExperimentRegistered; events: readonly RecordedEvent[] | null }>,
  notes: string[],
): Promise<{ filesChecked: number; problems: CacheProblem[] }> {
  const problems: CacheProblem[] = [];
  let filesChecked = 0;
  const dir = rootLayout(root).snapshots;
  const names = (await fs.readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.snap')).sort();
  const byId = new Map(experiments.map((e) => [e.entry.experimentId, e]));
  for (const name of names) {
    const file = path.join(dir, name);
    const found = await inspectSnapshot(file);
    if (found === null) continue;
    filesChecked++;
    const ignored = 'the experiment ignores it and replays its whole history when opened (nothing wrong is used)';
    const remedy = "'roundlog verify --repair' writes it again from the log (or delete it)";
    if (found.kind === 'damaged') {
      problems.push({ file, reason: `snapshot: ${found.reason}; ${ignored}; ${remedy}` });
      continue;
    }
    if (found.kind === 'other-release') {
      notes.push(`${file}: a snapshot written by another release (${found.reason}); not used`);
      continue;
    }
    const { snapshot } = found;
    const experiment = byId.get(name.slice(0, -'.snap'.length));
    if (experiment === undefined) {
      notes.push(`${file}: a snapshot of no registered experiment; nothing uses it`);
      continue;
    }
    if (snapshot.stream !== experiment.entry.stream) {
      problems.push({
        file,
        reason:
          `snapshot of stream ${JSON.stringify(snapshot.stream)}, not of its experiment's stream; ` +
          `${ignored}; ${remedy}`,
      });
      continue;
    }
    // An experiment whose history cannot be read is reported above; its snapshot cannot be checked.
    if (experiment.events === null) continue;
    const at = experiment.events[Number(snapshot.revision)];
    if (at === undefined || at.position !== snapshot.position) {
      problems.push({
        file,
        reason:
          `snapshot of ${experiment.entry.folder} at revision ${snapshot.revision}, ` +
          `log position ${snapshot.position}, ` +
          `where the log has ${at === undefined ? 'no such revision' : `that revision at position ${at.position}`}; ` +
          `${ignored}; ${remedy}`,
      });
      continue;
    }
    if (!sameState(snapshot.state, replay(experiment.events.slice(0, Number(snapshot.revision) + 1)))) {
      problems.push({
        file,
        reason:
          `snapshot of ${experiment.entry.folder} at revision ${snapshot.revision} holds a state other than the ` +
          'one its events fold to, and it checks out against the log, so opening the experiment would use it: ' +
          "run 'roundlog verify --repair' to write it again from the log (or delete it: the next open replays " +
          'the whole history)',
      });
    }
  }

  const stored = await loadProjectionCheckpoint(root);
  if (stored.kind !== 'none') filesChecked++;
  if (stored.kind === 'damaged') {
    problems.push({
      file: stored.file,
      reason:
        `projection checkpoint: ${stored.reason}; project --follow ignores it and projects from the beginning ` +
        "(nothing wrong is used); 'roundlog verify --repair' removes it (or delete it), and " +
        "'roundlog project --follow' writes it again",
    });
  } else if (stored.kind === 'ok' && stored.checkpoint.store !== checkpointStore(access)) {
    notes.push(`${stored.file}: the projection checkpoint of ${stored.checkpoint.store}, not of this store; not used`);
  } else if (stored.kind === 'ok' && log !== null) {
    const mismatch = await checkpointMismatch(stored.checkpoint, log);
    if (mismatch !== null) {
      problems.push({
        file: stored.file,
        reason:
          `projection checkpoint at log position ${mismatch.position}, but ${mismatch.reason}: project --follow ` +
          'refuses it (the log lost events, or is not the log the folders were projected from); once the log ' +
          'is what it should be, delete it to project from the beginning',
      });
    }
  }
  return { filesChecked, problems };
}

/** The stale temp files of a blob store kept in a folder (`FileBlobStore.staleTempFiles`); none for others. */
export async function staleBlobTempFiles(blobs: BlobStore): Promise<readonly StaleTempFile[]> {
  return isFileBlobStore(blobs) ? await blobs.staleTempFiles() : [];
}

export function isFileBlobStore(blobs: BlobStore): blobs is FileBlobStore {
  return typeof (blobs as Partial<FileBlobStore>).staleTempFiles === 'function';
}

function staleTempNote(stale: StaleTempFile): string {
  const writer = stale.pid === null ? 'no writer named' : `its writer, process ${stale.pid}, is gone`;
  return (
    `${stale.file}: a temp file of an upload that did not finish (${writer}), ${stale.bytes} bytes; ` +
    'not a problem: verify --repair removes it, as does the next upload'
  );
}
