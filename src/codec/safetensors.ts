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
 * before anything is allocated (the header's JSON is parsed only once its length has passed, so
 * parsing costs a small multiple of at most that limit). Repeated names (which JSON parsers
 * silently merge) are refused, as are fields other than `dtype`, `shape` and `data_offsets`, and
 * `bool` elements other than 0 and 1.
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
import { MAX_TENSOR_BYTES_ENV, MAX_VALUE_BYTES_ENV, checkDeclaredSize, decodeLimits } from './limits.ts';

export const SAFETENSORS_ENCODING = 'tensors/safetensors';
/** The key of the header's optional string-to-string map. */
export const METADATA_KEY = '__metadata__';
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
  const metadata = options.metadata;
  if (metadata !== undefined) checkMetadata(metadata);
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
    throw corrupt(`${prefix.byteLength} bytes is shorter than the 8-byte header length`);
  }
  const claimed = new DataView(prefix.buffer, prefix.byteOffset, LENGTH_BYTES).getBigUint64(0, true);
  const maxHeader = decodeLimits().maxValueBytes;
  const where = `the safetensors header${source === undefined ? '' : ` of ${source}`}`;
  // Bounded first by the bytes there are (a length past them is damage, or not a safetensors file),
  // then by the value limit (a header that is there but larger than any roundlog writes).
  if (fileBytes !== null && claimed > BigInt(size - LENGTH_BYTES)) {
    throw corrupt(`the header length ${claimed} (bytes 0..8) runs past the end of the ${size}-byte file`);
  }
  if (claimed > BigInt(maxHeader)) {
    throw new DecodeLimitError(where, Number(claimed), maxHeader, MAX_VALUE_BYTES_ENV);
  }
  return Number(claimed);
}

/**
 * Checks a safetensors header (the `headerLength` bytes after the 8-byte length) without its buffer:
 * the JSON object, each tensor's dtype, shape and range, that the ranges tile the buffer with no
 * hole, overlap or trailing byte, and the total against `maxBytes`. `bufferBytes` is the buffer's
 * length when known (the file's length minus `dataStart`); null when it is not (a stream): the
 * tensors then say how long it must be (`SafetensorsHeader.bufferBytes`). Reads only the header
 * (its cost is a small multiple of its length). Errors as `decodeSafetensorsFile`.
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
  if (headerBytes[0] !== 0x7b) throw corrupt(`the header (bytes 8..${dataStart}) does not start with "{"`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch (error) {
    throw corrupt(`the header (bytes 8..${dataStart}) is not UTF-8`, error);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    throw corrupt(`the header (bytes 8..${dataStart}) is not JSON (${(error as Error).message})`, error);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw corrupt('the header is not a JSON object');
  }
  const repeated = repeatedTopLevelKey(text, Object.keys(header).length);
  if (repeated !== null) throw corrupt(`the header names ${JSON.stringify(repeated)} more than once`);

  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      metadata = parseMetadata(value, corrupt);
      continue;
    }
    entries.push(parseEntry(name, value, bufferBytes ?? Number.MAX_SAFE_INTEGER, corrupt));
  }
  // The ranges, in file order, must tile the buffer: each starts where the previous ended.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous: Entry | undefined;
  for (const entry of entries) {
    if (entry.begin < covered) {
      throw corrupt(
        `tensors ${JSON.stringify(previous!.name)} (buffer bytes ${previous!.begin}..${previous!.end}) and ` +
          `${JSON.stringify(entry.name)} (${entry.begin}..${entry.end}) overlap`,
      );
    }
    if (entry.begin > covered) throw corrupt(`buffer bytes ${covered}..${entry.begin} belong to no tensor`);
    covered = entry.end;
    previous = entry;
  }
  const buffer = bufferBytes ?? covered;
  if (covered !== buffer) {
    throw corrupt(`${buffer - covered} bytes follow the last tensor (buffer bytes ${covered}..${buffer})`);
  }
  checkDeclaredSize(
    `the tensor set${source === undefined ? '' : ` ${source}`}`,
    buffer,
    options.maxBytes ?? decodeLimits().maxTensorBytes,
    MAX_TENSOR_BYTES_ENV,
  );
  return { headerLength, dataStart, bufferBytes: buffer, entries, metadata };
}

function corruptOf(source: string | undefined): (reason: string, cause?: unknown) => CorruptPayloadError {
  return (reason, cause) => new CorruptPayloadError(SAFETENSORS_ENCODING, reason, source, cause);
}

/**
 * The tensors and metadata of a safetensors file. Zero-copy where alignment allows: a tensor whose
 * bytes lie at a multiple of its element size in `bytes`' underlying buffer is returned as a typed
 * array view of that memory (it shares memory with `bytes`: changing one changes the other, and it
 * keeps the buffer alive); any other is copied into a fresh aligned array. Throws
 * `CorruptPayloadError` (naming `options.source` and the fault: header length past the end, header
 * not a JSON object, unknown dtype, bad shape, offsets that do not match dtype × shape, overlap,
 * hole or trailing bytes, repeated names, metadata that is not strings, a bool that is not 0 or 1)
 * and `DecodeLimitError` (header over `ROUNDLOG_MAX_VALUE_BYTES`, set over `maxBytes`), in both
 * cases before allocating what the header claims.
 */
export function decodeSafetensorsFile(bytes: Uint8Array, options: DecodeSafetensorsOptions = {}): DecodedSafetensors {
  const { source } = options;
  const corrupt = corruptOf(source);
  const size = bytes.byteLength;
  if (options.storedBytes !== undefined && size !== options.storedBytes) {
    throw corrupt(`the file has ${size} bytes where its record says ${options.storedBytes}`);
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
          `bool tensor ${JSON.stringify(entry.name)} has byte ${(data as Uint8Array)[index]} at element ${index} ` +
            `(file byte ${dataStart + entry.begin + index}); a bool is 0 or 1`,
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

const ENTRY_FIELDS = new Set(['dtype', 'shape', 'data_offsets']);

function parseEntry(name: string, value: unknown, bufferBytes: number, corrupt: (reason: string) => Error): Entry {
  const tensor = `tensor ${JSON.stringify(name)}`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw corrupt(`${tensor} is not an object { dtype, shape, data_offsets }`);
  }
  const fields = value as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (!ENTRY_FIELDS.has(key)) throw corrupt(`${tensor} has an unknown field ${JSON.stringify(key)}`);
  }
  const { dtype: given, shape, data_offsets: offsets } = fields;
  const dtype = typeof given === 'string' ? DTYPE_OF_SAFETENSORS.get(given) : undefined;
  if (dtype === undefined) {
    throw corrupt(
      `${tensor} has dtype ${JSON.stringify(given)}, which this build does not read ` +
        `(it reads ${[...DTYPE_OF_SAFETENSORS.keys()].join(', ')})`,
    );
  }
  if (!Array.isArray(shape) || !shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0)) {
    throw corrupt(`${tensor} has shape ${JSON.stringify(shape)}, not a list of non-negative integers`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((offset) => Number.isSafeInteger(offset) && offset >= 0) ||
    offsets[0] > offsets[1]
  ) {
    throw corrupt(`${tensor} has data_offsets ${JSON.stringify(offsets)}, not [begin, end] with 0 <= begin <= end`);
  }
  const [begin, end] = offsets as [number, number];
  if (end > bufferBytes) {
    throw corrupt(`${tensor} has data_offsets [${begin}, ${end}] past the end of the ${bufferBytes}-byte buffer`);
  }
  // The product stops as soon as it is past any safe integer (it can only exceed the range then).
  let needed = (shape as number[]).includes(0) ? 0 : DTYPES[dtype].itemBytes;
  for (const dim of shape as number[]) {
    if (needed > Number.MAX_SAFE_INTEGER) break;
    needed *= dim;
  }
  if (needed !== end - begin) {
    throw corrupt(
      `${tensor} has ${end - begin} bytes (data_offsets [${begin}, ${end}]) where shape ${JSON.stringify(shape)} ` +
        `of ${given} needs ${Number.isSafeInteger(needed) ? needed : 'more than 2^53'}`,
    );
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

function parseMetadata(value: unknown, corrupt: (reason: string) => Error): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw corrupt(`${METADATA_KEY} is not an object of strings`);
  }
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry !== 'string') {
      throw corrupt(`${METADATA_KEY}[${JSON.stringify(key)}] is ${JSON.stringify(entry)}, not a string`);
    }
  }
  return value as Record<string, string>;
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

/**
 * A key that the header's top-level object holds more than once, or null. `JSON.parse` keeps the
 * last of repeated keys silently; this walks the text (already known to be a JSON object with
 * `parsedKeys` distinct keys) and collects the strings at depth 1 that are followed by `:`.
 */
function repeatedTopLevelKey(text: string, parsedKeys: number): string | null {
  let depth = 0;
  let found = 0;
  const seen = new Set<string>();
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // A string: find its closing quote, skipping escapes.
      const start = i;
      for (i++; text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
      if (depth !== 1) continue;
      let j = i + 1;
      while (j < text.length && /\s/.test(text[j]!)) j++;
      if (text[j] !== ':') continue;
      found++;
      const key = JSON.parse(text.slice(start, i + 1)) as string;
      if (seen.has(key)) return key;
      seen.add(key);
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return found === parsedKeys ? null : '(a key written twice with different escapes)';
}
