/** The .npy header and the .npz entry names (npz.ts); NumPy itself reads them in test/cli/export.e2e.test.ts. */
import test from 'ava';
import { InvalidArgumentError } from '../../src/errors.ts';
import { UnsafeTensorNameError } from '../../src/codec/errors.ts';
import { ITEM_BYTES, NUMPY_DTYPE } from '../support/dtypes.ts';
import { DTYPES } from '../../src/codec/dtypes.ts';
import { NPY_DESCR, npyHeader, npzArchive, npzArchiveOf, npzNameProblem } from '../../src/codec/npz.ts';

test('npyHeader: magic, version 1.0, the dict as Python writes it, data at a multiple of 64', (t) => {
  for (const [shape, tuple] of [
    [[], '()'],
    [[5], '(5,)'],
    [[2, 3], '(2, 3)'],
    [[0, 7, 1], '(0, 7, 1)'],
    [Array.from({ length: 40 }, () => 123456789), `(${Array(40).fill(123456789).join(', ')})`],
  ] as const) {
    const header = npyHeader('<f4', shape);
    t.is(header.length % 64, 0, tuple);
    t.deepEqual([...header.subarray(0, 8)], [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
    t.is(header.readUInt16LE(8), header.length - 10);
    const text = header.subarray(10).toString('latin1');
    t.true(text.startsWith(`{'descr': '<f4', 'fortran_order': False, 'shape': ${tuple}, }`), text);
    t.regex(text, / *\n$/);
    t.is(text.indexOf('\n'), text.length - 1, 'one newline, the last byte');
  }
});

test('npzNameProblem: state-dict names pass; names that would escape or change in a zip do not', (t) => {
  for (const name of ['w', 'layer.0.weight', 'encoder/layer.0.weight', 'a..b', '.hidden', 'é/ü', 'x.npy'])
    t.is(npzNameProblem(name), null, name);
  for (const [name, problem] of [
    ['', /empty/],
    ['a\0b', /U\+0000/],
    ['a\nb', /U\+000a/],
    ['a\\b', /backslash/],
    ['/etc/passwd', /absolute/],
    ['C:x', /absolute/],
    ['../up', /"\.\." path segment/],
    ['a/../b', /"\.\." path segment/],
    ['a/./b', /"\." path segment/],
    ['a//b', /empty path segment/],
    ['dir/', /empty path segment/],
    ['x'.repeat(70000), /longer than a zip entry name/],
  ] as const) {
    t.regex(npzNameProblem(name) ?? 'null', problem, JSON.stringify(name.slice(0, 20)));
  }
});

test('npzArchive refuses first: unsafe names (UnsafeTensorNameError), bad tensors (InvalidArgumentError)', (t) => {
  const w = { dtype: 'float32', shape: [1], data: new Float32Array([1]) } as const;
  const error = t.throws(() => npzArchive({ ok: w, '../x': w }, { source: 'round 1 of E' }), {
    instanceOf: UnsafeTensorNameError,
  });
  t.like(error, { code: 'UNSAFE_TENSOR_NAME', tensor: '../x', source: 'round 1 of E' });
  t.regex(error!.message, /round 1 of E .*safetensors/);
  t.throws(() => npzArchive({ w: { dtype: 'float32', shape: [2], data: new Float32Array(1) } }), {
    instanceOf: InvalidArgumentError,
  });
});

test('npzArchive: one stored entry per tensor, bfloat16 widened to float32 bits', async (t) => {
  const archive = npzArchive(
    {
      b: { dtype: 'bfloat16', shape: [2], data: new Uint16Array([0x3f80, 0xff80]) },
      i: { dtype: 'int8', shape: [], data: new Int8Array([-1]) },
    },
    { mtime: new Date(Date.UTC(2026, 0, 1)) },
  );
  t.deepEqual(archive.widened, ['b']);
  t.deepEqual(archive.entries, [
    { name: 'b', descr: '<f4', shape: [2] },
    { name: 'i', descr: '|i1', shape: [] },
  ]);
  const chunks: Buffer[] = [];
  for await (const chunk of archive.stream) chunks.push(chunk as Buffer);
  const zip = Buffer.concat(chunks);
  t.is(zip.readUInt32LE(0), 0x04034b50, 'a zip local file header first');
  // Stored entries: the .npy bytes appear as they are; 1.0 and -inf as float32 little-endian.
  t.true(zip.includes(Buffer.from([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x80, 0xff])));
  t.true(zip.includes(Buffer.from('b.npy')) && zip.includes(Buffer.from('i.npy')));
});

/** The archive's bytes. */
async function bytesOf(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

test('npzArchiveOf: element bytes in chunks of any length (elements split) give the bytes of npzArchive', async (t) => {
  const mtime = new Date(Date.UTC(2026, 0, 1));
  const brain = new Uint16Array([0x3f80, 0xff80, 0x0001, 0x8000, 0x4049]);
  const ids = new Int32Array([1, -2, 3]);
  const whole = await bytesOf(
    npzArchive(
      { brain: { dtype: 'bfloat16', shape: [5], data: brain }, ids: { dtype: 'int32', shape: [3], data: ids } },
      { mtime },
    ).stream,
  );
  const bytes = (data: Uint16Array | Int32Array) => Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  /** The bytes cut at every offset in `cuts` (odd ones split an element). */
  async function* cut(data: Buffer, cuts: number[]): AsyncGenerator<Buffer> {
    let at = 0;
    for (const end of [...cuts, data.length]) {
      yield data.subarray(at, end);
      at = end;
    }
  }
  const archive = npzArchiveOf(
    [
      { name: 'brain', dtype: 'bfloat16', shape: [5], elements: () => cut(bytes(brain), [1, 1, 4, 7, 9]) },
      { name: 'ids', dtype: 'int32', shape: [3], elements: () => cut(bytes(ids), [3, 5]) },
    ],
    { mtime },
  );
  t.deepEqual(archive.widened, ['brain']);
  t.deepEqual(await bytesOf(archive.stream), whole);
});

test('npzArchiveOf: a source that fails or gives too few bytes makes the stream fail (never hangs)', async (t) => {
  const failing = npzArchiveOf([
    { name: 'a', dtype: 'uint8', shape: [2], elements: () => [Buffer.from([1, 2])] },
    {
      name: 'b',
      dtype: 'uint8',
      shape: [4],
      elements: async function* () {
        throw new RangeError('read failed');
      },
    },
  ]);
  await t.throwsAsync(bytesOf(failing.stream), { instanceOf: RangeError, message: 'read failed' });
  const short = npzArchiveOf([{ name: 'a', dtype: 'float32', shape: [2], elements: () => [Buffer.alloc(4)] }]);
  await t.throwsAsync(bytesOf(short.stream), { message: /unexpected number of bytes/ });
  const torn = npzArchiveOf([{ name: 'a', dtype: 'bfloat16', shape: [1], elements: () => [Buffer.alloc(1)] }]);
  await t.throwsAsync(bytesOf(torn.stream), { message: /middle of an element/ });
});

test("every dtype has NumPy's descr and element size (the hand-written tables of test/support/dtypes.ts)", (t) => {
  t.deepEqual({ ...NPY_DESCR }, NUMPY_DTYPE);
  for (const [dtype, bytes] of Object.entries(ITEM_BYTES))
    t.is(DTYPES[dtype as keyof typeof ITEM_BYTES].itemBytes, bytes, dtype);
});
