/**
 * `roundlog project`: the projection runner. Brings the views of every experiment (the round
 * log's projections: breakpoint folders) in step with the log, once or following it.
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
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { EXPERIMENT_STREAM_PREFIX, REGISTRY_STREAM, type ExperimentRegistered } from '../model/events.ts';
import { createFileDurably, syncDir, writeStep } from '../durable.ts';
import { isReadRefusal, readRegularFileIfAny } from '../confine.ts';
import type { RecordedEvent } from '../log/types.ts';
import { ExperimentNotFoundError } from '../model/errors.ts';
import type { ExperimentState } from '../model/state.ts';
import { PROJECTION_CHECKPOINT_FILE, rootLayout } from '../root.ts';
import type { ExperimentProjection } from './projection.ts';
import { openRoundLog, type OpenRoundLogOptions, type RoundLog } from './round-log.ts';

export type ProjectReport = Readonly<{
  root: string;
  rebuild: boolean;
  experiments: readonly ExperimentProjection[];
  ok: boolean;
}>;

export type ProjectOptions = OpenRoundLogOptions & {
  /** Remove the branch's folders the log can write again first. Default false. */
  rebuild?: boolean;
  /** One experiment (id, folder, stream or path); default every experiment of the root. */
  experiment?: string;
};

export async function projectRoot(options: ProjectOptions = {}): Promise<ProjectReport> {
  const rl = await openRoundLog(options);
  try {
    const ids =
      options.experiment === undefined
        ? (await rl.listExperiments()).map((e) => e.experimentId)
        : [(await rl.openExperiment(options.experiment)).id];
    const experiments: ExperimentProjection[] = [];
    for (const id of ids) {
      const { state } = await rl.openExperiment(id);
      experiments.push(await projectOne(rl, state, options.rebuild ?? false));
    }
    return {
      root: rl.root,
      rebuild: options.rebuild ?? false,
      experiments,
      ok: experiments.every((e) => e.problems.length === 0),
    };
  } finally {
    await rl.close();
  }
}

/** Every projection of the round log brought in step for one experiment, their reports merged. */
async function projectOne(rl: RoundLog, state: ExperimentState, rebuild: boolean): Promise<ExperimentProjection> {
  const reports: ExperimentProjection[] = [];
  for (const projection of rl.projections) reports.push(await projection.project(state, { rebuild }));
  const all = (key: 'removed' | 'written' | 'movedAside' | 'problems') => reports.flatMap((r) => r[key]);
  const rounds = (key: 'lagBefore' | 'lagAfter' | 'pruned' | 'rescued') =>
    [...new Set(reports.flatMap((r) => r[key]))].sort((x, y) => x - y);
  return {
    experimentId: state.created!.experimentId,
    folder: state.folder,
    lagBefore: rounds('lagBefore'),
    removed: all('removed'),
    written: all('written'),
    movedAside: all('movedAside'),
    pruned: rounds('pruned'),
    rescued: rounds('rescued'),
    problems: all('problems'),
    lagAfter: rounds('lagAfter'),
  };
}

// ---------------------------------------------------------------------------------------------
// `roundlog project --follow`: the projection as a long-running catch-up subscription.

export type { ExperimentProjection };
export { PROJECTION_CHECKPOINT_FILE };

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
  const file = rootLayout(root).projectionCheckpoint;
  let bytes: Buffer | null;
  try {
    bytes = await readRegularFileIfAny(file, 'projection checkpoint', 64 * 1024);
  } catch (error) {
    // A checkpoint replaced by a device or a huge file is refused, never read without limit.
    if (isReadRefusal(error)) throw error;
    return null;
  }
  if (bytes === null) return null;
  try {
    const value = JSON.parse(bytes.toString('utf8')) as ProjectionCheckpoint;
    return typeof value?.position === 'string' && /^\d+$/.test(value.position) && typeof value.store === 'string'
      ? value
      : null;
  } catch {
    return null;
  }
}

async function writeProjectionCheckpoint(root: string, checkpoint: ProjectionCheckpoint): Promise<void> {
  const file = rootLayout(root).projectionCheckpoint;
  const dir = path.dirname(file);
  const temp = `${file}.${process.pid}.tmp`;
  await writeStep(file, 'writing the projection checkpoint', async () => {
    await fs.mkdir(dir, { recursive: true });
    await fs.rm(temp, { force: true });
    try {
      await createFileDurably(temp, `${JSON.stringify(checkpoint, null, 2)}\n`);
      await fs.rename(temp, file);
    } catch (error) {
      await fs.rm(temp, { force: true });
      throw error;
    }
    await syncDir(dir);
  });
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
  const follower = await rl.log.openFollower(
    options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs },
  );
  const store = rl.log.description;
  try {
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
      const result = await projectOne(rl, state, false);
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
      await writeProjectionCheckpoint(rl.root, {
        store,
        position: position.toString(),
        updatedAt: new Date().toISOString(),
      });
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
