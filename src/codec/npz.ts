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
import { DTYPES, checkTensor, type Tensor, type TensorDType, type TensorSet } from './dtypes.ts';
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
 * The `.npz` archive of `tensors`, streamed: each entry's element bytes are views of the tensor's
 * memory (a `bfloat16` tensor is widened into a new float32 buffer when its entry is read), so the
 * tensors must not change until the stream has ended. Throws `UnsafeTensorNameError` (before any
 * byte is produced) for a name that is not a safe entry name (`npzNameProblem`), and
 * `InvalidArgumentError` for a tensor that is not `{ dtype, shape, data }`.
 */
export function npzArchive(tensors: TensorSet, options: NpzOptions = {}): NpzArchive {
  const mtime = options.mtime ?? new Date();
  const checked: [string, Tensor][] = [];
  for (const [name, tensor] of Object.entries(tensors)) {
    checkTensor(name, tensor);
    const problem = npzNameProblem(name);
    if (problem !== null) throw new UnsafeTensorNameError(name, problem, options.source);
    checked.push([name, tensor]);
  }
  const zip = new yazl.ZipFile();
  const entries: { name: string; descr: string; shape: readonly number[] }[] = [];
  const widened: string[] = [];
  for (const [name, tensor] of checked) {
    const descr = tensor.dtype === 'bfloat16' ? NPY_DESCR.float32 : NPY_DESCR[tensor.dtype];
    if (tensor.dtype === 'bfloat16') widened.push(name);
    const header = npyHeader(descr, tensor.shape);
    const itemBytes = tensor.dtype === 'bfloat16' ? 4 : DTYPES[tensor.dtype].itemBytes;
    const size = header.length + tensor.data.length * itemBytes;
    zip.addReadStreamLazy(`${name}.npy`, { compress: false, mtime, size }, (done) =>
      done(null, Readable.from([header, elementBytes(tensor)], { objectMode: false })),
    );
    entries.push({ name, descr, shape: [...tensor.shape] });
  }
  zip.end();
  // A stream.PassThrough (typed as the older NodeJS.ReadableStream).
  const stream = zip.outputStream as Readable;
  return { stream, entries, widened };
}

/** The little-endian element bytes of a tensor as NumPy reads them; bfloat16 widened to float32. */
function elementBytes(tensor: Tensor): Buffer {
  if (tensor.dtype !== 'bfloat16') {
    const { data } = tensor;
    return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }
  const wide = new Uint32Array(tensor.data.length);
  for (let i = 0; i < wide.length; i++) wide[i] = tensor.data[i]! << 16;
  return Buffer.from(wide.buffer, 0, wide.byteLength);
}
