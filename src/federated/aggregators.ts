/**
 * Aggregators combine the parameters the nodes of a round replied with into the next global
 * parameters. An aggregator is named and configured by plain data, which an experiment records so
 * that a resumed experiment rebuilds the same aggregator (`aggregatorFrom`); its state between
 * rounds is plain data too. Aggregation is pure and does not depend on the order replies arrived in.
 */
import { InvalidArgumentError, formatValue } from '../errors.ts';
import type { Tensor, TensorSet } from '../codec/tensors.ts';
import { isDataOf, isTensorDType, DTYPES } from '../codec/dtypes.ts';
import { halfBitsToNumbers, numbersToHalfBits } from '../codec/float16.ts';
import {
  MismatchedTensorsError,
  NoRepliesError,
  NotAverageableError,
  UnknownAggregatorError,
  ZeroSampleSizeError,
  type TensorMismatchKind,
} from './errors.ts';

export type NodeReply = Readonly<{
  node: string;
  /** How many samples the node trained on: a non-negative integer, the reply's weight. */
  sampleSize: number;
  params: TensorSet;
  metrics: Readonly<Record<string, number>>;
}>;

/** An aggregator's state between rounds: plain data that the value codec can record. */
export type AggregatorState = Readonly<Record<string, unknown>>;

export type AggregatorSpec = Readonly<{ name: string; config: Readonly<Record<string, unknown>> }>;

/** What an aggregator knows of the round besides the replies. */
export type AggregateContext = Readonly<{
  round: number;
  /** The global parameters the nodes trained from (the previous round's aggregate). */
  params: TensorSet;
}>;

export interface Aggregator extends AggregatorSpec {
  /**
   * The version of the state this aggregator reads and returns, recorded with every round. Default 1.
   * Raise it when the state's shape changes, and give `upgradeState` for the older versions.
   */
  readonly stateVersion?: number;
  /** A state recorded at version `from` (lower than `stateVersion`), converted to `stateVersion`. */
  upgradeState?(state: AggregatorState, from: number): AggregatorState;
  /** The state before the first round. */
  initialState(): AggregatorState;
  /**
   * The next global parameters and state. It must depend only on its arguments (not on the order of
   * `replies`, not on time or randomness), so that a resumed experiment aggregates bit-identically.
   */
  aggregate(
    replies: readonly NodeReply[],
    state: AggregatorState,
    context: AggregateContext,
  ): { params: TensorSet; state: AggregatorState };
}

export type AggregatorFactory = (config: Readonly<Record<string, unknown>>) => Aggregator;

const FED_AVG = 'fedAvg';

/**
 * Federated averaging (McMahan et al. 2017): each tensor is the average of the nodes' tensors
 * weighted by sample size. Every output tensor has the dtype and shape of the inputs.
 *
 * - Floating-point tensors: Σ sampleSize·x / Σ sampleSize in float64, then stored in the tensor's
 *   dtype (float32, float16 and bfloat16 round to nearest, ties to even: float16.ts). Nodes with
 *   sample size 0 are left out of the sum. For float32 (and 16-bit float) inputs every product and
 *   partial sum is exact while the total sample size is under 2^29, so nodes that agree
 *   on a value get exactly that value back.
 * - Integer tensors (counters such as batch-norm's `num_batches_tracked`): the exact weighted
 *   average, rounded to the nearest integer, ties to even. It lies between the inputs, so it fits
 *   the dtype.
 * - `bool` tensors have no average: `NotAverageableError` names the tensor.
 * - Replies are summed in node-id order, so the result is bit-identical whatever order they
 *   arrived in; output tensors follow the tensor order of the first node in that order.
 *
 * Throws `NoRepliesError`, `MismatchedTensorsError`, `ZeroSampleSizeError`, and `InvalidArgumentError`
 * for a node replying twice, a sample size that is not a non-negative integer, or a tensor whose
 * data does not fit its shape. The state is `{}` and is returned unchanged.
 */
export function fedAvg(): Aggregator {
  return {
    name: FED_AVG,
    config: {},
    initialState: () => ({}),
    aggregate(replies, state) {
      return { params: weightedAverage(FED_AVG, replies), state };
    },
  };
}

export const BUILTIN_AGGREGATORS: Readonly<Record<string, AggregatorFactory>> = {
  [FED_AVG]: (config) => {
    checkNoConfig(FED_AVG, config);
    return fedAvg();
  },
};

/**
 * The aggregator recorded as `{ name, config }`: a built-in one, or one of `custom` (which take
 * precedence). Throws `UnknownAggregatorError` for a name neither knows.
 */
export function aggregatorFrom(
  spec: AggregatorSpec,
  custom: Readonly<Record<string, AggregatorFactory>> = {},
): Aggregator {
  const factory = Object.hasOwn(custom, spec.name)
    ? custom[spec.name]
    : Object.hasOwn(BUILTIN_AGGREGATORS, spec.name)
      ? BUILTIN_AGGREGATORS[spec.name]
      : undefined;
  if (factory === undefined) {
    throw new UnknownAggregatorError(spec.name, [
      ...new Set([...Object.keys(BUILTIN_AGGREGATORS), ...Object.keys(custom)]),
    ]);
  }
  return factory(spec.config);
}

/**
 * Each metric reported by every reply, averaged with sample sizes as weights (in node-id order).
 * Metrics that some reply lacks are left out; with a total sample size of 0 the result is `{}`.
 */
export function weightedMetrics(replies: readonly NodeReply[]): Record<string, number> {
  const sorted = sortByNode(replies);
  const total = sorted.reduce((sum, { sampleSize }) => sum + sampleSize, 0);
  const first = sorted[0];
  if (first === undefined || total === 0) return {};
  const names = Object.keys(first.metrics).filter((name) =>
    sorted.every(({ metrics }) => Object.hasOwn(metrics, name)),
  );
  return Object.fromEntries(
    names.map((name) => [
      name,
      sorted.reduce((sum, { sampleSize, metrics }) => (sampleSize === 0 ? sum : sum + sampleSize * metrics[name]!), 0) /
        total,
    ]),
  );
}

function weightedAverage(aggregator: string, replies: readonly NodeReply[]): TensorSet {
  const sorted = sortByNode(replies);
  const reference = sorted[0];
  if (reference === undefined) throw new NoRepliesError(aggregator);
  sorted.forEach((reply, i) => checkReply(reply, sorted[i - 1]));
  for (const reply of sorted.slice(1)) checkSameStructure(aggregator, reference, reply);
  for (const [name, tensor] of Object.entries(reference.params)) {
    if (tensor.dtype === 'bool') throw new NotAverageableError(aggregator, name, tensor.dtype);
  }
  const total = sorted.reduce((sum, { sampleSize }) => sum + sampleSize, 0);
  if (total === 0)
    throw new ZeroSampleSizeError(
      aggregator,
      sorted.map(({ node }) => node),
    );
  const weighted = sorted.filter(({ sampleSize }) => sampleSize > 0);
  return Object.fromEntries(
    Object.entries(reference.params).map(([name, tensor]) => [
      name,
      averageTensor(
        tensor,
        weighted.map(({ sampleSize, params }) => ({ weight: sampleSize, tensor: params[name]! })),
        total,
      ),
    ]),
  );
}

type Weighted = { weight: number; tensor: Tensor };

function averageTensor(reference: Tensor, inputs: readonly Weighted[], total: number): Tensor {
  const { dtype } = reference;
  const shape = [...reference.shape];
  const length = reference.data.length;
  switch (dtype) {
    case 'float64':
      return { dtype, shape, data: floatAverage(inputs, length, total) };
    case 'float32':
      return { dtype, shape, data: Float32Array.from(floatAverage(inputs, length, total)) };
    case 'float16':
    case 'bfloat16':
      return { dtype, shape, data: numbersToHalfBits(floatAverage(inputs, length, total, dtype), dtype) };
    case 'int64':
      return { dtype, shape, data: BigInt64Array.from(integerAverage(inputs, length, total)) };
    case 'uint64':
      return { dtype, shape, data: BigUint64Array.from(integerAverage(inputs, length, total)) };
    case 'int32':
    case 'int16':
    case 'int8':
    case 'uint32':
    case 'uint16':
    case 'uint8': {
      const ctor = DTYPES[dtype].ctor as unknown as { from(values: bigint[], map: (v: bigint) => number): never };
      return { dtype, shape, data: ctor.from(integerAverage(inputs, length, total), Number) };
    }
    case 'bool':
      // Refused before averaging (weightedAverage); kept for an exhaustive switch.
      throw new TypeError('bool tensors have no average');
  }
}

function floatAverage(
  inputs: readonly Weighted[],
  length: number,
  total: number,
  half?: 'float16' | 'bfloat16',
): Float64Array {
  const sum = new Float64Array(length);
  for (const { weight, tensor } of inputs) {
    const data = half
      ? halfBitsToNumbers(tensor.data as Uint16Array, half)
      : (tensor.data as Float32Array | Float64Array);
    for (let i = 0; i < length; i++) sum[i]! += weight * data[i]!;
  }
  for (let i = 0; i < length; i++) sum[i]! /= total;
  return sum;
}

function integerAverage(inputs: readonly Weighted[], length: number, total: number): bigint[] {
  const sum = Array.from({ length }, () => 0n);
  for (const { weight, tensor } of inputs) {
    const w = BigInt(weight);
    const data = tensor.data as ArrayLike<number | bigint>;
    for (let i = 0; i < length; i++) sum[i]! += w * BigInt(data[i]!);
  }
  const divisor = BigInt(total);
  return sum.map((s) => divideRoundHalfEven(s, divisor));
}

/** `numerator / divisor` rounded to the nearest integer, ties to even; `divisor` > 0. */
function divideRoundHalfEven(numerator: bigint, divisor: bigint): bigint {
  let quotient = numerator / divisor;
  let remainder = numerator % divisor;
  if (remainder < 0n) {
    quotient -= 1n;
    remainder += divisor;
  }
  const twice = 2n * remainder;
  return twice > divisor || (twice === divisor && quotient % 2n !== 0n) ? quotient + 1n : quotient;
}

function checkReply(reply: NodeReply, previous: NodeReply | undefined): void {
  const at = `replies[node ${JSON.stringify(reply.node)}]`;
  if (typeof reply.node !== 'string' || reply.node === '') {
    throw new InvalidArgumentError('replies[].node', 'must be a non-empty string', reply.node);
  }
  if (previous?.node === reply.node) {
    throw new InvalidArgumentError(
      'replies',
      `must hold one reply per node, but node ${JSON.stringify(reply.node)} replied twice`,
      reply.node,
    );
  }
  if (!Number.isSafeInteger(reply.sampleSize) || reply.sampleSize < 0) {
    throw new InvalidArgumentError(`${at}.sampleSize`, 'must be a non-negative integer', reply.sampleSize);
  }
  for (const [name, tensor] of Object.entries(reply.params)) {
    if (!isTensorDType(tensor.dtype) || !isDataOf(tensor.dtype, tensor.data)) {
      throw new InvalidArgumentError(
        `${at}.params[${JSON.stringify(name)}]`,
        `must have a known dtype and data of its typed array (${Object.entries(DTYPES)
          .map(([d, { ctor }]) => `${d}: ${ctor.name}`)
          .join(', ')})`,
        { dtype: tensor.dtype, data: (tensor.data as object)?.constructor?.name },
      );
    }
    const elements = tensor.shape.reduce((product, dim) => product * dim, 1);
    if (tensor.data.length !== elements) {
      throw new InvalidArgumentError(
        `${at}.params[${JSON.stringify(name)}]`,
        `must have data.length equal to the product of its shape ${formatValue(tensor.shape)} (${elements})`,
        tensor.data.length,
      );
    }
  }
}

function checkSameStructure(aggregator: string, reference: NodeReply, reply: NodeReply): void {
  const mismatch = (tensor: string, kind: TensorMismatchKind, expected: unknown, received: unknown) =>
    new MismatchedTensorsError(aggregator, reply.node, tensor, kind, reference.node, expected, received);
  for (const [name, expected] of Object.entries(reference.params)) {
    if (!Object.hasOwn(reply.params, name)) throw mismatch(name, 'missing', undefined, undefined);
    const received = reply.params[name]!;
    if (received.dtype !== expected.dtype) throw mismatch(name, 'dtype', expected.dtype, received.dtype);
    if (!sameShape(received.shape, expected.shape))
      throw mismatch(name, 'shape', [...expected.shape], [...received.shape]);
  }
  for (const name of Object.keys(reply.params)) {
    if (!Object.hasOwn(reference.params, name)) throw mismatch(name, 'unexpected', undefined, undefined);
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((dim, i) => dim === b[i]);
}

/** Replies in node-id order by UTF-16 code units (never locale order, which differs between hosts). */
function sortByNode(replies: readonly NodeReply[]): NodeReply[] {
  return [...replies].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
}

function checkNoConfig(name: string, config: Readonly<Record<string, unknown>>): void {
  if (typeof config !== 'object' || config === null || Object.keys(config).length > 0) {
    throw new InvalidArgumentError(`${name} config`, 'must be {} (this aggregator takes no options)', config);
  }
}
