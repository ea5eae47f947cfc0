/**
 * The tensor codec: a set of named typed arrays with shapes (model parameters) to bytes and back.
 * The encoding is returned beside the bytes and must be stored with them (a blob reference's
 * `encoding`), so that payloads written under an older encoding stay readable.
 *
 * New payloads are `tensors/safetensors` (safetensors.ts: what `RoundLog.putTensors` writes, the
 * format PyTorch and NumPy read); this module writes and reads the two msgpack encodings of roundlog
 * 0.1.0, readable forever, which hold only float32, float64, int32, int64 and uint8. Their layout:
 *
 *     u32 little-endian header length | header (msgpack) | one chunk per tensor, in header order
 *     header = { v: 1, tensors: [{ name, dtype, shape, size }] }      size = the chunk's byte length
 *
 * Under `tensors/msgpack` a chunk is the tensor's element bytes, little-endian. Under
 * `tensors/msgpack+lz4` a chunk shorter than those bytes is one lz4 block of them, and a chunk of
 * exactly their length is the bytes themselves: each tensor is kept raw when lz4 does not shrink it
 * (trained float32 weights usually do not shrink) or, for tensors over 256 KiB, when lz4 does not
 * shrink any of three 64 KiB samples of it (start, middle, end). Byte-shuffling before lz4 is not used: on
 * weight-like float32 it saved about 8% for 4-5x the encode time and about 3x the decode time,
 * more than a raw write + fsync of the same bytes costs (bench/tensor-shuffle.ts).
 */
import { lz4Compress, lz4DecompressInto } from './lz4.ts';
import { Packr } from 'msgpackr';
import { InvalidArgumentError } from '../errors.ts';
import { CorruptPayloadError, DecodeLimitError, UnknownEncodingError } from './errors.ts';
import { DTYPES, checkTensor, type Tensor, type TensorDType, type TensorSet } from './dtypes.ts';
import { SAFETENSORS_ENCODING, decodeSafetensors } from './safetensors.ts';
import { MAX_TENSOR_BYTES_ENV, MAX_VALUE_BYTES_ENV, checkDeclaredSize, checkMsgpack, decodeLimits } from './limits.ts';

export type { Tensor, TensorDType, TensorDataOf, TensorSet } from './dtypes.ts';

/** The dtypes the msgpack encodings hold: the five of roundlog before safetensors. */
const LEGACY_DTYPES: readonly TensorDType[] = ['float32', 'float64', 'int32', 'int64', 'uint8'];

export const TensorEncoding = {
  /** Every tensor's bytes as they are. */
  msgpack: 'tensors/msgpack',
  /** Each tensor as an lz4 block, or as it is where lz4 does not shrink it. */
  msgpackLz4: 'tensors/msgpack+lz4',
  /** The safetensors format (safetensors.ts): what new rounds store. */
  safetensors: SAFETENSORS_ENCODING,
} as const;
export type TensorEncoding = (typeof TensorEncoding)[keyof typeof TensorEncoding];

export const TENSOR_ENCODINGS: readonly TensorEncoding[] = Object.values(TensorEncoding);

export type EncodeTensorsOptions = {
  /** Try lz4 on every tensor and keep it where it shrinks the bytes. Default true. */
  compress?: boolean;
};

export type EncodedTensors = Readonly<{ encoding: TensorEncoding; bytes: Buffer }>;

export type EncodedTensorChunks = Readonly<{
  encoding: TensorEncoding;
  /** The header, then one chunk per tensor; together, the bytes `encodeTensors` returns. */
  chunks: readonly Buffer[];
  byteLength: number;
}>;

export type DecodeTensorsOptions = {
  /** Where the bytes came from (e.g. `blob 3f…`), named in errors. */
  source?: string;
  /**
   * Largest decoded size of the whole set, in bytes; more is `DecodeLimitError` before anything is
   * allocated. Default `ROUNDLOG_MAX_TENSOR_BYTES`, else 2 GiB.
   */
  maxBytes?: number;
  /**
   * The size a record gives for these bytes (a `BlobRef`'s `bytes`, a manifest's `params.bytes`):
   * the bytes must be exactly that long, or nothing is decoded (`CorruptPayloadError`).
   */
  storedBytes?: number;
};

const HEADER_VERSION = 1;
/** LZ4_MAX_INPUT_SIZE: larger tensors are stored raw. */
const LZ4_MAX_INPUT_BYTES = 0x7e000000;
/** Size of each of the three samples that decide whether a large tensor is worth compressing. */
const SAMPLE_BYTES = 64 * 1024;
/** An lz4 block never expands its input by more than this factor (plus a few bytes). */
const LZ4_MAX_EXPANSION = 255;

const headerPackr = new Packr({ useRecords: false });

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type HeaderEntry = { name: string; dtype: TensorDType; shape: number[]; size: number };

/**
 * `tensors` in roundlog 0.1.0's msgpack encoding (`tensors/msgpack+lz4` when lz4 shrinks some
 * tensor, else `tensors/msgpack`), for float32, float64, int32, int64 and uint8 only. Not for new
 * data: new parameters are `encodeSafetensors` (encoding `tensors/safetensors`, what `putTensors`
 * writes); this stays so that the older bytes can be reproduced and tested. Throws
 * `InvalidArgumentError` for a tensor that is not `{ dtype, shape, data }` of those dtypes and
 * `DecodeLimitError` for a set larger than decoding would accept.
 */
export function encodeTensors(tensors: TensorSet, options: EncodeTensorsOptions = {}): EncodedTensors {
  const { encoding, chunks, byteLength } = encodeTensorChunks(tensors, options);
  const bytes = Buffer.allocUnsafeSlow(byteLength);
  let offset = 0;
  for (const chunk of chunks) offset += chunk.copy(bytes, offset);
  return { encoding, bytes };
}

/**
 * The bytes of `encodeTensors` as a list of chunks, without copying them into one buffer: a
 * tensor stored raw is a view of its own memory, so it must not change until the chunks are
 * taken. `BlobStore.putStream` takes (copies) the chunks of an array when it is called: hand them
 * to it at once, as `RoundLog.putTensors` does.
 */
export function encodeTensorChunks(tensors: TensorSet, options: EncodeTensorsOptions = {}): EncodedTensorChunks {
  checkHost();
  if (typeof tensors !== 'object' || tensors === null || Array.isArray(tensors)) {
    throw new InvalidArgumentError('tensors', 'must be an object mapping names to { dtype, shape, data }', tensors);
  }
  const compress = options.compress ?? true;
  // What decoding would refuse is not written: the decoded size is the sum of the element bytes.
  let rawTotal = 0;
  for (const [name, tensor] of Object.entries(tensors)) {
    checkTensor(name, tensor, LEGACY_DTYPES);
    rawTotal += tensor.data.byteLength;
  }
  checkDeclaredSize('the tensor set', rawTotal, decodeLimits().maxTensorBytes, MAX_TENSOR_BYTES_ENV, true);
  const entries: HeaderEntry[] = [];
  const chunks: Buffer[] = [];
  let compressed = false;
  let byteLength = 0;
  for (const [name, tensor] of Object.entries(tensors)) {
    checkTensor(name, tensor, LEGACY_DTYPES);
    const raw = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
    const block = compress ? lz4IfSmaller(raw) : null;
    const chunk = block ?? raw;
    compressed ||= block !== null;
    chunks.push(chunk);
    byteLength += chunk.length;
    entries.push({ name, dtype: tensor.dtype, shape: [...tensor.shape], size: chunk.length });
  }
  const header = headerPackr.pack({ v: HEADER_VERSION, tensors: entries });
  const head = Buffer.allocUnsafe(4 + header.length);
  head.writeUInt32LE(header.length, 0);
  header.copy(head, 4);
  return {
    encoding: compressed ? TensorEncoding.msgpackLz4 : TensorEncoding.msgpack,
    chunks: [head, ...chunks],
    byteLength: head.length + byteLength,
  };
}

/**
 * Throws `UnknownEncodingError` for an encoding this build does not read and `CorruptPayloadError`
 * for bytes that do not parse. Under the msgpack encodings every returned array owns a fresh, aligned
 * buffer; under `tensors/safetensors` an aligned tensor is a view sharing memory with `bytes`
 * (`decodeSafetensorsFile`), so `bytes` must not be reused while the tensors are in use.
 */
export function decodeTensors(encoding: string, bytes: Uint8Array, options: DecodeTensorsOptions = {}): TensorSet {
  checkHost();
  const { source } = options;
  if (!(TENSOR_ENCODINGS as readonly string[]).includes(encoding)) {
    throw new UnknownEncodingError(encoding, TENSOR_ENCODINGS, source);
  }
  if (encoding === TensorEncoding.safetensors) return decodeSafetensors(bytes, options);
  const corrupt = (reason: string, cause?: unknown) => new CorruptPayloadError(encoding, reason, source, cause);
  const payload = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (options.storedBytes !== undefined && payload.length !== options.storedBytes) {
    throw corrupt(`the payload has ${payload.length} bytes where its record says ${options.storedBytes}`);
  }
  if (payload.length < 4) throw corrupt(`${payload.length} bytes is shorter than the 4-byte header length`);
  const headerLength = payload.readUInt32LE(0);
  if (4 + headerLength > payload.length) {
    throw corrupt(`header length ${headerLength} runs past the end of the ${payload.length}-byte payload`);
  }
  const max = options.maxBytes ?? decodeLimits().maxTensorBytes;
  let header: unknown;
  try {
    const headerBytes = payload.subarray(4, 4 + headerLength);
    // The header is a msgpack value like any other: bounded as one.
    const where = `the tensor header${source === undefined ? '' : ` of ${source}`}`;
    checkMsgpack(where, headerBytes, decodeLimits().maxValueBytes, MAX_VALUE_BYTES_ENV);
    header = headerPackr.unpack(headerBytes);
  } catch (error) {
    if (error instanceof DecodeLimitError) throw error;
    throw corrupt(`the header is not msgpack (${(error as Error).message})`, error);
  }
  const entries = parseHeader(header, corrupt);
  // Every tensor's decoded size is declared by its shape, and its stored size by the header: both
  // are checked against the bytes there are (and the total against the maximum) before any
  // allocation, so a header that claims more than the payload, or its record, holds costs nothing.
  let total = 0;
  let offset = 4 + headerLength;
  for (const entry of entries) {
    const rawBytes = entry.shape.reduce((product, dim) => product * dim, DTYPES[entry.dtype].itemBytes);
    const where = `tensor ${JSON.stringify(entry.name)}`;
    if (offset + entry.size > payload.length) {
      throw corrupt(`${where} needs bytes ${offset}..${offset + entry.size} but the payload ends at ${payload.length}`);
    }
    const isBlock = encoding === TensorEncoding.msgpackLz4 && entry.size < rawBytes;
    if (entry.size !== rawBytes && !(isBlock && rawBytes <= entry.size * LZ4_MAX_EXPANSION + 16)) {
      throw corrupt(
        `${where} has ${entry.size} stored bytes, which cannot hold shape [${entry.shape}] of ${entry.dtype}`,
      );
    }
    offset += entry.size;
    total += rawBytes;
  }
  if (offset !== payload.length) throw corrupt(`${payload.length - offset} bytes follow the last tensor`);
  checkDeclaredSize(`the tensor set${source === undefined ? '' : ` ${source}`}`, total, max, MAX_TENSOR_BYTES_ENV);

  const decoded: [string, Tensor][] = [];
  offset = 4 + headerLength;
  for (const entry of entries) {
    const { itemBytes, ctor } = DTYPES[entry.dtype];
    const length = entry.shape.reduce((product, dim) => product * dim, 1);
    const rawBytes = length * itemBytes;
    const where = `tensor ${JSON.stringify(entry.name)}`;
    const chunk = payload.subarray(offset, offset + entry.size);
    offset += entry.size;
    const isBlock = encoding === TensorEncoding.msgpackLz4 && entry.size < rawBytes;
    const target = Buffer.allocUnsafeSlow(rawBytes);
    if (isBlock) {
      const written = lz4DecompressInto(chunk, target);
      if (written !== rawBytes) {
        throw corrupt(`${where} is not a valid lz4 block of ${rawBytes} bytes (decoder returned ${written})`);
      }
    } else {
      chunk.copy(target);
    }
    decoded.push([
      entry.name,
      { dtype: entry.dtype, shape: entry.shape, data: new ctor(target.buffer, target.byteOffset, length) } as Tensor,
    ]);
  }
  return Object.fromEntries(decoded);
}

/**
 * The bytes of one lz4 block of `raw`, or null when that block would not be smaller. A large
 * tensor is only tried whole when a sample of it shrinks: lz4 on 100 MB of weights that do not
 * compress costs more than the rest of the encoding (bench/blob-put.ts).
 */
function lz4IfSmaller(raw: Buffer): Buffer | null {
  if (raw.length === 0 || raw.length > LZ4_MAX_INPUT_BYTES) return null;
  if (raw.length > 4 * SAMPLE_BYTES && !someSampleShrinks(raw)) return null;
  return lz4Compress(raw);
}

/** Whether lz4 shrinks the first, middle or last `SAMPLE_BYTES` of `raw`. */
function someSampleShrinks(raw: Buffer): boolean {
  for (const start of [0, Math.floor((raw.length - SAMPLE_BYTES) / 2), raw.length - SAMPLE_BYTES]) {
    if (lz4Compress(raw.subarray(start, start + SAMPLE_BYTES)) !== null) return true;
  }
  return false;
}

function parseHeader(header: unknown, corrupt: (reason: string) => Error): HeaderEntry[] {
  if (typeof header !== 'object' || header === null) throw corrupt('the header is not a map');
  const { v, tensors } = header as Record<string, unknown>;
  if (v !== HEADER_VERSION) throw corrupt(`the header has version ${String(v)}, expected ${HEADER_VERSION}`);
  if (!Array.isArray(tensors)) throw corrupt('the header has no tensor list');
  const names = new Set<string>();
  return tensors.map((entry: unknown, i): HeaderEntry => {
    const { name, dtype, shape, size } = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<
      string,
      unknown
    >;
    if (typeof name !== 'string' || names.has(name)) throw corrupt(`header entry ${i} has a missing or repeated name`);
    names.add(name);
    if (typeof dtype !== 'string' || !(LEGACY_DTYPES as readonly string[]).includes(dtype)) {
      throw corrupt(`tensor ${JSON.stringify(name)} has unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0)) {
      throw corrupt(`tensor ${JSON.stringify(name)} has an invalid shape`);
    }
    const rawBytes = (shape as number[]).reduce((p, dim) => p * dim, DTYPES[dtype as TensorDType].itemBytes);
    if (!Number.isSafeInteger(rawBytes)) throw corrupt(`tensor ${JSON.stringify(name)} has an impossible shape`);
    if (!Number.isSafeInteger(size) || (size as number) < 0) {
      throw corrupt(`tensor ${JSON.stringify(name)} has an invalid stored size`);
    }
    return { name, dtype: dtype as TensorDType, shape: shape as number[], size: size as number };
  });
}

function checkHost(): void {
  if (!HOST_IS_LITTLE_ENDIAN) {
    throw new Error('the tensor codec stores elements little-endian and does not support big-endian hosts');
  }
}
