/**
 * Streaming FedAvg (`begin`, `fold`, `finish`) against the batch FedAvg as it was before streaming
 * (`previousFedAvg` below, its summation copied as it stood): the same bits for float64, float32,
 * float16, bfloat16 and integer tensors, with values spread over many magnitudes and sample sizes
 * large enough that the order of summation changes the result, for replies given in shuffled orders.
 */
import test from 'ava';
import type { Tensor, TensorSet } from '../../src/codec/tensors.ts';
import { halfBitsToNumbers, numbersToHalfBits } from '../../src/codec/float16.ts';
import { encodeSafetensors } from '../../src/codec/safetensors.ts';
import { InvalidArgumentError } from '../../src/errors.ts';
import { fedAvg, type NodeReply } from '../../src/federated/aggregators.ts';
import { NoRepliesError, ZeroSampleSizeError } from '../../src/federated/errors.ts';
import { Rng } from '../../src/federated/rng.ts';

// ---------------------------------------------------------------------------------------------
// The batch FedAvg before streaming: sort by node id (UTF-16 code units), sum sampleSize · x in
// float64 over the replies of positive sample size, divide once, store in the dtype.

function previousFedAvg(replies: readonly NodeReply[]): TensorSet {
  const sorted = [...replies].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  const total = sorted.reduce((sum, { sampleSize }) => sum + sampleSize, 0);
  const weighted = sorted.filter(({ sampleSize }) => sampleSize > 0);
  return Object.fromEntries(
    Object.entries(sorted[0]!.params).map(([name, tensor]) => {
      const inputs = weighted.map(({ sampleSize, params }) => ({ weight: sampleSize, tensor: params[name]! }));
      const { dtype, shape } = tensor;
      const length = tensor.data.length;
      if (dtype === 'float64') return [name, { dtype, shape, data: floatSum(inputs, length, total) }];
      if (dtype === 'float32')
        return [name, { dtype, shape, data: Float32Array.from(floatSum(inputs, length, total)) }];
      if (dtype === 'float16' || dtype === 'bfloat16') {
        return [name, { dtype, shape, data: numbersToHalfBits(floatSum(inputs, length, total, dtype), dtype) }];
      }
      const sum = Array.from({ length }, () => 0n);
      for (const { weight, tensor: t } of inputs) {
        for (let i = 0; i < length; i++) sum[i]! += BigInt(weight) * BigInt((t.data as Int32Array)[i]!);
      }
      const divisor = BigInt(total);
      const rounded = sum.map((s) => {
        let q = s / divisor;
        let r = s % divisor;
        if (r < 0n) [q, r] = [q - 1n, r + divisor];
        return 2n * r > divisor || (2n * r === divisor && q % 2n !== 0n) ? q + 1n : q;
      });
      return [name, { dtype, shape, data: Int32Array.from(rounded, Number) }];
    }),
  ) as TensorSet;
}

function floatSum(
  inputs: readonly { weight: number; tensor: Tensor }[],
  length: number,
  total: number,
  half?: 'float16' | 'bfloat16',
): Float64Array {
  const sum = new Float64Array(length);
  for (const { weight, tensor } of inputs) {
    const data = half ? halfBitsToNumbers(tensor.data as Uint16Array, half) : (tensor.data as Float32Array);
    for (let i = 0; i < length; i++) sum[i]! += weight * data[i]!;
  }
  for (let i = 0; i < length; i++) sum[i]! /= total;
  return sum;
}

// ---------------------------------------------------------------------------------------------

const LENGTH = 4096;
/** Values of random sign over 2^-30 .. 2^30: sums of them round differently in different orders. */
function spread(rng: Rng, length: number): Float64Array {
  const out = new Float64Array(length);
  for (let i = 0; i < length; i++)
    out[i] = (rng.nextFloat() < 0.5 ? -1 : 1) * (1 + rng.nextFloat()) * 2 ** Math.floor(rng.nextFloat() * 61 - 30);
  return out;
}

function nodeParams(rng: Rng): TensorSet {
  const values = spread(rng, LENGTH);
  return {
    w64: { dtype: 'float64', shape: [64, 64], data: values.map((v, i) => v * (1 + i / 7)) },
    w32: { dtype: 'float32', shape: [LENGTH], data: Float32Array.from(values) },
    h16: {
      dtype: 'float16',
      shape: [LENGTH],
      data: numbersToHalfBits(
        values.map((v) => v / 2 ** 20),
        'float16',
      ),
    },
    b16: { dtype: 'bfloat16', shape: [LENGTH], data: numbersToHalfBits(values, 'bfloat16') },
    n: { dtype: 'int32', shape: [3], data: Int32Array.from([rng.nextInt(1000), -rng.nextInt(1000), 7]) },
  };
}

/**
 * Eleven nodes; sample sizes from 0 to ~2^27 (the products stay exact, the sums do not). Nodes `B`
 * and `z`, far apart in node-id order, have the same sample size and opposite values on every third
 * element: summed apart they lose the other nodes' low bits there, summed next to each other they
 * cancel exactly, so the order shows even in float32.
 */
function replies(seed: number): NodeReply[] {
  const rng = Rng.fromSeed(seed);
  const nodes = ['a', 'B', 'b', 'node-10', 'node-2', 'node-9', 'é', 'z', 'Z', 'ä', 'node-1'];
  const shared = 1 + rng.nextInt(2 ** 27);
  const list = nodes.map((node, i) => ({
    node,
    sampleSize: i === 3 ? 0 : node === 'B' || node === 'z' ? shared : 1 + rng.nextInt(2 ** 27),
    params: nodeParams(rng),
    metrics: { loss: rng.nextFloat() },
  }));
  const [big, opposite] = [list[1]!.params, list[7]!.params];
  for (const name of ['w64', 'w32', 'h16', 'b16']) {
    const [x, y] = [big[name]!.data as Float64Array, opposite[name]!.data as Float64Array];
    for (let i = 0; i < LENGTH; i += 3) {
      x[i] = name === 'h16' || name === 'b16' ? numbersToHalfBits([2 ** 14], 'float16')[0]! : 2 ** 40;
      y[i] = name === 'h16' || name === 'b16' ? numbersToHalfBits([-(2 ** 14)], 'float16')[0]! : -(2 ** 40);
    }
  }
  return list;
}

function shuffled<T>(items: readonly T[], rng: Rng): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const byNode = (list: readonly NodeReply[]) =>
  [...list].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
const bytes = (params: TensorSet) => encodeSafetensors(params);

function streamed(list: readonly NodeReply[]): TensorSet {
  const run = fedAvg().begin!({}, { round: 0, params: {} });
  for (const reply of byNode(list)) run.fold(reply);
  return run.finish().params;
}

test('the summation order matters for these replies: another order gives other bits', (t) => {
  const list = replies(1);
  const reference = previousFedAvg(list);
  // The batch sum taken in another order: B and z first, then the others in node-id order.
  const first = list.filter((r) => r.node === 'B' || r.node === 'z');
  const reordered = [...first, ...byNode(list).filter((r) => !first.includes(r))];
  const total = list.reduce((sum, r) => sum + r.sampleSize, 0);
  // (16-bit floats keep too few bits for a float64 rounding to show; their bits are compared below.)
  for (const name of ['w32', 'w64']) {
    const other = new Float64Array(LENGTH);
    for (const { sampleSize, params } of reordered) {
      const data = params[name]!.data as Float64Array;
      for (let i = 0; i < LENGTH; i++) other[i]! += sampleSize * data[i]!;
    }
    const round = name === 'w32' ? Math.fround : (v: number) => v;
    const differing = [...(reference[name]!.data as Float64Array)].filter(
      (v, i) => v !== round(other[i]! / total),
    ).length;
    t.true(differing > 0, `summing ${name} in another order changes some element`);
  }
});

test('streamed FedAvg equals the batch FedAvg before streaming, bit for bit, for shuffled replies', (t) => {
  for (let seed = 1; seed <= 4; seed++) {
    const list = replies(seed);
    const expected = bytes(previousFedAvg(list));
    const rng = Rng.fromSeed(100 + seed);
    for (let k = 0; k < 5; k++) {
      const order = shuffled(list, rng);
      t.deepEqual(bytes(streamed(order)), expected, `seed ${seed}, order ${order.map((r) => r.node).join(',')}`);
      t.deepEqual(bytes(fedAvg().aggregate(order, {}, { round: 0, params: {} }).params), expected);
    }
  }
});

test('a folded reply is not kept: changing its tensors after fold() does not change the result', (t) => {
  const list = byNode(replies(7));
  const expected = bytes(previousFedAvg(list));
  const run = fedAvg().begin!({}, { round: 0, params: {} });
  for (const reply of list) {
    run.fold(reply);
    for (const tensor of Object.values(reply.params)) (tensor.data as Uint8Array).fill(0);
  }
  t.deepEqual(bytes(run.finish().params), expected);
});

test('fold() refuses replies out of node-id order or after finish(); finish() with none or only zero weights', (t) => {
  const [a, b] = byNode(replies(3));
  const run = fedAvg().begin!({ kept: 1 }, { round: 0, params: {} });
  run.fold(b!);
  const error = t.throws(() => run.fold(a!), { instanceOf: InvalidArgumentError });
  t.regex(error!.message, /node-id order/);
  t.throws(() => fedAvg().begin!({}, { round: 0, params: {} }).finish(), { instanceOf: NoRepliesError });
  const zero = fedAvg().begin!({}, { round: 0, params: {} });
  zero.fold({ ...a!, sampleSize: 0 });
  zero.fold({ ...b!, sampleSize: 0 });
  t.throws(() => zero.finish(), { instanceOf: ZeroSampleSizeError });
  const done = fedAvg().begin!({ kept: 1 }, { round: 0, params: {} });
  done.fold(a!);
  t.deepEqual(done.finish().state, { kept: 1 });
  t.throws(() => done.fold(b!), { instanceOf: InvalidArgumentError });
});
