/**
 * The state of an experiment as a pure fold over its stream: `evolve(state, event)`. Replay,
 * resume, rewind and audit all read the experiment through this one function.
 */
import type { BlobRef } from '../blobs/types.ts';
import type { RecordedEvent } from '../log/types.ts';
import type {
  ExperimentCreated,
  ExperimentEvent,
  ExperimentEventType,
  ExperimentRegistered,
  FederatedSetup,
  ForkedFrom,
  RemoteRun,
  Retention,
  RoundCompleted,
  RunFailed,
  RunOwner,
  TrainingPlanRef,
} from './events.ts';
import { InvalidEventDataError, UnknownEventError } from './errors.ts';
import { describeValue, EVENT_SCHEMAS, experimentRegistered, schemaProblem } from './schemas.ts';

/** Settings that can change during an experiment; each round records those it ran under. */
export type Settings = Readonly<{
  roundLimit: number | null;
  retention: Retention | null;
  saveBreakpoints: boolean;
  trainingArgs: Readonly<Record<string, unknown>>;
  trainingPlan: TrainingPlanRef | null;
}>;

/** A completed round as the state holds it. */
export type RoundRecord = Readonly<{
  round: number;
  attempt: number;
  params: BlobRef;
  state: unknown;
  metrics: RoundCompleted['metrics'];
  nodes: RoundCompleted['nodes'];
  breakpoint: boolean;
  durationMs: number;
  settings: Settings;
  /** Log position and stream revision of the `RoundCompleted` event. */
  position: bigint;
  revision: bigint;
  timestamp: Date;
}>;

export type ExperimentState = Readonly<{
  created: ExperimentCreated | null;
  /** The experiment's folder name under `<root>/experiments` (renamed folders are followed). */
  folder: string;
  settings: Settings;
  /** The completed rounds of the current branch, by round index. `rounds.length` is `roundCurrent()`. */
  rounds: readonly RoundRecord[];
  /** Rounds taken off the current branch by a rewind, in the order they were superseded. */
  superseded: readonly RoundRecord[];
  /**
   * The rewinds of the stream, oldest first: each took `count` rounds off the branch, the records
   * `superseded.slice(start, start + count)` where `start` is the sum of the counts before it.
   * `position` and `timestamp` are those of its `Rewound` event.
   */
  rewinds: readonly Readonly<{ position: bigint; timestamp: Date; roundCurrent: number; count: number }>[];
  /** A round started and not (yet) completed: an aborted attempt if the process is gone. */
  openAttempt: Readonly<{ round: number; attempt: number; nodes: readonly string[] }> | null;
  /** Attempts started per round index, so a retry of a round gets the next attempt number. */
  attempts: Readonly<Record<number, number>>;
  forkedFrom: ForkedFrom | null;
  /** Forks started from this experiment. */
  forks: readonly Readonly<{
    childId: string;
    childFolder: string;
    round: number;
    position: bigint;
    timestamp: Date;
  }>[];
  /**
   * Rounds whose parameters retention deleted, keyed by the log position of their
   * `RoundCompleted` (decimal), with the position and time of the pruning.
   */
  pruned: Readonly<Record<string, Readonly<{ round: number; position: bigint; timestamp: Date }>>>;
  finished: boolean;
  /**
   * The open run (a `RunStarted` without its `RunEnded` or `RunFailed`): its owner, when it
   * started, and `lastSeen`, the time of its last sign of life (its start, a round event, a heartbeat).
   */
  run: Readonly<{ runId: string; owner: RunOwner; heartbeatMs: number; since: Date; lastSeen: Date }> | null;
  /**
   * How the last run (open or ended) trained: on node processes (`RunStarted.remote`: the address
   * and the node ids), or null (in-process nodes, no run yet, or a run recorded before the field).
   * A fork with no run yet has its parent's (`ForkedFrom.remote`).
   */
  remote: RemoteRun | null;
  /** The last run's failure, until another run starts: what `RunFailed` recorded, and when. */
  failure: (Omit<RunFailed, 'v'> & Readonly<{ timestamp: Date }>) | null;
  /** Revision of the last event folded, or -1n before any. */
  revision: bigint;
  position: bigint;
}>;

/**
 * Version of the shape of `ExperimentState`. Snapshots record it and are ignored when it differs:
 * change it whenever a field is added, removed or changes meaning.
 */
export const STATE_SHAPE_VERSION = 5;

export const initialState: ExperimentState = Object.freeze({
  created: null,
  folder: '',
  settings: Object.freeze({
    roundLimit: null,
    retention: null,
    saveBreakpoints: false,
    trainingArgs: Object.freeze({}),
    trainingPlan: null,
  }),
  rounds: Object.freeze([]) as readonly RoundRecord[],
  superseded: Object.freeze([]) as readonly RoundRecord[],
  rewinds: Object.freeze([]),
  openAttempt: null,
  attempts: Object.freeze({}),
  forkedFrom: null,
  forks: Object.freeze([]),
  pruned: Object.freeze({}),
  finished: false,
  run: null,
  remote: null,
  failure: null,
  revision: -1n,
  position: -1n,
});

/** Every experiment event type, in catalogue order. */
export const EXPERIMENT_EVENT_TYPES: readonly ExperimentEventType[] = Object.freeze([
  'ExperimentCreated',
  'RoundStarted',
  'NodeReplied',
  'RoundCompleted',
  'SettingsChanged',
  'Resumed',
  'Rewound',
  'ForkedFrom',
  'Forked',
  'RoundsPruned',
  'ExperimentFinished',
  'RunStarted',
  'RunHeartbeat',
  'RunFailed',
  'RunEnded',
]);

const KNOWN: ReadonlySet<string> = new Set<string>(EXPERIMENT_EVENT_TYPES);

/**
 * Data objects already found to fit their schema: an event read once is folded by several readers
 * (an audit shows it and folds it), and is checked once. Events' data is never changed once read.
 */
const checked = new WeakSet<object>();

/**
 * Brings an event written by any release to the current schema, checked: its type must be known,
 * its data version one this release reads, and its data must have that event's shape
 * (`EVENT_SCHEMAS`). Every event type is at version 1 so far; a new version adds its conversion
 * here, so old logs stay loadable. Every read of an event's data goes through here.
 *
 * Errors: `UnknownEventError` (a type or version this release does not know);
 * `InvalidEventDataError` naming the stream, revision, type and field of data of the wrong shape.
 */
export function upcast(recorded: RecordedEvent): ExperimentEvent {
  if (!KNOWN.has(recorded.type)) throw new UnknownEventError(recorded.stream, recorded.revision, recorded.type);
  const data = recorded.data as { v?: unknown } | null;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    const what = data === null ? 'null' : Array.isArray(data) ? 'an array' : typeof data;
    throw invalid(recorded, 'data', `is ${what}: expected an object`);
  }
  if (data.v !== 1) {
    throw new UnknownEventError(recorded.stream, recorded.revision, `${recorded.type} v${describeValue(data.v)}`);
  }
  if (!checked.has(data)) {
    const wrong = schemaProblem(EVENT_SCHEMAS[recorded.type as ExperimentEventType], data);
    if (wrong !== null) throw invalid(recorded, wrong.field, wrong.problem);
    checked.add(data);
  }
  return { type: recorded.type, data } as ExperimentEvent;
}

/**
 * An event of the registry stream, checked as `upcast` checks an experiment's: an
 * `ExperimentRegistered` of version 1 with data of its shape.
 */
export function upcastRegistered(recorded: RecordedEvent): ExperimentRegistered {
  if (recorded.type !== 'ExperimentRegistered') {
    throw new UnknownEventError(recorded.stream, recorded.revision, recorded.type);
  }
  const data = recorded.data as { v?: unknown } | null;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw invalid(recorded, 'data', `is ${data === null ? 'null' : typeof data}: expected an object`);
  }
  if (data.v !== 1) {
    throw new UnknownEventError(recorded.stream, recorded.revision, `${recorded.type} v${describeValue(data.v)}`);
  }
  const wrong = schemaProblem(experimentRegistered, data);
  if (wrong !== null) throw invalid(recorded, wrong.field, wrong.problem);
  return data as ExperimentRegistered;
}

function invalid(recorded: RecordedEvent, field: string, problem: string): InvalidEventDataError {
  return new InvalidEventDataError(recorded.stream, recorded.revision, recorded.type, field, problem);
}

/** `ExperimentState` with its own arrays, that `apply` may change in place. */
type Draft = {
  -readonly [K in keyof ExperimentState]: ExperimentState[K];
} & {
  rounds: RoundRecord[];
  superseded: RoundRecord[];
  rewinds: ExperimentState['rewinds'][number][];
  attempts: Record<number, number>;
  forks: ExperimentState['forks'][number][];
  pruned: Record<string, ExperimentState['pruned'][string]>;
};

function thaw(state: ExperimentState): Draft {
  return {
    ...state,
    rounds: state.rounds.slice(),
    superseded: state.superseded.slice(),
    rewinds: state.rewinds.slice(),
    attempts: { ...state.attempts },
    forks: state.forks.slice(),
    pruned: { ...state.pruned },
  };
}

/** The state after one more event. Pure: `state` is not changed. */
export function evolve(state: ExperimentState, recorded: RecordedEvent): ExperimentState {
  const draft = thaw(state);
  apply(draft, recorded);
  return draft;
}

/**
 * Folds a stream's events from `state` (the initial state by default). The same as folding
 * `evolve`, in time linear in the history: one copy of the state is changed in place.
 */
export function replay(events: Iterable<RecordedEvent>, state: ExperimentState = initialState): ExperimentState {
  const draft = thaw(state);
  for (const event of events) apply(draft, event);
  return draft;
}

function apply(d: Draft, recorded: RecordedEvent): void {
  const event = upcast(recorded);
  d.revision = recorded.revision;
  d.position = recorded.position;
  switch (event.type) {
    case 'ExperimentCreated': {
      const created = event.data;
      d.created = created;
      d.folder = created.folder;
      d.settings = {
        roundLimit: created.roundLimit,
        retention: null,
        saveBreakpoints: created.saveBreakpoints,
        trainingArgs: created.federated?.trainingArgs ?? {},
        trainingPlan: created.federated?.trainingPlan ?? null,
      };
      // An imported breakpoint stands for the rounds before it: they are not in this stream.
      d.rounds = created.importedFrom === null ? [] : importedRounds(created, created.importedFrom.round, recorded);
      return;
    }
    case 'RoundStarted':
      seen(d, recorded);
      d.openAttempt = { round: event.data.round, attempt: event.data.attempt, nodes: event.data.nodes };
      d.attempts[event.data.round] = Math.max(d.attempts[event.data.round] ?? 0, event.data.attempt);
      return;
    case 'NodeReplied':
      return;
    case 'RoundCompleted': {
      const r = event.data;
      d.rounds.length = Math.min(d.rounds.length, r.round);
      d.rounds[r.round] = {
        round: r.round,
        attempt: r.attempt,
        params: r.params,
        state: r.state,
        metrics: r.metrics,
        nodes: r.nodes,
        breakpoint: r.breakpoint,
        durationMs: r.durationMs,
        settings: d.settings,
        position: recorded.position,
        revision: recorded.revision,
        timestamp: recorded.timestamp,
      };
      d.openAttempt = null;
      d.finished = false;
      seen(d, recorded);
      return;
    }
    case 'SettingsChanged': {
      const c = event.data;
      d.settings = {
        roundLimit: c.roundLimit !== undefined ? c.roundLimit : d.settings.roundLimit,
        retention: c.retention !== undefined ? c.retention : d.settings.retention,
        saveBreakpoints: c.saveBreakpoints ?? d.settings.saveBreakpoints,
        trainingArgs: c.trainingArgs ?? d.settings.trainingArgs,
        trainingPlan: c.trainingPlan ?? d.settings.trainingPlan,
      };
      return;
    }
    case 'Resumed':
      d.openAttempt = null;
      d.folder = event.data.folder ?? d.folder;
      return;
    case 'Rewound': {
      const keep = event.data.roundCurrent;
      const taken = d.rounds.slice(keep);
      d.rewinds.push({
        position: recorded.position,
        timestamp: recorded.timestamp,
        roundCurrent: keep,
        count: taken.length,
      });
      d.superseded.push(...taken);
      d.rounds.length = Math.min(d.rounds.length, keep);
      d.openAttempt = null;
      d.finished = false;
      return;
    }
    case 'ForkedFrom':
      d.forkedFrom = event.data;
      // A fork goes on with the parent's node processes until a run of its own.
      d.remote = event.data.remote ?? null;
      return;
    case 'Forked':
      d.forks.push({
        childId: event.data.childId,
        childFolder: event.data.childFolder,
        round: event.data.round,
        position: recorded.position,
        timestamp: recorded.timestamp,
      });
      return;
    case 'RoundsPruned':
      for (const { round, position } of event.data.rounds)
        d.pruned[position] = { round, position: recorded.position, timestamp: recorded.timestamp };
      return;
    case 'ExperimentFinished':
      d.finished = true;
      return;
    case 'RunStarted': {
      const at = recorded.timestamp;
      const { runId, owner, heartbeatMs } = event.data;
      d.run = { runId, owner, heartbeatMs, since: at, lastSeen: at };
      d.remote = event.data.remote ?? null;
      d.failure = null;
      return;
    }
    case 'RunHeartbeat':
      if (d.run !== null && d.run.runId === event.data.runId) seen(d, recorded);
      return;
    case 'RunFailed': {
      const { v: _v, ...failure } = event.data;
      d.failure = { ...failure, timestamp: recorded.timestamp };
      // The failed attempt is over: the next start of the round is its next attempt.
      d.openAttempt = null;
      if (d.run !== null && (failure.runId === null || failure.runId === d.run.runId)) d.run = null;
      return;
    }
    case 'RunEnded':
      if (d.run !== null && d.run.runId === event.data.runId) d.run = null;
      return;
  }
}

/** A sign of life of the open run. */
function seen(d: Draft, recorded: RecordedEvent): void {
  if (d.run !== null) d.run = { ...d.run, lastSeen: recorded.timestamp };
}

function importedRounds(created: ExperimentCreated, round: number, recorded: RecordedEvent): RoundRecord[] {
  const imported = created.importedFrom!;
  const rounds: RoundRecord[] = new Array(round + 1);
  rounds[round] = {
    round,
    attempt: 1,
    params: imported.params,
    state: imported.state,
    metrics: {},
    nodes: [],
    breakpoint: false,
    durationMs: 0,
    settings: {
      roundLimit: created.roundLimit,
      retention: null,
      saveBreakpoints: created.saveBreakpoints,
      trainingArgs: created.federated?.trainingArgs ?? {},
      trainingPlan: created.federated?.trainingPlan ?? null,
    },
    position: recorded.position,
    revision: recorded.revision,
    timestamp: recorded.timestamp,
  };
  return rounds;
}

/** `roundCurrent()`: the number of completed rounds on the current branch. */
export function roundCurrent(state: ExperimentState): number {
  return state.rounds.length;
}

/**
 * Whether round `index` of the current branch has a breakpoint folder: it asked for one, or an
 * experiment continues from it (the round an import or fork starts at, or the round a rewind
 * left the branch ending at), so that `loadBreakpoint` and `resume` can start there.
 */
export function hasBreakpoint(state: ExperimentState, index: number): boolean {
  const record = state.rounds[index];
  if (record === undefined || record === null) return false;
  if (record.breakpoint || state.created?.importedFrom?.round === index) return true;
  // Rounds superseded after this one and before the next: a rewind left the branch ending here.
  const next = state.rounds[index + 1]?.position;
  return state.superseded.some(
    (s) => s != null && s.position > record.position && (next === undefined || s.position < next),
  );
}

/** The parameters the next round starts from. */
export function currentParams(state: ExperimentState): BlobRef | null {
  return state.rounds.at(-1)?.params ?? state.created?.initialParams ?? null;
}

export function federatedSetup(state: ExperimentState): FederatedSetup | null {
  return state.created?.federated ?? null;
}
