/**
 * The timeline of one experiment: its stream read as entries a person follows (creation, rounds
 * with their nodes and metrics, aborted attempts, resumes, rewinds, forks, settings changes,
 * pruning), once (`experimentHistory`) or live (`followHistory`).
 *
 * A round's `RoundStarted`, `NodeReplied`s and `RoundCompleted` make one `round` entry, at the
 * `RoundCompleted`. An attempt is aborted when its `RoundStarted` has no `RoundCompleted` of the
 * same round and attempt after it before the next `RoundStarted`, `Resumed`, `Rewound` or `RunFailed`: its
 * `aborted` entry sits at its `RoundStarted`. An attempt with none of these after it is `started`
 * (still running, or its process stopped and nothing resumed the experiment yet).
 */
import type { Observable } from 'rxjs';
import type { RoundLog } from '../projections/index.ts';
import {
  stoppedBySignal,
  type Actor,
  type RemoteRun,
  type Retention,
  type RunOwner,
  type SettingsChanged,
} from '../model/events.ts';
import { roundCurrent, upcast } from '../model/state.ts';
import type { RecordedEvent } from '../log/types.ts';
import {
  byPosition,
  followLog,
  openWithHistory,
  resolveExperiment,
  type ExperimentRef,
  type FollowOptions,
  type Followed,
} from './common.ts';

/** A node's part in a completed round. */
export type NodeResult = Readonly<{
  node: string;
  sampleSize: number;
  metrics: Readonly<Record<string, number>>;
  /** Its training time, from its `NodeReplied`; null when the round recorded no reply events. */
  durationMs: number | null;
}>;

/** The settings a `SettingsChanged` set (only those it names). */
export type SettingsChange = Omit<SettingsChanged, 'v' | 'by'>;

/**
 * Where an entry is in the log: the event it is about (a round's `RoundCompleted`, an aborted
 * attempt's `RoundStarted`).
 */
type Envelope = Readonly<{ position: bigint; revision: bigint; time: Date }>;

export type CreatedEntry = Envelope &
  Readonly<{
    kind: 'created';
    folder: string;
    number: number;
    seed: number;
    roundLimit: number | null;
    saveBreakpoints: boolean;
    /** Null for a plain training loop (not run by the `Experiment` facade). */
    tags: readonly string[] | null;
    /** Nodes the experiment was restricted to; null for every node with matching data. */
    nodes: readonly string[] | null;
    trainingPlan: Readonly<{ module: string; export: string; sha256: string }> | null;
    by: Actor;
    roundlogVersion: string;
    importedFrom: Readonly<{ experimentId: string; folder: string; round: number }> | null;
  }>;

export type RoundEntry = Envelope &
  Readonly<{
    kind: 'round';
    round: number;
    attempt: number;
    nodes: readonly NodeResult[];
    metrics: Readonly<Record<string, number>>;
    breakpoint: boolean;
    durationMs: number;
    /** When its `RoundStarted` was appended; null when the round was recorded without one. */
    startedAt: Date | null;
  }>;

export type AbortedEntry = Envelope &
  Readonly<{
    kind: 'aborted';
    round: number;
    attempt: number;
    nodes: readonly string[];
    /** The event that ended the attempt without its `RoundCompleted`. */
    endedBy: Readonly<{ type: 'RoundStarted' | 'Resumed' | 'Rewound' | 'RunFailed'; position: bigint; time: Date }>;
  }>;

export type StartedEntry = Envelope &
  Readonly<{ kind: 'started'; round: number; attempt: number; nodes: readonly string[] }>;

/**
 * Round numbers are indices, as in `breakpoint_RRRR`: `round` is the last round kept (null: none,
 * the experiment resumed from its initial parameters); `roundCurrent` is how many rounds are
 * completed, which is also the index of the round that runs next.
 */
export type ResumedEntry = Envelope &
  Readonly<{
    kind: 'resumed';
    round: number | null;
    roundCurrent: number;
    breakpoint: string | null;
    folder: string | null;
    by: Actor;
  }>;

/** `round` is R of `roundlog rewind --round R`: the last round kept; `roundCurrent` (R+1) runs next. */
export type RewoundEntry = Envelope &
  Readonly<{
    kind: 'rewound';
    round: number;
    roundCurrent: number;
    reason: string;
    supersededRounds: readonly number[];
    by: Actor;
  }>;

export type ForkedFromEntry = Envelope &
  Readonly<{
    kind: 'forked-from';
    parentId: string;
    parentFolder: string;
    parentRound: number;
    parentPosition: string;
  }>;

export type ForkedEntry = Envelope &
  Readonly<{ kind: 'forked'; childId: string; childFolder: string; round: number; by: Actor }>;

export type SettingsEntry = Envelope & Readonly<{ kind: 'settings'; changes: SettingsChange; by: Actor }>;

export type PrunedEntry = Envelope &
  Readonly<{
    kind: 'pruned';
    rounds: ReadonlyArray<Readonly<{ round: number; position: string }>>;
    retention: Retention;
    by: Actor;
  }>;

/** `round`: the last round completed (null: none); `roundCurrent`: how many were. */
export type FinishedEntry = Envelope & Readonly<{ kind: 'finished'; round: number | null; roundCurrent: number }>;

/** A process took the run lease (`RunStarted`); `tookOver` names a live-looking run it took over. */
export type RunStartedEntry = Envelope &
  Readonly<{
    kind: 'run-started';
    runId: string;
    owner: RunOwner;
    heartbeatMs: number;
    tookOver: Readonly<{ runId: string; owner: RunOwner }> | null;
    /** The node processes the run trains on (address and node ids); null for in-process nodes and older logs. */
    remote: RemoteRun | null;
  }>;

/** A run ended with an error (`RunFailed`): its code and message, at round `round` (attempt, if one was open). */
export type RunFailedEntry = Envelope &
  Readonly<{
    kind: 'run-failed';
    runId: string | null;
    round: number;
    attempt: number | null;
    code: string;
    message: string;
  }>;

export type RunEndedEntry = Envelope &
  Readonly<{
    kind: 'run-ended';
    runId: string;
    roundCurrent: number;
    /** The signal that stopped the run after its round in flight (`SIGINT`, `SIGTERM`), else null. */
    signal: string | null;
  }>;

export type HistoryEntry =
  | CreatedEntry
  | RoundEntry
  | AbortedEntry
  | StartedEntry
  | ResumedEntry
  | RewoundEntry
  | ForkedFromEntry
  | ForkedEntry
  | SettingsEntry
  | PrunedEntry
  | FinishedEntry
  | RunStartedEntry
  | RunFailedEntry
  | RunEndedEntry;

export type HistoryKind = HistoryEntry['kind'];

export const HISTORY_KINDS: readonly HistoryKind[] = Object.freeze([
  'created',
  'round',
  'aborted',
  'started',
  'resumed',
  'rewound',
  'forked-from',
  'forked',
  'settings',
  'pruned',
  'finished',
  'run-started',
  'run-failed',
  'run-ended',
]);

/** Who did what an entry records, when it records it. */
export function actorOf(entry: HistoryEntry): Actor | null {
  return 'by' in entry ? entry.by : null;
}

/** The index of the last round of `roundCurrent` completed ones; null for none. */
export function lastKept(roundCurrent: number): number | null {
  return roundCurrent === 0 ? null : roundCurrent - 1;
}

type Pending = {
  round: number;
  attempt: number;
  nodes: readonly string[];
  position: bigint;
  revision: bigint;
  time: Date;
  announced: boolean;
};

/**
 * Turns a stream's events, in order, into history entries. `push` returns the entries an event
 * settles (none while a round is running; a round when it completes; an aborted attempt and the
 * event that ended it). `end` returns the attempt still open, once. With `live` set, a
 * `RoundStarted` is reported at once as `started` (a live follower shows a round as it begins).
 */
export class HistoryProjector {
  live = false;
  private pending: Pending | null = null;
  /** Per-node durations from `NodeReplied`, by `round/attempt`, until the round completes. */
  private readonly replies = new Map<string, Map<string, number>>();

  push(recorded: RecordedEvent): HistoryEntry[] {
    const event = upcast(recorded);
    const at = { position: recorded.position, revision: recorded.revision, time: recorded.timestamp };
    const out: HistoryEntry[] = [];
    const abortPending = (type: AbortedEntry['endedBy']['type']) => {
      const p = this.pending;
      if (p === null) return;
      this.pending = null;
      this.replies.delete(`${p.round}/${p.attempt}`);
      out.push({
        kind: 'aborted',
        round: p.round,
        attempt: p.attempt,
        nodes: p.nodes,
        endedBy: { type, position: recorded.position, time: recorded.timestamp },
        position: p.position,
        revision: p.revision,
        time: p.time,
      });
    };
    switch (event.type) {
      case 'ExperimentCreated': {
        const d = event.data;
        const plan = d.federated?.trainingPlan ?? null;
        out.push({
          kind: 'created',
          folder: d.folder,
          number: d.number,
          seed: d.seed,
          roundLimit: d.roundLimit,
          saveBreakpoints: d.saveBreakpoints,
          tags: d.federated?.tags ?? null,
          nodes: d.federated?.nodes ?? null,
          trainingPlan: plan === null ? null : { module: plan.module, export: plan.export, sha256: plan.sha256 },
          by: d.createdBy,
          roundlogVersion: d.roundlogVersion,
          importedFrom:
            d.importedFrom === null
              ? null
              : {
                  experimentId: d.importedFrom.experimentId,
                  folder: d.importedFrom.folder,
                  round: d.importedFrom.round,
                },
          ...at,
        });
        break;
      }
      case 'RoundStarted': {
        abortPending('RoundStarted');
        const d = event.data;
        this.pending = { round: d.round, attempt: d.attempt, nodes: d.nodes, ...at, announced: this.live };
        if (this.live) out.push({ kind: 'started', round: d.round, attempt: d.attempt, nodes: d.nodes, ...at });
        break;
      }
      case 'NodeReplied': {
        const d = event.data;
        const key = `${d.round}/${d.attempt}`;
        const durations = this.replies.get(key) ?? new Map<string, number>();
        durations.set(d.node, d.durationMs);
        this.replies.set(key, durations);
        break;
      }
      case 'RoundCompleted': {
        const d = event.data;
        const key = `${d.round}/${d.attempt}`;
        let startedAt: Date | null = null;
        if (this.pending !== null && this.pending.round === d.round && this.pending.attempt === d.attempt) {
          startedAt = this.pending.time;
          this.pending = null;
        }
        const durations = this.replies.get(key);
        this.replies.delete(key);
        out.push({
          kind: 'round',
          round: d.round,
          attempt: d.attempt,
          nodes: d.nodes.map((n) => ({
            node: n.node,
            sampleSize: n.sampleSize,
            metrics: n.metrics,
            durationMs: durations?.get(n.node) ?? null,
          })),
          metrics: d.metrics,
          breakpoint: d.breakpoint,
          durationMs: d.durationMs,
          startedAt,
          ...at,
        });
        break;
      }
      case 'SettingsChanged': {
        const { v: _v, by, ...changes } = event.data;
        out.push({ kind: 'settings', changes, by, ...at });
        break;
      }
      case 'Resumed':
        abortPending('Resumed');
        out.push({
          kind: 'resumed',
          round: lastKept(event.data.roundCurrent),
          roundCurrent: event.data.roundCurrent,
          breakpoint: event.data.breakpoint,
          folder: event.data.folder,
          by: event.data.by,
          ...at,
        });
        break;
      case 'Rewound':
        abortPending('Rewound');
        out.push({
          kind: 'rewound',
          round: event.data.roundCurrent - 1,
          roundCurrent: event.data.roundCurrent,
          reason: event.data.reason,
          supersededRounds: event.data.supersededRounds,
          by: event.data.by,
          ...at,
        });
        break;
      case 'ForkedFrom':
        out.push({
          kind: 'forked-from',
          parentId: event.data.parentId,
          parentFolder: event.data.parentFolder,
          parentRound: event.data.parentRound,
          parentPosition: event.data.parentPosition,
          ...at,
        });
        break;
      case 'Forked':
        out.push({
          kind: 'forked',
          childId: event.data.childId,
          childFolder: event.data.childFolder,
          round: event.data.round,
          by: event.data.by,
          ...at,
        });
        break;
      case 'RoundsPruned':
        out.push({
          kind: 'pruned',
          rounds: event.data.rounds,
          retention: event.data.retention,
          by: event.data.by,
          ...at,
        });
        break;
      case 'ExperimentFinished':
        out.push({
          kind: 'finished',
          round: lastKept(event.data.roundCurrent),
          roundCurrent: event.data.roundCurrent,
          ...at,
        });
        break;
      case 'RunStarted': {
        const { runId, owner, heartbeatMs, tookOver } = event.data;
        const remote = event.data.remote ?? null;
        out.push({ kind: 'run-started', runId, owner, heartbeatMs, tookOver, remote, ...at });
        break;
      }
      case 'RunHeartbeat':
        break;
      case 'RunFailed': {
        // The attempt open when the run failed is aborted by it.
        abortPending('RunFailed');
        const { runId, round, attempt, code, message } = event.data;
        out.push({ kind: 'run-failed', runId, round, attempt, code, message, ...at });
        break;
      }
      case 'RunEnded':
        out.push({
          kind: 'run-ended',
          runId: event.data.runId,
          roundCurrent: event.data.roundCurrent,
          signal: stoppedBySignal(event.data),
          ...at,
        });
        break;
    }
    return out;
  }

  /** The attempt still open (started, neither completed nor ended), reported once. */
  end(): HistoryEntry[] {
    const p = this.pending;
    if (p === null || p.announced) return [];
    p.announced = true;
    return [
      {
        kind: 'started',
        round: p.round,
        attempt: p.attempt,
        nodes: p.nodes,
        position: p.position,
        revision: p.revision,
        time: p.time,
      },
    ];
  }
}

/** The history entries of a stream's events (all of them, in order), in log order. Pure. */
export function historyOf(events: Iterable<RecordedEvent>): HistoryEntry[] {
  const projector = new HistoryProjector();
  const entries: HistoryEntry[] = [];
  for (const event of events) entries.push(...projector.push(event));
  entries.push(...projector.end());
  return entries.sort(byPosition);
}

export type HistoryOptions = {
  /** Id, folder name (`Experiment_0003`), stream name, or path of an experiment or breakpoint folder. */
  experiment: string;
};

export type HistoryResult = Readonly<{
  experiment: ExperimentRef;
  /** Completed rounds on the current branch. */
  roundCurrent: number;
  entries: readonly HistoryEntry[];
}>;

/** The timeline of one experiment. `ExperimentNotFoundError` when nothing answers to the name. */
export async function experimentHistory(rl: RoundLog, options: HistoryOptions): Promise<HistoryResult> {
  const { ref, state, events } = await openWithHistory(rl, options.experiment);
  return { experiment: ref, roundCurrent: roundCurrent(state), entries: historyOf(events) };
}

export type FollowHistoryOptions = HistoryOptions & FollowOptions;

/**
 * The timeline of one experiment, then its new entries as other processes append events: the
 * entries of `experimentHistory` (`live: false`), a `caughtUp`, then live entries (a round shows
 * as `started` when it begins, then as `round` or `aborted`). Runs on its own read-only handle
 * on the log, closed when the subscriber unsubscribes; errors (an unknown experiment:
 * `ExperimentNotFoundError`) arrive as the observable's error.
 */
export function followHistory(rl: RoundLog, options: FollowHistoryOptions): Observable<Followed<HistoryEntry>> {
  return followLog<HistoryEntry>(rl, options, async () => {
    const { ref } = await resolveExperiment(rl, options.experiment);
    const projector = new HistoryProjector();
    let catchingUp: HistoryEntry[] | null = [];
    return {
      subscribe: { stream: ref.stream, from: 'start' },
      handler: (item, emit) => {
        if (item.kind === 'caughtUp') {
          if (catchingUp === null) return;
          const known = [...catchingUp, ...projector.end()].sort(byPosition);
          catchingUp = null;
          projector.live = true;
          for (const entry of known) emit({ kind: 'item', item: entry, live: false });
          emit({ kind: 'caughtUp', position: item.position });
          return;
        }
        const entries = projector.push(item.event);
        if (catchingUp !== null) catchingUp.push(...entries);
        else for (const entry of entries) emit({ kind: 'item', item: entry, live: true });
      },
    };
  });
}
