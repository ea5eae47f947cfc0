/**
 * The port of the views kept beside the log (breakpoint folders today, other formats later): the
 * engine knows this interface, never a view's format. A view is rebuilt from experiment states
 * only, so the log stays the truth; the engine calls it after each append, when a root is
 * projected or verified, and when retention deletes the bytes of rounds.
 */
import type { BlobStore } from '../blobs/types.ts';
import type { RecordedEvent } from '../log/types.ts';
import type { ExperimentState } from '../model/state.ts';
import type { RootLayout } from '../root.ts';

/** What a projection is built with: the root's layout and the blob store of the round log. */
export type ProjectionEnv = Readonly<{ root: string; layout: RootLayout; blobs: BlobStore }>;

/** One experiment's view after `project`: what was missing, written, moved aside, removed. */
export type ExperimentProjection = Readonly<{
  experimentId: string;
  folder: string;
  /** Rounds whose view was missing before (the projection lag). */
  lagBefore: readonly number[];
  /** Paths removed by `rebuild` (absolute). */
  removed: readonly string[];
  /** Paths written (absolute). */
  written: readonly string[];
  /** Paths moved aside into `superseded/` (their new absolute paths). */
  movedAside: readonly string[];
  /** Rounds not projected because retention pruned them. */
  pruned: readonly number[];
  /** Rounds whose blobs were given back to the store from the view before it was removed. */
  rescued: readonly number[];
  /** What went wrong, when the experiment could not be projected fully; the others still are. */
  problems: readonly string[];
  /** Rounds still without a view afterwards. */
  lagAfter: readonly number[];
  /**
   * The same, view by view (`name` of the projection: `breakpoints`, `tensorboard`): the fields
   * above merge them (rounds lacking any view; paths of all). Absent in a single view's own report.
   */
  views?: ReadonlyArray<Readonly<{ name: string } & Omit<ExperimentProjection, 'views'>>>;
}>;

/** One problem of a view: the experiment, the folder (absolute) and file in it, the round, why. */
export type ViewProblem = Readonly<{
  experiment: string;
  folder: string;
  /** The file inside the folder the problem is about, or `.` for the folder itself. */
  file: string;
  /** The round the folder is for, when known. */
  round: number | null;
  reason: string;
}>;

export type ViewVerifyResult = Readonly<{
  checked: number;
  problems: readonly ViewProblem[];
  /** Rounds that should have a view and have none yet, per experiment (lag, not damage). */
  lag: ReadonlyArray<Readonly<{ experiment: string; rounds: readonly number[] }>>;
  notes: readonly string[];
}>;

/** What `repair` of a view did, and what it could not do. */
export type ViewRepairResult = Readonly<{
  /** Blobs given back to the store, each from the view file that held its bytes. */
  blobsHealed: ReadonlyArray<Readonly<{ sha256: string; from: string }>>;
  /** View files whose bytes were not their blob's, linked again from the store. */
  filesRelinked: ReadonlyArray<Readonly<{ file: string; sha256: string }>>;
  /** Views written again from the log (absolute paths). */
  written: readonly string[];
  problems: readonly ViewProblem[];
}>;

/** An experiment as `verify` hands it over: its registered folder, and its state when its history could be read. */
export type VerifiedExperiment = Readonly<{ folder: string; state: ExperimentState | null }>;

export interface Projection {
  readonly name: string;
  /** After `appended` were committed to an experiment's stream; `state` is the state after them. */
  apply(state: ExperimentState, appended: readonly RecordedEvent[]): Promise<void>;
  /** Brings one experiment's view fully in step with its state; `rebuild` first removes what it can write again. */
  project(state: ExperimentState, options: Readonly<{ rebuild: boolean }>): Promise<ExperimentProjection>;
  /** Every problem of the views of these experiments, and what else is there that no experiment owns. */
  verify(experiments: readonly VerifiedExperiment[]): Promise<ViewVerifyResult>;
  /** Paths of the views holding the parameters of the rounds at `positions` (decimal log positions). */
  viewsOfRounds(state: ExperimentState, positions: ReadonlySet<string>): Promise<string[]>;
  /** Removes a view `viewsOfRounds` named, so it never lingers half-deleted. */
  removeView(view: string): Promise<void>;
  /**
   * Heals the views and the blob store from each other (`roundlog verify --repair`): the blobs in
   * `damaged` (missing or not matching their hash) given back to the store from view files that
   * hold their bytes, view files whose bytes are not their blob's linked again from the store,
   * and every experiment projected from the log.
   */
  repair?(experiments: readonly VerifiedExperiment[], damaged: ReadonlySet<string>): Promise<ViewRepairResult>;
  /** The id of the experiment whose view is at `target` (absolute), or null when it is none of its views. */
  experimentAt?(target: string): Promise<string | null>;
}

/** Builds a round log's projections once its store is open. */
export type ProjectionFactory = (env: ProjectionEnv) => readonly Projection[];
