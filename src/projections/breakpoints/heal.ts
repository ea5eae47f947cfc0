/**
 * Healing breakpoint folders and the blob store from each other, for `roundlog verify --repair`
 * and for the projection, which never trusts a folder file it is about to keep.
 *
 * The files of a folder are normally hard links of the store's blob files: the same inode, so the
 * same bytes and the same damage. A good copy of a blob exists only where a folder file is a
 * different file: a copy (a folder carried in from another root, or a link made across devices),
 * or the old link of a blob the store has replaced since. Files are opened only when they are
 * plain files (no symlink, FIFO or device) named directly inside their folder.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { BlobStore } from '../../blobs/types.ts';
import { syncDir, writeStep } from '../../durable.ts';
import type { ProjectionEnv, VerifiedExperiment, ViewProblem } from '../../engine/projection.ts';
import { SUPERSEDED_DIR } from '../../model/manifest.ts';
import { listBreakpointFolders, listSupersededFolders, readManifestIfAny } from './folder.ts';

/** A folder file that should hold the blob `sha256` (by its folder's manifest). */
type FolderFile = Readonly<{ folder: string; file: string; sha256: string }>;

export type FileRepair = Readonly<{ file: string; sha256: string }>;

/**
 * Whether `file` holds the blob's bytes: a plain file of the blob's size that is the store's own
 * file (same device and inode), or hashes to it.
 */
export async function fileHoldsBlob(blobs: BlobStore, sha256: string, bytes: number | null, file: string) {
  const stat = await fs.lstat(file).catch(() => null);
  if (stat === null || !stat.isFile() || (bytes !== null && stat.size !== bytes)) return false;
  const own = blobs.fileOf(sha256);
  if (own !== null) {
    const blob = await fs.stat(own).catch(() => null);
    if (blob !== null && blob.dev === stat.dev && blob.ino === stat.ino) return true;
  }
  return (await hashFile(file)) === sha256;
}

/**
 * Replaces `file` with the store's bytes of `sha256` (a hard link, or a copy), atomically: the
 * new file is made under a temp name beside it and renamed over it. The store's bytes are checked
 * first (`get` re-hashes them), so damage is never copied over damage.
 */
export async function replaceWithBlob(blobs: BlobStore, sha256: string, file: string): Promise<void> {
  const own = blobs.fileOf(sha256);
  if (own === null || !(await fileHoldsBlobByHash(own, sha256))) await blobs.get(sha256);
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}-${randomUUID()}.tmp`);
  try {
    await writeStep(file, 'replacing a damaged breakpoint file', async () => {
      await blobs.link(sha256, temp);
      await fs.rename(temp, file);
    });
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
  await writeStep(file, 'replacing a damaged breakpoint file', () => syncDir(path.dirname(file)));
}

/** Whether the store holds the blob intact (its file re-hashed, or its bytes read back and checked). */
export async function storeHoldsBlob(blobs: BlobStore, sha256: string): Promise<boolean> {
  const own = blobs.fileOf(sha256);
  if (own !== null) return fileHoldsBlobByHash(own, sha256);
  return blobs.get(sha256).then(
    () => true,
    () => false,
  );
}

async function fileHoldsBlobByHash(file: string, sha256: string): Promise<boolean> {
  return (await hashFile(file).catch(() => null)) === sha256;
}

/** Every breakpoint folder of these experiments (on the branch and superseded) and of the replays area. */
async function allFolders(env: ProjectionEnv, experiments: readonly VerifiedExperiment[]): Promise<string[]> {
  const dirs = new Set<string>();
  for (const { folder, state } of experiments) {
    dirs.add(path.join(env.layout.experiments, state?.folder ?? folder));
    dirs.add(path.join(env.layout.experiments, folder));
  }
  for (const area of [env.layout.experiments, env.layout.replays]) {
    for (const name of await fs.readdir(area).catch(() => [] as string[])) dirs.add(path.join(area, name));
  }
  const folders: string[] = [];
  for (const dir of [...dirs].sort()) {
    for (const name of await listBreakpointFolders(dir)) folders.push(path.join(dir, name));
    for (const name of await listSupersededFolders(dir)) folders.push(path.join(dir, SUPERSEDED_DIR, name));
  }
  return folders;
}

/** The files the folders' manifests say hold a blob; names that are not plain names in the folder are skipped. */
async function folderFiles(folders: readonly string[]): Promise<FolderFile[]> {
  const out: FolderFile[] = [];
  for (const folder of folders) {
    const manifest = await readManifestIfAny(folder);
    const files = manifest?.files;
    if (typeof files !== 'object' || files === null) continue;
    for (const [name, sha256] of Object.entries(files)) {
      if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) continue;
      if (name.length === 0 || name !== path.basename(name) || name === '.' || name === '..') continue;
      out.push({ folder, file: path.join(folder, name), sha256 });
    }
  }
  return out;
}

/**
 * Gives the store back the blobs in `wanted` from folder files that hold their bytes (a copy, not
 * the store's damaged file): each is hashed first, then put (which replaces a damaged stored
 * file). Returns each healed hash with the file it came from.
 */
export async function healBlobsFromFolders(
  env: ProjectionEnv,
  experiments: readonly VerifiedExperiment[],
  wanted: ReadonlySet<string>,
): Promise<Map<string, string>> {
  const healed = new Map<string, string>();
  if (wanted.size === 0) return healed;
  for (const candidate of await folderFiles(await allFolders(env, experiments))) {
    if (!wanted.has(candidate.sha256) || healed.has(candidate.sha256)) continue;
    const stat = await fs.lstat(candidate.file).catch(() => null);
    if (stat === null || !stat.isFile()) continue;
    if ((await hashFile(candidate.file).catch(() => null)) !== candidate.sha256) continue;
    const { ref } = await env.blobs.putStream(createReadStream(candidate.file));
    // The file may have changed between the hash and the put: only bytes that hash right count.
    if (ref.sha256 === candidate.sha256) healed.set(candidate.sha256, candidate.file);
  }
  return healed;
}

/**
 * Re-links every folder file (on the branch, superseded, replays) whose bytes are not its blob's,
 * from the store when the store holds the blob intact. Returns what was replaced and what could
 * not be (the store lacks the blob or holds it damaged too).
 */
export async function relinkDamagedFiles(
  env: ProjectionEnv,
  experiments: readonly VerifiedExperiment[],
): Promise<{ repaired: FileRepair[]; problems: ViewProblem[] }> {
  const repaired: FileRepair[] = [];
  const problems: ViewProblem[] = [];
  for (const { folder, file, sha256 } of await folderFiles(await allFolders(env, experiments))) {
    const stat = await fs.lstat(file).catch(() => null);
    if (stat !== null && !stat.isFile()) continue; // not a file roundlog wrote: verify names it
    if (stat !== null && (await fileHoldsBlob(env.blobs, sha256, null, file))) continue;
    try {
      await replaceWithBlob(env.blobs, sha256, file);
      repaired.push({ file, sha256 });
    } catch (error) {
      const parent = path.dirname(folder);
      problems.push({
        experiment: path.basename(path.basename(parent) === SUPERSEDED_DIR ? path.dirname(parent) : parent),
        folder,
        file: path.basename(file),
        round: null,
        reason:
          `cannot be healed: its blob ${sha256} ${stat === null ? 'is missing' : 'does not match'} and the store ` +
          `has no good copy (${(error as Error).message})`,
      });
    }
  }
  return { repaired, problems };
}

export async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
