/**
 * Aggregators combine the parameters the nodes of a round replied with into the next global
 * parameters. An aggregator is named and configured by plain data, which an experiment records so
 * that a resumed experiment rebuilds the same aggregator (`aggregatorFrom`); its state between
 * rounds is plain data too. Aggregation is pure and does not depend on the order replies arrived in.
 *
 * An aggregator either takes every reply at once (`aggregate`), or also folds them one at a time
 * (`begin`, then `fold` per reply in node-id order, then `finish`): a round then holds one reply at a
 * time instead of all of them (ARCHITECTURE.md, "Streaming aggregation"). FedAvg does both.
 */
import { InvalidArgumentError, formatValue } from '../errors.ts';
import type { Tensor, TensorSet } from '../codec/tensors.ts';
import { isDataOf, isTensorDType, DTYPES, type TensorDType } from '../codec/dtypes.ts';
import { halfBitsToNumbers, numbersToHalfBits } from '../codec/float16.ts';
import {
  MismatchedTensorsError,
  NoRepliesError,
  NotAverageableError,
  UnknownAggregatorError,
  ZeroSampleSizeError,
  type TensorMismatchKind,
} from './errors.ts';

/**
 * A reply's parameters as the round stored them (a safetensors file in the blob store): their
 * structure, and their elements read a slice at a time, so that aggregating never holds a reply.
 */
export interface StoredTensors {
  /** Each tensor's name, dtype and shape, in the stored file's order (the order decoding gives). */
  readonly tensors: ReadonlyArray<readonly [name: string, Pick<Tensor, 'dtype' | 'shape'>]>;
  /**
   * Elements `start` (inclusive) to `end` (exclusive) of tensor `name`, row-major, as a fresh typed
   * array of its dtype (`Tensor['data']`: 16-bit floats as their bits).
   */
  read(name: string, start: number, end: number): Promise<Tensor['data']>;
}

/** A node's reply whose parameters are stored (`Aggregator.aggregateStored`). */
export type StoredNodeReply = Readonly<{
  node: string;
  sampleSize: number;
  params: StoredTensors;
  metrics: Readonly<Record<string, number>>;
}>;

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
  /**
   * Optional: the same aggregation, streamed. When present, a round calls it once with what it would
   * pass to `aggregate`, folds each reply into the returned run as soon as every reply before it in
   * node-id order is in (a reply arriving early waits for those), and takes `finish()` as the
   * round's result; it never calls `aggregate`. An aggregator that needs every reply at once (a
   * median, a trimmed mean, per-node state) leaves it out and gets them all in `aggregate`.
   */
  begin?(state: AggregatorState, context: AggregateContext): AggregationRun;
  /**
   * Optional: the same aggregation from the replies as stored, read a slice of elements at a time.
   * When present, a round stores each reply as it arrives, holds none of them, and calls this once
   * every reply is in (instead of `begin` or `aggregate`). It must give, bit for bit, what
   * `aggregate` gives for the same replies, and throw the same errors.
   */
  aggregateStored?(
    replies: readonly StoredNodeReply[],
    state: AggregatorState,
    context: AggregateContext,
  ): Promise<{ params: TensorSet; state: AggregatorState }>;
}

/**
 * One aggregation fed a reply at a time (`Aggregator.begin`). The round calls `fold` once per reply
 * in node-id order (`compareNodeIds`: UTF-16 code units), then `finish` once.
 */
export interface AggregationRun {
  /**
   * Adds one reply. It must not keep the reply's tensors (nor views of them): the round lets them
   * go once it returns. It may throw the errors `aggregate` would for this reply.
   */
  fold(reply: NodeReply): void;
  /** The next global parameters and state, bit for bit what `aggregate` gives for the folded replies. */
  finish(): { params: TensorSet; state: AggregatorState };
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
 * - Streamed (`begin`): one float64 (or, for integer tensors, bigint) sum per element, to which
 *   each reply is added as it is folded, in that same order: the same operations as `aggregate`,
 *   so the same bits, while only the sums and the reply being folded are held.
 * - From the stored replies (`aggregateStored`): the same sums, taken `STORED_SLICE` elements at a
 *   time (each element's terms still added in node-id order, then divided, then stored): the same
 *   operations element by element, so the same bits, while only the output, one slice of the sums
 *   and one slice of a reply are held.
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
      const run = weightedAverageRun(FED_AVG);
      for (const reply of sortByNode(replies)) run.fold(reply);
      return { params: run.finish(), state };
    },
    begin(state) {
      const run = weightedAverageRun(FED_AVG);
      return { fold: (reply) => run.fold(reply), finish: () => ({ params: run.finish(), state }) };
    },
    async aggregateStored(replies, state) {
      return { params: await weightedAverageStored(FED_AVG, replies), state };
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
 * Whether a metric is a count (of rows, samples, anything): named `rows`, `count` or `samples`, or
 * ending in `Rows`, `Count`, `Samples` (`heldOutRows`) or `_rows`, `_count`, `_samples`. A round
 * reports a count's sum over its nodes; an average of counts means nothing.
 */
export function isCountMetric(name: string): boolean {
  return /^(?:rows|count|samples)$|(?:Rows|Count|Samples)$|_(?:rows|count|samples)$/.test(name);
}

/**
 * A round's metrics from its replies (in node-id order): each metric reported by every reply, the
 * average weighted by sample sizes, or, for a count (`isCountMetric`: `heldOutRows`), the sum.
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
      isCountMetric(name)
        ? sorted.reduce((sum, { metrics }) => sum + metrics[name]!, 0)
        : sorted.reduce(
            (sum, { sampleSize, metrics }) => (sampleSize === 0 ? sum : sum + sampleSize * metrics[name]!),
            0,
          ) / total,
    ]),
  );
}

type Structure = ReadonlyArray<readonly [name: string, Pick<Tensor, 'dtype' | 'shape'>]>;

/**
 * The checks of a weighted average over replies given one at a time in node-id order: `check` each
 * reply (node id, order, sample size, with `data` each tensor's data; its tensors, dtypes and shapes
 * against the first reply's, which gives their order) and returns the structure; `end` checks there
 * was a reply, no bool tensor and a positive total, and returns the structure and the total.
 */
function replyChecks(aggregator: string) {
  let reference: { node: string; structure: Structure; params: Readonly<Record<string, unknown>> } | undefined;
  let previous: NodeReply | undefined;
  const nodes: string[] = [];
  let total = 0;
  return {
    check(reply: NodeReply, data: boolean): Structure {
      checkReply(reply, previous, data);
      if (previous !== undefined && compareNodeIds(previous.node, reply.node) > 0) {
        throw new InvalidArgumentError(
          'replies',
          `must be folded in node-id order, but node ${JSON.stringify(reply.node)} came after ` +
            `node ${JSON.stringify(previous.node)}`,
          reply.node,
        );
      }
      if (reference === undefined) {
        const structure: Structure = Object.entries(reply.params).map(([name, { dtype, shape }]) => [
          name,
          { dtype, shape: [...shape] },
        ]);
        reference = { node: reply.node, structure, params: Object.fromEntries(structure) };
      } else {
        checkSameStructure(aggregator, reference.node, reference.structure, reference.params, reply);
      }
      previous = { node: reply.node, sampleSize: reply.sampleSize, params: {}, metrics: {} };
      nodes.push(reply.node);
      total += reply.sampleSize;
      return reference.structure;
    },
    end(): { structure: Structure; total: number } {
      if (reference === undefined) throw new NoRepliesError(aggregator);
      for (const [name, { dtype }] of reference.structure) {
        if (dtype === 'bool') throw new NotAverageableError(aggregator, name, dtype);
      }
      if (total === 0) throw new ZeroSampleSizeError(aggregator, nodes);
      return { structure: reference.structure, total };
    },
  };
}

/**
 * The sample-size weighted average, a reply at a time: `fold` checks a reply (against the first
 * folded, which gives the tensors' order, dtypes and shapes) and adds `sampleSize · x` to each
 * element's sum; `finish` divides by the total and stores each tensor in its dtype. Replies must
 * come in node-id order: the sums then take their terms in the order the batch path always used.
 */
function weightedAverageRun(aggregator: string): { fold(reply: NodeReply): void; finish(): TensorSet } {
  const replies = replyChecks(aggregator);
  const sums = new Map<string, Float64Array | bigint[]>();
  let finished = false;
  return {
    fold(reply) {
      if (finished) throw new InvalidArgumentError('replies', 'cannot be folded after finish()', reply?.node);
      const structure = replies.check(reply, true);
      const weight = reply.sampleSize;
      if (weight === 0 || structure.some(([, { dtype }]) => dtype === 'bool')) return;
      for (const [name, { dtype }] of structure) {
        const tensor = reply.params[name]!;
        const length = tensor.data.length;
        if (isFloat(dtype)) {
          let sum = sums.get(name) as Float64Array | undefined;
          if (sum === undefined) sums.set(name, (sum = new Float64Array(length)));
          addFloat(sum, weight, tensor, dtype);
        } else {
          let sum = sums.get(name) as bigint[] | undefined;
          if (sum === undefined) sums.set(name, (sum = Array.from({ length }, () => 0n)));
          const w = BigInt(weight);
          const data = tensor.data as ArrayLike<number | bigint>;
          for (let i = 0; i < length; i++) sum[i]! += w * BigInt(data[i]!);
        }
      }
    },
    finish() {
      if (finished) throw new InvalidArgumentError('replies', 'finish() was already called', undefined);
      finished = true;
      const { structure, total } = replies.end();
      const out: [string, Tensor][] = [];
      for (const [name, tensor] of structure) {
        out.push([name, averageTensor(tensor, sums.get(name)!, total)]);
        // Each sum goes as soon as its tensor is out: the round never holds all sums and all outputs.
        sums.delete(name);
      }
      return Object.fromEntries(out);
    },
  };
}

/** Elements of a tensor aggregated at a time from stored replies: 2 MiB of float64 sums. */
export const STORED_SLICE = 1 << 18;

/**
 * `weightedAverageRun` over stored replies, a slice of every tensor at a time: the checks of `fold`
 * (each reply in node-id order) and of `finish`, in their order, before any element is read; then,
 * per tensor and per slice, each weighted reply's slice added in node-id order to float64 (bigint)
 * sums that are averaged into the output as `finish` averages the whole tensor.
 */
async function weightedAverageStored(aggregator: string, replies: readonly StoredNodeReply[]): Promise<TensorSet> {
  const sorted = [...replies].sort((a, b) => compareNodeIds(a.node, b.node));
  const checks = replyChecks(aggregator);
  for (const { node, sampleSize, params } of sorted) {
    // The header's tensors stand for the data (a stored file's data fits its header).
    checks.check(
      { node, sampleSize, params: Object.fromEntries(params.tensors) as unknown as TensorSet, metrics: {} },
      false,
    );
  }
  const { structure, total } = checks.end();
  const weighted = sorted.filter(({ sampleSize }) => sampleSize > 0);
  const out: [string, Tensor][] = [];
  for (const [name, { dtype, shape }] of structure) {
    const length = shape.reduce((product, dim) => product * dim, 1);
    const data = new DTYPES[dtype].ctor(new ArrayBuffer(length * DTYPES[dtype].itemBytes), 0, length);
    for (let start = 0; start < length; start += STORED_SLICE) {
      const end = Math.min(length, start + STORED_SLICE);
      let sum: Float64Array | bigint[];
      if (isFloat(dtype)) {
        sum = new Float64Array(end - start);
        for (const reply of weighted) {
          const slice = { dtype, shape: [end - start], data: await reply.params.read(name, start, end) } as Tensor;
          addFloat(sum, reply.sampleSize, slice, dtype);
        }
      } else {
        sum = Array.from({ length: end - start }, () => 0n);
        for (const reply of weighted) {
          const w = BigInt(reply.sampleSize);
          const slice = (await reply.params.read(name, start, end)) as ArrayLike<number | bigint>;
          for (let i = 0; i < slice.length; i++) sum[i]! += w * BigInt(slice[i]!);
        }
      }
      const averaged = averageTensor({ dtype, shape: [end - start] }, sum, total).data;
      (data as unknown as { set(values: ArrayLike<number | bigint>, offset: number): void }).set(averaged, start);
    }
    out.push([name, { dtype, shape: [...shape], data } as Tensor]);
  }
  return Object.fromEntries(out);
}

function isFloat(dtype: TensorDType): dtype is 'float64' | 'float32' | 'float16' | 'bfloat16' {
  return dtype === 'float64' || dtype === 'float32' || dtype === 'float16' || dtype === 'bfloat16';
}

/** `sum[i] += weight · x[i]` in float64, element by element (16-bit floats widened exactly). */
function addFloat(sum: Float64Array, weight: number, tensor: Tensor, dtype: TensorDType): void {
  const length = sum.length;
  if (dtype === 'float16' || dtype === 'bfloat16') {
    const bits = tensor.data as Uint16Array;
    // Widened a slice at a time: the same values as widening the whole tensor, without its copy.
    for (let from = 0; from < length; from += HALF_SLICE) {
      const data = halfBitsToNumbers(bits.subarray(from, Math.min(length, from + HALF_SLICE)), dtype);
      for (let i = 0; i < data.length; i++) sum[from + i]! += weight * data[i]!;
    }
    return;
  }
  const data = tensor.data as Float32Array | Float64Array;
  for (let i = 0; i < length; i++) sum[i]! += weight * data[i]!;
}

const HALF_SLICE = 1 << 16;

function averageTensor(
  reference: Pick<Tensor, 'dtype' | 'shape'>,
  sum: Float64Array | bigint[],
  total: number,
): Tensor {
  const { dtype } = reference;
  const shape = [...reference.shape];
  switch (dtype) {
    case 'float64':
      return { dtype, shape, data: floatAverage(sum as Float64Array, total) };
    case 'float32':
      return { dtype, shape, data: Float32Array.from(floatAverage(sum as Float64Array, total)) };
    case 'float16':
    case 'bfloat16':
      return { dtype, shape, data: numbersToHalfBits(floatAverage(sum as Float64Array, total), dtype) };
    case 'int64':
      return { dtype, shape, data: BigInt64Array.from(integerAverage(sum as bigint[], total)) };
    case 'uint64':
      return { dtype, shape, data: BigUint64Array.from(integerAverage(sum as bigint[], total)) };
    case 'int32':
    case 'int16':
    case 'int8':
    case 'uint32':
    case 'uint16':
    case 'uint8': {
      const ctor = DTYPES[dtype].ctor as unknown as { from(values: bigint[], map: (v: bigint) => number): never };
      return { dtype, shape, data: ctor.from(integerAverage(sum as bigint[], total), Number) };
    }
    case 'bool':
      // Refused before averaging (finish); kept for an exhaustive switch.
      throw new TypeError('bool tensors have no average');
  }
}

/** The sums divided by `total`, in place. */
function floatAverage(sum: Float64Array, total: number): Float64Array {
  for (let i = 0; i < sum.length; i++) sum[i]! /= total;
  return sum;
}

function integerAverage(sum: readonly bigint[], total: number): bigint[] {
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

/** A reply's node and sample size (and, with `data`, each tensor's data against its dtype and shape). */
function checkReply(reply: NodeReply, previous: NodeReply | undefined, data = true): void {
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
  if (!data) return;
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

function checkSameStructure(
  aggregator: string,
  referenceNode: string,
  structure: Structure,
  referenceParams: Readonly<Record<string, unknown>>,
  reply: NodeReply,
): void {
  const mismatch = (tensor: string, kind: TensorMismatchKind, expected: unknown, received: unknown) =>
    new MismatchedTensorsError(aggregator, reply.node, tensor, kind, referenceNode, expected, received);
  for (const [name, expected] of structure) {
    if (!Object.hasOwn(reply.params, name)) throw mismatch(name, 'missing', undefined, undefined);
    const received = reply.params[name]!;
    if (received.dtype !== expected.dtype) throw mismatch(name, 'dtype', expected.dtype, received.dtype);
    if (!sameShape(received.shape, expected.shape))
      throw mismatch(name, 'shape', [...expected.shape], [...received.shape]);
  }
  for (const name of Object.keys(reply.params)) {
    if (!Object.hasOwn(referenceParams, name)) throw mismatch(name, 'unexpected', undefined, undefined);
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((dim, i) => dim === b[i]);
}

/** Node ids in the order replies are summed: UTF-16 code units (never locale order, which differs between hosts). */
export function compareNodeIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Replies in node-id order (`compareNodeIds`). */
function sortByNode(replies: readonly NodeReply[]): NodeReply[] {
  return [...replies].sort((a, b) => compareNodeIds(a.node, b.node));
}

function checkNoConfig(name: string, config: Readonly<Record<string, unknown>>): void {
  if (typeof config !== 'object' || config === null || Object.keys(config).length > 0) {
    throw new InvalidArgumentError(`${name} config`, 'must be {} (this aggregator takes no options)', config);
  }
}
