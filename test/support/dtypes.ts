/**
 * Tensors of every dtype roundlog holds, with edge values, and the names other tools give each
 * dtype, for codec, export and interoperability tests.
 *
 * The tables are written out by hand from the formats' own documentation, never derived from
 * src/: a test compares what the code writes with them, so a wrong mapping in the code fails it.
 * Every test that expects a dtype name takes it from here, so the tests cannot disagree.
 */
import type { TensorDType, TensorSet } from '../../src/codec/tensors.ts';

/** The safetensors `dtype` of each roundlog dtype, as the format's specification names them. */
export const SAFETENSORS_DTYPE: Readonly<Record<TensorDType, string>> = {
  float64: 'F64',
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  int32: 'I32',
  int16: 'I16',
  int8: 'I8',
  uint64: 'U64',
  uint32: 'U32',
  uint16: 'U16',
  uint8: 'U8',
  bool: 'BOOL',
};

/**
 * NumPy's `dtype.str` (the `.npy` header's `descr`) of each roundlog dtype, as NumPy's documentation
 * names them. bfloat16 has no NumPy dtype: an export widens it to float32 (`<f4`).
 */
export const NUMPY_DTYPE: Readonly<Record<Exclude<TensorDType, 'bfloat16'>, string>> = {
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

/** Bytes per element of each roundlog dtype. */
export const ITEM_BYTES: Readonly<Record<TensorDType, number>> = {
  float64: 8,
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint64: 8,
  uint32: 4,
  uint16: 2,
  uint8: 1,
  bool: 1,
};

/** One tensor of every dtype (and a scalar and an empty one), with edge values. */
export function everyDtype(): TensorSet {
  return {
    f64: { dtype: 'float64', shape: [2, 3], data: new Float64Array([0, -0, Math.PI, -1e308, 5e-324, NaN]) },
    f32: { dtype: 'float32', shape: [2, 3], data: new Float32Array([1.5, -2.25, 3.4e38, 1e-45, Infinity, -Infinity]) },
    f16: { dtype: 'float16', shape: [2, 3], data: new Uint16Array([0x3c00, 0x7bff, 0x0001, 0x8000, 0x7c00, 0x7e00]) },
    bf16: { dtype: 'bfloat16', shape: [3, 2], data: new Uint16Array([0x3f80, 0x7f7f, 0x0001, 0x8000, 0xff80, 0x7fc0]) },
    i64: { dtype: 'int64', shape: [3], data: new BigInt64Array([-(2n ** 63n), -1n, 2n ** 63n - 1n]) },
    i32: { dtype: 'int32', shape: [2], data: new Int32Array([-2147483648, 2147483647]) },
    i16: { dtype: 'int16', shape: [3], data: new Int16Array([-32768, 0, 32767]) },
    i8: { dtype: 'int8', shape: [3], data: new Int8Array([-128, 0, 127]) },
    u64: { dtype: 'uint64', shape: [2], data: new BigUint64Array([0n, 2n ** 64n - 1n]) },
    u32: { dtype: 'uint32', shape: [2], data: new Uint32Array([0, 4294967295]) },
    u16: { dtype: 'uint16', shape: [2], data: new Uint16Array([0, 65535]) },
    u8: { dtype: 'uint8', shape: [1, 3], data: new Uint8Array([0, 128, 255]) },
    flags: { dtype: 'bool', shape: [4], data: new Uint8Array([0, 1, 1, 0]) },
    scalar: { dtype: 'float32', shape: [], data: new Float32Array([7]) },
    empty: { dtype: 'int8', shape: [0, 4], data: new Int8Array(0) },
  };
}
