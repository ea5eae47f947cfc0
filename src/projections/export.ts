/**
 * `exportRound`: the parameters of one round, read from the log and the blob store, written as one
 * file that PyTorch and NumPy open: safetensors (`safetensors.torch.load_file`, or NumPy alone) or
 * `.npz` (`numpy.load`). Any round the log records: of the current branch or superseded, with a
 * breakpoint folder or without one (retention removed it, or the round saved none); not a round
 * whose parameters retention deleted (`RoundPrunedError`).
 */
import { createHash, randomUUID } from 'node:crypto';
import { constants as fsConstants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { CorruptBlobError } from '../blobs/errors.ts';
import type { BlobRef, BlobStore } from '../blobs/types.ts';
import { type TensorDType } from '../codec/dtypes.ts';
import { CorruptPayloadError } from '../codec/errors.ts';
import { npzArchive, npzArchiveOf } from '../codec/npz.ts';
import {
  SAFETENSORS_ENCODING,
  encodeSafetensorsChunks,
  parseSafetensorsHeader,
  safetensorsHeaderLength,
  type SafetensorsHeader,
} from '../codec/safetensors.ts';
import { decodeTensors } from '../codec/tensors.ts';
import { fileKind, type FileKindStats } from '../confine.ts';
import { processIsAlive, syncDir, writeStep } from '../durable.ts';
import { InvalidArgumentError, RoundlogError } from '../errors.ts';
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

/**
 * `out` (or the folder it is in) is something export never writes or replaces, even with `force`:
 * a device, a FIFO, a socket, a folder or a symbolic link in place of the file; a symbolic link or
 * a non-folder in place of its folder. Nothing was written.
 */
export class ExportTargetError extends RoundlogError {
  readonly code = 'EXPORT_TARGET_REFUSED' as const;
  constructor(
    /** The file asked for (absolute). */
    readonly out: string,
    /** `out` itself (`file`) or the folder it is in (`folder`). */
    readonly role: 'file' | 'folder',
    /** The path refused: `out`, or its folder. */
    readonly path: string,
    /** What is there: `character device`, `block device`, `FIFO`, `socket`, `directory`, `symbolic link`, ... */
    readonly kind: string,
    /** Where a symbolic link points, else null. */
    readonly linkTarget: string | null,
  ) {
    const what = `a ${kind}${linkTarget === null ? '' : ` to ${linkTarget}`}`;
    super(
      role === 'file'
        ? `out ${path} is ${what}, not a regular file: export writes a new file or replaces a regular file ` +
            '(with --force, option force), never anything else, and wrote nothing; choose another file name' +
            (kind === 'directory' ? ` (e.g. a file inside ${path})` : '')
        : `out ${out}: its folder ${path} is ${what}, not a real folder: export writes only into a real folder, ` +
            'and wrote nothing; give --out (option out) in the folder itself' +
            (linkTarget === null ? '' : ` (the path the link resolves to)`),
    );
  }
}

/** Why export refuses to replace what `lstat` found at `out`: its kind (`FIFO`, ...), or null for a regular file. */
export function exportTargetProblem(stats: FileKindStats): string | null {
  return stats.isFile() ? null : fileKind(stats);
}

/** The format `exportRound` writes to `out` when none is given: `.npz` is npz, anything else safetensors. */
export function exportFormatOf(out: string): ExportFormat {
  return path.extname(out).toLowerCase() === '.npz' ? 'npz' : 'safetensors';
}

/**
 * The format `out`'s extension names (`.npz`, `.safetensors`, any case), or null for any other
 * extension (which leaves the format to `format`, else safetensors).
 */
export function exportFormatNamedBy(out: string): ExportFormat | null {
  const extension = path.extname(out).toLowerCase();
  return extension === '.npz' ? 'npz' : extension === '.safetensors' ? 'safetensors' : null;
}

/**
 * Writes the parameters of a round to `options.out`, as safetensors or `.npz`. A round stored as
 * safetensors exported as safetensors is its blob's bytes as they are, copied from the blob file
 * and checked against their SHA-256 as they are copied; exported as npz, each tensor is read from
 * the blob file in turn as its entry is written (a store that keeps no files, and rounds of the
 * older encodings `tensors/msgpack`, `tensors/msgpack+lz4`, are read whole, decoded and written in
 * the format). The file is written under a temporary name beside `out`
 * (`.<name>.tmp-<pid>-<uuid>`), fsynced, then put in place, so `out` is either absent (or its old
 * content) or the whole export; temporary files that killed exports left in that folder are
 * removed first.
 *
 * Errors: `InvalidArgumentError` (`format` not one of safetensors, npz, or not the one `out`'s
 * `.npz` / `.safetensors` extension names; `out` in a folder that does not exist, inside the root's
 * experiments, log or blobs, or an existing file without `force`), `ExportTargetError` (`out` is
 * not a regular file: a device, FIFO, socket, folder or symbolic link, even with `force`; or its
 * folder is a symbolic link), the round choice's errors (`RoundNotFoundError`,
 * `RoundNotInHistoryError`, `RoundPrunedError`), `ExperimentNotFoundError`, `BlobNotFoundError` /
 * `CorruptBlobError` for stored parameters that are gone or damaged (nothing is put in place),
 * `CorruptPayloadError` / `UnknownEncodingError` for bytes that do not decode, `UnsafeTensorNameError`
 * (npz: a name that cannot be an archive entry), `StorageWriteError` when writing fails.
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
  const named = exportFormatNamedBy(out);
  if (named !== null && named !== format) {
    throw new InvalidArgumentError(
      'format',
      `must be the format out's extension names (${named} for ${path.basename(out)}): leave format out, ` +
        `or name the file .${format}`,
      format,
    );
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
  await removeDeadExportTemps(dir);

  let tensors: ExportedTensor[];
  let chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  let method: ExportResult['method'] = 'converted';
  let widened: readonly string[] = [];
  let written: Written;
  // A safetensors blob kept as a file is read as it is written out, never whole.
  const file = await openStoredSafetensors(rl.blobs, ref);
  if (file !== null) {
    let archiveStream: Readable | null = null;
    try {
      const { entries, dataStart } = file.header;
      tensors = entries.map(({ name, dtype, shape }) => ({ name, dtype, shape: [...shape] }));
      if (format === 'npz') {
        // The header's bytes are hashed first (yazl asks for the first entry at once): the blob is
        // checked whole, in file order.
        for await (const _ of file.read(0, dataStart)) void _;
        const archive = npzArchiveOf(
          entries.map((entry) => ({
            ...entry,
            elements: () => file.read(dataStart + entry.begin, dataStart + entry.end, entry),
          })),
          { mtime: record.timestamp, source },
        );
        chunks = archiveStream = archive.stream;
        widened = archive.widened;
      } else {
        chunks = file.read(0, ref.bytes);
        method = 'copied';
      }
      written = await writeAtomically(out, dir, chunks, force, () => file.checkWhole());
    } finally {
      // An archive left unread (writing failed) stops asking for the file's bytes before it is closed.
      archiveStream?.destroy();
      await file.close();
    }
  } else {
    // Checked against the hash as it is read: damaged stored bytes are an error, never exported.
    const stored = await rl.blobs.get(ref);
    const tensorSet = decodeTensors(ref.encoding, stored, { source: `blob ${ref.sha256}`, storedBytes: ref.bytes });
    tensors = Object.entries(tensorSet).map(([name, t]) => ({ name, dtype: t.dtype, shape: [...t.shape] }));
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
    written = await writeAtomically(out, dir, chunks, force);
  }
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

/**
 * `out`'s folder must exist and be a real folder (not a symbolic link); `out` must not exist, or
 * (with `force`) be a regular file: never a device, FIFO, socket, folder or symbolic link (looked
 * at with `lstat`: a link is never followed).
 */
async function checkTarget(out: string, dir: string, force: boolean): Promise<void> {
  const parent = await fs.lstat(dir).catch(() => null);
  if (parent === null) {
    throw new InvalidArgumentError(
      'out',
      `must be a file in a folder that exists; ${dir} is missing: create it first`,
      out,
    );
  }
  if (!parent.isDirectory()) {
    const link = parent.isSymbolicLink() ? await fs.readlink(dir).catch(() => null) : null;
    throw new ExportTargetError(out, 'folder', dir, fileKind(parent), link);
  }
  await checkOut(out, force);
}

/** `out` is absent (false), or a regular file that `force` may replace (true); anything else is refused. */
async function checkOut(out: string, force: boolean): Promise<boolean> {
  const there = await fs.lstat(out).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  if (there === null) return false;
  const kind = exportTargetProblem(there);
  if (kind !== null) {
    const link = there.isSymbolicLink() ? await fs.readlink(out).catch(() => null) : null;
    throw new ExportTargetError(out, 'file', out, kind, link);
  }
  if (!force) throw existsError(out);
  return true;
}

function existsError(out: string): InvalidArgumentError {
  return new InvalidArgumentError(
    'out',
    'must be a file that does not exist yet: choose another, or replace it with --force (option force: true)',
    out,
  );
}

/** An export's temporary file: `.<name>.tmp-<pid>-<uuid>`, beside the file it becomes. */
const EXPORT_TEMP = /^\..+\.tmp-(\d+)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function exportTempOf(out: string): string {
  return path.join(path.dirname(out), `.${path.basename(out)}.tmp-${process.pid}-${randomUUID()}`);
}

/**
 * Removes the temporary files of exports into `dir` whose process is gone (killed before it could
 * remove its own): regular files only, never one a running export (this process or another) writes.
 */
async function removeDeadExportTemps(dir: string): Promise<void> {
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    const match = EXPORT_TEMP.exec(name);
    if (match === null || processIsAlive(Number(match[1]))) continue;
    const file = path.join(dir, name);
    const stats = await fs.lstat(file).catch(() => null);
    if (stats?.isFile() === true) await fs.unlink(file).catch(() => undefined);
  }
}

/** A stored safetensors blob's file, open, with its checked header. */
type StoredSafetensors = {
  header: SafetensorsHeader;
  /**
   * Bytes `start` to `end` of the file, in chunks; the reads must follow each other in file order
   * (each `start` where the last ended) to the end of the file, hashing it as they go. For a bool
   * `entry`, a byte other than 0 or 1 is a `CorruptPayloadError`.
   */
  read(start: number, end: number, entry?: { name: string; dtype: TensorDType }): AsyncGenerator<Buffer>;
  /** Throws `CorruptBlobError` unless the whole file was read and hashes to the blob's name. */
  checkWhole(): void;
  close(): Promise<void>;
};

const READ_CHUNK_BYTES = 1024 * 1024;

/**
 * The blob of a round stored as safetensors, open for reading in order, when the store keeps it as
 * a regular file of the size the ref records whose header parses; else null, and the caller reads
 * it with `get` (which gives the typed error of a missing, damaged or wrong file).
 */
async function openStoredSafetensors(blobs: BlobStore, ref: BlobRef): Promise<StoredSafetensors | null> {
  if (ref.encoding !== SAFETENSORS_ENCODING) return null;
  const file = blobs.fileOf(ref.sha256);
  if (file === null) return null;
  let handle: FileHandle;
  try {
    // Not through a symlink, and never blocking on a FIFO.
    handle = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch {
    return null;
  }
  let header: SafetensorsHeader;
  try {
    const stats = await handle.stat();
    if (!stats.isFile() || stats.size !== ref.bytes) throw new Error('not the stored file');
    const options = { source: `blob ${ref.sha256}`, storedBytes: ref.bytes };
    const prefix = await readExactly(handle, 0, 8);
    const headerLength = safetensorsHeaderLength(prefix, stats.size, options);
    const headerBytes = await readExactly(handle, 8, headerLength);
    header = parseSafetensorsHeader(headerBytes, stats.size - 8 - headerLength, options);
  } catch {
    // Damaged, or not what its ref says: `get` checks the hash first and says which.
    await handle.close();
    return null;
  }
  const hash = createHash('sha256');
  let position = 0;
  const source = `blob ${ref.sha256}`;
  return {
    header,
    async *read(start, end, entry) {
      if (start !== position) throw new Error(`blob ${ref.sha256} read out of order: at ${start}, not ${position}`);
      while (position < end) {
        const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, end - position));
        const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
        if (bytesRead === 0) throw new CorruptBlobError(ref.sha256, hash.copy().digest('hex'), file);
        const bytes = chunk.subarray(0, bytesRead);
        if (entry?.dtype === 'bool') {
          const index = bytes.findIndex((b) => b > 1);
          if (index !== -1) {
            const at = position + index;
            throw new CorruptPayloadError(
              SAFETENSORS_ENCODING,
              `bool tensor ${JSON.stringify(entry.name)} has byte ${bytes[index]} at element ` +
                `${at - start} (file byte ${at}); a bool is 0 or 1`,
              source,
            );
          }
        }
        hash.update(bytes);
        position += bytesRead;
        yield bytes;
      }
    },
    checkWhole() {
      const actual = hash.copy().digest('hex');
      if (position !== ref.bytes || actual !== ref.sha256) throw new CorruptBlobError(ref.sha256, actual, file);
    },
    close: () => handle.close(),
  };
}

async function readExactly(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const bytes = Buffer.alloc(length);
  let read = 0;
  while (read < length) {
    const { bytesRead } = await handle.read(bytes, read, length - read, position + read);
    if (bytesRead === 0) throw new Error('the file ends early');
    read += bytesRead;
  }
  return bytes;
}

type Written = { bytes: number; sha256: string; replaced: boolean };

/**
 * Writes `chunks` to a temporary file beside `out`, fsyncs it, runs `check` (which throws to keep
 * `out` as it was) and puts it in place: renamed over `out` with `force` (once `out` is checked
 * again to be absent or a regular file), else hard-linked to `out` (which fails if a file appeared
 * there meanwhile, so nothing is ever overwritten without `force`) and the temporary name removed.
 * The folder is fsynced last. Nothing is left under the temporary name, whatever fails (but a
 * killed process: the next export into the folder removes it).
 */
async function writeAtomically(
  out: string,
  dir: string,
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  force: boolean,
  check: () => void = () => undefined,
): Promise<Written> {
  const temp = exportTempOf(out);
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
    check();
    let replaced = false;
    await writeStep(out, 'putting the export in place', async () => {
      if (force) {
        // Looked at again just before: what appeared since the first check is refused the same way.
        replaced = await checkOut(out, true);
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
        await checkOut(out, false);
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
