/**
 * The breakpoint-folder projection behind the engine's `Projection` port:
 * `<root>/experiments/<folder>/breakpoint_RRRR/` for every round of the current branch that has a
 * breakpoint. After an append it writes the folder of a round that asked for one; `project`
 * brings an experiment's folders fully in step (a rebuild first removes what the log can write
 * again, giving the blob store back any bytes only the folder still holds); `verify` checks every
 * folder with the same checks resume applies.
 */
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { NotARealFolderError, checkRealFolders } from '../../confine.ts';
import { RoundlogError } from '../../errors.ts';
import type { RecordedEvent } from '../../log/types.ts';
import type {
  ExperimentProjection,
  Projection,
  ProjectionEnv,
  ViewProblem,
  ViewRepairResult,
  ViewVerifyResult,
  VerifiedExperiment,
} from '../../engine/projection.ts';
import { breakpointFolderName, compareNames } from '../../model/events.ts';
import { SUPERSEDED_DIR } from '../../model/manifest.ts';
import { upcast, type ExperimentState } from '../../model/state.ts';
import { isProjectionLockName, withProjectionLock } from '../../engine/projection-lock.ts';
import { checkBreakpointFolder } from './check.ts';
import {
  TEMP_PREFIX,
  experimentDir,
  foldersOfRounds,
  listBreakpointFolders,
  listSupersededFolders,
  readManifestIfAny,
  type LooseManifest,
  removeBreakpointFolder,
} from './folder.ts';
import { hashFile, healBlobsFromFolders, relinkDamagedFiles, storeHoldsBlob } from './heal.ts';
import { materializeBreakpoint, missingBreakpoints, projectExperiment, type ProjectionContext } from './write.ts';

export const BREAKPOINTS_PROJECTION = 'breakpoints';

/** The breakpoint-folder projection of a root. */
export function breakpointProjection(env: ProjectionEnv): Projection {
  const ctx: ProjectionContext = { experimentsDir: env.layout.experiments, blobs: env.blobs };
  return {
    name: BREAKPOINTS_PROJECTION,
    async apply(state: ExperimentState, appended: readonly RecordedEvent[]): Promise<void> {
      for (const event of appended) {
        if (event.type !== 'RoundCompleted') continue;
        const completed = upcast(event);
        if (completed.type !== 'RoundCompleted') continue;
        const { round, breakpoint } = completed.data;
        if (breakpoint && state.rounds[round]?.position === event.position) {
          await materializeBreakpoint(ctx, state, round, state.folder);
        }
      }
    },
    project: (state, options) => withProjectionLock(ctx.experimentsDir, () => projectOne(ctx, state, options.rebuild)),
    verify: (experiments) => verifyFolders(env, experiments),
    viewsOfRounds: (state, positions) =>
      foldersOfRounds(experimentDir(ctx.experimentsDir, state.folder), state.created!.experimentId, positions),
    removeView: (view) => withProjectionLock(ctx.experimentsDir, () => removeBreakpointFolder(view)),
    repair: (experiments, damaged) =>
      withProjectionLock(ctx.experimentsDir, () => repairFolders(env, ctx, experiments, damaged)),
    experimentAt: experimentOfFolder,
  };
}

async function projectOne(
  ctx: ProjectionContext,
  state: ExperimentState,
  rebuild: boolean,
): Promise<ExperimentProjection> {
  const dir = experimentDir(ctx.experimentsDir, state.folder);
  const problems: string[] = [];
  const removed: string[] = [];
  const rescued: number[] = [];
  const lagBefore = await missingBreakpoints(ctx, state);
  const pruned = state.rounds
    .filter((r) => r?.breakpoint && state.pruned[String(r.position)] !== undefined)
    .map((r) => r.round);
  if (rebuild) {
    const current = new Map(
      state.rounds.filter((r) => r !== undefined && r !== null).map((r) => [String(r.position), r]),
    );
    for (const name of await listBreakpointFolders(dir)) {
      const folder = path.join(dir, name);
      // A symbolic link named as a folder is not read through; the projection below moves it aside.
      if (!(await fs.lstat(folder).catch(() => null))?.isDirectory()) continue;
      const manifest = await readManifestIfAny(folder);
      if (manifest === null || typeof manifest.logPosition !== 'string') continue;
      if (manifest.experimentId !== state.created!.experimentId) continue;
      const record = current.get(manifest.logPosition);
      const isPruned = state.pruned[manifest.logPosition] !== undefined;
      // Only folders the log can write again; others are moved aside by the projection below.
      if (!isPruned && (record === undefined || breakpointFolderName(record.round) !== name)) continue;
      if (!isPruned) {
        const { missing, restored } = await giveBlobsBack(ctx, folder, manifest);
        if (missing.length > 0) {
          problems.push(
            `${folder} left in place: the blob store lacks ${missing.join(', ')} ` +
              "and the folder's copy does not match it",
          );
          continue;
        }
        if (restored > 0) rescued.push(record!.round);
      }
      await fs.rm(folder, { recursive: true, force: true });
      removed.push(folder);
    }
  }
  const asideBefore = new Set(await listSupersededFolders(dir));
  // What this call wrote, as the writer itself found it (not a count taken before, which another
  // process projecting the same rounds, or a folder of another experiment, could make stale).
  let written: string[] = [];
  const failedRounds = new Set<number>();
  let threw = false;
  try {
    const result = await projectExperiment(ctx, state);
    written = result.writtenRounds.map((round) => path.join(dir, breakpointFolderName(round)));
    for (const failure of result.failed) {
      problems.push(failure.message);
      failedRounds.add(failure.round);
    }
  } catch (error) {
    threw = true;
    problems.push(
      error instanceof RoundlogError
        ? error.message
        : `projection failed: ${(error as Error)?.message ?? String(error)}`,
    );
  }
  const movedAside = (await listSupersededFolders(dir))
    .filter((n) => !asideBefore.has(n))
    .map((n) => path.join(dir, SUPERSEDED_DIR, n));
  const lagAfter = await missingBreakpoints(ctx, state);
  // A round still without its folder that no failure above explains is named, never left silent.
  const unexplained = threw ? [] : lagAfter.filter((round) => !failedRounds.has(round));
  if (unexplained.length > 0) {
    problems.push(
      `${unexplained.length === 1 ? 'round' : 'rounds'} ${unexplained.join(', ')} of ${state.folder} still ` +
        `${unexplained.length === 1 ? 'has' : 'have'} no breakpoint folder after projecting ` +
        "(was it removed meanwhile?); run 'roundlog project' again",
    );
  }
  return {
    experimentId: state.created!.experimentId,
    folder: state.folder,
    lagBefore,
    removed,
    written,
    movedAside,
    pruned,
    rescued,
    problems,
    lagAfter,
  };
}

/**
 * Puts back into the blob store every blob of the folder the store lacks, from the folder's file
 * when it hashes right. Returns the hashes it could not give back, and how many it gave back.
 */
async function giveBlobsBack(
  ctx: ProjectionContext,
  folder: string,
  manifest: LooseManifest,
): Promise<{ missing: string[]; restored: number }> {
  const missing: string[] = [];
  let restored = 0;
  const files = manifest.files;
  if (files === null || typeof files !== 'object' || Array.isArray(files)) return { missing, restored };
  for (const [file, sha256] of Object.entries(files as Record<string, unknown>)) {
    // Only a blob name the store can hold (64 hex digits): never a path the manifest made up.
    if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) continue;
    const copy = path.join(folder, path.basename(file));
    // The store's own file (a hard link) is no copy: removing the folder loses nothing.
    const own = ctx.blobs.fileOf(sha256);
    const [ownStat, copyStat] = await Promise.all([
      own === null ? null : fs.stat(own).catch(() => null),
      fs.lstat(copy).catch(() => null),
    ]);
    if (ownStat !== null && copyStat !== null && ownStat.dev === copyStat.dev && ownStat.ino === copyStat.ino) continue;
    // A copy that holds the bytes goes back to the store (which replaces a damaged stored file).
    if (copyStat?.isFile() && (await hashFile(copy).catch(() => null)) === sha256) {
      if ((await ctx.blobs.putStream(createReadStream(copy))).created) restored++;
      continue;
    }
    if (!(await storeHoldsBlob(ctx.blobs, sha256))) missing.push(sha256);
  }
  return { missing, restored };
}

async function repairFolders(
  env: ProjectionEnv,
  ctx: ProjectionContext,
  experiments: readonly VerifiedExperiment[],
  damaged: ReadonlySet<string>,
): Promise<ViewRepairResult> {
  const healed = await healBlobsFromFolders(env, experiments, damaged);
  const relinked = await relinkDamagedFiles(env, experiments);
  const problems: ViewProblem[] = [...relinked.problems];
  const written: string[] = [];
  for (const { state } of experiments) {
    if (state === null) continue;
    const result = await projectOne(ctx, state, false);
    written.push(...result.written);
    for (const reason of result.problems) {
      problems.push({
        experiment: state.folder,
        folder: path.join(ctx.experimentsDir, state.folder),
        file: '.',
        round: null,
        reason,
      });
    }
  }
  return {
    blobsHealed: [...healed].map(([sha256, from]) => ({ sha256, from })),
    filesRelinked: relinked.repaired,
    written,
    problems,
  };
}

async function verifyFolders(
  env: ProjectionEnv,
  experiments: readonly VerifiedExperiment[],
): Promise<ViewVerifyResult> {
  const problems: ViewProblem[] = [];
  const lag: Array<{ experiment: string; rounds: number[] }> = [];
  const notes: string[] = [];
  let checked = 0;
  const root = env.layout.root;
  const check = async (
    folder: string,
    name: string,
    state: ExperimentState | null,
    where: 'current' | 'superseded',
  ) => {
    checked++;
    const result = await checkBreakpointFolder(folder, { state, experiment: name, where, root, origins });
    for (const p of result.problems)
      problems.push({ experiment: name, folder, file: p.file, round: p.round, reason: p.reason });
  };
  // Folders experiments were imported from, which may have been left under experiments/ when carried there.
  const origins = new Map<string, string>();
  for (const { state } of experiments) {
    const imported = state?.created?.importedFrom;
    if (imported) origins.set(imported.breakpointSha256, state!.folder);
  }
  const folders = new Set<string>();
  for (const { folder: registered, state } of experiments) {
    const name = state?.folder ?? registered;
    folders.add(name);
    const dir = experimentDir(env.layout.experiments, name);
    // The experiment folder and its superseded/ area must be real folders: nothing is read or
    // written through a symbolic link out of the root.
    const notReal = await firstNotRealFolder(env.layout.experiments, [dir, path.join(dir, SUPERSEDED_DIR)], name);
    if (notReal !== null) {
      problems.push({ experiment: name, folder: notReal.folder, file: '.', round: null, reason: notReal.problem });
      continue;
    }
    for (const child of await listBreakpointFolders(dir)) {
      const folder = path.join(dir, child);
      const link = await firstNotRealFolder(env.layout.experiments, [folder], name);
      if (link !== null) {
        checked++;
        problems.push({ experiment: name, folder, file: '.', round: null, reason: link.problem });
        continue;
      }
      await check(folder, name, state, 'current');
    }
    for (const child of await listNames(dir)) {
      if (child.startsWith(TEMP_PREFIX)) {
        notes.push(
          `${path.join(dir, child)}: a temp folder ` +
            '(a write in progress, or left by a crash: resume or project removes it)',
        );
      }
    }
    for (const child of await listSupersededFolders(dir)) {
      if (!/^breakpoint_\d{4,}\.\d+$/.test(child)) continue;
      await check(path.join(dir, SUPERSEDED_DIR, child), name, state, 'superseded');
    }
    if (state !== null) {
      const missing = await missingBreakpoints({ experimentsDir: env.layout.experiments, blobs: env.blobs }, state);
      if (missing.length > 0) lag.push({ experiment: name, rounds: missing });
    }
  }
  // Folders `roundlog replay` wrote under the root: not views the log keeps, so each is checked
  // against its own manifest (every file's SHA-256), not against the log.
  for (const name of await listNames(env.layout.replays)) {
    const dir = path.join(env.layout.replays, name);
    const replayed = [
      ...(await listBreakpointFolders(dir)).map((child) => path.join(dir, child)),
      ...(await listSupersededFolders(dir)).map((child) => path.join(dir, SUPERSEDED_DIR, child)),
    ];
    for (const folder of replayed) {
      checked++;
      const result = await checkBreakpointFolder(folder, { root });
      const experiment = path.relative(root, dir);
      for (const p of result.problems)
        problems.push({ experiment, folder, file: p.file, round: p.round, reason: p.reason });
    }
  }
  for (const name of await listNames(env.layout.experiments)) {
    // The projection checkpoint lives beside the experiment folders: it is checked with the caches.
    if (path.join(env.layout.experiments, name) === env.layout.projectionCheckpoint) continue;
    // The projection lock, while another process writes the views.
    if (isProjectionLockName(name)) continue;
    if (!folders.has(name)) {
      notes.push(
        `${path.join(env.layout.experiments, name)} is not the folder of any experiment in the log; not checked`,
      );
    }
  }
  return { checked, problems, lag, notes };
}

/**
 * The experiment a breakpoint folder, or an experiment folder (through its latest breakpoint by
 * round), records in its manifest; null when the path holds neither.
 */
async function experimentOfFolder(target: string): Promise<string | null> {
  const direct = await readManifestIfAny(target);
  if (typeof direct?.experimentId === 'string') return direct.experimentId;
  for (const name of (await listBreakpointFolders(target)).reverse()) {
    const manifest = await readManifestIfAny(path.join(target, name));
    if (typeof manifest?.experimentId === 'string') return manifest.experimentId;
  }
  return null;
}

async function listNames(dir: string): Promise<string[]> {
  return (await fs.readdir(dir).catch(() => [] as string[])).sort(compareNames);
}

/** The first of `dirs` (inside `base`) that is not a real folder (`NotARealFolderError`), or null. */
async function firstNotRealFolder(
  base: string,
  dirs: readonly string[],
  experiment: string,
): Promise<NotARealFolderError | null> {
  for (const dir of dirs) {
    try {
      await checkRealFolders(base, dir, `a folder of experiment ${experiment}`);
    } catch (error) {
      if (error instanceof NotARealFolderError) return error;
      throw error;
    }
  }
  return null;
}
