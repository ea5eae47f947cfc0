/**
 * The event catalogue of an experiment stream (`experiment-<uuid>`) and of the experiment
 * registry stream. Events are plain data with a schema version `v`; they never carry tensors,
 * only `BlobRef`s. Storage facts (revision, position, time) are on the log's envelope.
 */
import type { BlobRef } from '../blobs/types.ts';

/** Where the training plan's code is, relative to the workspace, and the hash of its source. */
export type TrainingPlanRef = Readonly<{
  /** Module path relative to the workspace root, with forward slashes. */
  module: string;
  /** Name of the export holding the plan. */
  export: string;
  /**
   * The plan's digest when the experiment was created (or a change last accepted): of its local
   * module closure, the plan file and the local files it imports (`federated/plan-closure.ts`).
   * Experiments recorded before the digest covered a plan's imports hold the SHA-256 of the plan
   * file alone; a resume still recognises that one.
   */
  sha256: string;
  /** That source, in the blob store, for audit and for breakpoint folders. */
  source: BlobRef;
}>;

/** An aggregator or a strategy as recorded: enough to rebuild it. */
export type ComponentRef = Readonly<{ name: string; config: Readonly<Record<string, unknown>> }>;

/** Who did something, and from where. */
export type Actor = Readonly<{ user: string; host: string; pid: number }>;

export type ExperimentCreated = Readonly<{
  v: 1;
  experimentId: string;
  /** Number allocated through the registry stream; the folder is `Experiment_<4 digits or more>`. */
  number: number;
  folder: string;
  roundLimit: number | null;
  seed: number;
  saveBreakpoints: boolean;
  /** Parameters before the first round, or null when the loop starts without any. */
  initialParams: BlobRef | null;
  /** The caller's own settings, any serializable value. */
  config: unknown;
  /** The federated setup, for experiments run by the `Experiment` facade. */
  federated: FederatedSetup | null;
  createdBy: Actor;
  roundlogVersion: string;
  /** Set when the experiment continues a breakpoint folder carried from another root. */
  importedFrom: ImportedFrom | null;
}>;

export type FederatedSetup = Readonly<{
  tags: readonly string[];
  /** Node ids the experiment was restricted to, or null for every node with matching data. */
  nodes: readonly string[] | null;
  trainingPlan: TrainingPlanRef;
  modelArgs: Readonly<Record<string, unknown>>;
  trainingArgs: Readonly<Record<string, unknown>>;
  aggregator: ComponentRef;
  strategy: ComponentRef;
  /**
   * The workspace (absolute) the training plan's and the definition's module paths are relative
   * to, so a resume from any directory finds them. Absent in events written before it was
   * recorded: read it with `recordedWorkspace`, which gives null (resume then uses the current
   * directory, as it did).
   */
  workspace?: string | null;
}>;

export type ImportedFrom = Readonly<{
  experimentId: string;
  folder: string;
  /** Index of the round the imported breakpoint was taken after. */
  round: number;
  logPosition: string;
  /** SHA-256 of the imported breakpoint.json. */
  breakpointSha256: string;
  params: BlobRef;
  state: unknown;
}>;

export type RoundStarted = Readonly<{ v: 1; round: number; attempt: number; nodes: readonly string[] }>;

export type NodeReplied = Readonly<{
  v: 1;
  round: number;
  attempt: number;
  node: string;
  sampleSize: number;
  params: BlobRef;
  metrics: Readonly<Record<string, number>>;
  durationMs: number;
}>;

/**
 * What a node process said of its dataset when it connected (its Hello): the SHA-256 of the data
 * file's bytes, its shape, the loader that read it and the loader's options (`options`: e.g.
 * `splitSeed` of the `heart-disease` format, as decimal text; absent when the loader takes none,
 * and in logs written before options were recorded). Recorded with each round a node trained, so a
 * node coming back with other data, or the same file read otherwise, is seen.
 */
export type DatasetFingerprint = Readonly<{
  sha256: string;
  rows: number;
  columns: number;
  format: string;
  options?: Readonly<Record<string, string>>;
}>;

export type RoundCompleted = Readonly<{
  v: 1;
  round: number;
  attempt: number;
  /** The parameters after this round (the aggregated ones, in a federated experiment). */
  params: BlobRef;
  /** Everything else needed to continue: any serializable value (aggregator and strategy state, RNG). */
  state: unknown;
  /** The nodes that replied, in a federated experiment; empty otherwise. */
  nodes: ReadonlyArray<
    Readonly<{
      node: string;
      sampleSize: number;
      metrics: Readonly<Record<string, number>>;
      /** The dataset the node trained on, for a node process (absent for in-process nodes). */
      dataset?: DatasetFingerprint;
    }>
  >;
  metrics: Readonly<Record<string, number>>;
  /** Whether a breakpoint folder is materialized for this round. */
  breakpoint: boolean;
  durationMs: number;
}>;

/** Which rounds keep their parameters: the last `keepLast`, and every `keepEvery`-th round (if set). */
export type Retention = Readonly<{ keepLast: number; keepEvery: number | null }>;

export type SettingsChanged = Readonly<{
  v: 1;
  roundLimit?: number | null;
  /** A retention policy applied as rounds complete; null for none. */
  retention?: Retention | null;
  trainingArgs?: Readonly<Record<string, unknown>>;
  saveBreakpoints?: boolean;
  /** A changed training plan accepted on resume. */
  trainingPlan?: TrainingPlanRef;
  by: Actor;
}>;

export type Resumed = Readonly<{
  v: 1;
  /** `roundCurrent()` at the resume: the number of completed rounds it continues from. */
  roundCurrent: number;
  /** The breakpoint folder loaded, relative to the experiment folder, or null. */
  breakpoint: string | null;
  /** The experiment's folder from now on, when it was renamed (a name under `<root>/experiments`); else null. */
  folder: string | null;
  by: Actor;
}>;

export type Rewound = Readonly<{
  v: 1;
  /** `roundCurrent()` after the rewind: rounds with index >= this are superseded. */
  roundCurrent: number;
  reason: string;
  supersededRounds: readonly number[];
  by: Actor;
}>;

export type ForkedFrom = Readonly<{
  v: 1;
  parentId: string;
  parentFolder: string;
  parentRound: number;
  parentPosition: string;
  /**
   * The node processes the parent's last run trained on (`RunStarted.remote`), which the fork goes
   * on with until a run of its own; absent when it ran in process (and in forks recorded before the
   * field).
   */
  remote?: RemoteRun | null;
}>;

export type ExperimentFinished = Readonly<{ v: 1; roundCurrent: number }>;

/** In the parent's stream: a fork was started from one of its rounds. */
export type Forked = Readonly<{ v: 1; childId: string; childFolder: string; round: number; by: Actor }>;

/**
 * Retention deleted the parameters of these rounds (named by round index and the log position of
 * their `RoundCompleted`); their events stay, replaying or loading them is refused.
 */
export type RoundsPruned = Readonly<{
  v: 1;
  rounds: ReadonlyArray<Readonly<{ round: number; position: string }>>;
  retention: Retention;
  by: Actor;
}>;

/**
 * The process that holds an experiment's run lease. `processStart` tells a reused pid apart: on
 * Linux the boot id and the start time of the process in clock ticks since boot (field 22 of
 * `/proc/<pid>/stat`), `<boot id>:<ticks>`; null where the platform does not say.
 */
export type RunOwner = Readonly<{ user: string; host: string; pid: number; processStart: string | null }>;

/**
 * A process took the experiment's run lease: it runs the experiment until its `RunEnded` or
 * `RunFailed`. Its rounds and `RunHeartbeat`s are its signs of life; `heartbeatMs` is how often it
 * gives one while nothing else is appended. `tookOver` names a run that still looked alive and
 * was taken over on request (`--take-over`); null otherwise.
 */
export type RunStarted = Readonly<{
  v: 1;
  runId: string;
  owner: RunOwner;
  heartbeatMs: number;
  tookOver: Readonly<{ runId: string; owner: RunOwner }> | null;
  /**
   * The node processes the run trains on (`run|resume --listen HOST:PORT --nodes IDS`); absent for
   * in-process nodes (and in runs recorded before the field).
   */
  remote?: RemoteRun | null;
}>;

/**
 * How a run trained on node processes: the address its researcher listened on (as bound, the port
 * the nodes connect to) and the node ids every round needed.
 */
export type RemoteRun = Readonly<{ listen: string; nodes: readonly string[] }>;

/**
 * The command that continues an experiment: `roundlog resume <folder>` (the folder quoted for a
 * shell when it needs to be), with the node processes of `remote`.
 */
export function resumeCommand(folder: string, remote: RemoteRun | null | undefined): string {
  return (
    `roundlog resume ${shellWord(folder)}` +
    (remote == null ? '' : ` --listen ${remote.listen} --nodes ${remote.nodes.join(',')}`)
  );
}

/** `text` as one word of a POSIX shell: as it is when it is plain, else in double quotes. */
export function shellWord(text: string): string {
  return /^[\w./:@%+=,-]+$/.test(text) ? text : `"${text.replace(/["$`\\]/g, '\\$&')}"`;
}

/** The run is alive (written every `heartbeatMs` while the run appends nothing else). */
export type RunHeartbeat = Readonly<{ v: 1; runId: string }>;

/**
 * The run ended with an error: its code (the `code` of a roundlog error, else the error's name)
 * and message, and where it stood: `round` is `roundCurrent()` (the round being run), `attempt`
 * the attempt open then (null when no round was started).
 */
export type RunFailed = Readonly<{
  v: 1;
  runId: string | null;
  round: number;
  attempt: number | null;
  code: string;
  message: string;
}>;

/**
 * The run ended without error (its process closed the experiment). `signal` names the signal that
 * stopped it (`SIGINT`, `SIGTERM`: the process stopped cleanly after the round in flight); null or
 * absent (events written before the field) when it ended on its own.
 */
export type RunEnded = Readonly<{ v: 1; runId: string; roundCurrent: number; signal?: string | null }>;

/** The signal that stopped a run (`RunEnded.signal`), null when it ended on its own or before the field. */
export function stoppedBySignal(data: RunEnded): string | null {
  return data.signal ?? null;
}

export type ExperimentEvent =
  | { type: 'ExperimentCreated'; data: ExperimentCreated }
  | { type: 'RoundStarted'; data: RoundStarted }
  | { type: 'NodeReplied'; data: NodeReplied }
  | { type: 'RoundCompleted'; data: RoundCompleted }
  | { type: 'SettingsChanged'; data: SettingsChanged }
  | { type: 'Resumed'; data: Resumed }
  | { type: 'Rewound'; data: Rewound }
  | { type: 'ForkedFrom'; data: ForkedFrom }
  | { type: 'Forked'; data: Forked }
  | { type: 'RoundsPruned'; data: RoundsPruned }
  | { type: 'ExperimentFinished'; data: ExperimentFinished }
  | { type: 'RunStarted'; data: RunStarted }
  | { type: 'RunHeartbeat'; data: RunHeartbeat }
  | { type: 'RunFailed'; data: RunFailed }
  | { type: 'RunEnded'; data: RunEnded };

export type ExperimentEventType = ExperimentEvent['type'];

/** The registry stream: one event per experiment, in order of creation. */
export const REGISTRY_STREAM = 'roundlog.experiments';

export type ExperimentRegistered = Readonly<{
  v: 1;
  number: number;
  experimentId: string;
  folder: string;
  stream: string;
}>;

/** Every experiment's stream name starts with this. */
export const EXPERIMENT_STREAM_PREFIX = 'experiment-';

export function experimentStream(experimentId: string): string {
  return `${EXPERIMENT_STREAM_PREFIX}${experimentId}`;
}

/** The workspace an experiment recorded (the upcast of events without one: null). */
export function recordedWorkspace(created: ExperimentCreated | null): string | null {
  const workspace = created?.federated?.workspace;
  return typeof workspace === 'string' && workspace !== '' ? workspace : null;
}

export {
  allocateExperimentFolder,
  breakpointFolderName,
  compareNames,
  experimentFolderName,
  experimentNumberOfFolderName,
  isReservedFolderName,
  roundOfBreakpointFolderName,
} from './names.ts';
