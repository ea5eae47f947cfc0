/**
 * Aggregators: fedAvg on hand-computed values, bit-identical results in any reply order, typed errors, and the
 * registry.
 */
import test from 'ava';
import type { Tensor, TensorSet } from '../../src/codec/tensors.ts';
import { encodeTensors } from '../../src/codec/tensors.ts';
import { InvalidArgumentError } from '../../src/errors.ts';
import {
  aggregatorFrom,
  fedAvg,
  weightedMetrics,
  isCountMetric,
  type Aggregator,
  type NodeReply,
} from '../../src/federated/aggregators.ts';
import {
  MismatchedTensorsError,
  NoRepliesError,
  NotAverageableError,
  UnknownAggregatorError,
  ZeroSampleSizeError,
} from '../../src/federated/errors.ts';
import { Rng } from '../../src/federated/rng.ts';

const f32 = (...values: number[]): Tensor => ({
  dtype: 'float32',
  shape: [values.length],
  data: Float32Array.from(values),
});
const reply = (
  node: string,
  sampleSize: number,
  params: TensorSet,
  metrics: Record<string, number> = {},
): NodeReply => ({
  node,
  sampleSize,
  params,
  metrics,
});
const aggregate = (replies: readonly NodeReply[]) => fedAvg().aggregate(replies, {}, { round: 0, params: {} }).params;
const bytesOf = (params: TensorSet) => encodeTensors(params, { compress: false }).bytes;

test('fedAvg weights each node by its sample size', (t) => {
  const params = aggregate([reply('a', 1, { w: f32(1, 2), b: f32(-4) }), reply('b', 3, { w: f32(5, 6), b: f32(8) })]);
  t.deepEqual(Object.keys(params), ['w', 'b']);
  t.is(params.w!.dtype, 'float32');
  t.deepEqual(params.w!.shape, [2]);
  t.deepEqual([...params.w!.data], [4, 5]); // (1·1 + 3·5) / 4, (1·2 + 3·6) / 4
  t.deepEqual([...params.b!.data], [5]); // (1·-4 + 3·8) / 4
});

test('float32 tensors are averaged in float64 and rounded once to float32', (t) => {
  const [x, y] = [Math.fround(0.123), Math.fround(0.987)];
  const params = aggregate([reply('a', 1, { w: f32(x) }), reply('b', 2, { w: f32(y) })]);
  const expected = Math.fround((1 * x + 2 * y) / 3);
  t.is(params.w!.data[0], expected);
  // Summing in float32 would have given another value here.
  t.not(Math.fround(Math.fround(x + Math.fround(2 * y)) / 3), expected);
});

test('averaging identical float32 parameters returns them bit for bit', (t) => {
  const rng = Rng.fromSeed(4);
  const v = {
    dtype: 'float32',
    shape: [5, 10],
    data: Float32Array.from({ length: 50 }, () => rng.normal(0, 100)),
  } as const;
  const params = aggregate([reply('a', 17, { v }), reply('b', 5, { v }), reply('c', 999_999, { v })]);
  t.true(bytesOf(params).equals(bytesOf({ v })));
});

test('float64 tensors stay float64', (t) => {
  const params = aggregate([
    reply('a', 1, { w: { dtype: 'float64', shape: [2, 1], data: Float64Array.of(0.1, 1e300) } }),
    reply('b', 2, { w: { dtype: 'float64', shape: [2, 1], data: Float64Array.of(0.4, -1e300) } }),
  ]);
  t.is(params.w!.dtype, 'float64');
  t.true(params.w!.data instanceof Float64Array);
  t.deepEqual(params.w!.shape, [2, 1]);
  t.deepEqual([...params.w!.data], [(0.1 + 2 * 0.4) / 3, (1e300 - 2e300) / 3]);
});

test('integer tensors get the exact weighted average, rounded half to even', (t) => {
  const i32 = (...values: number[]): Tensor => ({
    dtype: 'int32',
    shape: [values.length],
    data: Int32Array.from(values),
  });
  const params = aggregate([
    reply('a', 1, {
      i: i32(1, 2, -1, -2, 0, 2147483647),
      u: { dtype: 'uint8', shape: [2], data: Uint8Array.of(255, 0) },
      l: { dtype: 'int64', shape: [1], data: BigInt64Array.of(2n ** 62n) },
    }),
    reply('b', 1, {
      i: i32(2, 3, -2, -3, 1, 2147483646),
      u: { dtype: 'uint8', shape: [2], data: Uint8Array.of(254, 1) },
      l: { dtype: 'int64', shape: [1], data: BigInt64Array.of(2n ** 62n + 2n) },
    }),
  ]);
  // 1.5 → 2, 2.5 → 2, -1.5 → -2, -2.5 → -2, 0.5 → 0, 2147483646.5 → 2147483646
  t.deepEqual([...params.i!.data], [2, 2, -2, -2, 0, 2147483646]);
  t.is(params.i!.dtype, 'int32');
  t.deepEqual([...params.u!.data], [254, 0]); // 254.5 → 254, 0.5 → 0
  t.deepEqual([...params.l!.data], [2n ** 62n + 1n]); // exact beyond 2^53
  const weighted = aggregate([reply('a', 1, { i: i32(0) }), reply('b', 2, { i: i32(10) })]);
  t.deepEqual([...weighted.i!.data], [7]); // 20 / 3 = 6.67
});

test('the result is bit-identical whatever order the replies arrive in', (t) => {
  const rng = Rng.fromSeed(2024);
  const nodes = ['n3', 'n1', 'n4', 'n0', 'n2'];
  const replies = nodes.map((node, k) =>
    reply(node, [13, 1, 700, 42, 5][k]!, {
      w: f32(...Array.from({ length: 500 }, () => rng.normal(0, 10 ** (k - 2)))),
      d: {
        dtype: 'float64',
        shape: [500],
        data: Float64Array.from({ length: 500 }, () => rng.normal(0, 10 ** (2 - k))),
      },
    }),
  );
  const expected = bytesOf(aggregate(replies));
  let orders = 0;
  for (const order of permutations(replies)) {
    t.true(bytesOf(aggregate(order)).equals(expected));
    orders++;
  }
  t.is(orders, 120);
  // The check has teeth: summing the same data in arrival order does depend on the order.
  const naive = (order: readonly NodeReply[]) => {
    const total = order.reduce((s, r) => s + r.sampleSize, 0);
    return Float64Array.from(
      { length: 500 },
      (_, i) => order.reduce((s, r) => s + r.sampleSize * (r.params.d!.data[i] as number), 0) / total,
    );
  };
  const naiveResults = new Set(
    [...permutations(replies)].map((order) => Buffer.from(naive(order).buffer).toString('hex')),
  );
  t.true(naiveResults.size > 1);
});

test('a node with sample size 0 takes no part in the average, even with non-finite parameters', (t) => {
  const params = aggregate([
    reply('a', 2, { w: f32(1, 1) }),
    reply('b', 0, { w: f32(Number.NaN, Infinity) }),
    reply('c', 2, { w: f32(3, 5) }),
  ]);
  t.deepEqual([...params.w!.data], [2, 3]);
});

test('the output owns its memory and the aggregator state is returned unchanged', (t) => {
  const input = { w: f32(1, 2) };
  const state = { note: 'kept' };
  const result = fedAvg().aggregate([reply('a', 1, input)], state, { round: 0, params: input });
  t.is(result.state, state);
  t.not(result.params.w!.data, input.w.data);
  input.w.data[0] = 100;
  t.deepEqual([...result.params.w!.data], [1, 2]);
  t.deepEqual(fedAvg().initialState(), {});
});

test('no replies is a NoRepliesError', (t) => {
  const error = t.throws(() => aggregate([]), { instanceOf: NoRepliesError });
  t.is(error?.code, 'NO_REPLIES');
  t.is(error?.aggregator, 'fedAvg');
  t.regex(error!.message, /no node replies/);
});

const mismatch = test.macro({
  exec(t, second: TensorSet, expected: Partial<MismatchedTensorsError>, message: RegExp) {
    // Node "b" replies first, but "a" is the reference: the first reply in node-id order.
    const error = t.throws(() => aggregate([reply('b', 1, second), reply('a', 1, { w: f32(1, 2), b: f32(0) })]), {
      instanceOf: MismatchedTensorsError,
    });
    t.is(error?.code, 'MISMATCHED_TENSORS');
    t.like(error, { aggregator: 'fedAvg', node: 'b', referenceNode: 'a', ...expected });
    t.regex(error!.message, message);
  },
  title: (_, __, expected: Partial<MismatchedTensorsError>) =>
    `a tensor that differs between nodes is a MismatchedTensorsError (${expected.kind})`,
});

test(mismatch, { w: f32(1, 2) }, { kind: 'missing', tensor: 'b' }, /node "b".*has no tensor "b", which node "a" sent/);
test(
  mismatch,
  { w: f32(1, 2), b: f32(0), extra: f32(1) },
  { kind: 'unexpected', tensor: 'extra' },
  /sent tensor "extra", which node "a" did not/,
);
test(
  mismatch,
  { w: { dtype: 'float64', shape: [2], data: Float64Array.of(1, 2) }, b: f32(0) },
  { kind: 'dtype', tensor: 'w', expected: 'float32', received: 'float64' },
  /tensor "w" is "float64" on node "b" but "float32" on node "a"/,
);
test(
  mismatch,
  { w: { dtype: 'float32', shape: [1, 2], data: Float32Array.of(1, 2) }, b: f32(0) },
  { kind: 'shape', tensor: 'w', expected: [2], received: [1, 2] },
  /tensor "w" has shape \[1,2\] on node "b" but \[2\] on node "a"/,
);

test('replies whose sample sizes add up to 0 are a ZeroSampleSizeError naming the nodes', (t) => {
  const error = t.throws(() => aggregate([reply('z', 0, { w: f32(1) }), reply('y', 0, { w: f32(2) })]), {
    instanceOf: ZeroSampleSizeError,
  });
  t.is(error?.code, 'ZERO_SAMPLE_SIZE');
  t.deepEqual(error?.nodes, ['y', 'z']);
  t.regex(error!.message, /add up to 0/);
});

test('a repeated node, a bad sample size or a tensor that does not fit its shape is an InvalidArgumentError', (t) => {
  const invalid = (replies: NodeReply[], argument: string) => {
    const error = t.throws(() => aggregate(replies), { instanceOf: InvalidArgumentError });
    t.is(error?.argument, argument);
  };
  invalid([reply('a', 1, { w: f32(1) }), reply('a', 2, { w: f32(2) })], 'replies');
  invalid([reply('a', -1, { w: f32(1) })], 'replies[node "a"].sampleSize');
  invalid([reply('a', 1.5, { w: f32(1) })], 'replies[node "a"].sampleSize');
  invalid(
    [reply('a', 1, { w: { dtype: 'float32', shape: [3], data: Float32Array.of(1, 2) } })],
    'replies[node "a"].params["w"]',
  );
  invalid(
    [reply('a', 1, { w: { dtype: 'float32', shape: [2], data: Float64Array.of(1, 2) } as unknown as Tensor })],
    'replies[node "a"].params["w"]',
  );
});

test('weightedMetrics averages the metrics every node reported, by sample size', (t) => {
  const metrics = weightedMetrics([
    reply('b', 3, {}, { loss: 2, accuracy: 0.5, extra: 1 }),
    reply('a', 1, {}, { loss: 6, accuracy: 0.9 }),
  ]);
  t.deepEqual(Object.keys(metrics).sort(), ['accuracy', 'loss']);
  t.is(metrics.loss, 3); // (1·6 + 3·2) / 4
  t.true(Math.abs(metrics.accuracy! - 0.6) < 1e-12);
  t.deepEqual(weightedMetrics([]), {});
});

test('weightedMetrics sums the counts (heldOutRows, …Count, …_samples) instead of averaging them', (t) => {
  const metrics = weightedMetrics([
    reply('b', 3, {}, { heldOutAccuracy: 0.5, heldOutRows: 40, n_count: 2, samples: 7, discount: 1 }),
    reply('a', 1, {}, { heldOutAccuracy: 0.9, heldOutRows: 61, n_count: 5, samples: 1, discount: 5 }),
  ]);
  t.is(metrics.heldOutRows, 101);
  t.is(metrics.n_count, 7);
  t.is(metrics.samples, 8);
  // Not counts: averaged by sample size.
  t.true(Math.abs(metrics.heldOutAccuracy! - 0.6) < 1e-12);
  t.is(metrics.discount, 2); // (1·5 + 3·1) / 4
  t.true(isCountMetric('rows') && isCountMetric('trainRows') && isCountMetric('x_rows'));
  t.false(isCountMetric('accuracy') || isCountMetric('accounts') || isCountMetric('Rowsum'));
});

test('aggregatorFrom rebuilds fedAvg from its recorded name and config', (t) => {
  const original = fedAvg();
  const recorded = JSON.parse(JSON.stringify({ name: original.name, config: original.config }));
  const rebuilt = aggregatorFrom(recorded);
  t.is(rebuilt.name, 'fedAvg');
  t.deepEqual(rebuilt.config, original.config);
  const replies = [reply('a', 2, { w: f32(0.3, -1) }), reply('b', 7, { w: f32(2.5, 9) })];
  t.true(
    bytesOf(rebuilt.aggregate(replies, {}, { round: 0, params: {} }).params).equals(
      bytesOf(original.aggregate(replies, {}, { round: 0, params: {} }).params),
    ),
  );
});

test('aggregatorFrom: an unknown name is an UnknownAggregatorError, bad config an InvalidArgumentError', (t) => {
  const error = t.throws(() => aggregatorFrom({ name: 'fedProx', config: {} }), { instanceOf: UnknownAggregatorError });
  t.is(error?.code, 'UNKNOWN_AGGREGATOR');
  t.is(error?.aggregator, 'fedProx');
  t.deepEqual(error?.known, ['fedAvg']);
  t.regex(error!.message, /unknown aggregator "fedProx"; known aggregators: \["fedAvg"\]/);
  t.throws(() => aggregatorFrom({ name: 'fedAvg', config: { mu: 0.1 } }), { instanceOf: InvalidArgumentError });
  t.throws(() => aggregatorFrom({ name: 'toString', config: {} }), { instanceOf: UnknownAggregatorError });
});

test('aggregatorFrom builds custom aggregators from the registry it is given', (t) => {
  const first: Aggregator = {
    name: 'first',
    config: { keep: 'a' },
    initialState: () => ({ rounds: 0 }),
    aggregate: (replies, state) => ({ params: replies[0]!.params, state: { rounds: (state.rounds as number) + 1 } }),
  };
  const rebuilt = aggregatorFrom({ name: 'first', config: { keep: 'a' } }, { first: () => first });
  t.is(rebuilt, first);
  const error = t.throws(() => aggregatorFrom({ name: 'second', config: {} }, { first: () => first }), {
    instanceOf: UnknownAggregatorError,
  });
  t.deepEqual(error?.known, ['fedAvg', 'first']);
});

function* permutations<T>(items: readonly T[]): Generator<T[]> {
  if (items.length <= 1) {
    yield [...items];
    return;
  }
  for (let i = 0; i < items.length; i++) {
    for (const rest of permutations([...items.slice(0, i), ...items.slice(i + 1)])) yield [items[i]!, ...rest];
  }
}

test('float16 and bfloat16 tensors are averaged in float64 and rounded once, ties to even', (t) => {
  const half = (dtype: 'float16' | 'bfloat16', ...bits: number[]): Tensor => ({
    dtype,
    shape: [bits.length],
    data: Uint16Array.from(bits),
  });
  // float16: 1 and 1 + 2^-9 (0x3c02) average to 1 + 2^-10 (0x3c01) exactly; 1 and 0x3c01 average to
  // the tie 1 + 2^-11, which rounds to the even 0x3c00; weights 1 and 3 of 0 and 2 give 1.5 (0x3e00).
  const f16 = aggregate([
    reply('a', 1, { h: half('float16', 0x3c00, 0x3c00, 0x0000) }),
    reply('b', 1, { h: half('float16', 0x3c02, 0x3c01, 0x4000) }),
  ]).h!;
  t.is(f16.dtype, 'float16');
  t.deepEqual([...f16.data], [0x3c01, 0x3c00, 0x3c00]);
  const weighted = aggregate([
    reply('a', 1, { h: half('float16', 0x0000) }),
    reply('b', 3, { h: half('float16', 0x4000) }),
  ]).h!;
  t.deepEqual([...weighted.data], [0x3e00]);
  // bfloat16: 1 (0x3f80) and 0x3f81 average to a tie, even is 0x3f80; 1 and 0x3f82 to 0x3f81.
  const bf16 = aggregate([
    reply('a', 1, { b: half('bfloat16', 0x3f80, 0x3f80) }),
    reply('b', 1, { b: half('bfloat16', 0x3f81, 0x3f82) }),
  ]).b!;
  t.is(bf16.dtype, 'bfloat16');
  t.true(bf16.data instanceof Uint16Array);
  t.deepEqual([...bf16.data], [0x3f80, 0x3f81]);
});

test('the newer integer dtypes average exactly, ties to even, in their own typed array', (t) => {
  const params = aggregate([
    reply('a', 1, {
      i8: { dtype: 'int8', shape: [2], data: Int8Array.from([-128, 1]) },
      i16: { dtype: 'int16', shape: [1], data: Int16Array.from([-3]) },
      u16: { dtype: 'uint16', shape: [1], data: Uint16Array.from([65535]) },
      u32: { dtype: 'uint32', shape: [1], data: Uint32Array.from([4294967295]) },
      u64: { dtype: 'uint64', shape: [1], data: BigUint64Array.from([2n ** 64n - 1n]) },
    }),
    reply('b', 1, {
      i8: { dtype: 'int8', shape: [2], data: Int8Array.from([-127, 2]) },
      i16: { dtype: 'int16', shape: [1], data: Int16Array.from([0]) },
      u16: { dtype: 'uint16', shape: [1], data: Uint16Array.from([65534]) },
      u32: { dtype: 'uint32', shape: [1], data: Uint32Array.from([4294967294]) },
      u64: { dtype: 'uint64', shape: [1], data: BigUint64Array.from([2n ** 64n - 2n]) },
    }),
  ]);
  t.deepEqual([...params.i8!.data], [-128, 2]); // -127.5 -> -128 (even), 1.5 -> 2 (even)
  t.true(params.i8!.data instanceof Int8Array);
  t.deepEqual([...params.i16!.data], [-2]); // -1.5 -> -2
  t.deepEqual([...params.u16!.data], [65534]); // 65534.5 -> 65534
  t.deepEqual([...params.u32!.data], [4294967294]);
  t.deepEqual([...params.u64!.data], [2n ** 64n - 2n]);
  t.true(params.u64!.data instanceof BigUint64Array);
});

test('fedAvg refuses to average a bool tensor, naming it', (t) => {
  const flags: Tensor = { dtype: 'bool', shape: [2], data: Uint8Array.from([0, 1]) };
  const error = t.throws(
    () => aggregate([reply('a', 1, { mask: flags, w: f32(1) }), reply('b', 1, { mask: flags, w: f32(2) })]),
    {
      instanceOf: NotAverageableError,
    },
  );
  t.is(error?.code, 'NOT_AVERAGEABLE');
  t.is(error?.tensor, 'mask');
  t.is(error?.dtype, 'bool');
  t.regex(error!.message, /cannot average tensor "mask" of dtype bool/);
});
