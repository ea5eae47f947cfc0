/**
 * Conversions between numbers and the bit patterns of 16-bit floats (Node 20 has no
 * `Float16Array`): IEEE 754 binary16 (`float16`: 1 sign, 5 exponent, 10 fraction bits) and
 * bfloat16 (1 sign, 8 exponent, 7 fraction bits: the high half of a binary32).
 *
 * Bits to number is exact (every 16-bit value is a double). Number to bits rounds the double
 * directly (never through float32, which would round twice) to the nearest representable value,
 * ties to even (IEEE 754 roundTiesToEven), as NumPy's `astype(float16)` and PyTorch's
 * `to(torch.bfloat16)` do: values past the largest finite one round to ±Infinity, values below
 * half the smallest subnormal to ±0; -0 stays -0; NaN becomes the quiet NaN of the sign
 * (0x7e00 / 0x7fc0, or with the sign bit set).
 */

type Format = { fractionBits: number; exponentBits: number; quietNaN: number };

const FLOAT16: Format = { fractionBits: 10, exponentBits: 5, quietNaN: 0x7e00 };
const BFLOAT16: Format = { fractionBits: 7, exponentBits: 8, quietNaN: 0x7fc0 };

function toNumberTable(format: Format): Float64Array {
  const { fractionBits, exponentBits } = format;
  const bias = 2 ** (exponentBits - 1) - 1;
  const maxExponent = 2 ** exponentBits - 1;
  const table = new Float64Array(0x10000);
  for (let bits = 0; bits < 0x10000; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> fractionBits) & maxExponent;
    const fraction = bits & ((1 << fractionBits) - 1);
    let magnitude: number;
    if (exponent === 0) magnitude = fraction * 2 ** (1 - bias - fractionBits);
    else if (exponent === maxExponent) magnitude = fraction === 0 ? Infinity : NaN;
    else magnitude = (2 ** fractionBits + fraction) * 2 ** (exponent - bias - fractionBits);
    table[bits] = sign * magnitude;
  }
  return table;
}

let float16Table: Float64Array | undefined;
let bfloat16Table: Float64Array | undefined;

/** The value of binary16 bits (0..0xffff). */
export function float16ToNumber(bits: number): number {
  float16Table ??= toNumberTable(FLOAT16);
  return float16Table[bits & 0xffff]!;
}

/** The value of bfloat16 bits (0..0xffff). */
export function bfloat16ToNumber(bits: number): number {
  bfloat16Table ??= toNumberTable(BFLOAT16);
  return bfloat16Table[bits & 0xffff]!;
}

/** The binary16 bits nearest to `value`, ties to even. */
export function numberToFloat16(value: number): number {
  return toBits(value, FLOAT16);
}

/** The bfloat16 bits nearest to `value`, ties to even. */
export function numberToBfloat16(value: number): number {
  return toBits(value, BFLOAT16);
}

/** Elementwise `float16ToNumber` / `bfloat16ToNumber` of an array of bits. */
export function halfBitsToNumbers(bits: Uint16Array, dtype: 'float16' | 'bfloat16'): Float64Array {
  const table =
    dtype === 'float16' ? (float16Table ??= toNumberTable(FLOAT16)) : (bfloat16Table ??= toNumberTable(BFLOAT16));
  const out = new Float64Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]!]!;
  return out;
}

/** Elementwise `numberToFloat16` / `numberToBfloat16`. */
export function numbersToHalfBits(values: ArrayLike<number>, dtype: 'float16' | 'bfloat16'): Uint16Array {
  const format = dtype === 'float16' ? FLOAT16 : BFLOAT16;
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = toBits(values[i]!, format);
  return out;
}

function toBits(value: number, format: Format): number {
  const { fractionBits, exponentBits, quietNaN } = format;
  const signBit = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  if (Number.isNaN(value)) return signBit | quietNaN;
  const magnitude = Math.abs(value);
  const bias = 2 ** (exponentBits - 1) - 1;
  const infinity = ((2 ** exponentBits - 1) << fractionBits) | signBit;
  if (magnitude === Infinity) return infinity;
  if (magnitude === 0) return signBit;
  const minExponent = 1 - bias;
  // The exponent e with 2^e <= magnitude < 2^(e+1) (log2 may be off by one near powers of two).
  let exponent = Math.floor(Math.log2(magnitude));
  if (2 ** exponent > magnitude) exponent--;
  else if (2 ** (exponent + 1) <= magnitude) exponent++;
  // The spacing of representable values there: subnormals share the smallest normal's spacing.
  const spacing = 2 ** (Math.max(exponent, minExponent) - fractionBits);
  const scaled = magnitude / spacing; // exact: a division by a power of two, far from the double's limits
  let units = Math.floor(scaled);
  const rest = scaled - units;
  if (rest > 0.5 || (rest === 0.5 && units % 2 === 1)) units++;
  const rounded = units * spacing;
  if (rounded >= 2 ** (bias + 1)) return infinity;
  if (rounded < 2 ** minExponent) return signBit | units; // subnormal (or zero): the units are the fraction
  let roundedExponent = Math.max(exponent, minExponent);
  if (rounded >= 2 ** (roundedExponent + 1)) roundedExponent++; // rounding carried into the next binade
  const fraction = rounded / 2 ** (roundedExponent - fractionBits) - 2 ** fractionBits;
  return signBit | ((roundedExponent + bias) << fractionBits) | fraction;
}
