/**
 * What the audit queries share: naming an experiment, reading its whole stream, the item type of
 * the live (follow) modes, and a read-only handle on the log that follows a writer in another process.
 */
import type { RoundLog } from '../projections/index.ts';
import { readHistory } from '../engine/registry.ts';
import { InvalidArgumentError } from '../errors.ts';
import type { ExperimentEventType } from '../model/events.ts';
import { EXPERIMENT_EVENT_TYPES, replay, type ExperimentState } from '../model/state.ts';
import type { EventLog, RecordedEvent, SubscribeOptions, SubscriptionItem } from '../log/types.ts';
import { Observable, type Subscription } from 'rxjs';

/** An experiment as the audit results name it. */
export type ExperimentRef = Readonly<{
  id: string;
  /** Its number in the root's registry (`Experiment_NNNN` by default). */
  number: number;
  /** Its folder under `<root>/experiments` now (renamed folders are followed). */
  folder: string;
  stream: string;
}>;

/**
 * What a live query emits: first every item already in the log (`live: false`), then one
 * `caughtUp` (the log's last position at that moment), then items as other processes append the
 * events they come from (`live: true`). The same contract as `EventLog.subscribe`.
 */
export type Followed<T> =
  Readonly<{ kind: 'item'; item: T; live: boolean }> | Readonly<{ kind: 'caughtUp'; position: bigint | null }>;

/** Options every live query takes. */
export type FollowOptions = {
  /** How often the read-only log looks for events appended by other processes, in ms. Default 50. */
  pollIntervalMs?: number;
};

/** Every experiment event type, in catalogue order. */
export const EVENT_TYPES: readonly ExperimentEventType[] = EXPERIMENT_EVENT_TYPES;

export function isEventType(type: string): type is ExperimentEventType {
  return (EVENT_TYPES as readonly string[]).includes(type);
}

/** An experiment named by id, folder name, stream name or path, with its state and whole stream. */
export type OpenedExperiment = Readonly<{
  ref: ExperimentRef;
  state: ExperimentState;
  events: readonly RecordedEvent[];
}>;

/** Resolves an experiment name; `ExperimentNotFoundError` when nothing answers to it. */
export async function resolveExperiment(
  rl: RoundLog,
  experiment: string,
): Promise<{ ref: ExperimentRef; state: ExperimentState; recordedFolder: string }> {
  if (typeof experiment !== 'string' || experiment.length === 0) {
    throw new InvalidArgumentError(
      'experiment',
      'must be an experiment id, folder name, stream name or path',
      experiment,
    );
  }
  const handle = await rl.openExperiment(experiment);
  const created = handle.created;
  return {
    ref: { id: created.experimentId, number: created.number, folder: handle.state.folder, stream: handle.stream },
    state: handle.state,
    recordedFolder: handle.recordedFolder,
  };
}

/** Resolves an experiment and reads every event of its stream (the state is folded from the same read). */
export async function openWithHistory(rl: RoundLog, experiment: string): Promise<OpenedExperiment> {
  const { ref, state: opened, recordedFolder } = await resolveExperiment(rl, experiment);
  const named = { folder: opened.created!.folder, stream: ref.stream };
  const events = await rl.withReader(async (log) => (await readHistory(log, named)).events);
  // Folded from this very read, so the state and the events agree even while a writer appends; its
  // folder where it is now (moved under experiments/ and not recorded yet: where the handle found it).
  const replayed = replay(events);
  const state = replayed.folder === recordedFolder ? { ...replayed, folder: ref.folder } : replayed;
  return { ref: { ...ref, folder: state.folder }, state, events };
}

/**
 * The plumbing every live query shares: `prepare` (resolving names) runs first, then a read-only
 * follower subscribes to `subscribe` on the log, and each subscription item goes to the handler
 * `prepare` returned, which emits what the query makes of it. An error from the handler (an
 * event this release cannot read) ends the observable with that error. Unsubscribing stops the
 * subscription and closes the follower.
 */
export function followLog<T>(
  rl: RoundLog,
  options: FollowOptions,
  prepare: () => Promise<{
    subscribe: SubscribeOptions;
    handler: (item: SubscriptionItem, emit: (followed: Followed<T>) => void) => void;
  }>,
): Observable<Followed<T>> {
  return new Observable<Followed<T>>((subscriber) => {
    let stopped = false;
    let log: EventLog | null = null;
    let inner: Subscription | null = null;
    const start = async () => {
      const { subscribe, handler } = await prepare();
      const opened = await rl.log.openFollower(options);
      if (stopped) {
        await opened.close();
        return;
      }
      log = opened;
      const emit = (followed: Followed<T>) => subscriber.next(followed);
      inner = opened.subscribe(subscribe).subscribe({
        next: (item) => {
          try {
            handler(item, emit);
          } catch (error) {
            subscriber.error(error);
          }
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      });
    };
    start().catch((error: unknown) => subscriber.error(error));
    return () => {
      stopped = true;
      inner?.unsubscribe();
      void (log as EventLog | null)?.close().catch(() => undefined);
    };
  });
}

/** Orders by log position, keeping the order of equal positions. */
export function byPosition<T extends { position: bigint }>(a: T, b: T): number {
  return a.position < b.position ? -1 : a.position > b.position ? 1 : 0;
}

/** Checks a `since`/`until` pair: valid dates, `since` not after `until`. */
export function checkTimeRange(since: Date | undefined, until: Date | undefined): void {
  for (const [name, value] of [
    ['since', since],
    ['until', until],
  ] as const) {
    if (value !== undefined && (!(value instanceof Date) || Number.isNaN(value.getTime()))) {
      throw new InvalidArgumentError(name, 'must be a valid Date', value);
    }
  }
  if (since !== undefined && until !== undefined && since.getTime() > until.getTime()) {
    throw new InvalidArgumentError('until', `must not be before since (${since.toISOString()})`, until.toISOString());
  }
}

/** `since <= time < until`, each bound optional. */
export function inTimeRange(time: Date, since: Date | undefined, until: Date | undefined): boolean {
  const t = time.getTime();
  return (since === undefined || t >= since.getTime()) && (until === undefined || t < until.getTime());
}
