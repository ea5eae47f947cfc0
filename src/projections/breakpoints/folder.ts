/**
 * The breakpoint folders of an experiment on disk: their names, listing them (ordered by round,
 * never by text), reading a manifest without checking it, moving a folder aside into
 * `superseded/`, removing one, and cleaning up the temp folders of writers that died.
 * Every other module finds folders through these functions, never by listing directories itself.
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { checkPlainName, checkRealFolders, readConfinedFile } from '../../confine.ts';
import { processIsAlive, syncDir, writeStep } from '../../durable.ts';
import { breakpointFolderName, compareNames, roundOfBreakpointFolderName } from '../../model/events.ts';
import { MANIFEST_FILE, SUPERSEDED_DIR, type BreakpointManifest } from '../../model/manifest.ts';
import { MAX_MANIFEST_BYTES, MAX_MANIFEST_DEPTH, nestingExceeds } from './schema.ts';

/** The most bytes read from a `breakpoint.json`. */
export const MANIFEST_MAX_BYTES = MAX_MANIFEST_BYTES;

/** Prefix of the temp folders a breakpoint is written under before it is renamed into place. */
export const TEMP_PREFIX = '.tmp-';

/**
 * The folder of an experiment under `experimentsDir`: its name (from the log or an argument) must
 * be a plain folder name, never a path that leads elsewhere (`PathOutsideError` naming it).
 */
export function experimentDir(experimentsDir: string, folder: string): string {
  return path.join(experimentsDir, checkPlainName(folder, 'experiment folder', experimentsDir));
}

/**
 * The round of a breakpoint folder's name (`breakpoint_0012` → 12, `breakpoint_10000` → 10000), or
 * null for any other name (`breakpoint_00012` included: one name per round).
 */
export function roundOfFolder(name: string): number | null {
  return roundOfBreakpointFolderName(name);
}

/** The round of a folder's name on the branch or in `superseded/` (`breakpoint_0012.2` → 12). */
export function roundOfAnyFolder(name: string): number | null {
  return roundOfFolder(name.replace(/\.\d+$/, ''));
}

/** Names of the breakpoint folders of an experiment folder, by round. */
export async function listBreakpointFolders(experimentDir: string): Promise<string[]> {
  const names = await fs.readdir(experimentDir).catch(() => [] as string[]);
  return names.filter((name) => roundOfFolder(name) !== null).sort((a, b) => roundOfFolder(a)! - roundOfFolder(b)!);
}

/**
 * Names of the folders in an experiment's `superseded/` area (`breakpoint_RRRR.N`), by round then
 * by `N` (`breakpoint_9999.2` < `breakpoint_9999.10` < `breakpoint_10000.1`), never by text.
 */
export async function listSupersededFolders(experimentDir: string): Promise<string[]> {
  const names = await fs.readdir(path.join(experimentDir, SUPERSEDED_DIR)).catch(() => [] as string[]);
  return names.filter((name) => name.startsWith('breakpoint_')).sort(compareNames);
}

/** A manifest read without its schema: every field is `unknown` until the caller checks it. */
export type LooseManifest = Readonly<{ [field in keyof BreakpointManifest]?: unknown }> &
  Readonly<Record<string, unknown>>;

/**
 * The folder's manifest as a JSON object, its fields unchecked (callers compare them with the
 * log), or null when it cannot be read, is larger than `MAX_MANIFEST_BYTES`, nests deeper than
 * `MAX_MANIFEST_DEPTH`, or is not a JSON object. `checkBreakpointFolder` is the full check.
 */
export async function readManifestIfAny(folder: string): Promise<LooseManifest | null> {
  try {
    // Only a regular file inside the folder (a FIFO is never waited on, a symlink out never followed).
    const bytes = await readConfinedFile(folder, MANIFEST_FILE, MANIFEST_FILE, { maxBytes: MAX_MANIFEST_BYTES });
    const text = bytes.toString('utf8');
    if (nestingExceeds(text, MAX_MANIFEST_DEPTH)) return null;
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as LooseManifest) : null;
  } catch {
    return null;
  }
}

/** Moves a breakpoint folder into the experiment's `superseded/` area; returns its new path. */
export async function moveAside(experimentDir: string, folder: string): Promise<string> {
  const area = path.join(experimentDir, SUPERSEDED_DIR);
  // Never moved through a symbolic link out of the root in place of `superseded/`.
  await checkRealFolders(path.dirname(experimentDir), area, 'the superseded breakpoint folders');
  return writeStep(folder, 'moving a breakpoint folder aside', async () => {
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
  });
}

/**
 * Removes a breakpoint folder: renamed first to a temp name in its experiment folder (which
 * `removeStaleTemps` clears after a crash), so it never lingers half-deleted under a breakpoint name.
 */
export async function removeBreakpointFolder(folder: string): Promise<void> {
  const parent = path.dirname(folder);
  const experimentDir = path.basename(parent) === SUPERSEDED_DIR ? path.dirname(parent) : parent;
  const round = roundOfAnyFolder(path.basename(folder)) ?? 0;
  const temp = path.join(experimentDir, `${TEMP_PREFIX}${breakpointFolderName(round)}-${process.pid}-${randomUUID()}`);
  await fs.rename(folder, temp);
  await syncDir(parent);
  await fs.rm(temp, { recursive: true, force: true });
}

/** Removes temp folders whose writer process is gone: a crash mid-write never looks like a breakpoint. */
export async function removeStaleTemps(experimentDir: string): Promise<void> {
  for (const name of await fs.readdir(experimentDir).catch(() => [] as string[])) {
    const match = /^\.tmp-breakpoint_\d+-(\d+)-/.exec(name);
    if (match === null || processIsAlive(Number(match[1]))) continue;
    await fs.rm(path.join(experimentDir, name), { recursive: true, force: true });
  }
}

/** A breakpoint folder of an experiment: its path relative to the experiment folder, and its manifest's position. */
type PositionedFolder = Readonly<{ relative: string; position: string }>;

/**
 * The breakpoint folders of an experiment whose manifest names it, on the branch (by round) then
 * in `superseded/`, with the log position each manifest records (decimal). Only manifests are
 * read. `movedAsideOnly` keeps, in `superseded/`, only the folders the projection moved there
 * (`breakpoint_RRRR.N`).
 */
async function positionedFolders(
  experimentDir: string,
  experimentId: string,
  movedAsideOnly: boolean,
): Promise<PositionedFolder[]> {
  const found: PositionedFolder[] = [];
  const look = async (relative: string) => {
    const manifest = await readManifestIfAny(path.join(experimentDir, relative));
    const position: unknown = manifest?.logPosition;
    if (manifest?.experimentId === experimentId && typeof position === 'string') found.push({ relative, position });
  };
  for (const name of await listBreakpointFolders(experimentDir)) await look(name);
  for (const name of await listSupersededFolders(experimentDir)) {
    if (!movedAsideOnly || /^breakpoint_\d{4,}\.\d+$/.test(name)) await look(`${SUPERSEDED_DIR}/${name}`);
  }
  return found;
}

/**
 * Breakpoint folders of an experiment (on the branch and in `superseded/`, moved there by the
 * projection) whose manifest names one of `positions` (log positions of `RoundCompleted` events,
 * decimal), as absolute paths.
 */
export async function foldersOfRounds(
  experimentDir: string,
  experimentId: string,
  positions: ReadonlySet<string>,
): Promise<string[]> {
  return (await positionedFolders(experimentDir, experimentId, true))
    .filter(({ position }) => positions.has(position))
    .map(({ relative }) => path.join(experimentDir, relative));
}

/**
 * The breakpoint folders of an experiment, on the branch and in `superseded/`, by the log position
 * their manifest records (decimal), as paths relative to the experiment folder (the first found
 * for a position). Only manifests are read: this says a folder is present, not that it is intact.
 */
export async function foldersByPosition(experimentDir: string, experimentId: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const { relative, position } of await positionedFolders(experimentDir, experimentId, false)) {
    if (!found.has(position)) found.set(position, relative);
  }
  return found;
}
