/**
 * The breakpoint-folder projection: `<root>/experiments/<folder>/breakpoint_RRRR/` for every
 * round whose `RoundCompleted` asked for a breakpoint. A folder is self-contained and
 * relocatable: `breakpoint.json` (relative paths only, SHA-256 of every file), the parameters
 * (a hard link to their blob, so no byte is stored twice) and a copy of the training plan source.
 * Folders are written under a temporary name and renamed into place; the projection is
 * idempotent and can be rebuilt from the log at any time.
 */
import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { BlobRef, BlobStore } from '../blobs/types.ts';
import { createFileDurably, syncDir } from '../durable.ts';
import { BreakpointCorruptError, RoundPrunedError } from '../model/errors.ts';
import { breakpointFolderName, type ExperimentCreated } from '../model/events.ts';
import { hasBreakpoint, type ExperimentState, type RoundRecord, type Settings } from '../model/state.ts';

export const MANIFEST_FILE = 'breakpoint.json';
export const PARAMS_FILE = 'aggregated_params.tensors';
export const SUPERSEDED_DIR = 'superseded';
export const BREAKPOINT_FORMAT = 'roundlog-breakpoint';
export const BREAKPOINT_FORMAT_VERSION = 1;
const TEMP_PREFIX = '.tmp-';

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
}>;

export type ProjectionContext = Readonly<{ experimentsDir: string; blobs: BlobStore }>;

export type MaterializeResult = Readonly<{ path: string; created: boolean }>;

/** Writes the breakpoint folder of one round, unless it is already there. */
export async function materializeBreakpoint(
  ctx: ProjectionContext,
  state: ExperimentState,
  round: number,
  experimentFolder?: string,
): Promise<MaterializeResult> {
  const created = state.created!;
  const record = state.rounds[round];
  if (record === undefined) throw new Error(`experiment ${created.folder} has no completed round ${round}`);
  const pruned = state.pruned[String(record.position)];
  if (pruned !== undefined) throw new RoundPrunedError(created.folder, round, pruned.timestamp);
  const dir = path.join(ctx.experimentsDir, experimentFolder ?? created.folder);
  const final = path.join(dir, breakpointFolderName(round));
  const existing = await readManifestIfAny(final);
  if (existing !== null) {
    if (existing.experimentId === created.experimentId && existing.logPosition === String(record.position)) {
      return { path: final, created: false };
    }
    // A folder of another history (a round done again after a rewind): keep it, aside.
    await moveAside(dir, final);
  }
  await fs.mkdir(dir, { recursive: true });
  const temp = path.join(dir, `${TEMP_PREFIX}${breakpointFolderName(round)}-${process.pid}-${randomUUID()}`);
  await fs.mkdir(temp);
  try {
    const { manifest, planFile } = breakpointManifest(created, record);
    await ctx.blobs.link(record.params.sha256, path.join(temp, PARAMS_FILE));
    if (planFile !== null) await ctx.blobs.link(record.settings.trainingPlan!.source.sha256, path.join(temp, planFile));
    await createFileDurably(path.join(temp, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
    await syncDir(temp);
    await fs.rename(temp, final);
    await syncDir(dir);
  } catch (error) {
    await fs.rm(temp, { recursive: true, force: true });
    throw error;
  }
  return { path: final, created: true };
}

/**
 * The manifest the projection writes for a completed round: a pure function of the experiment's
 * creation event and the round's record, so that the log alone says what a folder must hold
 * (`roundlog verify` compares folders with it). `planFile` is the name of the training plan copy.
 */
export function breakpointManifest(created: ExperimentCreated, record: RoundRecord): { manifest: BreakpointManifest; planFile: string | null } {
  const round = record.round;
  const plan = record.settings.trainingPlan;
  const planFile = plan === null ? null : `training_plan${path.extname(plan.module) || '.txt'}`;
  const files: Record<string, string> = { [PARAMS_FILE]: record.params.sha256 };
  if (plan !== null && planFile !== null) files[planFile] = plan.source.sha256;
  const manifest: BreakpointManifest = {
    format: BREAKPOINT_FORMAT,
    formatVersion: BREAKPOINT_FORMAT_VERSION,
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
    params: { ...record.params, file: PARAMS_FILE },
    trainingPlan: plan === null || planFile === null ? null : { module: plan.module, export: plan.export, sha256: plan.sha256, file: planFile },
    experiment: created,
    files,
  };
  return { manifest, planFile };
}

/** Moves the breakpoint folders of rounds `>= fromRound` into the experiment's `superseded/` area. */
export async function supersedeBreakpoints(ctx: ProjectionContext, experimentFolder: string, fromRound: number): Promise<string[]> {
  const dir = path.join(ctx.experimentsDir, experimentFolder);
  const moved: string[] = [];
  for (const name of await listBreakpointFolders(dir)) {
    if (roundOfFolder(name)! >= fromRound) moved.push(await moveAside(dir, path.join(dir, name)));
  }
  return moved;
}

/**
 * Brings an experiment's folders in line with its history: every breakpoint of the current
 * branch materialized, no superseded round left among them, no temp folder of a crash left over.
 * Rounds pruned by retention are not written; a folder of a pruned round is left where it is
 * (`roundlog gc` removes it).
 */
export async function projectExperiment(ctx: ProjectionContext, state: ExperimentState, experimentFolder?: string): Promise<{ written: number }> {
  const folder = experimentFolder ?? state.folder;
  const dir = path.join(ctx.experimentsDir, folder);
  await removeStaleTemps(dir);
  const wanted = new Map<string, RoundRecord>();
  for (const record of state.rounds) {
    if (record && hasBreakpoint(state, record.round) && state.pruned[String(record.position)] === undefined) {
      wanted.set(breakpointFolderName(record.round), record);
    }
  }
  for (const name of await listBreakpointFolders(dir)) {
    const manifest = await readManifestIfAny(path.join(dir, name));
    if (manifest?.experimentId === state.created?.experimentId && typeof manifest?.logPosition === 'string' && state.pruned[manifest.logPosition] !== undefined) continue;
    const record = wanted.get(name);
    if (record === undefined || manifest === null || manifest.logPosition !== String(record.position)) {
      await moveAside(dir, path.join(dir, name));
    }
  }
  let written = 0;
  for (const record of wanted.values()) {
    if ((await materializeBreakpoint(ctx, state, record.round, folder)).created) written++;
  }
  return { written };
}

/**
 * How far the folders lag behind the log: the rounds of the current branch that have a
 * breakpoint (`hasBreakpoint`) and no folder (or one of another history). Empty when the projection is current.
 * Rounds pruned by retention have no folder by design and are not counted.
 */
export async function missingBreakpoints(ctx: ProjectionContext, state: ExperimentState, experimentFolder?: string): Promise<number[]> {
  const dir = path.join(ctx.experimentsDir, experimentFolder ?? state.folder);
  const missing: number[] = [];
  for (const record of state.rounds) {
    if (!record || !hasBreakpoint(state, record.round) || state.pruned[String(record.position)] !== undefined) continue;
    const manifest = await readManifestIfAny(path.join(dir, breakpointFolderName(record.round)));
    if (manifest === null || manifest.logPosition !== String(record.position)) missing.push(record.round);
  }
  return missing;
}

export async function listBreakpointFolders(experimentDir: string): Promise<string[]> {
  const names = await fs.readdir(experimentDir).catch(() => [] as string[]);
  return names.filter((name) => roundOfFolder(name) !== null).sort();
}

export function roundOfFolder(name: string): number | null {
  const match = /^breakpoint_(\d{4,})$/.exec(name);
  return match ? Number(match[1]) : null;
}

/**
 * Reads a breakpoint folder and checks every file against the SHA-256 its manifest records.
 * Throws `BreakpointCorruptError` naming the file that is missing, unreadable or different.
 */
export async function readBreakpoint(folder: string): Promise<BreakpointManifest> {
  const manifestPath = path.join(folder, MANIFEST_FILE);
  let text: string;
  try {
    text = await fs.readFile(manifestPath, 'utf8');
  } catch (error) {
    throw new BreakpointCorruptError(folder, MANIFEST_FILE, `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  let manifest: BreakpointManifest;
  try {
    manifest = JSON.parse(text) as BreakpointManifest;
  } catch (error) {
    throw new BreakpointCorruptError(folder, MANIFEST_FILE, `is not valid JSON: ${(error as Error).message}`);
  }
  if (manifest?.format !== BREAKPOINT_FORMAT || typeof manifest.formatVersion !== 'number') {
    throw new BreakpointCorruptError(folder, MANIFEST_FILE, 'is not a roundlog breakpoint manifest');
  }
  if (manifest.formatVersion > BREAKPOINT_FORMAT_VERSION) {
    throw new BreakpointCorruptError(folder, MANIFEST_FILE, `has format version ${manifest.formatVersion}; this release reads up to ${BREAKPOINT_FORMAT_VERSION}: upgrade roundlog`);
  }
  if (typeof manifest.files !== 'object' || manifest.files === null || manifest.files[PARAMS_FILE] !== manifest.params?.sha256) {
    throw new BreakpointCorruptError(folder, MANIFEST_FILE, 'does not list the parameters file with its hash');
  }
  for (const [file, expected] of Object.entries(manifest.files)) {
    if (file !== path.basename(file)) throw new BreakpointCorruptError(folder, MANIFEST_FILE, `names a file outside the folder: ${file}`);
    let actual: string;
    try {
      actual = createHash('sha256').update(await fs.readFile(path.join(folder, file))).digest('hex');
    } catch (error) {
      throw new BreakpointCorruptError(folder, file, `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
    }
    if (actual !== expected) throw new BreakpointCorruptError(folder, file, `has SHA-256 ${actual}, the manifest records ${expected}`);
  }
  return manifest;
}

async function readManifestIfAny(folder: string): Promise<BreakpointManifest | null> {
  try {
    return JSON.parse(await fs.readFile(path.join(folder, MANIFEST_FILE), 'utf8')) as BreakpointManifest;
  } catch {
    return null;
  }
}

async function moveAside(experimentDir: string, folder: string): Promise<string> {
  const area = path.join(experimentDir, SUPERSEDED_DIR);
  await fs.mkdir(area, { recursive: true });
  const base = path.basename(folder);
  const names = new Set(await fs.readdir(area));
  let n = 1;
  while (names.has(`${base}.${n}`)) n++;
  const target = path.join(area, `${base}.${n}`);
  await fs.rename(folder, target);
  await syncDir(area);
  await syncDir(experimentDir);
  return target;
}

/** Removes temp folders whose writer process is gone: a crash mid-write never looks like a breakpoint. */
export async function removeStaleTemps(experimentDir: string): Promise<void> {
  for (const name of await fs.readdir(experimentDir).catch(() => [] as string[])) {
    const match = /^\.tmp-breakpoint_\d+-(\d+)-/.exec(name);
    if (match === null) continue;
    let alive = true;
    try {
      process.kill(Number(match[1]), 0);
    } catch (error) {
      alive = (error as NodeJS.ErrnoException).code !== 'ESRCH';
    }
    if (!alive) await fs.rm(path.join(experimentDir, name), { recursive: true, force: true });
  }
}
