/** Tensors of every dtype roundlog holds, with edge values, for codec and interoperability tests. */
import type { TensorSet } from '../../src/codec/tensors.ts';

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
