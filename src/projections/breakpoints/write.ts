/**
 * Writing the breakpoint folders of an experiment from its state: one round's folder (under a
 * temp name, renamed into place, so a crash never leaves a half folder that looks complete), the
 * folders of superseded rounds moved aside, the whole experiment brought in step, and the lag
 * (rounds that should have a folder and have none).
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { BlobRef, BlobStore } from '../../blobs/types.ts';
import type { ExperimentHandle } from '../../engine/round-log.ts';
import { createFileDurably, syncDir, writeStep } from '../../durable.ts';
import { withProjectionLock } from '../../engine/projection-lock.ts';
import { checkRealFolders } from '../../confine.ts';
import { StorageWriteError, isSystemError } from '../../errors.ts';
import { CorruptBlobError } from '../../blobs/errors.ts';
import { BreakpointBlobDamagedError, RoundPrunedError } from '../../model/errors.ts';
import { breakpointFolderName } from '../../model/events.ts';
import { MANIFEST_FILE, paramsFileOf } from '../../model/manifest.ts';
import { hasBreakpoint, type ExperimentState, type RoundRecord } from '../../model/state.ts';
import {
  TEMP_PREFIX,
  experimentDir,
  listBreakpointFolders,
  moveAside,
  readManifestIfAny,
  removeStaleTemps,
  roundOfFolder,
} from './folder.ts';
import { fileHoldsBlob, replaceWithBlob } from './heal.ts';
import { manifestOfRound } from './schema.ts';

/** Where experiment folders go (`<root>/experiments`, or a replay area) and where their bytes come from. */
export type ProjectionContext = Readonly<{ experimentsDir: string; blobs: BlobStore }>;

export type MaterializeResult = Readonly<{ path: string; created: boolean }>;

/**
 * Writes the breakpoint folder of one round of the current branch, unless it is already there.
 * Under the projection lock of `ctx.experimentsDir` (`withProjectionLock`): another process
 * projecting the same folder writes it before or after, never at once.
 */
export function materializeBreakpoint(
  ctx: ProjectionContext,
  state: ExperimentState,
  round: number,
  experimentFolder?: string,
): Promise<MaterializeResult> {
  return withProjectionLock(ctx.experimentsDir, () => materialize(ctx, state, round, experimentFolder));
}

async function materialize(
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
  const dir = experimentDir(ctx.experimentsDir, experimentFolder ?? created.folder);
  // Never written through a symbolic link (out of the root) in place of the experiment folder.
  await checkRealFolders(ctx.experimentsDir, dir, `the folder of experiment ${created.folder}`);
  const final = path.join(dir, breakpointFolderName(round));
  // A symbolic link (or a file) named as the folder is not read through: it is moved aside as it is.
  const finalStat = await fs.lstat(final).catch(() => null);
  const existing = finalStat?.isDirectory() ? await readManifestIfAny(final) : null;
  if (existing !== null) {
    if (existing.experimentId === created.experimentId && existing.logPosition === String(record.position)) {
      // The folder is kept only once its files hold the round's bytes; a file the storage damaged
      // (or the old link of a blob the store has replaced since) is linked again from the store.
      const { planFile } = manifestOfRound(created, record);
      const files: Array<[string, BlobRef]> = [[paramsFileOf(record.params.encoding), record.params]];
      if (planFile !== null) files.push([planFile, record.settings.trainingPlan!.source]);
      for (const [name, ref] of files) {
        const file = path.join(final, name);
        if (!(await fileHoldsBlob(ctx.blobs, ref.sha256, ref.bytes, file)))
          await replaceWithBlob(ctx.blobs, ref.sha256, file);
      }
      return { path: final, created: false };
    }
  }
  // A folder of another history (a round done again after a rewind, a folder carried here), or
  // one whose manifest cannot be read: keep it, aside.
  if (existing !== null || finalStat !== null) await moveAside(dir, final);
  await writeStep(dir, 'creating the experiment folder', () => fs.mkdir(dir, { recursive: true }));
  const temp = path.join(dir, `${TEMP_PREFIX}${breakpointFolderName(round)}-${process.pid}-${randomUUID()}`);
  await writeStep(temp, 'creating the breakpoint folder', () => fs.mkdir(temp));
  // The step under way, so that a failing write names its file and what was being done.
  let step = { file: temp, operation: 'writing the breakpoint folder' };
  // The store checks each blob's bytes as it links them: a damaged one fails the folder, named.
  const link = async (sha256: string, file: string) => {
    try {
      await ctx.blobs.link(sha256, file);
    } catch (error) {
      if (!(error instanceof CorruptBlobError)) throw error;
      throw new BreakpointBlobDamagedError(state.folder, round, sha256, path.basename(file), error.file, error);
    }
  };
  try {
    const { manifest, planFile } = manifestOfRound(created, record);
    step = {
      file: path.join(temp, manifest.params.file),
      operation: 'writing the parameters file of a breakpoint folder',
    };
    await link(record.params.sha256, step.file);
    if (planFile !== null) {
      step = { file: path.join(temp, planFile), operation: 'writing the training plan of a breakpoint folder' };
      await link(record.settings.trainingPlan!.source.sha256, step.file);
    }
    step = { file: path.join(temp, MANIFEST_FILE), operation: 'writing the manifest of a breakpoint folder' };
    await createFileDurably(step.file, JSON.stringify(manifest, null, 2) + '\n');
    step = { file: temp, operation: 'syncing the breakpoint folder' };
    await syncDir(temp);
    step = { file: final, operation: 'moving the breakpoint folder into place' };
    try {
      await fs.rename(temp, final);
    } catch (error) {
      // A folder put there meanwhile by a writer that does not take the projection lock (a
      // release before it): when it is this round's, the work is done; anything else fails, named.
      const code = (error as NodeJS.ErrnoException)?.code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
      const there = await readManifestIfAny(final);
      if (there?.experimentId !== created.experimentId || there?.logPosition !== String(record.position)) throw error;
      await fs.rm(temp, { recursive: true, force: true });
      return { path: final, created: false };
    }
    await syncDir(dir);
  } catch (error) {
    await fs.rm(temp, { recursive: true, force: true });
    throw isSystemError(error) ? new StorageWriteError(step.file, step.operation, error) : error;
  }
  return { path: final, created: true };
}

/**
 * Moves the breakpoint folders of rounds `>= fromRound` into the experiment's `superseded/` area,
 * under the projection lock (so a folder another process has moved already is not there to move).
 */
export function supersedeBreakpoints(
  ctx: ProjectionContext,
  experimentFolder: string,
  fromRound: number,
): Promise<string[]> {
  return withProjectionLock(ctx.experimentsDir, async () => {
    const dir = path.join(ctx.experimentsDir, experimentFolder);
    const moved: string[] = [];
    for (const name of await listBreakpointFolders(dir)) {
      if (roundOfFolder(name)! >= fromRound) moved.push(await moveAside(dir, path.join(dir, name)));
    }
    return moved;
  });
}

/** The rounds of the current branch that have a breakpoint folder by the log's rules, not pruned. */
function wantedRounds(state: ExperimentState): RoundRecord[] {
  return state.rounds.filter(
    (record): record is RoundRecord =>
      record !== undefined &&
      record !== null &&
      hasBreakpoint(state, record.round) &&
      state.pruned[String(record.position)] === undefined,
  );
}

/**
 * Brings an experiment's folders in line with its history: every breakpoint of the current
 * branch materialized, no superseded round left among them, no temp folder of a crash left over.
 * Rounds pruned by retention are not written; a folder of a pruned round is left where it is
 * (`roundlog gc` removes it). A round whose blob the store holds damaged gets no folder; the others
 * are written, and each such round is returned in `failed`. `writtenRounds`: the rounds whose folder
this call wrote (`written` of them), as `materializeBreakpoint` found them. Under the projection lock.
 */
export function projectExperiment(
  ctx: ProjectionContext,
  state: ExperimentState,
  experimentFolder?: string,
): Promise<{ written: number; writtenRounds: number[]; failed: BreakpointBlobDamagedError[] }> {
  return withProjectionLock(ctx.experimentsDir, () => projectFolders(ctx, state, experimentFolder));
}

async function projectFolders(
  ctx: ProjectionContext,
  state: ExperimentState,
  experimentFolder?: string,
): Promise<{ written: number; writtenRounds: number[]; failed: BreakpointBlobDamagedError[] }> {
  const folder = experimentFolder ?? state.folder;
  const dir = experimentDir(ctx.experimentsDir, folder);
  await removeStaleTemps(dir);
  const wanted = new Map(wantedRounds(state).map((record) => [breakpointFolderName(record.round), record]));
  for (const name of await listBreakpointFolders(dir)) {
    const manifest = await readManifestIfAny(path.join(dir, name));
    const position: unknown = manifest?.logPosition;
    if (
      manifest?.experimentId === state.created?.experimentId &&
      typeof position === 'string' &&
      state.pruned[position] !== undefined
    ) {
      continue;
    }
    const record = wanted.get(name);
    if (record === undefined || manifest === null || manifest.logPosition !== String(record.position)) {
      await moveAside(dir, path.join(dir, name));
    }
  }
  const writtenRounds: number[] = [];
  const failed: BreakpointBlobDamagedError[] = [];
  for (const record of wanted.values()) {
    try {
      if ((await materializeBreakpoint(ctx, state, record.round, folder)).created) writtenRounds.push(record.round);
    } catch (error) {
      if (!(error instanceof BreakpointBlobDamagedError)) throw error;
      failed.push(error);
    }
  }
  return { written: writtenRounds.length, writtenRounds, failed };
}

/**
 * How far the folders lag behind the log: the rounds of the current branch that have a
 * breakpoint (`hasBreakpoint`) and no folder (or one of another history). Empty when the
 * projection is current. Rounds pruned by retention have no folder by design and are not counted.
 */
export async function missingBreakpoints(
  ctx: ProjectionContext,
  state: ExperimentState,
  experimentFolder?: string,
): Promise<number[]> {
  const dir = experimentDir(ctx.experimentsDir, experimentFolder ?? state.folder);
  const missing: number[] = [];
  for (const record of wantedRounds(state)) {
    const folder = path.join(dir, breakpointFolderName(record.round));
    // A symbolic link in place of the folder (or of the experiment's) is not the round's folder.
    const real = await checkRealFolders(ctx.experimentsDir, folder, 'a breakpoint folder').then(
      () => true,
      () => false,
    );
    const manifest = real ? await readManifestIfAny(folder) : null;
    // The folder materializeBreakpoint keeps: this experiment's, of this round's commit.
    if (manifest?.experimentId !== state.created?.experimentId || manifest?.logPosition !== String(record.position))
      missing.push(record.round);
  }
  return missing;
}

/** Writes the breakpoint folder of a completed round of the experiment, unless it is there; returns its path. */
export async function writeBreakpoint(handle: ExperimentHandle, round: number): Promise<string> {
  const ctx = { experimentsDir: handle.roundLog.layout.experiments, blobs: handle.roundLog.blobs };
  return (await materializeBreakpoint(ctx, handle.state, round, handle.state.folder)).path;
}
