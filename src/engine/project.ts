/**
 * `roundlog project`: (re)materializes the breakpoint folders of every experiment from the log.
 *
 * Without `rebuild`, it writes the folders the log asks for and has none (the projection lag),
 * moves folders of another history aside into `superseded/`, and removes temp folders of dead
 * writers. With `rebuild`, it first removes every folder on the branch that the log can write
 * again (its manifest names a round of the current branch, or a pruned round), then projects:
 * the result is byte-for-byte what the log says, whatever was hand-edited.
 *
 * `superseded/` is never touched: it holds history moved aside (rounds a rewind took off the
 * branch, folders of other histories) that the projection does not rewrite, and the design
 * promises it is never silently deleted. A folder about to be removed whose parameters (or plan
 * source) are missing from the blob store gives them back to the store first (when their hash
 * checks out), so a rebuild never loses the last copy of committed bytes; when that is not
 * possible the folder is left alone and reported.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  MANIFEST_FILE,
  SUPERSEDED_DIR,
  listBreakpointFolders,
  missingBreakpoints,
  projectExperiment,
  type BreakpointManifest,
  type ProjectionContext,
} from '../projections/breakpoints.ts';
import { EXPERIMENT_STREAM_PREFIX, REGISTRY_STREAM, breakpointFolderName, type ExperimentRegistered } from '../model/events.ts';
import { createFileDurably, syncDir } from '../durable.ts';
import type { RecordedEvent } from '../log/types.ts';
import { ExperimentNotFoundError } from '../model/errors.ts';
import type { ExperimentState } from '../model/state.ts';
import { RoundlogError } from '../errors.ts';
import { rootLayout } from '../root.ts';
import { openRoundLog, type OpenRoundLogOptions } from './round-log.ts';

export type ExperimentProjection = Readonly<{
  experimentId: string;
  folder: string;
  /** Rounds whose breakpoint folder was missing before (the projection lag). */
  lagBefore: readonly number[];
  /** Folders removed by `rebuild` (absolute paths). */
  removed: readonly string[];
  /** Folders written (absolute paths). */
  written: readonly string[];
  /** Folders moved into `superseded/` (their new absolute paths). */
  movedAside: readonly string[];
  /** Rounds not projected because retention pruned them. */
  pruned: readonly number[];
  /** Rounds whose blobs were given back to the store from a folder before it was removed. */
  rescued: readonly number[];
  /** What went wrong, when the experiment could not be projected fully; the others still are. */
  problems: readonly string[];
  /** Rounds still without a folder afterwards. */
  lagAfter: readonly number[];
}>;

export type ProjectReport = Readonly<{ root: string; rebuild: boolean; experiments: readonly ExperimentProjection[]; ok: boolean }>;

export type ProjectOptions = OpenRoundLogOptions & {
  /** Remove the branch's folders the log can write again first. Default false. */
  rebuild?: boolean;
  /** One experiment (id, folder, stream or path); default every experiment of the root. */
  experiment?: string;
};

export async function projectRoot(options: ProjectOptions = {}): Promise<ProjectReport> {
  const rl = await openRoundLog(options);
  try {
    const ctx: ProjectionContext = { experimentsDir: rootLayout(rl.root).experiments, blobs: rl.blobs };
    const ids = options.experiment === undefined ? (await rl.listExperiments()).map((e) => e.experimentId) : [(await rl.openExperiment(options.experiment)).id];
    const experiments: ExperimentProjection[] = [];
    for (const id of ids) {
      const { state } = await rl.openExperiment(id);
      experiments.push(await projectOne(ctx, state, options.rebuild ?? false));
    }
    return { root: rl.root, rebuild: options.rebuild ?? false, experiments, ok: experiments.every((e) => e.problems.length === 0) };
  } finally {
    await rl.close();
  }
}

async function projectOne(ctx: ProjectionContext, state: ExperimentState, rebuild: boolean): Promise<ExperimentProjection> {
  const dir = path.join(ctx.experimentsDir, state.folder);
  const problems: string[] = [];
  const removed: string[] = [];
  const rescued: number[] = [];
  const lagBefore = await missingBreakpoints(ctx, state);
  const pruned = state.rounds.filter((r) => r?.breakpoint && state.pruned[String(r.position)] !== undefined).map((r) => r.round);
  if (rebuild) {
    const current = new Map(state.rounds.filter((r) => r !== undefined && r !== null).map((r) => [String(r.position), r]));
    for (const name of await listBreakpointFolders(dir)) {
      const folder = path.join(dir, name);
      const manifest = await readManifest(folder);
      if (manifest === null || manifest.experimentId !== state.created!.experimentId) continue;
      const record = current.get(manifest.logPosition);
      const isPruned = state.pruned[manifest.logPosition] !== undefined;
      // Only folders the log can write again; others are moved aside by the projection below.
      if (!isPruned && (record === undefined || breakpointFolderName(record.round) !== name)) continue;
      if (!isPruned) {
        const { missing, restored } = await giveBlobsBack(ctx, folder, manifest);
        if (missing.length > 0) {
          problems.push(`${folder} left in place: the blob store lacks ${missing.join(', ')} and the folder's copy does not match it`);
          continue;
        }
        if (restored > 0) rescued.push(manifest.round);
      }
      await fs.rm(folder, { recursive: true, force: true });
      removed.push(folder);
    }
  }
  const toWrite = await missingBreakpoints(ctx, state);
  const asideBefore = new Set(await listNames(path.join(dir, SUPERSEDED_DIR)));
  let written: string[] = [];
  try {
    const result = await projectExperiment(ctx, state);
    written = toWrite.map((round) => path.join(dir, breakpointFolderName(round)));
    if (result.written !== toWrite.length) problems.push(`wrote ${result.written} folders where ${toWrite.length} were missing`);
  } catch (error) {
    problems.push(error instanceof RoundlogError ? error.message : `projection failed: ${(error as Error)?.message ?? String(error)}`);
  }
  const movedAside = (await listNames(path.join(dir, SUPERSEDED_DIR))).filter((n) => !asideBefore.has(n)).map((n) => path.join(dir, SUPERSEDED_DIR, n));
  const lagAfter = await missingBreakpoints(ctx, state);
  if (problems.length === 0) written = written.filter((folder) => !lagAfter.some((round) => folder.endsWith(breakpointFolderName(round))));
  return { experimentId: state.created!.experimentId, folder: state.folder, lagBefore, removed, written, movedAside, pruned, rescued, problems, lagAfter };
}

/**
 * Puts back into the blob store every blob of the folder the store lacks, from the folder's file
 * when it hashes right. Returns the hashes it could not give back, and how many it gave back.
 */
async function giveBlobsBack(ctx: ProjectionContext, folder: string, manifest: BreakpointManifest): Promise<{ missing: string[]; restored: number }> {
  const missing: string[] = [];
  let restored = 0;
  for (const [file, sha256] of Object.entries(manifest.files ?? {})) {
    if (typeof sha256 !== 'string' || (await ctx.blobs.has(sha256).catch(() => false))) continue;
    const bytes = await fs.readFile(path.join(folder, path.basename(file))).catch(() => null);
    if (bytes === null || createHash('sha256').update(bytes).digest('hex') !== sha256) {
      missing.push(sha256);
      continue;
    }
    await ctx.blobs.put(bytes);
    restored++;
  }
  return { missing, restored };
}

async function readManifest(folder: string): Promise<BreakpointManifest | null> {
  try {
    const value = JSON.parse(await fs.readFile(path.join(folder, MANIFEST_FILE), 'utf8')) as BreakpointManifest;
    return value !== null && typeof value === 'object' && typeof value.logPosition === 'string' ? value : null;
  } catch {
    return null;
  }
}

async function listNames(dir: string): Promise<string[]> {
  return (await fs.readdir(dir).catch(() => [] as string[])).sort();
}

// ---------------------------------------------------------------------------------------------
// `roundlog project --follow`: the projection as a long-running catch-up subscription.

/** Where the follow mode keeps its checkpoint, inside `<root>/experiments`. */
export const PROJECTION_CHECKPOINT_FILE = '.projection-checkpoint.json';

export type ProjectionCheckpoint = Readonly<{
  /** The store the position belongs to (`file log …` or `EventStoreDB esdb://…`). */
  store: string;
  /** Log position of the last event the projection has handled, as a decimal string. */
  position: string;
  updatedAt: string;
}>;

/** What the follow mode reports, in order: where it starts, then each experiment it projects. */
export type ProjectionUpdate =
  | Readonly<{
      kind: 'started';
      store: string;
      /** The checkpoint it resumes after, or null when it starts from the beginning of the log. */
      checkpoint: bigint | null;
      /** Position of the newest event of the log now, or null when the log is empty. */
      logEnd: bigint | null;
      /** Events between the checkpoint and the end of the log: the lag at start. */
      lagEvents: number;
    }>
  | Readonly<{
      kind: 'projected';
      folder: string;
      /** Breakpoint folders written by this update (absolute paths). */
      written: readonly string[];
      problems: readonly string[];
      /** Position of the event that triggered it, now the checkpoint. */
      position: bigint;
      /** Milliseconds between that event's commit and its projection: the lag, live. */
      lagMs: number;
      live: boolean;
    }>
  | Readonly<{ kind: 'caughtUp'; position: bigint | null; experiments: number }>;

export type FollowProjectionOptions = OpenRoundLogOptions & {
  onUpdate: (update: ProjectionUpdate) => void;
  /** Stops following; the promise resolves once the checkpoint of the last handled event is stored. */
  signal: AbortSignal;
  /** File log: how often to look for events of other processes, in ms. Default 50. */
  pollIntervalMs?: number;
};

export async function readProjectionCheckpoint(root: string): Promise<ProjectionCheckpoint | null> {
  const file = path.join(rootLayout(root).experiments, PROJECTION_CHECKPOINT_FILE);
  try {
    const value = JSON.parse(await fs.readFile(file, 'utf8')) as ProjectionCheckpoint;
    return typeof value?.position === 'string' && /^\d+$/.test(value.position) && typeof value.store === 'string' ? value : null;
  } catch {
    return null;
  }
}

async function writeProjectionCheckpoint(root: string, checkpoint: ProjectionCheckpoint): Promise<void> {
  const dir = rootLayout(root).experiments;
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, PROJECTION_CHECKPOINT_FILE);
  const temp = `${file}.${process.pid}.tmp`;
  await fs.rm(temp, { force: true });
  await createFileDurably(temp, `${JSON.stringify(checkpoint, null, 2)}\n`);
  await fs.rename(temp, file);
  await syncDir(dir);
}

/**
 * Materializes breakpoint folders as the log grows, from a catch-up subscription to the whole log:
 * events since the stored checkpoint first, then live ones. Each experiment an event touches is
 * projected from its stream (so a folder is only ever written from a committed history), and the
 * checkpoint moves past the event once its folders are durable. Restarted, it resumes after the
 * checkpoint; a checkpoint of another store is ignored (it starts from the beginning: projecting
 * is idempotent).
 */
export async function followProjection(options: FollowProjectionOptions): Promise<void> {
  const rl = await openRoundLog(options);
  const follower = await rl.log.openFollower(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs });
  const store = rl.log.description;
  try {
    const ctx: ProjectionContext = { experimentsDir: rootLayout(rl.root).experiments, blobs: rl.blobs };
    const stored = await readProjectionCheckpoint(rl.root);
    const checkpoint = stored !== null && stored.store === store ? BigInt(stored.position) : null;
    // The lag at start: what the log holds after the checkpoint.
    let lagEvents = 0;
    let logEnd: bigint | null = null;
    {
      const { events, lastPosition } = await follower.readAll(checkpoint === null ? {} : { fromPosition: checkpoint });
      logEnd = lastPosition;
      lagEvents = events.filter((e) => checkpoint === null || e.position > checkpoint).length;
    }
    options.onUpdate({ kind: 'started', store, checkpoint, logEnd, lagEvents });

    let handled: bigint | null = checkpoint;
    let caughtUp = false;
    /** Experiment streams touched during the catch-up, projected once it is done. */
    const dirty = new Map<string, RecordedEvent>();
    /** Streams with events but no registration yet (a creation in progress). */
    const unregistered = new Map<string, RecordedEvent>();

    const projectStream = async (stream: string, trigger: RecordedEvent, live: boolean): Promise<void> => {
      let state: ExperimentState;
      try {
        state = (await rl.openExperiment(stream)).state;
      } catch (error) {
        if (error instanceof ExperimentNotFoundError) {
          unregistered.set(stream, trigger);
          return;
        }
        throw error;
      }
      unregistered.delete(stream);
      const result = await projectOne(ctx, state, false);
      options.onUpdate({
        kind: 'projected',
        folder: result.folder,
        written: result.written,
        problems: result.problems,
        position: trigger.position,
        lagMs: Math.max(0, Date.now() - trigger.timestamp.getTime()),
        live,
      });
    };
    const advance = async (position: bigint | null) => {
      if (position === null || (handled !== null && position <= handled)) return;
      handled = position;
      await writeProjectionCheckpoint(rl.root, { store, position: position.toString(), updatedAt: new Date().toISOString() });
    };

    let chain: Promise<void> = Promise.resolve();
    let failed: unknown = null;
    const done = new Promise<void>((resolve, reject) => {
      const subscription = follower.subscribe(checkpoint === null ? {} : { from: checkpoint }).subscribe({
        next: (item) => {
          chain = chain
            .then(async () => {
              if (failed !== null) return;
              if (item.kind === 'caughtUp') {
                caughtUp = true;
                for (const [stream, trigger] of dirty) await projectStream(stream, trigger, false);
                const experiments = dirty.size;
                dirty.clear();
                await advance(item.position);
                options.onUpdate({ kind: 'caughtUp', position: item.position, experiments });
                return;
              }
              const event = item.event;
              if (checkpoint !== null && event.position <= checkpoint) return;
              if (event.stream === REGISTRY_STREAM) {
                const registered = (event.data as ExperimentRegistered).stream;
                const pending = unregistered.get(registered);
                if (pending !== undefined) {
                  if (caughtUp) await projectStream(registered, pending, true);
                  else dirty.set(registered, pending);
                }
              } else if (isExperimentStream(event.stream)) {
                if (!caughtUp) dirty.set(event.stream, event);
                else await projectStream(event.stream, event, true);
              }
              if (caughtUp) await advance(event.position);
            })
            .catch((error: unknown) => {
              failed = error;
              subscription.unsubscribe();
              reject(error);
            });
        },
        error: (error: unknown) => reject(error),
        complete: () => resolve(),
      });
      const stop = () => {
        subscription.unsubscribe();
        chain.then(() => resolve(), reject);
      };
      if (options.signal.aborted) stop();
      else options.signal.addEventListener('abort', stop, { once: true });
    });
    await done;
  } finally {
    await follower.close();
    await rl.close();
  }
}

function isExperimentStream(stream: string): boolean {
  return stream.startsWith(EXPERIMENT_STREAM_PREFIX);
}
