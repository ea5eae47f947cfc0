/**
 * NumPy's `.npy` and `.npz` files, written (never read): what `numpy.load` opens.
 *
 * `.npy` (NumPy's format specification, `numpy.lib.format`, version 1.0):
 *
 *     "\x93NUMPY" | 0x01 0x00 | u16 little-endian HEADER_LEN | header | element bytes
 *     header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + spaces + "\n"
 *
 * padded so that the element bytes start at a multiple of 64 (NumPy's `ARRAY_ALIGN`). Elements are
 * little-endian, row-major (`fortran_order: False`). The header is a few dozen bytes: it is written
 * here rather than through a library.
 *
 * `.npz` (`numpy.savez`): a zip archive with one stored (uncompressed) entry `<name>.npy` per
 * array; `numpy.load(file)[name]` is the array. The archive is written by `yazl`, streamed (each
 * entry's bytes are read from the tensor's own memory as the archive is consumed, never gathered
 * into one buffer) with ZIP64 records where an entry or the archive passes 4 GiB.
 *
 * dtypes: NumPy's name for each roundlog dtype (`<f4`, `<f8`, `<f2`, `<i8`, `<i4`, `<i2`, `|i1`,
 * `<u8`, `<u4`, `<u2`, `|u1`, `|b1`). NumPy has no bfloat16: a `bfloat16` tensor is written as
 * `<f4`, each element the binary32 whose high 16 bits are the bfloat16's bits and whose low 16 bits
 * are zero, which is its exact value.
 */
import { Readable } from 'node:stream';
import yazl from 'yazl';
import { DTYPES, checkTensor, type TensorDType, type TensorSet } from './dtypes.ts';
import { UnsafeTensorNameError } from './errors.ts';

/** NumPy's `descr` of each dtype (little-endian; `|` where byte order does not apply). */
export const NPY_DESCR: { readonly [D in Exclude<TensorDType, 'bfloat16'>]: string } = {
  float64: '<f8',
  float32: '<f4',
  float16: '<f2',
  int64: '<i8',
  int32: '<i4',
  int16: '<i2',
  int8: '|i1',
  uint64: '<u8',
  uint32: '<u4',
  uint16: '<u2',
  uint8: '|u1',
  bool: '|b1',
};

const NPY_MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
/** The element bytes start at a multiple of this (NumPy's ARRAY_ALIGN). */
const NPY_ALIGN = 64;
/** Magic, version (2 bytes) and the u16 header length. */
const NPY_PREAMBLE_BYTES = NPY_MAGIC.length + 2 + 2;
/** Largest zip entry name (a u16 field), in UTF-8 bytes. */
const MAX_ENTRY_NAME_BYTES = 0xffff;

/**
 * The `.npy` header (magic to the padding newline) of an array of NumPy dtype `descr` and `shape`:
 * a multiple of 64 bytes. Throws `RangeError` for a header over the 65535 bytes of format 1.0
 * (a shape of thousands of dimensions).
 */
export function npyHeader(descr: string, shape: readonly number[]): Buffer {
  // Python's repr of a tuple: "()", "(5,)", "(2, 3)".
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${tuple}, }`;
  const unpadded = NPY_PREAMBLE_BYTES + dict.length + 1;
  const total = Math.ceil(unpadded / NPY_ALIGN) * NPY_ALIGN;
  const headerLength = total - NPY_PREAMBLE_BYTES;
  if (headerLength > 0xffff) throw new RangeError(`a .npy header of ${headerLength} bytes is over format 1.0's 65535`);
  const bytes = Buffer.alloc(total, 0x20);
  NPY_MAGIC.copy(bytes, 0);
  bytes[6] = 1;
  bytes[7] = 0;
  bytes.writeUInt16LE(headerLength, 8);
  bytes.write(dict, NPY_PREAMBLE_BYTES, 'latin1');
  bytes[total - 1] = 0x0a;
  return bytes;
}

/**
 * Why `name` cannot be the name of an entry `<name>.npy` of a zip archive, or null if it can: an
 * empty name, a control character (NUL included), a backslash (zip tools read it as a folder
 * separator), an absolute path (`/…`, `C:…`), or an empty, `.` or `..` path segment (`a//b`,
 * `../x`, `x/`) would be refused by zip writers or escape the folder an archive is extracted to.
 * Slashes between plain segments are kept (`encoder/layer.0.weight`): `numpy.load` gives the entry
 * under that name.
 */
export function npzNameProblem(name: string): string | null {
  if (name === '') return 'is empty';
  const control = /[\u0000-\u001f\u007f]/.exec(name);
  if (control !== null)
    return `holds the control character U+${control[0].charCodeAt(0).toString(16).padStart(4, '0')}`;
  if (name.includes('\\')) return 'holds a backslash, which zip tools read as a folder separator';
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return 'is an absolute path';
  const segment = name.split('/').find((s) => s === '' || s === '.' || s === '..');
  if (segment !== undefined) return `has ${segment === '' ? 'an empty' : `a "${segment}"`} path segment`;
  if (Buffer.byteLength(`${name}.npy`) > MAX_ENTRY_NAME_BYTES) return 'is longer than a zip entry name can be';
  return null;
}

export type NpzOptions = {
  /**
   * The entries' modification time (zip's DOS time, to 2 s). Default: now. A fixed time gives the
   * same bytes for the same tensors.
   */
  mtime?: Date;
  /** Where the tensors come from (`round 3 of Experiment_0000`), named in errors. */
  source?: string;
};

export type NpzArchive = Readonly<{
  /** The archive's bytes; read it to the end (e.g. `pipeline` to a file). */
  stream: Readable;
  /** One entry per tensor, in the order of the set: its name, NumPy dtype and shape. */
  entries: readonly Readonly<{ name: string; descr: string; shape: readonly number[] }>[];
  /** Names of the `bfloat16` tensors written as float32 (`<f4`, exact). */
  widened: readonly string[];
}>;

/**
 * One entry of `npzArchiveOf`: a tensor's name, dtype and shape, and its element bytes as roundlog
 * stores them (little-endian, row-major; a `bfloat16` as 2 bytes an element, widened here), asked
 * for only when the archive reaches the entry.
 */
export type NpzEntrySource = Readonly<{
  name: string;
  dtype: TensorDType;
  shape: readonly number[];
  /** The element bytes, `dtype`'s size times the shape's product of them, in chunks of any length. */
  elements: () => AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}>;

/**
 * The `.npz` archive of `tensors`, streamed: each entry's element bytes are views of the tensor's
 * memory (a `bfloat16` tensor is widened into a new float32 buffer when its entry is read), so the
 * tensors must not change until the stream has ended. Throws `UnsafeTensorNameError` (before any
 * byte is produced) for a name that is not a safe entry name (`npzNameProblem`), and
 * `InvalidArgumentError` for a tensor that is not `{ dtype, shape, data }`.
 */
export function npzArchive(tensors: TensorSet, options: NpzOptions = {}): NpzArchive {
  const sources: NpzEntrySource[] = [];
  for (const [name, tensor] of Object.entries(tensors)) {
    checkTensor(name, tensor);
    const { data } = tensor;
    sources.push({
      name,
      dtype: tensor.dtype,
      shape: tensor.shape,
      elements: () => [Buffer.from(data.buffer, data.byteOffset, data.byteLength)],
    });
  }
  return npzArchiveOf(sources, options);
}

/**
 * The `.npz` archive of tensors whose bytes come from elsewhere (a file read in order): the entries
 * are written in the order given, each one's `elements` asked for when the archive reaches it and
 * read to its end before the next is asked for, so at most a chunk of each is held. A source that
 * gives more or fewer bytes than its dtype and shape say makes the stream fail. Throws
 * `UnsafeTensorNameError` (before any byte is produced) as `npzArchive`.
 */
export function npzArchiveOf(sources: readonly NpzEntrySource[], options: NpzOptions = {}): NpzArchive {
  const mtime = options.mtime ?? new Date();
  for (const { name } of sources) {
    const problem = npzNameProblem(name);
    if (problem !== null) throw new UnsafeTensorNameError(name, problem, options.source);
  }
  const zip = new yazl.ZipFile();
  // A stream.PassThrough (typed as the older NodeJS.ReadableStream).
  const stream = zip.outputStream as Readable;
  // yazl reports a failed entry on the ZipFile, and pipes without forwarding errors: the archive's
  // stream fails with the error instead (its reader sees it, and nothing is left unhandled).
  const fail = (error: Error) => stream.destroy(error);
  zip.on('error', fail);
  // Whoever reads the stream gets its error (an async iterator rejects with it), even one that
  // happened before it started reading.
  stream.on('error', () => undefined);
  const entries: { name: string; descr: string; shape: readonly number[] }[] = [];
  const widened: string[] = [];
  for (const source of sources) {
    const { name, dtype, shape } = source;
    const wide = dtype === 'bfloat16';
    const descr = wide ? NPY_DESCR.float32 : NPY_DESCR[dtype];
    if (wide) widened.push(name);
    const header = npyHeader(descr, shape);
    const count = shape.reduce((a, b) => a * b, 1);
    const size = header.length + count * (wide ? 4 : DTYPES[dtype].itemBytes);
    zip.addReadStreamLazy(`${name}.npy`, { compress: false, mtime, size }, (done) => {
      let bytes: Readable;
      try {
        const elements = source.elements();
        bytes = Readable.from(entryBytes(header, wide ? widenBfloat16(elements) : elements), { objectMode: false });
      } catch (error) {
        fail(error as Error);
        return;
      }
      bytes.on('error', fail);
      done(null, bytes);
    });
    entries.push({ name, descr, shape: [...shape] });
  }
  zip.end();
  return { stream, entries, widened };
}

async function* entryBytes(
  header: Buffer,
  elements: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  yield header;
  for await (const chunk of elements) if (chunk.byteLength > 0) yield chunk;
}

/**
 * bfloat16 element bytes (2 a element, little-endian) as float32 (4 a element): each the binary32
 * whose high 16 bits are the bfloat16's and low 16 bits zero, its exact value. Chunks may split an
 * element.
 */
async function* widenBfloat16(elements: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<Buffer> {
  let carry: number | null = null;
  for await (const chunk of elements) {
    let at = 0;
    const pairs = Math.floor((chunk.byteLength + (carry === null ? 0 : 1)) / 2);
    const wide = Buffer.alloc(pairs * 4);
    let out = 0;
    if (carry !== null && chunk.byteLength > 0) {
      wide[out + 2] = carry;
      wide[out + 3] = chunk[0]!;
      out += 4;
      at = 1;
      carry = null;
    }
    for (; at + 1 < chunk.byteLength; at += 2, out += 4) {
      wide[out + 2] = chunk[at]!;
      wide[out + 3] = chunk[at + 1]!;
    }
    if (at < chunk.byteLength) carry = chunk[at]!;
    if (out > 0) yield wide.subarray(0, out);
  }
  if (carry !== null) throw new RangeError('bfloat16 element bytes end in the middle of an element');
}
