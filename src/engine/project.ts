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
import { isUnreadableHistory } from '../model/errors.ts';
import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { EXPERIMENT_STREAM_PREFIX, REGISTRY_STREAM } from '../model/events.ts';
import { createFileDurably, processIsAlive, syncDir, writeStep } from '../durable.ts';
import { FileTooLargeError, NotARegularFileError, readRegularFileIfAny } from '../confine.ts';
import type { EventLog, RecordedEvent } from '../log/types.ts';
import { RoundlogError } from '../errors.ts';
import type { LogAccess } from './store.ts';
import { ExperimentNotFoundError } from '../model/errors.ts';
import { upcastRegistered, type ExperimentState } from '../model/state.ts';
import { PROJECTION_CHECKPOINT_FILE, rootLayout } from '../root.ts';
import type { ExperimentProjection } from './projection.ts';
import { removeDeadProjectionLockCandidates, withProjectionLock } from './projection-lock.ts';
import { openRoundLog, type OpenRoundLogOptions, type RoundLog } from './round-log.ts';

export type ProjectReport = Readonly<{
  root: string;
  rebuild: boolean;
  experiments: readonly ExperimentProjection[];
  /**
   * Experiments whose history cannot be read (`UnreadableHistoryError`, naming the experiment):
   * nothing projected for them; the others are projected as ever.
   */
  damaged: ReadonlyArray<Readonly<{ folder: string; code: string; message: string }>>;
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
    const damaged: Array<{ folder: string; code: string; message: string }> = [];
    if (rl.projections.length > 0) await removeDeadProjectionLockCandidates(rl.layout.experiments);
    for (const id of ids) {
      // The state is read under the projection lock: what is written is the history as it is
      // now, never one another process has projected past (a rewind's folders moved back).
      await viewsLocked(rl, async () => {
        const opened = await rl.openExperiment(id).catch((error: unknown) => {
          if (isUnreadableHistory(error)) return error;
          throw error;
        });
        if (isUnreadableHistory(opened)) {
          damaged.push({ folder: opened.experiment ?? id, code: opened.code, message: opened.message });
          return;
        }
        experiments.push(await projectOne(rl, opened.state, options.rebuild ?? false));
      });
    }
    return {
      root: rl.root,
      rebuild: options.rebuild ?? false,
      experiments,
      damaged,
      ok: damaged.length === 0 && experiments.every((e) => e.problems.length === 0),
    };
  } finally {
    await rl.close();
  }
}

/** `fn` under the projection lock of the root's views (`withProjectionLock`); at once when it keeps no view. */
function viewsLocked<T>(rl: RoundLog, fn: () => Promise<T>): Promise<T> {
  return rl.projections.length === 0 ? fn() : withProjectionLock(rl.layout.experiments, fn);
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
    views: rl.projections.map((projection, i) => ({ ...reports[i]!, name: projection.name })),
  };
}

// ---------------------------------------------------------------------------------------------
// `roundlog project --follow`: the projection as a long-running catch-up subscription.

export type { ExperimentProjection };
export { PROJECTION_CHECKPOINT_FILE };

export type ProjectionCheckpoint = Readonly<{
  /** Format of the file (2; a file without it is of the first format, which had no checksum). */
  v: 2;
  /**
   * The store the position belongs to: `file log` (the root's own log, wherever the root is: the
   * checkpoint names no path, so a copied root keeps it) or `EventStoreDB esdb://…`.
   */
  store: string;
  /** Log position of the last event the projection has handled, as a decimal string. */
  position: string;
  /** The id of the event at `position` when the projection saw it, or null when it did not. */
  eventId: string | null;
  updatedAt: string;
  /** SHA-256 (hex) of the JSON of the fields above, in this order: a damaged file is not used. */
  sha256: string;
}>;

/** The checkpoint file as it is on disk: none, damaged (with why), or one that checks out. */
export type StoredProjectionCheckpoint =
  | Readonly<{ kind: 'none'; file: string }>
  | Readonly<{ kind: 'damaged'; file: string; reason: string }>
  | Readonly<{ kind: 'ok'; file: string; checkpoint: ProjectionCheckpoint }>;

/** A projection checkpoint that does not belong to the log it sits beside: `project --follow` refuses it. */
export class ProjectionCheckpointMismatchError extends RoundlogError {
  readonly code = 'PROJECTION_CHECKPOINT_MISMATCH' as const;
  constructor(
    readonly file: string,
    readonly position: bigint,
    /** Position of the last event of the log, or null when it is empty. */
    readonly logEnd: bigint | null,
    readonly reason: string,
  ) {
    super(
      `the projection checkpoint ${file} says the folders were projected up to log position ${position}, but ` +
        `${reason}: the log lost events since (restored from an older copy?) or is not the log they were ` +
        `projected from. Run 'roundlog verify' to check the log; to project this log from its beginning, ` +
        `delete ${file}`,
    );
  }
}

/** The identity of a store as the checkpoint records it: no path for the root's own file log. */
export function checkpointStore(log: LogAccess): string {
  return log.kind === 'file' ? FILE_LOG_STORE : log.description;
}

const FILE_LOG_STORE = 'file log';

function checkpointSha256(c: Omit<ProjectionCheckpoint, 'sha256'>): string {
  const fields = { v: c.v, store: c.store, position: c.position, eventId: c.eventId, updatedAt: c.updatedAt };
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex');
}

/** Reads the checkpoint file and checks its checksum (a file of the first format, without one, is upcast). */
export async function loadProjectionCheckpoint(root: string): Promise<StoredProjectionCheckpoint> {
  const file = rootLayout(root).projectionCheckpoint;
  let text: string;
  try {
    // Only a regular file, bounded: a checkpoint replaced by a FIFO, a device or a huge file is never
    // opened or read without limit. The checkpoint is a cache: such a file is damaged (projected
    // past from the beginning, reported by verify, replaced when the checkpoint is written again).
    const bytes = await readRegularFileIfAny(file, 'projection checkpoint', 64 * 1024);
    if (bytes === null) return { kind: 'none', file };
    text = bytes.toString('utf8');
  } catch (error) {
    if (error instanceof NotARegularFileError) {
      return { kind: 'damaged', file, reason: `it is a ${error.kind}, not a regular file (never opened)` };
    }
    if (error instanceof FileTooLargeError) {
      return { kind: 'damaged', file, reason: `it holds ${error.size} bytes, more than a checkpoint may (never read)` };
    }
    return { kind: 'damaged', file, reason: `it cannot be read: ${(error as Error).message}` };
  }
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { kind: 'damaged', file, reason: 'it is not JSON' };
  }
  const { v, store, position, eventId, updatedAt, sha256 } = value ?? {};
  const fieldsOk =
    typeof store === 'string' &&
    typeof position === 'string' &&
    /^\d+$/.test(position) &&
    typeof updatedAt === 'string' &&
    (eventId === undefined || eventId === null || typeof eventId === 'string');
  if (v === undefined && fieldsOk) {
    // The first format: no checksum, and the file log named by its absolute path.
    const upcast = {
      v: 2 as const,
      store: store.startsWith(`${FILE_LOG_STORE} `) ? FILE_LOG_STORE : store,
      position,
      eventId: null,
      updatedAt,
    };
    return { kind: 'ok', file, checkpoint: { ...upcast, sha256: checkpointSha256(upcast) } };
  }
  if (v !== 2 || !fieldsOk || typeof sha256 !== 'string') {
    return { kind: 'damaged', file, reason: 'its fields are not those of a projection checkpoint' };
  }
  const checkpoint = {
    v: 2 as const,
    store,
    position,
    eventId: (eventId as string | null | undefined) ?? null,
    updatedAt,
  };
  if (checkpointSha256(checkpoint) !== sha256) {
    return { kind: 'damaged', file, reason: 'it fails its checksum' };
  }
  return { kind: 'ok', file, checkpoint: { ...checkpoint, sha256 } };
}

/** The checkpoint, or null when there is none or it is damaged. */
export async function readProjectionCheckpoint(root: string): Promise<ProjectionCheckpoint | null> {
  const stored = await loadProjectionCheckpoint(root);
  return stored.kind === 'ok' ? stored.checkpoint : null;
}

/**
 * A checkpoint of this store against the log: its position must be one the log has, holding the
 * event it recorded. Null when it checks out, else why not.
 */
export async function checkpointMismatch(
  checkpoint: ProjectionCheckpoint,
  log: EventLog,
): Promise<{ position: bigint; logEnd: bigint | null; reason: string } | null> {
  const position = BigInt(checkpoint.position);
  const { events, lastPosition } = await log.readAll({ fromPosition: position, maxCount: 1 });
  if (lastPosition === null || position > lastPosition) {
    const reason = lastPosition === null ? 'the log is empty' : `the log ends at position ${lastPosition}`;
    return { position, logEnd: lastPosition, reason };
  }
  const at = events[0];
  if (checkpoint.eventId !== null && (at === undefined || at.position !== position || at.id !== checkpoint.eventId)) {
    const found = at === undefined || at.position !== position ? 'no event' : `event ${at.id}`;
    const reason = `the log has ${found} at that position where the checkpoint recorded event ${checkpoint.eventId}`;
    return { position, logEnd: lastPosition, reason };
  }
  return null;
}

async function writeProjectionCheckpoint(root: string, fields: Omit<ProjectionCheckpoint, 'v' | 'sha256'>) {
  const file = rootLayout(root).projectionCheckpoint;
  const dir = path.dirname(file);
  const body = { v: 2 as const, ...fields };
  const checkpoint: ProjectionCheckpoint = { ...body, sha256: checkpointSha256(body) };
  // A temp name of its own: two followers (of this process or others) never write or remove each other's.
  const temp = `${file}.${process.pid}.${randomUUID()}.tmp`;
  await writeStep(file, 'writing the projection checkpoint', async () => {
    await fs.mkdir(dir, { recursive: true });
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

/** Removes the checkpoint's temp files (`<file>.<pid>.<uuid>.tmp`) of followers that died before renaming them. */
async function removeDeadCheckpointTemps(file: string): Promise<void> {
  const dir = path.dirname(file);
  const prefix = `${path.basename(file)}.`;
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const match = /^(\d+)\.[0-9a-f-]+\.tmp$/.exec(name.slice(prefix.length));
    if (match === null || processIsAlive(Number(match[1]))) continue;
    await fs.rm(path.join(dir, name), { force: true });
  }
}

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
      /** Why a checkpoint file that is there was not used (damaged, or of another store), else null. */
      ignored: string | null;
    }>
  | Readonly<{
      kind: 'projected';
      folder: string;
      /** Breakpoint folders and event files written by this update (absolute paths). */
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
  /**
   * Injected clock: the checkpoint's `updatedAt`, and the `lagMs` of each update (this clock's time
   * minus the event's recorded time, in ms). Default the system clock.
   */
  clock?: () => Date;
};

/**
 * Materializes breakpoint folders as the log grows, from a catch-up subscription to the whole log:
 * events since the stored checkpoint first, then live ones. Each experiment an event touches is
 * projected from its stream (so a folder is only ever written from a committed history), and the
 * checkpoint moves past the event once its folders are durable. Restarted, it resumes after the
 * checkpoint. A damaged checkpoint or one of another store is ignored and said so in the `started`
 * update (it starts from the beginning: projecting is idempotent); a checkpoint of this store past
 * the end of the log, or at an event other than the one it recorded, is refused
 * (`ProjectionCheckpointMismatchError`): the log lost events, or is another log.
 */
export async function followProjection(options: FollowProjectionOptions): Promise<void> {
  const now = options.clock ?? (() => new Date());
  const rl = await openRoundLog(options);
  const follower = await rl.log.openFollower(
    options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs },
  );
  const store = rl.log.description;
  const identity = checkpointStore(rl.log);
  try {
    await removeDeadProjectionLockCandidates(rl.layout.experiments);
    await removeDeadCheckpointTemps(rl.layout.projectionCheckpoint);
    const stored = await loadProjectionCheckpoint(rl.root);
    let ignored: string | null = null;
    let checkpoint: bigint | null = null;
    if (stored.kind === 'damaged') {
      ignored = `${stored.file}: ${stored.reason}`;
    } else if (stored.kind === 'ok' && stored.checkpoint.store !== identity) {
      ignored = `${stored.file}: it is the checkpoint of ${stored.checkpoint.store}`;
    } else if (stored.kind === 'ok') {
      const mismatch = await checkpointMismatch(stored.checkpoint, follower);
      if (mismatch !== null) {
        throw new ProjectionCheckpointMismatchError(stored.file, mismatch.position, mismatch.logEnd, mismatch.reason);
      }
      checkpoint = BigInt(stored.checkpoint.position);
    }
    // The lag at start: what the log holds after the checkpoint.
    let lagEvents = 0;
    let logEnd: bigint | null = null;
    {
      const { events, lastPosition } = await follower.readAll(checkpoint === null ? {} : { fromPosition: checkpoint });
      logEnd = lastPosition;
      lagEvents = events.filter((e) => checkpoint === null || e.position > checkpoint).length;
    }
    options.onUpdate({ kind: 'started', store, checkpoint, logEnd, lagEvents, ignored });

    let handled: bigint | null = checkpoint;
    let caughtUp = false;
    /** Experiment streams touched during the catch-up, projected once it is done. */
    const dirty = new Map<string, RecordedEvent>();
    /** Streams with events but no registration yet (a creation in progress). */
    const unregistered = new Map<string, RecordedEvent>();

    const projectStream = async (stream: string, trigger: RecordedEvent, live: boolean): Promise<void> => {
      // Read and projected under the projection lock, as `projectRoot` does.
      const result = await viewsLocked(rl, async () => {
        let state: ExperimentState;
        try {
          state = (await rl.openExperiment(stream)).state;
        } catch (error) {
          if (error instanceof ExperimentNotFoundError) {
            unregistered.set(stream, trigger);
            return null;
          }
          throw error;
        }
        unregistered.delete(stream);
        return projectOne(rl, state, false);
      });
      if (result === null) return;
      options.onUpdate({
        kind: 'projected',
        folder: result.folder,
        written: result.written,
        problems: result.problems,
        position: trigger.position,
        lagMs: Math.max(0, now().getTime() - trigger.timestamp.getTime()),
        live,
      });
    };
    /** The last event the subscription delivered: the checkpoint records its id when it stops there. */
    let lastSeen: RecordedEvent | null = null;
    const advance = async (position: bigint | null) => {
      if (position === null || (handled !== null && position <= handled)) return;
      handled = position;
      await writeProjectionCheckpoint(rl.root, {
        store: identity,
        position: position.toString(),
        eventId: lastSeen !== null && lastSeen.position === position ? lastSeen.id : null,
        updatedAt: now().toISOString(),
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
              lastSeen = event;
              if (checkpoint !== null && event.position <= checkpoint) return;
              if (event.stream === REGISTRY_STREAM) {
                // A registration that cannot be read: every stream waiting for one is tried again
                // (opening it finds the experiments from their streams, as `ls` lists them).
                const registered = registeredStream(event);
                for (const [stream, pending] of [...unregistered]) {
                  if (registered !== null && stream !== registered) continue;
                  if (caughtUp) await projectStream(stream, pending, true);
                  else dirty.set(stream, pending);
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

/** The stream a registry event registers, or null when it cannot be read. */
function registeredStream(event: RecordedEvent): string | null {
  try {
    return upcastRegistered(event).stream;
  } catch (error) {
    if (isUnreadableHistory(error)) return null;
    throw error;
  }
}

function isExperimentStream(stream: string): boolean {
  return stream.startsWith(EXPERIMENT_STREAM_PREFIX);
}
