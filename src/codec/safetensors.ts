/**
 * The safetensors format (Hugging Face's published specification), the encoding
 * `tensors/safetensors`: what PyTorch (`safetensors.torch.load_file`), NumPy and most model tools
 * open as they are.
 *
 *     u64 little-endian N | N bytes of UTF-8 JSON header | byte buffer
 *     header = { "<name>": { "dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end] }, ...,
 *                "__metadata__": { "<key>": "<value>" } }           (metadata optional, strings only)
 *
 * Offsets are relative to the start of the byte buffer; the tensors cover it exactly, with no hole,
 * overlap or trailing byte. Elements are little-endian, row-major. roundlog writes the header with
 * the tensors ordered by element size (largest first), then by name in UTF-16 code-unit order, and
 * pads it with spaces (which JSON ignores and the format allows) so that the buffer starts at a
 * multiple of 8 bytes: every tensor then lies at a multiple of its element size from the start of
 * the file, so a reader that maps the file can view each tensor in place. The same tensors always
 * give the same bytes.
 *
 * Decoding treats the bytes as hostile: the header length is checked against the bytes present and
 * the value limit (`ROUNDLOG_MAX_VALUE_BYTES`) before the header is read, every tensor's range
 * against its dtype × shape and against the others, and the total against `ROUNDLOG_MAX_TENSOR_BYTES`,
 * before anything is allocated. The header is read in one pass by `safetensors-header.ts`, which
 * builds only what the format allows (objects of tensors and metadata strings, shapes of at most
 * `MAX_TENSOR_RANK` integers, at most `ROUNDLOG_MAX_TENSOR_COUNT` tensors) and refuses anything
 * else at the byte where it shows, so a header costs about its length in memory. Repeated names
 * (which JSON parsers silently merge) are refused, as are fields other than `dtype`, `shape` and
 * `data_offsets`, and `bool` elements other than 0 and 1. Every `CorruptPayloadError` gives the
 * file offset of the fault as `byteOffset`.
 */
import { InvalidArgumentError } from '../errors.ts';
import {
  DTYPES,
  DTYPE_OF_SAFETENSORS,
  checkTensor,
  firstNonBool,
  type Tensor,
  type TensorDType,
  type TensorSet,
} from './dtypes.ts';
import { CorruptPayloadError, DecodeLimitError } from './errors.ts';
import {
  MAX_TENSOR_BYTES_ENV,
  MAX_TENSOR_COUNT_ENV,
  MAX_VALUE_BYTES_ENV,
  checkDeclaredSize,
  decodeLimits,
} from './limits.ts';
import { METADATA_KEY, readSafetensorsHeaderJson, shown, type HeaderEntry } from './safetensors-header.ts';

export { MAX_TENSOR_RANK, METADATA_KEY } from './safetensors-header.ts';
export const SAFETENSORS_ENCODING = 'tensors/safetensors';
/** Bytes of the little-endian u64 that gives the header's length. */
const LENGTH_BYTES = 8;
/** The buffer starts at a multiple of this: the largest element size. */
const DATA_ALIGNMENT = 8;

export type EncodeSafetensorsOptions = {
  /** Written as the header's `__metadata__` (string keys to string values). Default: none. */
  metadata?: Readonly<Record<string, string>>;
};

export type EncodedSafetensorsChunks = Readonly<{
  encoding: typeof SAFETENSORS_ENCODING;
  /** The length and header, then one chunk per tensor in file order; together, the file. */
  chunks: readonly Buffer[];
  byteLength: number;
}>;

export type DecodeSafetensorsOptions = {
  /** Where the bytes came from (`blob 3f…`, a file path), named in errors. */
  source?: string;
  /** Largest decoded size of the whole set, in bytes. Default `ROUNDLOG_MAX_TENSOR_BYTES`, else 2 GiB. */
  maxBytes?: number;
  /** The size a record gives for these bytes: the bytes must be exactly that long. */
  storedBytes?: number;
};

/** A decoded file: its tensors (in file order) and its `__metadata__` (`{}` when it has none). */
export type DecodedSafetensors = Readonly<{ tensors: TensorSet; metadata: Readonly<Record<string, string>> }>;

/**
 * The safetensors file of `tensors` as chunks: the length and header (a new buffer), then a view
 * of each tensor's own memory (zero copies), so the tensors must not change until the chunks are
 * taken (`BlobStore.putStream` copies them when called). Throws `InvalidArgumentError` for a
 * tensor that is not `{ dtype, shape, data }` of a known dtype, a name `__metadata__`, or metadata
 * that is not strings; `DecodeLimitError` when the set is larger than decoding would accept.
 */
export function encodeSafetensorsChunks(
  tensors: TensorSet,
  options: EncodeSafetensorsOptions = {},
): EncodedSafetensorsChunks {
  if (typeof tensors !== 'object' || tensors === null || Array.isArray(tensors)) {
    throw new InvalidArgumentError('tensors', 'must be an object mapping names to { dtype, shape, data }', tensors);
  }
  const entries = Object.entries(tensors);
  let total = 0;
  for (const [name, tensor] of entries) {
    if (name === METADATA_KEY) {
      throw new InvalidArgumentError(
        'tensors',
        `must not have a tensor named ${METADATA_KEY} (the format's metadata key)`,
        name,
      );
    }
    checkTensor(name, tensor);
    total += tensor.data.byteLength;
  }
  checkDeclaredSize('the tensor set', total, decodeLimits().maxTensorBytes, MAX_TENSOR_BYTES_ENV, true);
  const { maxTensorCount } = decodeLimits();
  if (entries.length > maxTensorCount) {
    throw new DecodeLimitError('the tensor set', entries.length, maxTensorCount, MAX_TENSOR_COUNT_ENV, {
      unit: 'tensors',
      writing: true,
    });
  }
  const metadata = options.metadata;
  if (metadata !== undefined) checkMetadata(metadata);
  const metadataCount = metadata === undefined ? 0 : Object.keys(metadata).length;
  if (metadataCount > maxTensorCount) {
    throw new DecodeLimitError('the metadata', metadataCount, maxTensorCount, MAX_TENSOR_COUNT_ENV, {
      unit: 'metadata entries',
      writing: true,
    });
  }
  entries.sort(([nameA, a], [nameB, b]) => {
    const bySize = DTYPES[b.dtype].itemBytes - DTYPES[a.dtype].itemBytes;
    return bySize !== 0 ? bySize : nameA < nameB ? -1 : nameA > nameB ? 1 : 0;
  });
  // No prototype: a tensor named "__proto__" is then an own key like any other.
  const header = Object.create(null) as Record<string, unknown>;
  if (metadata !== undefined) header[METADATA_KEY] = { ...metadata };
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, tensor] of entries) {
    const { data } = tensor;
    header[name] = {
      dtype: DTYPES[tensor.dtype].safetensors,
      shape: [...tensor.shape],
      data_offsets: [offset, offset + data.byteLength],
    };
    chunks.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    offset += data.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil((LENGTH_BYTES + json.length) / DATA_ALIGNMENT) * DATA_ALIGNMENT - LENGTH_BYTES;
  const head = Buffer.alloc(LENGTH_BYTES + padded, 0x20);
  head.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(head, LENGTH_BYTES);
  return { encoding: SAFETENSORS_ENCODING, chunks: [head, ...chunks], byteLength: head.length + offset };
}

/** The safetensors file of `tensors` in one new buffer (see `encodeSafetensorsChunks`). */
export function encodeSafetensors(tensors: TensorSet, options: EncodeSafetensorsOptions = {}): Buffer {
  const { chunks, byteLength } = encodeSafetensorsChunks(tensors, options);
  const bytes = Buffer.allocUnsafeSlow(byteLength);
  let offset = 0;
  for (const chunk of chunks) offset += chunk.copy(bytes, offset);
  return bytes;
}

type Entry = { name: string; dtype: TensorDType; shape: number[]; begin: number; end: number };

/** One tensor of a safetensors header: its range in the byte buffer (after the header). */
export type SafetensorsEntry = Readonly<Entry>;

/** A checked safetensors header: where the buffer starts, its tensors in file order, its metadata. */
export type SafetensorsHeader = Readonly<{
  /** Bytes of the JSON header (after the 8-byte length). */
  headerLength: number;
  /** File offset of the byte buffer: `8 + headerLength`. */
  dataStart: number;
  /** Length of the byte buffer the tensors tile exactly; the file is `dataStart + bufferBytes` long. */
  bufferBytes: number;
  entries: readonly SafetensorsEntry[];
  metadata: Readonly<Record<string, string>>;
}>;

/**
 * The header length a safetensors file's first 8 bytes give, checked against the value limit
 * (`ROUNDLOG_MAX_VALUE_BYTES`) and, when known, against the bytes the file has. `prefix` must hold
 * at least 8 bytes. Throws `CorruptPayloadError` / `DecodeLimitError` as `decodeSafetensorsFile`.
 */
export function safetensorsHeaderLength(
  prefix: Uint8Array,
  fileBytes: number | null,
  options: DecodeSafetensorsOptions = {},
): number {
  const { source } = options;
  const corrupt = corruptOf(source);
  const size = fileBytes ?? prefix.byteLength;
  if (prefix.byteLength < LENGTH_BYTES) {
    throw corrupt(`${prefix.byteLength} bytes is shorter than the 8-byte header length`, prefix.byteLength);
  }
  const claimed = new DataView(prefix.buffer, prefix.byteOffset, LENGTH_BYTES).getBigUint64(0, true);
  const maxHeader = decodeLimits().maxValueBytes;
  const where = `the safetensors header${source === undefined ? '' : ` of ${source}`}`;
  // Bounded first by the bytes there are (a length past them is damage, or not a safetensors file),
  // then by the value limit (a header that is there but larger than any roundlog writes).
  if (fileBytes !== null && claimed > BigInt(size - LENGTH_BYTES)) {
    throw corrupt(`the header length ${claimed} (bytes 0..8) runs past the end of the ${size}-byte file`, 0);
  }
  if (claimed > BigInt(maxHeader)) {
    throw new DecodeLimitError(where, Number(claimed), maxHeader, MAX_VALUE_BYTES_ENV, { byteOffset: 0 });
  }
  return Number(claimed);
}

/**
 * Checks a safetensors header (the `headerLength` bytes after the 8-byte length) without its buffer:
 * the JSON object, each tensor's dtype, shape and range, that the ranges tile the buffer with no
 * hole, overlap or trailing byte, and the total against `maxBytes`. `bufferBytes` is the buffer's
 * length when known (the file's length minus `dataStart`); null when it is not (a stream): the
 * tensors then say how long it must be (`SafetensorsHeader.bufferBytes`). Reads only the header,
 * in one pass that builds nothing the format does not allow (its cost is about its length). Errors
 * as `decodeSafetensorsFile`.
 */
export function parseSafetensorsHeader(
  headerBytes: Uint8Array,
  bufferBytes: number | null,
  options: DecodeSafetensorsOptions = {},
): SafetensorsHeader {
  const { source } = options;
  const corrupt = corruptOf(source);
  const headerLength = headerBytes.byteLength;
  const dataStart = LENGTH_BYTES + headerLength;
  const limits = decodeLimits();
  const { entries: read, metadata } = readSafetensorsHeaderJson(headerBytes, {
    base: LENGTH_BYTES,
    maxCount: limits.maxTensorCount,
    what: `the safetensors header${source === undefined ? '' : ` of ${source}`}`,
    corrupt,
  });
  const entries = read.map((entry) => checkEntry(entry, bufferBytes ?? Number.MAX_SAFE_INTEGER, corrupt));
  // The ranges, in file order, must tile the buffer: each starts where the previous ended.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous: CheckedEntry | undefined;
  for (const entry of entries) {
    if (entry.begin < covered) {
      throw corrupt(
        `tensors ${shown(previous!.name)} (buffer bytes ${previous!.begin}..${previous!.end}) and ` +
          `${shown(entry.name)} (${entry.begin}..${entry.end}) overlap`,
        entry.offsetsAt,
      );
    }
    if (entry.begin > covered) {
      throw corrupt(`buffer bytes ${covered}..${entry.begin} belong to no tensor`, dataStart + covered);
    }
    covered = entry.end;
    previous = entry;
  }
  const buffer = bufferBytes ?? covered;
  if (covered !== buffer) {
    throw corrupt(
      `${buffer - covered} bytes follow the last tensor (buffer bytes ${covered}..${buffer})`,
      dataStart + covered,
    );
  }
  const maxBytes = options.maxBytes ?? limits.maxTensorBytes;
  if (buffer > maxBytes) {
    const what = `the tensor set${source === undefined ? '' : ` of ${source}`}`;
    throw new DecodeLimitError(what, buffer, maxBytes, MAX_TENSOR_BYTES_ENV, { byteOffset: LENGTH_BYTES });
  }
  return {
    headerLength,
    dataStart,
    bufferBytes: buffer,
    entries: entries.map(({ name, dtype, shape, begin, end }) => ({ name, dtype, shape, begin, end })),
    metadata,
  };
}

/** The error of a fault at file offset `byteOffset` (named in the message and as a field). */
type Corrupt = (reason: string, byteOffset: number | undefined, cause?: unknown) => CorruptPayloadError;

function corruptOf(source: string | undefined): Corrupt {
  return (reason, byteOffset, cause) =>
    new CorruptPayloadError(SAFETENSORS_ENCODING, reason, source, cause, byteOffset);
}

/**
 * The tensors and metadata of a safetensors file. Zero-copy where alignment allows: a tensor whose
 * bytes lie at a multiple of its element size in `bytes`' underlying buffer is returned as a typed
 * array view of that memory (it shares memory with `bytes`: changing one changes the other, and it
 * keeps the buffer alive); any other is copied into a fresh aligned array. Throws
 * `CorruptPayloadError` (naming `options.source` and the fault: header length past the end, header
 * not a JSON object, unknown dtype, bad shape, offsets that do not match dtype × shape, overlap,
 * hole or trailing bytes, repeated names or fields, metadata that is not strings, nesting past 3
 * levels, a number that is not a non-negative integer up to 2^53 - 1, a shape of more than
 * `MAX_TENSOR_RANK` dimensions, a string that is not UTF-8 or has a lone surrogate escape, a bool
 * that is not 0 or 1; its `byteOffset` is the file offset of the fault) and `DecodeLimitError`
 * (header over `ROUNDLOG_MAX_VALUE_BYTES`, more tensors or metadata entries than
 * `ROUNDLOG_MAX_TENSOR_COUNT`, set over `maxBytes`), in both cases before allocating what the
 * header claims.
 */
export function decodeSafetensorsFile(bytes: Uint8Array, options: DecodeSafetensorsOptions = {}): DecodedSafetensors {
  const { source } = options;
  const corrupt = corruptOf(source);
  const size = bytes.byteLength;
  if (options.storedBytes !== undefined && size !== options.storedBytes) {
    throw corrupt(
      `the file has ${size} bytes where its record says ${options.storedBytes}`,
      Math.min(size, options.storedBytes),
    );
  }
  const headerLength = safetensorsHeaderLength(bytes, size, options);
  const dataStart = LENGTH_BYTES + headerLength;
  const { entries, metadata } = parseSafetensorsHeader(
    bytes.subarray(LENGTH_BYTES, dataStart),
    size - dataStart,
    options,
  );

  const decoded: [string, Tensor][] = [];
  for (const entry of entries) {
    const { itemBytes, ctor } = DTYPES[entry.dtype];
    const length = (entry.end - entry.begin) / itemBytes;
    const at = bytes.byteOffset + dataStart + entry.begin;
    let data;
    if (at % itemBytes === 0) {
      data = new ctor(bytes.buffer, at, length);
    } else {
      const copy = new Uint8Array(entry.end - entry.begin);
      copy.set(bytes.subarray(dataStart + entry.begin, dataStart + entry.end));
      data = new ctor(copy.buffer, 0, length);
    }
    if (entry.dtype === 'bool') {
      const index = firstNonBool(data as Uint8Array);
      if (index !== -1) {
        throw corrupt(
          `bool tensor ${shown(entry.name)} has byte ${(data as Uint8Array)[index]} at element ${index} ` +
            `(file byte ${dataStart + entry.begin + index}); a bool is 0 or 1`,
          dataStart + entry.begin + index,
        );
      }
    }
    decoded.push([entry.name, { dtype: entry.dtype, shape: entry.shape, data } as Tensor]);
  }
  return { tensors: Object.fromEntries(decoded), metadata };
}

/** The tensors of a safetensors file (see `decodeSafetensorsFile`). */
export function decodeSafetensors(bytes: Uint8Array, options: DecodeSafetensorsOptions = {}): TensorSet {
  return decodeSafetensorsFile(bytes, options).tensors;
}

type CheckedEntry = Entry & { offsetsAt: number };

/** A tensor of the header checked: a dtype this build reads, offsets in order, dtype × shape bytes. */
function checkEntry(entry: HeaderEntry, bufferBytes: number, corrupt: Corrupt): CheckedEntry {
  const { name, shape, offsets } = entry;
  const tensor = `tensor ${shown(name)}`;
  const dtype = DTYPE_OF_SAFETENSORS.get(entry.dtype);
  if (dtype === undefined) {
    throw corrupt(
      `${tensor} has dtype ${shown(entry.dtype)}, which this build does not read ` +
        `(it reads ${[...DTYPE_OF_SAFETENSORS.keys()].join(', ')})`,
      entry.dtypeAt,
    );
  }
  const [begin, end] = offsets;
  if (begin > end) {
    throw corrupt(
      `${tensor} has data_offsets ${JSON.stringify(offsets)}, not [begin, end] with 0 <= begin <= end`,
      entry.offsetsAt,
    );
  }
  if (end > bufferBytes) {
    throw corrupt(
      `${tensor} has data_offsets [${begin}, ${end}] past the end of the ${bufferBytes}-byte buffer`,
      entry.offsetsAt,
    );
  }
  // The product stops as soon as it is past any safe integer (it can only exceed the range then).
  let needed = shape.includes(0) ? 0 : DTYPES[dtype].itemBytes;
  for (const dim of shape) {
    if (needed > Number.MAX_SAFE_INTEGER) break;
    needed *= dim;
  }
  if (needed !== end - begin) {
    throw corrupt(
      `${tensor} has ${end - begin} bytes (data_offsets [${begin}, ${end}]) where shape ${JSON.stringify(shape)} ` +
        `of ${entry.dtype} needs ${Number.isSafeInteger(needed) ? needed : 'more than 2^53'}`,
      entry.offsetsAt,
    );
  }
  return { name, dtype, shape, begin, end, offsetsAt: entry.offsetsAt };
}

function checkMetadata(metadata: unknown): void {
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw new InvalidArgumentError('metadata', 'must be an object of strings', metadata);
  }
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') {
      throw new InvalidArgumentError(`metadata[${JSON.stringify(key)}]`, 'must be a string', value);
    }
  }
}
