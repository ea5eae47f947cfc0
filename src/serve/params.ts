/**
 * Parameters uploaded as a safetensors body, streamed into the blob store: the body is read as it
 * arrives and never held whole. Its first bytes (the 8-byte length and the JSON header, bounded by
 * `ROUNDLOG_MAX_VALUE_BYTES`) are held back and checked (`parseSafetensorsHeader`: dtypes, shapes,
 * ranges tiling the buffer) before the first byte goes to the store; then the rest streams through,
 * counted against the length the header gives and the server's limit, and `BOOL` elements checked
 * to be 0 or 1 as they pass. A body that breaks any rule makes the store's `putStream` fail, which
 * removes what it had written under its temporary name: a rejected upload is never linked.
 */
import { promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import type { BlobRef, BlobStore } from '../blobs/types.ts';
import { DTYPES } from '../codec/dtypes.ts';
import { CorruptPayloadError } from '../codec/errors.ts';
import { shown } from '../codec/safetensors-header.ts';
import {
  SAFETENSORS_ENCODING,
  parseSafetensorsHeader,
  safetensorsHeaderLength,
  type SafetensorsHeader,
} from '../codec/safetensors.ts';
import { BodyTooLargeError } from './errors.ts';

/** A tensor as the API describes it: its safetensors dtype (`F32`, `BF16`, `BOOL`...) and shape. */
export type TensorInfo = Readonly<{ dtype: string; shape: readonly number[] }>;

export type StoredParams = Readonly<{
  ref: BlobRef;
  tensors: Readonly<Record<string, TensorInfo>>;
  created: boolean;
}>;

/** The API's description of a header's tensors, in file order. */
export function tensorsOf(header: SafetensorsHeader): Record<string, TensorInfo> {
  return Object.fromEntries(
    header.entries.map((e) => [e.name, { dtype: DTYPES[e.dtype].safetensors, shape: [...e.shape] }]),
  );
}

const SOURCE = 'the request body';

/** The body's fault at `byteOffset` (bytes from the start of the body). */
function corrupt(reason: string, byteOffset: number): CorruptPayloadError {
  return new CorruptPayloadError(SAFETENSORS_ENCODING, reason, SOURCE, undefined, byteOffset);
}

/**
 * Streams `body` into `blobs` as a safetensors blob. `declaredLength` is the Content-Length when
 * the client sent one. Errors: `BodyTooLargeError` (over `maxBytes`, before reading when the
 * declared length says so), `CorruptPayloadError` / `DecodeLimitError` for a body that is not a
 * safetensors file roundlog reads (header, dtype, shape, offsets, length, bool values).
 */
export async function storeParams(
  blobs: BlobStore,
  body: Readable,
  declaredLength: number | null,
  maxBytes: number,
): Promise<StoredParams> {
  if (declaredLength !== null && declaredLength > maxBytes) throw new BodyTooLargeError(maxBytes, 'params');
  let header: SafetensorsHeader | null = null;
  const received = { bytes: 0 };
  const source = checkedStream(body, declaredLength, maxBytes, received, (h) => {
    header = h;
  });
  try {
    const { ref, created } = await blobs.putStream(source, { encoding: SAFETENSORS_ENCODING });
    return { ref, created, tensors: tensorsOf(header!) };
  } catch (error) {
    // What was not read yet is drained, so the client reads the answer rather than a reset; unless
    // that is more than `DRAIN_LIMIT`: then the connection closes after the answer (`drainable`).
    if (drainable(declaredLength, received.bytes)) body.resume();
    throw error;
  }
}

/** Bytes of a refused upload the server still reads (and drops) so that the client reads its answer. */
export const DRAIN_LIMIT = 64 * 1024 * 1024;

/** Whether the rest of a refused body is read and dropped (else the connection is closed after the answer). */
export function drainable(declaredLength: number | null, received: number): boolean {
  return declaredLength !== null && declaredLength - received <= DRAIN_LIMIT;
}

async function* checkedStream(
  body: Readable,
  declaredLength: number | null,
  maxBytes: number,
  received: { bytes: number },
  onHeader: (header: SafetensorsHeader) => void,
): AsyncGenerator<Uint8Array> {
  let held: Buffer[] = [];
  let heldBytes = 0;
  let header: SafetensorsHeader | null = null;
  let total = 0;
  let expected = 0;
  let bools: { begin: number; end: number; name: string }[] = [];
  for await (const piece of body as AsyncIterable<Buffer>) {
    total += piece.byteLength;
    received.bytes = total;
    if (total > maxBytes) throw new BodyTooLargeError(maxBytes, 'params');
    if (header === null) {
      held.push(piece);
      heldBytes += piece.byteLength;
      if (heldBytes < 8) continue;
      const prefix = held.length === 1 ? held[0]! : Buffer.concat(held);
      held = [prefix];
      const headerLength = safetensorsHeaderLength(prefix, declaredLength, { source: SOURCE });
      if (heldBytes < 8 + headerLength) continue;
      const bufferBytes = declaredLength === null ? null : declaredLength - 8 - headerLength;
      header = parseSafetensorsHeader(prefix.subarray(8, 8 + headerLength), bufferBytes, { source: SOURCE });
      expected = header.dataStart + header.bufferBytes;
      const dataStart = header.dataStart;
      bools = header.entries
        .filter((e) => e.dtype === 'bool' && e.end > e.begin)
        .map((e) => ({ begin: dataStart + e.begin, end: dataStart + e.end, name: e.name }));
      onHeader(header);
      held = [];
      yield* checkChunk(prefix, 0);
      continue;
    }
    yield* checkChunk(piece, total - piece.byteLength);
  }
  if (header === null) {
    if (heldBytes < 8) throw corrupt(`${heldBytes} bytes is shorter than the 8-byte header length`, heldBytes);
    throw corrupt(`the body ends at byte ${heldBytes}, inside its header`, heldBytes);
  }
  if (total < expected) throw corrupt(`the body ends at byte ${total}; its header describes ${expected} bytes`, total);

  function* checkChunk(chunk: Buffer, at: number): Generator<Uint8Array> {
    if (at + chunk.byteLength > expected) {
      throw corrupt(`the body has more than the ${expected} bytes its header describes`, expected);
    }
    for (const range of bools) {
      const from = Math.max(range.begin, at);
      const to = Math.min(range.end, at + chunk.byteLength);
      for (let i = from; i < to; i++) {
        const byte = chunk[i - at]!;
        if (byte > 1) {
          throw corrupt(
            `bool tensor ${shown(range.name)} has byte ${byte} at element ${i - range.begin} ` +
              `(file byte ${i}); a bool is 0 or 1`,
            i,
          );
        }
      }
    }
    yield chunk;
  }
}

/**
 * A stored blob taken as a round's parameters: its ref (size from the store) and tensors, read from
 * its safetensors header only (the file's first bytes; the whole blob on a store that keeps no
 * files). `BlobNotFoundError` when absent; `CorruptPayloadError` when it is not a safetensors file.
 */
export async function storedParams(blobs: BlobStore, sha256: string): Promise<StoredParams> {
  const file = blobs.fileOf(sha256);
  const source = `blob ${sha256}`;
  if (file !== null) {
    const handle = await fs.open(file, 'r').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return null;
      throw error;
    });
    if (handle !== null) {
      try {
        const size = (await handle.stat()).size;
        const prefix = Buffer.alloc(Math.min(8, size));
        await handle.read(prefix, 0, prefix.byteLength, 0);
        const headerLength = safetensorsHeaderLength(prefix, size, { source });
        const headerBytes = Buffer.alloc(headerLength);
        await handle.read(headerBytes, 0, headerLength, 8);
        const header = parseSafetensorsHeader(headerBytes, size - 8 - headerLength, { source });
        return {
          ref: { sha256, bytes: size, encoding: SAFETENSORS_ENCODING },
          tensors: tensorsOf(header),
          created: false,
        };
      } finally {
        await handle.close();
      }
    }
  }
  // Not a file store (or the file is gone: `get` says so with the store's own error).
  const bytes = await blobs.get(sha256);
  const headerLength = safetensorsHeaderLength(bytes, bytes.byteLength, { source });
  const header = parseSafetensorsHeader(bytes.subarray(8, 8 + headerLength), bytes.byteLength - 8 - headerLength, {
    source,
  });
  return {
    ref: { sha256, bytes: bytes.byteLength, encoding: SAFETENSORS_ENCODING },
    tensors: tensorsOf(header),
    created: false,
  };
}
