/**
 * `exportRound`: the parameters of one round, read from the log and the blob store, written as one
 * file that PyTorch and NumPy open: safetensors (`safetensors.torch.load_file`, or NumPy alone) or
 * `.npz` (`numpy.load`). Any round the log records: of the current branch or superseded, with a
 * breakpoint folder or without one (retention removed it, or the round saved none); not a round
 * whose parameters retention deleted (`RoundPrunedError`).
 */
import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { BlobRef } from '../blobs/types.ts';
import { type TensorDType } from '../codec/dtypes.ts';
import { npzArchive } from '../codec/npz.ts';
import { SAFETENSORS_ENCODING, encodeSafetensorsChunks } from '../codec/safetensors.ts';
import { decodeTensors } from '../codec/tensors.ts';
import { syncDir, writeStep } from '../durable.ts';
import { InvalidArgumentError } from '../errors.ts';
import { chooseRound, type Branch, type RoundChoice } from '../engine/history.ts';
import type { RoundLog } from '../engine/round-log.ts';
import { checkOutside } from './history-ops.ts';

export const EXPORT_FORMATS = ['safetensors', 'npz'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export type ExportOptions = RoundChoice & {
  /**
   * The file to write (absolute, or relative to the current directory), in a folder that exists,
   * not inside `<root>/experiments`, `log` or `blobs`. It must not exist unless `force`.
   */
  out: string;
  /** Default: from `out`'s extension (`.npz` is npz, anything else safetensors). */
  format?: ExportFormat;
  /** Replace an existing file at `out` (atomically: readers see the old file or the new one). Default false. */
  force?: boolean;
};

export type ExportedTensor = Readonly<{ name: string; dtype: TensorDType; shape: readonly number[] }>;

export type ExportResult = Readonly<{
  experimentId: string;
  /** The experiment's folder name (under `<root>/experiments`). */
  folder: string;
  round: number;
  branch: Branch;
  /** Log position and stream revision of the round's `RoundCompleted`. */
  logPosition: bigint;
  streamRevision: bigint;
  /** The parameters as the round recorded them (their encoding in the blob store included). */
  params: BlobRef;
  format: ExportFormat;
  /** The file written (absolute). */
  path: string;
  /** Its length in bytes and the SHA-256 of its bytes. */
  bytes: number;
  sha256: string;
  /**
   * `copied`: the file is the stored blob's bytes as they are (a round stored as safetensors,
   * exported as safetensors); `converted`: decoded and written in `format`.
   */
  method: 'copied' | 'converted';
  /** The round's tensors, with roundlog's dtypes (as recorded, before any widening). */
  tensors: readonly ExportedTensor[];
  /** npz only: the `bfloat16` tensors, written as float32 (exact) since NumPy has no bfloat16. */
  widened: readonly string[];
  /** True when `force` replaced a file that was there. */
  replaced: boolean;
}>;

/** The format `exportRound` writes to `out` when none is given: `.npz` is npz, anything else safetensors. */
export function exportFormatOf(out: string): ExportFormat {
  return path.extname(out).toLowerCase() === '.npz' ? 'npz' : 'safetensors';
}

/**
 * Writes the parameters of a round to `options.out`, as safetensors or `.npz`. A round stored as
 * safetensors exported as safetensors is its blob's bytes as they are (checked against their
 * SHA-256); rounds of the older encodings (`tensors/msgpack`, `tensors/msgpack+lz4`) are decoded and
 * written in the format. The file is written under a temporary name beside `out`, fsynced, then
 * renamed into place, so `out` is either absent (or its old content) or the whole export.
 *
 * Errors: `InvalidArgumentError` (`format` not one of safetensors, npz; `out` in a folder that does
 * not exist, inside the root's experiments, log or blobs, a folder, or an existing file without
 * `force`), the round choice's errors (`RoundNotFoundError`, `RoundNotInHistoryError`,
 * `RoundPrunedError`), `ExperimentNotFoundError`, `BlobNotFoundError` / `CorruptBlobError` for
 * stored parameters that are gone or damaged, `CorruptPayloadError` / `UnknownEncodingError` for
 * bytes that do not decode, `UnsafeTensorNameError` (npz: a name that cannot be an archive entry),
 * `StorageWriteError` when writing fails.
 */
export async function exportRound(rl: RoundLog, experiment: string, options: ExportOptions): Promise<ExportResult> {
  if (typeof options.out !== 'string' || options.out === '' || options.out.includes('\0')) {
    throw new InvalidArgumentError('out', 'must be the path of the file to write', options.out);
  }
  const out = path.resolve(options.out);
  const format = options.format ?? exportFormatOf(out);
  if (!(EXPORT_FORMATS as readonly string[]).includes(format)) {
    throw new InvalidArgumentError('format', `must be one of ${EXPORT_FORMATS.join(', ')}`, format);
  }
  const force = options.force ?? false;
  await checkOutside(rl.layout, out);
  const dir = path.dirname(out);
  await checkTarget(out, dir, force);

  const handle = await rl.openExperiment(experiment);
  const { record, branch } = chooseRound(handle.state, options);
  const folder = handle.state.folder;
  const source = `round ${record.round} of ${folder} (log position ${record.position})`;
  const ref = record.params;
  // Checked against the hash as it is read: damaged stored bytes are an error, never exported.
  const stored = await rl.blobs.get(ref);
  const tensorSet = decodeTensors(ref.encoding, stored, { source: `blob ${ref.sha256}`, storedBytes: ref.bytes });
  const tensors = Object.entries(tensorSet).map(([name, t]) => ({ name, dtype: t.dtype, shape: [...t.shape] }));

  let chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  let method: ExportResult['method'] = 'converted';
  let widened: readonly string[] = [];
  if (format === 'npz') {
    const archive = npzArchive(tensorSet, { mtime: record.timestamp, source });
    chunks = archive.stream;
    widened = archive.widened;
  } else if (ref.encoding === SAFETENSORS_ENCODING) {
    chunks = [stored];
    method = 'copied';
  } else {
    chunks = encodeSafetensorsChunks(tensorSet).chunks;
  }
  const written = await writeAtomically(out, dir, chunks, force);
  return {
    experimentId: handle.id,
    folder,
    round: record.round,
    branch,
    logPosition: record.position,
    streamRevision: record.revision,
    params: ref,
    format,
    path: out,
    bytes: written.bytes,
    sha256: written.sha256,
    method,
    tensors,
    widened,
    replaced: written.replaced,
  };
}

/** `out`'s folder must exist; `out` must not be a folder, nor (without `force`) an existing file. */
async function checkTarget(out: string, dir: string, force: boolean): Promise<void> {
  const parent = await fs.stat(dir).catch(() => null);
  if (parent === null || !parent.isDirectory()) {
    throw new InvalidArgumentError(
      'out',
      `must be a file in a folder that exists; ${dir} is ${parent === null ? 'missing' : 'not a folder'}: ` +
        'create it first',
      out,
    );
  }
  const there = await fs.lstat(out).catch(() => null);
  if (there === null) return;
  if (there.isDirectory()) throw new InvalidArgumentError('out', 'must be a file, not a folder', out);
  if (!force) throw existsError(out);
}

function existsError(out: string): InvalidArgumentError {
  return new InvalidArgumentError(
    'out',
    'must be a file that does not exist yet: choose another, or replace it with --force (option force: true)',
    out,
  );
}

/**
 * Writes `chunks` to a temporary file beside `out`, fsyncs it and puts it in place: renamed over
 * `out` with `force`, else hard-linked to `out` (which fails if a file appeared there meanwhile,
 * so nothing is ever overwritten without `force`) and the temporary name removed. The folder is
 * fsynced last. Nothing is left under the temporary name, whatever fails.
 */
async function writeAtomically(
  out: string,
  dir: string,
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  force: boolean,
): Promise<{ bytes: number; sha256: string; replaced: boolean }> {
  const temp = path.join(dir, `.${path.basename(out)}.tmp-${process.pid}-${randomUUID()}`);
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    await writeStep(temp, 'writing the export', async () => {
      const file = await fs.open(temp, 'wx');
      try {
        for await (const chunk of chunks) {
          hash.update(chunk);
          bytes += chunk.byteLength;
          let at = 0;
          while (at < chunk.byteLength) at += (await file.write(chunk, at, chunk.byteLength - at)).bytesWritten;
        }
        await file.sync();
      } finally {
        await file.close();
      }
    });
    let replaced = false;
    await writeStep(out, 'putting the export in place', async () => {
      if (force) {
        replaced = (await fs.lstat(out).catch(() => null)) !== null;
        await fs.rename(temp, out);
        return;
      }
      try {
        await fs.link(temp, out);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') throw existsError(out);
        // A file system without hard links: checked, then renamed (a file appearing in between is replaced).
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error;
        if ((await fs.lstat(out).catch(() => null)) !== null) throw existsError(out);
        await fs.rename(temp, out);
        return;
      }
      await fs.unlink(temp);
    });
    await writeStep(dir, 'syncing the export folder', () => syncDir(dir));
    return { bytes, sha256: hash.digest('hex'), replaced };
  } finally {
    await fs.rm(temp, { force: true });
  }
}
