/** 16-bit floats: exact decoding of every bit pattern, and ties-to-even rounding at the edges. */
import test from 'ava';
import {
  bfloat16ToNumber,
  float16ToNumber,
  halfBitsToNumbers,
  numberToBfloat16,
  numberToFloat16,
  numbersToHalfBits,
} from '../../src/codec/float16.ts';

const hex = (bits: number) => `0x${bits.toString(16).padStart(4, '0')}`;

test('float16 bits decode to their exact values: zeros, subnormals, normals, the largest, infinities, NaN', (t) => {
  t.true(Object.is(float16ToNumber(0x0000), 0));
  t.true(Object.is(float16ToNumber(0x8000), -0));
  t.is(float16ToNumber(0x0001), 2 ** -24);
  t.is(float16ToNumber(0x03ff), 1023 * 2 ** -24);
  t.is(float16ToNumber(0x0400), 2 ** -14);
  t.is(float16ToNumber(0x3c00), 1);
  t.is(float16ToNumber(0x3c01), 1 + 2 ** -10);
  t.is(float16ToNumber(0xc000), -2);
  t.is(float16ToNumber(0x7bff), 65504);
  t.is(float16ToNumber(0x7c00), Infinity);
  t.is(float16ToNumber(0xfc00), -Infinity);
  t.true(Number.isNaN(float16ToNumber(0x7e00)));
  t.true(Number.isNaN(float16ToNumber(0x7c01)));
});

test('bfloat16 bits decode as the high half of a float32', (t) => {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let bits = 0; bits < 0x10000; bits += 7) {
    u32[0] = bits << 16;
    const expected = f32[0]!;
    const actual = bfloat16ToNumber(bits);
    if (Number.isNaN(expected)) t.true(Number.isNaN(actual), hex(bits));
    else if (!Object.is(actual, expected)) t.fail(`${hex(bits)}: ${actual} != ${expected}`);
  }
  t.pass();
});

test('every finite float16 and bfloat16 value converts back to its own bits', (t) => {
  for (let bits = 0; bits < 0x10000; bits++) {
    const h = float16ToNumber(bits);
    if (!Number.isNaN(h) && numberToFloat16(h) !== bits)
      t.fail(`float16 ${hex(bits)} -> ${h} -> ${hex(numberToFloat16(h))}`);
    const b = bfloat16ToNumber(bits);
    if (!Number.isNaN(b) && numberToBfloat16(b) !== bits)
      t.fail(`bfloat16 ${hex(bits)} -> ${b} -> ${hex(numberToBfloat16(b))}`);
  }
  t.pass();
});

test('float16 rounding: ties to even, overflow to infinity, underflow to zero, subnormals', (t) => {
  const cases: Array<[number, number]> = [
    [1 + 2 ** -11, 0x3c00], // halfway between 1 and the next: even (1)
    [1 + 3 * 2 ** -11, 0x3c02], // halfway between 0x3c01 and 0x3c02: even (0x3c02)
    [1 + 2 ** -11 + 2 ** -30, 0x3c01], // just above halfway: up
    [65504, 0x7bff],
    [65519.99, 0x7bff], // below the halfway point to 65536
    [65520, 0x7c00], // halfway to 65536 (not representable): even is the infinity
    [1e6, 0x7c00],
    [-1e6, 0xfc00],
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // halfway between 0 and the smallest subnormal: even (0)
    [2 ** -25 + 2 ** -40, 0x0001],
    [3 * 2 ** -25, 0x0002], // halfway between subnormals 1 and 2: even (2)
    [2 ** -14 - 2 ** -25, 0x0400], // halfway between the largest subnormal and the smallest normal: even
    [-(2 ** -26), 0x8000], // underflows to -0
    [5e-324, 0x0000],
    [1 / 3, 0x3555],
    [Infinity, 0x7c00],
    [-0, 0x8000],
  ];
  for (const [value, bits] of cases) t.is(hex(numberToFloat16(value)), hex(bits), String(value));
  t.is(numberToFloat16(NaN), 0x7e00);
});

test('bfloat16 rounding: ties to even straight from the double (never twice, through float32)', (t) => {
  const cases: Array<[number, number]> = [
    [1 + 2 ** -8, 0x3f80], // halfway: even
    [1 + 3 * 2 ** -8, 0x3f82], // halfway: even
    // Just above halfway, by less than float32 can hold: rounding through float32 would make it a tie
    // and round down to even; the double is above the tie, so it rounds up.
    [1 + 2 ** -8 + 2 ** -40, 0x3f81],
    [3.3895313892515355e38, 0x7f7f], // the largest finite
    [2 ** 128 - 2 ** 119, 0x7f80], // halfway between the largest and 2^128: even is the infinity
    [2 ** 128 - 2 ** 119 - 2 ** 100, 0x7f7f], // just below halfway: the largest finite
    [2 ** -133, 0x0001], // smallest subnormal
    [2 ** -134, 0x0000], // halfway to it: even (0)
    [-(2 ** -126), 0x8080],
    [1e-50, 0x0000],
    [-1e-50, 0x8000],
    [-Infinity, 0xff80],
  ];
  for (const [value, bits] of cases) t.is(hex(numberToBfloat16(value)), hex(bits), String(value));
  t.is(numberToBfloat16(NaN), 0x7fc0);
  t.is(numberToBfloat16(-NaN), 0x7fc0);
});

test('the array forms agree with the scalar ones', (t) => {
  const values = [0, -0, 1, -2.5, 1 / 3, 65520, 2 ** -25, 1e-50, NaN, Infinity];
  const f16 = numbersToHalfBits(values, 'float16');
  const bf16 = numbersToHalfBits(values, 'bfloat16');
  t.deepEqual([...f16], values.map(numberToFloat16));
  t.deepEqual([...bf16], values.map(numberToBfloat16));
  t.deepEqual([...halfBitsToNumbers(f16, 'float16')], [...f16].map(float16ToNumber));
  t.deepEqual([...halfBitsToNumbers(bf16, 'bfloat16')], [...bf16].map(bfloat16ToNumber));
});
