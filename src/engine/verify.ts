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
import type { VerifyResult as BlobVerifyResult } from '../blobs/types.ts';
import { CorruptLogError, StreamNotFoundError } from '../log/errors.ts';
import type { EventLog } from '../log/types.ts';
import { openFileEventLog } from '../log/file/index.ts';
import { openStore, storeOf, type StoreOptions } from './store.ts';
import type { VerifyResult as LogVerifyResult } from '../log/types.ts';
import { resolveRoot, rootLayout } from '../root.ts';
import { REGISTRY_STREAM, type ExperimentRegistered } from '../model/events.ts';
import type { ExperimentState } from '../model/state.ts';
import type { ProjectionFactory, ViewProblem } from './projection.ts';
import { RootIndex } from './root-index.ts';

export type HistoryProblem = Readonly<{ experiment: string; stream: string; reason: string }>;

export type ReferenceProblem = Readonly<{
  experiment: string;
  sha256: string;
  /** The round whose parameters it is, or null for data of the experiment itself. */
  round: number | null;
  what: string;
  reason: string;
}>;

/** A problem of a breakpoint folder (or another view): the experiment, folder, file, round and why. */
export type BreakpointProblem = ViewProblem;

export type VerifyReport = Readonly<{
  ok: boolean;
  root: string;
  log: LogVerifyResult;
  blobs: BlobVerifyResult;
  history: Readonly<{ experimentsChecked: number; eventsRead: number; problems: readonly HistoryProblem[] }>;
  references: Readonly<{ blobsChecked: number; problems: readonly ReferenceProblem[] }>;
  breakpoints: Readonly<{ foldersChecked: number; problems: readonly BreakpointProblem[] }>;
  /** Rounds that asked for a breakpoint and have no folder yet, per experiment (not a problem). */
  lag: ReadonlyArray<Readonly<{ experiment: string; rounds: readonly number[] }>>;
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
  const lag: Array<{ experiment: string; rounds: number[] }> = [];
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
    const index = new RootIndex();
    const experiments: Array<{ entry: ExperimentRegistered; state: ExperimentState | null }> = [];
    if (log !== null) {
      let registry: ExperimentRegistered[] = [];
      try {
        registry = (await log.readStream(REGISTRY_STREAM)).events.map((e) => e.data as ExperimentRegistered);
      } catch (error) {
        if (!(error instanceof StreamNotFoundError))
          historyProblems.push({ experiment: '(registry)', stream: REGISTRY_STREAM, reason: (error as Error).message });
      }
      const known = new Set((await log.listStreams()).streams.map((s) => s.stream));
      for (const entry of registry) {
        if (!known.has(entry.stream)) {
          notes.push(`${entry.folder} is registered but has no history; nothing lists it`);
          continue;
        }
        try {
          const { events } = await log.readStream(entry.stream);
          index.fold(events);
          eventsRead += events.length;
          experimentsChecked++;
          experiments.push({ entry, state: index.state(entry.stream) });
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
          experiments.push({ entry, state: null });
        }
      }
    }

    for (const { entry, state } of experiments) {
      if (state === null) continue;
      for (const ref of index.retainedReferences(entry.stream)) {
        blobsChecked++;
        if (await blobs.has(ref.sha256)) continue;
        referenceProblems.push({
          experiment: state.folder,
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

    // The views kept beside the log (breakpoint folders), each checked by its own projection.
    const verified = experiments.map(({ entry, state }) => ({ folder: entry.folder, state }));
    const projections = options.projections?.({ root, layout, blobs }) ?? [];
    for (const projection of projections) {
      const result = await projection.verify(verified);
      foldersChecked += result.checked;
      folderProblems.push(...result.problems);
      lag.push(...result.lag.map((l) => ({ experiment: l.experiment, rounds: [...l.rounds] })));
      notes.push(...result.notes);
    }

    const ok =
      logResult.ok &&
      blobResult.ok &&
      historyProblems.length === 0 &&
      referenceProblems.length === 0 &&
      folderProblems.length === 0;
    return {
      ok,
      root,
      log: logResult,
      blobs: blobResult,
      history: { experimentsChecked, eventsRead, problems: historyProblems },
      references: { blobsChecked, problems: referenceProblems },
      breakpoints: { foldersChecked, problems: folderProblems },
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
      else process.emitWarning(warning.message, { code: `ROUNDLOG_${warning.code}` });
    },
  });
  await log.close();
  return repaired.length === 0 ? ['--repair-tail: the log had no stray bytes to cut off'] : repaired;
}
