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
  FederatedSetup,
  ForkedFrom,
  RoundCompleted,
  TrainingPlanRef,
} from './events.ts';
import { UnknownEventError } from '../engine/errors.ts';

/** Settings that can change during an experiment; each round records those it ran under. */
export type Settings = Readonly<{
  roundLimit: number | null;
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
  /** A round started and not (yet) completed: an aborted attempt if the process is gone. */
  openAttempt: Readonly<{ round: number; attempt: number; nodes: readonly string[] }> | null;
  /** Attempts started per round index, so a retry of a round gets the next attempt number. */
  attempts: Readonly<Record<number, number>>;
  forkedFrom: ForkedFrom | null;
  finished: boolean;
  /** Revision of the last event folded, or -1n before any. */
  revision: bigint;
  position: bigint;
}>;

export const initialState: ExperimentState = Object.freeze({
  created: null,
  folder: '',
  settings: Object.freeze({ roundLimit: null, saveBreakpoints: false, trainingArgs: Object.freeze({}), trainingPlan: null }),
  rounds: Object.freeze([]) as readonly RoundRecord[],
  superseded: Object.freeze([]) as readonly RoundRecord[],
  openAttempt: null,
  attempts: Object.freeze({}),
  forkedFrom: null,
  finished: false,
  revision: -1n,
  position: -1n,
});

const KNOWN: ReadonlySet<string> = new Set<ExperimentEventType>([
  'ExperimentCreated',
  'RoundStarted',
  'NodeReplied',
  'RoundCompleted',
  'SettingsChanged',
  'Resumed',
  'Rewound',
  'ForkedFrom',
  'ExperimentFinished',
]);

/**
 * Brings an event written by any release to the current schema. Every event type is at
 * version 1 so far; a new version adds its conversion here, so old logs stay loadable.
 */
export function upcast(recorded: RecordedEvent): ExperimentEvent {
  if (!KNOWN.has(recorded.type)) throw new UnknownEventError(recorded.stream, recorded.revision, recorded.type);
  const data = recorded.data as { v?: unknown };
  if (data === null || typeof data !== 'object' || data.v !== 1) {
    throw new UnknownEventError(recorded.stream, recorded.revision, `${recorded.type} v${String(data?.v)}`);
  }
  return { type: recorded.type, data } as ExperimentEvent;
}

export function evolve(state: ExperimentState, recorded: RecordedEvent): ExperimentState {
  const event = upcast(recorded);
  const next = { ...state, revision: recorded.revision, position: recorded.position };
  switch (event.type) {
    case 'ExperimentCreated': {
      const created = event.data;
      const imported = created.importedFrom;
      return {
        ...next,
        created,
        folder: created.folder,
        settings: {
          roundLimit: created.roundLimit,
          saveBreakpoints: created.saveBreakpoints,
          trainingArgs: created.federated?.trainingArgs ?? {},
          trainingPlan: created.federated?.trainingPlan ?? null,
        },
        // An imported breakpoint stands for the rounds before it: they are not in this stream.
        rounds: imported === null ? [] : importedRounds(created, imported.round, recorded),
      };
    }
    case 'RoundStarted':
      return {
        ...next,
        openAttempt: { round: event.data.round, attempt: event.data.attempt, nodes: event.data.nodes },
        attempts: { ...state.attempts, [event.data.round]: Math.max(state.attempts[event.data.round] ?? 0, event.data.attempt) },
      };
    case 'NodeReplied':
      return next;
    case 'RoundCompleted': {
      const d = event.data;
      const record: RoundRecord = {
        round: d.round,
        attempt: d.attempt,
        params: d.params,
        state: d.state,
        metrics: d.metrics,
        nodes: d.nodes,
        breakpoint: d.breakpoint,
        durationMs: d.durationMs,
        settings: state.settings,
        position: recorded.position,
        revision: recorded.revision,
        timestamp: recorded.timestamp,
      };
      const rounds = state.rounds.slice(0, d.round);
      rounds[d.round] = record;
      return { ...next, rounds, openAttempt: null, finished: false };
    }
    case 'SettingsChanged': {
      const d = event.data;
      return {
        ...next,
        settings: {
          roundLimit: d.roundLimit !== undefined ? d.roundLimit : state.settings.roundLimit,
          saveBreakpoints: d.saveBreakpoints ?? state.settings.saveBreakpoints,
          trainingArgs: d.trainingArgs ?? state.settings.trainingArgs,
          trainingPlan: d.trainingPlan ?? state.settings.trainingPlan,
        },
      };
    }
    case 'Resumed':
      return { ...next, openAttempt: null, folder: event.data.folder ?? state.folder };
    case 'Rewound': {
      const keep = event.data.roundCurrent;
      return {
        ...next,
        rounds: state.rounds.slice(0, keep),
        superseded: [...state.superseded, ...state.rounds.slice(keep)],
        openAttempt: null,
        finished: false,
      };
    }
    case 'ForkedFrom':
      return { ...next, forkedFrom: event.data };
    case 'ExperimentFinished':
      return { ...next, finished: true };
  }
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

/** Folds a stream's events from the initial state. */
export function replay(events: Iterable<RecordedEvent>, state: ExperimentState = initialState): ExperimentState {
  let current = state;
  for (const event of events) current = evolve(current, event);
  return current;
}

/** `roundCurrent()`: the number of completed rounds on the current branch. */
export function roundCurrent(state: ExperimentState): number {
  return state.rounds.length;
}

/** The parameters the next round starts from. */
export function currentParams(state: ExperimentState): BlobRef | null {
  return state.rounds.at(-1)?.params ?? state.created?.initialParams ?? null;
}

export function federatedSetup(state: ExperimentState): FederatedSetup | null {
  return state.created?.federated ?? null;
}
