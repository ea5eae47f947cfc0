/**
 * The breakpoint manifest (`breakpoint.json`) as a pure function of the log: what the folder of a
 * completed round must hold, decided from the experiment's creation event and the round's record
 * alone. The projection writes it, resume and `roundlog verify` compare folders with it.
 */
import type { BlobRef } from '../blobs/types.ts';
import type { ExperimentCreated } from './events.ts';
import type { RoundRecord, Settings } from './state.ts';

export const MANIFEST_FILE = 'breakpoint.json';
/** The parameters file of a folder whose round stored them in a msgpack encoding (before safetensors). */
export const PARAMS_FILE = 'aggregated_params.tensors';
/** The parameters file of a folder whose round stored them as safetensors (`tensors/safetensors`). */
export const SAFETENSORS_PARAMS_FILE = 'params.safetensors';
/** Every name a breakpoint folder's parameters file may have. */
export const PARAMS_FILES: readonly string[] = [SAFETENSORS_PARAMS_FILE, PARAMS_FILE];

/**
 * The name of the parameters file in a breakpoint folder, from the encoding the round stored them
 * in: `params.safetensors` for `tensors/safetensors` (the blob is a safetensors file, linked as it
 * is), `aggregated_params.tensors` for the msgpack encodings of older rounds.
 */
export function paramsFileOf(encoding: string): string {
  return encoding === 'tensors/safetensors' ? SAFETENSORS_PARAMS_FILE : PARAMS_FILE;
}
export const SUPERSEDED_DIR = 'superseded';
export const BREAKPOINT_FORMAT = 'roundlog-breakpoint';
/** The format version written; `src/projections/breakpoints/schema.ts` lists every version read. */
export const BREAKPOINT_FORMAT_VERSION = 2;

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
  params: BlobRef & { file: string };
  trainingPlan: Readonly<{ module: string; export: string; sha256: string; file: string }> | null;
  /** The experiment's creation event: enough to rebuild it in a root that has no log of it. */
  experiment: ExperimentCreated;
  /** SHA-256 of every other file of the folder. */
  files: Readonly<Record<string, string>>;
  /**
   * From format version 2: the SHA-256 of the manifest's canonical JSON without this field
   * (`manifestChecksum` in `src/projections/breakpoints/schema.ts`), which the projection adds.
   */
  manifestSha256?: string;
}>;

/** The extension of a module path (`.ts` for `plans/lr.ts`), or '' when it has none. */
function extensionOf(module: string): string {
  const base = module.slice(Math.max(module.lastIndexOf('/'), module.lastIndexOf('\\')) + 1);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot) : '';
}

/**
 * The manifest the projection writes for a completed round, and the name of the training plan
 * copy (`planFile`, null without a plan). Pure: the log alone says what a folder must hold.
 * `formatVersion` is the current one unless an older folder is compared with the log; the
 * checksum of format version 2 is added by the projection, which owns the serialization.
 */
export function breakpointManifest(
  created: ExperimentCreated,
  record: RoundRecord,
  formatVersion: number = BREAKPOINT_FORMAT_VERSION,
): { manifest: BreakpointManifest; planFile: string | null } {
  const round = record.round;
  const plan = record.settings.trainingPlan;
  const planFile = plan === null ? null : `training_plan${extensionOf(plan.module) || '.txt'}`;
  const paramsFile = paramsFileOf(record.params.encoding);
  const files: Record<string, string> = { [paramsFile]: record.params.sha256 };
  if (plan !== null && planFile !== null) files[planFile] = plan.source.sha256;
  const manifest: BreakpointManifest = {
    format: BREAKPOINT_FORMAT,
    formatVersion,
    experimentId: created.experimentId,
    experimentFolder: created.folder,
    stream: `experiment-${created.experimentId}`,
    round,
    roundCurrent: round + 1,
    roundLimit: record.settings.roundLimit,
    logPosition: String(record.position),
    streamRevision: String(record.revision),
    settings: record.settings,
    state: record.state,
    metrics: record.metrics,
    params: { ...record.params, file: paramsFile },
    trainingPlan:
      plan === null || planFile === null
        ? null
        : { module: plan.module, export: plan.export, sha256: plan.sha256, file: planFile },
    experiment: created,
    files,
  };
  return { manifest, planFile };
}
