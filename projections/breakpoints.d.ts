import type { FileBlobStore } from '../src/blobs/file.ts';
import type { BlobRef } from '../src/blobs/types.ts';
import { type ExperimentCreated } from '../src/experiment/events.ts';
import type { ExperimentState, Settings } from '../src/experiment/state.ts';
export declare const MANIFEST_FILE = "breakpoint.json";
export declare const PARAMS_FILE = "aggregated_params.tensors";
export declare const SUPERSEDED_DIR = "superseded";
export declare const BREAKPOINT_FORMAT = "roundlog-breakpoint";
export declare const BREAKPOINT_FORMAT_VERSION = 1;
/** `breakpoint.json`. Paths in it are file names inside the breakpoint folder. */
export type BreakpointManifest = Readonly<{
    format: typeof BREAKPOINT_FORMAT;
    formatVersion: number;
    experimentId: string;
    experimentFolder: string;
    stream: string;
    /** Index of the last completed round; `roundCurrent` is one more. */
    round: number;
    roundCurrent: number;
    roundLimit: number | null;
    /** Log position and stream revision of the round's `RoundCompleted`, as decimal strings. */
    logPosition: string;
    streamRevision: string;
    settings: Settings;
    /** Everything needed to continue besides the parameters (aggregator, strategy, RNG). */
    state: unknown;
    metrics: Readonly<Record<string, number>>;
    params: BlobRef & {
        file: string;
    };
    trainingPlan: Readonly<{
        module: string;
        export: string;
        sha256: string;
        file: string;
    }> | null;
    /** The experiment's creation event: enough to rebuild it in a root that has no log of it. */
    experiment: ExperimentCreated;
    /** SHA-256 of every other file of the folder. */
    files: Readonly<Record<string, string>>;
}>;
export type ProjectionContext = Readonly<{
    experimentsDir: string;
    blobs: FileBlobStore;
}>;
export type MaterializeResult = Readonly<{
    path: string;
    created: boolean;
}>;
/** Writes the breakpoint folder of one round, unless it is already there. */
export declare function materializeBreakpoint(ctx: ProjectionContext, state: ExperimentState, round: number, experimentFolder?: string): Promise<MaterializeResult>;
/** Moves the breakpoint folders of rounds `>= fromRound` into the experiment's `superseded/` area. */
export declare function supersedeBreakpoints(ctx: ProjectionContext, experimentFolder: string, fromRound: number): Promise<string[]>;
/**
 * Brings an experiment's folders in line with its history: every breakpoint of the current
 * branch materialized, no superseded round left among them, no temp folder of a crash left over.
 */
export declare function projectExperiment(ctx: ProjectionContext, state: ExperimentState, experimentFolder?: string): Promise<{
    written: number;
}>;
export declare function listBreakpointFolders(experimentDir: string): Promise<string[]>;
export declare function roundOfFolder(name: string): number | null;
/**
 * Reads a breakpoint folder and checks every file against the SHA-256 its manifest records.
 * Throws `BreakpointCorruptError` naming the file that is missing, unreadable or different.
 */
export declare function readBreakpoint(folder: string): Promise<BreakpointManifest>;
