/**
 * A stored tensor set (a round's reply in the blob store) read a slice of elements at a time
 * (`StoredTensors`), for aggregating replies without holding them (`Aggregator.aggregateStored`).
 *
 * A safetensors blob the store keeps as a file is read in place: its header is parsed and checked
 * once (as decoding checks it), then each slice is read at its offset into a fresh typed array.
 * Any other blob (another encoding, a store that keeps no files) is decoded whole once, and its
 * slices are copies of the decoded tensors.
 */
import { constants as fsConstants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { BlobRef, BlobStore } from '../blobs/types.ts';
import { DTYPES } from '../codec/dtypes.ts';
import { CorruptPayloadError } from '../codec/errors.ts';
import {
  SAFETENSORS_ENCODING,
  parseSafetensorsHeader,
  safetensorsHeaderLength,
  type SafetensorsEntry,
} from '../codec/safetensors.ts';
import { decodeTensors, type Tensor } from '../codec/tensors.ts';
import { InvalidArgumentError } from '../errors.ts';
import type { StoredTensors } from './aggregators.ts';

/**
 * The tensors of the blob `ref`, `source` naming it in errors (`CorruptPayloadError` for a header
 * that does not parse; `BlobNotFoundError` / `CorruptBlobError` from the store for a blob that is
 * absent or damaged). A file read in place is not hashed again: it is a blob this round stored,
 * hashed as it was written; a file that has changed size since fails its reads.
 */
export async function openStoredTensors(blobs: BlobStore, ref: BlobRef, source: string): Promise<StoredTensors> {
  const file = ref.encoding === SAFETENSORS_ENCODING ? blobs.fileOf(ref.sha256) : null;
  if (file !== null) {
    const opened = await readHeader(file, ref, source);
    if (opened !== null) return opened;
  }
  const tensors = decodeTensors(ref.encoding, await blobs.get(ref), { source, storedBytes: ref.bytes });
  const entries = Object.entries(tensors);
  return {
    tensors: entries.map(([name, { dtype, shape }]) => [name, { dtype, shape }] as const),
    read: async (name, start, end) => sliceOf(tensors[name], name, start, end, source),
  };
}

function sliceOf(tensor: Tensor | undefined, name: string, start: number, end: number, source: string): Tensor['data'] {
  if (tensor === undefined) throw new InvalidArgumentError('name', `is not a tensor of ${source}`, name);
  checkRange(start, end, tensor.data.length, name);
  return tensor.data.slice(start, end);
}

function checkRange(start: number, end: number, length: number, name: string): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end > length) {
    throw new InvalidArgumentError(
      'start, end',
      `must be whole elements 0 <= start <= end <= ${length} of tensor ${JSON.stringify(name)}`,
      [start, end],
    );
  }
}

/** The file's checked header and a reader of its slices; null when the file is not what `ref` records. */
async function readHeader(file: string, ref: BlobRef, source: string): Promise<StoredTensors | null> {
  let handle: FileHandle;
  try {
    // Not through a symlink, and never blocking on a FIFO.
    handle = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch {
    return null;
  }
  let entries: Map<string, SafetensorsEntry>;
  let dataStart: number;
  try {
    const stats = await handle.stat();
    if (!stats.isFile() || stats.size !== ref.bytes) return null;
    const options = { source, storedBytes: ref.bytes };
    const headerLength = safetensorsHeaderLength(await readAt(handle, 0, 8, source), stats.size, options);
    const header = parseSafetensorsHeader(
      await readAt(handle, 8, headerLength, source),
      stats.size - 8 - headerLength,
      options,
    );
    entries = new Map(header.entries.map((entry) => [entry.name, entry]));
    dataStart = header.dataStart;
  } finally {
    await handle.close();
  }
  return {
    tensors: [...entries.values()].map(({ name, dtype, shape }) => [name, { dtype, shape }] as const),
    async read(name, start, end) {
      const entry = entries.get(name);
      if (entry === undefined) throw new InvalidArgumentError('name', `is not a tensor of ${source}`, name);
      const { itemBytes, ctor } = DTYPES[entry.dtype];
      checkRange(start, end, (entry.end - entry.begin) / itemBytes, name);
      const buffer = new ArrayBuffer((end - start) * itemBytes);
      const reader = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
      try {
        await readInto(reader, new Uint8Array(buffer), dataStart + entry.begin + start * itemBytes, source);
      } finally {
        await reader.close();
      }
      const data = new ctor(buffer, 0, end - start);
      if (entry.dtype === 'bool') {
        const index = (data as Uint8Array).findIndex((b) => b > 1);
        if (index !== -1) {
          throw new CorruptPayloadError(
            SAFETENSORS_ENCODING,
            `bool tensor ${JSON.stringify(name)} has byte ${(data as Uint8Array)[index]} ` +
              `at element ${start + index}; a bool is 0 or 1`,
            source,
          );
        }
      }
      return data;
    },
  };
}

async function readAt(handle: FileHandle, position: number, length: number, source: string): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  await readInto(handle, bytes, position, source);
  return bytes;
}

async function readInto(handle: FileHandle, bytes: Uint8Array, position: number, source: string): Promise<void> {
  let read = 0;
  while (read < bytes.byteLength) {
    const { bytesRead } = await handle.read(bytes, read, bytes.byteLength - read, position + read);
    if (bytesRead === 0) {
      throw new CorruptPayloadError(
        SAFETENSORS_ENCODING,
        `the file ends at byte ${position + read}, before the ${bytes.byteLength} bytes from byte ${position}`,
        source,
        undefined,
        position + read,
      );
    }
    read += bytesRead;
  }
}
