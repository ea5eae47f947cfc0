/**
 * Tensor element types: the names roundlog uses (NumPy's), the typed array holding each, its size,
 * and the name the safetensors format gives it.
 *
 * JavaScript has no 16-bit float array on Node 20: `float16` (IEEE 754 binary16) and `bfloat16`
 * (the top 16 bits of a binary32) are held as a `Uint16Array` of their raw bits; `float16.ts`
 * converts them to and from numbers. `bool` is a `Uint8Array` of 0 (false) and 1 (true), one
 * byte per element, as NumPy and PyTorch store it.
 */
import { InvalidArgumentError } from '../errors.ts';

export type TensorDType =
  | 'float64'
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint64'
  | 'uint32'
  | 'uint16'
  | 'uint8'
  | 'bool';

/** The typed array holding the elements of each dtype. */
export type TensorDataOf = {
  float64: Float64Array;
  float32: Float32Array;
  /** binary16 bit patterns. */
  float16: Uint16Array;
  /** bfloat16 bit patterns (the high half of a binary32). */
  bfloat16: Uint16Array;
  int64: BigInt64Array;
  int32: Int32Array;
  int16: Int16Array;
  int8: Int8Array;
  uint64: BigUint64Array;
  uint32: Uint32Array;
  uint16: Uint16Array;
  uint8: Uint8Array;
  /** 0 or 1 per element. */
  bool: Uint8Array;
};

/** A typed array and its shape; `shape: []` is a scalar. Elements are stored row-major. */
export type Tensor = {
  [D in TensorDType]: Readonly<{ dtype: D; shape: readonly number[]; data: TensorDataOf[D] }>;
}[TensorDType];

export type TensorSet = Readonly<Record<string, Tensor>>;

type TypedArrayCtor = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => TensorDataOf[TensorDType];

export type DTypeInfo = Readonly<{
  /** Bytes per element. */
  itemBytes: number;
  ctor: TypedArrayCtor & { readonly name: string };
  /** The dtype string of the safetensors format (`F32`, `BF16`, `BOOL`...). */
  safetensors: string;
}>;

export const DTYPES: { readonly [D in TensorDType]: DTypeInfo } = {
  float64: { itemBytes: 8, ctor: Float64Array, safetensors: 'F64' },
  float32: { itemBytes: 4, ctor: Float32Array, safetensors: 'F32' },
  float16: { itemBytes: 2, ctor: Uint16Array, safetensors: 'F16' },
  bfloat16: { itemBytes: 2, ctor: Uint16Array, safetensors: 'BF16' },
  int64: { itemBytes: 8, ctor: BigInt64Array, safetensors: 'I64' },
  int32: { itemBytes: 4, ctor: Int32Array, safetensors: 'I32' },
  int16: { itemBytes: 2, ctor: Int16Array, safetensors: 'I16' },
  int8: { itemBytes: 1, ctor: Int8Array, safetensors: 'I8' },
  uint64: { itemBytes: 8, ctor: BigUint64Array, safetensors: 'U64' },
  uint32: { itemBytes: 4, ctor: Uint32Array, safetensors: 'U32' },
  uint16: { itemBytes: 2, ctor: Uint16Array, safetensors: 'U16' },
  uint8: { itemBytes: 1, ctor: Uint8Array, safetensors: 'U8' },
  bool: { itemBytes: 1, ctor: Uint8Array, safetensors: 'BOOL' },
};

export const TENSOR_DTYPES = Object.keys(DTYPES) as readonly TensorDType[];

/** The roundlog dtype of each safetensors dtype string this build reads. */
export const DTYPE_OF_SAFETENSORS: ReadonlyMap<string, TensorDType> = new Map(
  TENSOR_DTYPES.map((dtype) => [DTYPES[dtype].safetensors, dtype]),
);

export function isTensorDType(value: unknown): value is TensorDType {
  return typeof value === 'string' && Object.hasOwn(DTYPES, value);
}

/** Whether `data` is (an instance of) the typed array of `dtype`; a `Buffer` is a `Uint8Array`. */
export function isDataOf(dtype: TensorDType, data: unknown): boolean {
  return data instanceof DTYPES[dtype].ctor;
}

/**
 * Checks one tensor of a set given to an encoder: a dtype of `allowed`, data of its typed array,
 * a shape of non-negative integers whose product is the element count, and (for `bool`) only 0
 * and 1. Throws `InvalidArgumentError` naming `tensors["<name>"]`.
 */
export function checkTensor(
  name: string,
  tensor: unknown,
  allowed: readonly TensorDType[] = TENSOR_DTYPES,
): asserts tensor is Tensor {
  const at = `tensors[${JSON.stringify(name)}]`;
  if (typeof tensor !== 'object' || tensor === null) {
    throw new InvalidArgumentError(at, 'must be an object { dtype, shape, data }', tensor);
  }
  const { dtype, shape, data } = tensor as Record<string, unknown>;
  if (!isTensorDType(dtype) || !allowed.includes(dtype)) {
    throw new InvalidArgumentError(`${at}.dtype`, `must be one of ${allowed.join(', ')}`, dtype);
  }
  if (!isDataOf(dtype, data)) {
    throw new InvalidArgumentError(
      `${at}.data`,
      `must be a ${DTYPES[dtype].ctor.name} for dtype ${dtype}`,
      describeData(data),
    );
  }
  if (!Array.isArray(shape) || !shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0)) {
    throw new InvalidArgumentError(`${at}.shape`, 'must be an array of non-negative integers', shape);
  }
  const length = (data as TensorDataOf[TensorDType]).length;
  const product = (shape as number[]).reduce((p, dim) => p * dim, 1);
  if (product !== length) {
    throw new InvalidArgumentError(
      `${at}.shape`,
      `must have a product of dimensions (${product}) equal to data.length (${length})`,
      shape,
    );
  }
  if (dtype === 'bool') {
    const index = firstNonBool(data as Uint8Array);
    if (index !== -1) {
      throw new InvalidArgumentError(
        `${at}.data[${index}]`,
        'must be 0 or 1 (a bool tensor holds one byte per element, 0 for false and 1 for true)',
        (data as Uint8Array)[index],
      );
    }
  }
}

/** The index of the first byte that is neither 0 nor 1, or -1. */
export function firstNonBool(data: Uint8Array): number {
  for (let i = 0; i < data.length; i++) if (data[i]! > 1) return i;
  return -1;
}

export function describeData(data: unknown): unknown {
  if (ArrayBuffer.isView(data)) return `${data.constructor.name}(${data.byteLength} bytes)`;
  return data;
}
