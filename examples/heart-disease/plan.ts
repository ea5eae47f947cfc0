/**
 * Logistic regression for the heart-disease federation (`data.ts`): parameters `{ weights: float64
 * [13], bias: float64 [1] }`, trained on the node's training patients only by gradient descent
 * (full batch by default; mini-batches in an order drawn from the round's RNG when `batchSize` is
 * given). All arithmetic is float64 in a fixed order, so the same inputs give the same bits.
 * `evaluateHeldOut` scores parameters on every hospital's held-out patients.
 *
 * A node holding held-out patients (`data.test`) also scores the parameters it was sent (the
 * global model the round starts from) on them, and reports it in its reply's metrics:
 * `heldOutAccuracy` and `heldOutRows`, so the researcher learns each hospital's held-out accuracy
 * (and, weighting by `heldOutRows`, the pooled one) without a patient leaving the node.
 */
import type { Tensor, TensorSet } from '../../src/codec/tensors.ts';
import { InvalidArgumentError } from '../../src/errors.ts';
import {
  selectDatasets,
  type Federation,
  type TrainResult,
  type TrainingPlan,
} from '../../src/federated/training-plan.ts';
import { HEART_DISEASE_FEATURES, HEART_DISEASE_TAGS, type BinarySplit, type HeartDiseaseNodeData } from './data.ts';

export type HeartDiseaseModelArgs = Readonly<{
  /** The number of features. Default 13. */
  columns?: number;
  /** The standard deviation of the initial weights; 0 starts from zeros. Default 0. */
  initScale?: number;
}>;

export type HeartDiseaseTrainingArgs = Readonly<{
  /** Passes over the node's training patients per round. Default 1. */
  epochs?: number;
  /** Step size. Default 0.1. */
  learningRate?: number;
  /** Patients per gradient step; absent, one step per epoch over all of them. */
  batchSize?: number;
  /** L2 penalty on the weights (not the bias). Default 0. */
  l2?: number;
}>;

export const DEFAULT_HEART_DISEASE_TRAINING_ARGS = { epochs: 1, learningRate: 0.1, l2: 0 } as const;

export const heartDiseasePlan: TrainingPlan<HeartDiseaseNodeData, HeartDiseaseModelArgs, HeartDiseaseTrainingArgs> = {
  init({ columns = HEART_DISEASE_FEATURES.length, initScale = 0 }, rng) {
    if (!Number.isSafeInteger(columns) || columns < 1)
      throw new InvalidArgumentError('modelArgs.columns', 'must be a positive integer', columns);
    if (!(initScale >= 0 && Number.isFinite(initScale)))
      throw new InvalidArgumentError('modelArgs.initScale', 'must be a non-negative number', initScale);
    const weights = new Float64Array(columns);
    if (initScale > 0) for (let j = 0; j < columns; j++) weights[j] = rng.normal(0, initScale);
    return {
      weights: { dtype: 'float64', shape: [columns], data: weights },
      bias: { dtype: 'float64', shape: [1], data: new Float64Array(1) },
    };
  },

  train(params, data, trainingArgs, rng): TrainResult {
    const split = checkSplit(data?.train, 'data.train');
    const heldOut = data.test === undefined ? null : evaluateSplit(params, checkSplit(data.test, 'data.test'));
    const { epochs, learningRate, batchSize, l2 } = checkTrainingArgs(trainingArgs);
    const { rows, columns, x, y } = split;
    const [w0, b0] = readParams(params, columns);
    const w = Float64Array.from(w0);
    let b = b0;
    const gradW = new Float64Array(columns);
    const all = Array.from({ length: rows }, (_, i) => i);
    const step = batchSize ?? rows;
    for (let epoch = 0; epoch < epochs; epoch++) {
      const order = batchSize === undefined ? all : rng.shuffle(all);
      for (let start = 0; start < rows; start += step) {
        const batch = order.slice(start, start + step);
        gradW.fill(0);
        let gradB = 0;
        for (const i of batch) {
          const error = sigmoid(logit(w, b, x, i, columns)) - y[i]!;
          for (let j = 0; j < columns; j++) gradW[j]! += error * x[i * columns + j]!;
          gradB += error;
        }
        for (let j = 0; j < columns; j++) w[j]! -= learningRate * (gradW[j]! / batch.length + l2 * w[j]!);
        b -= learningRate * (gradB / batch.length);
      }
    }
    const trained: TensorSet = {
      weights: { dtype: 'float64', shape: [columns], data: w },
      bias: { dtype: 'float64', shape: [1], data: Float64Array.of(b) },
    };
    const { loss, accuracy } = evaluateSplit(trained, split);
    const metrics: Record<string, number> =
      heldOut === null
        ? { loss, accuracy }
        : { loss, accuracy, heldOutAccuracy: heldOut.accuracy, heldOutRows: heldOut.rows };
    return { params: trained, sampleSize: rows, metrics };
  },
};

export type SplitEvaluation = { rows: number; correct: number; accuracy: number; loss: number };

/** Mean log-loss, and accuracy at threshold 0.5, of `params` on one split. */
export function evaluateSplit(params: TensorSet, split: BinarySplit): SplitEvaluation {
  const { rows, columns, x, y } = checkSplit(split, 'split');
  const [w, b] = readParams(params, columns);
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < rows; i++) {
    const z = logit(w, b, x, i, columns);
    loss += y[i] === 1 ? softplus(-z) : softplus(z);
    if ((z >= 0 ? 1 : 0) === y[i]) correct++;
  }
  return { rows, correct, accuracy: correct / rows, loss: loss / rows };
}

export type HeldOutEvaluation = {
  /** One per node holding a dataset with the tags, in node-id order. */
  hospitals: (SplitEvaluation & { node: string; hospital: string })[];
  /** Every held-out patient together: each hospital weighted by its held-out size. */
  pooled: SplitEvaluation;
};

/** Scores `params` on the held-out patients of every node of `federation` holding a dataset with `tags`. */
export function evaluateHeldOut(
  params: TensorSet,
  federation: Federation<HeartDiseaseNodeData>,
  tags: readonly string[] = HEART_DISEASE_TAGS,
): HeldOutEvaluation {
  const hospitals = selectDatasets(federation, tags).map(({ node, dataset }) => ({
    node,
    hospital: dataset.data.hospital,
    ...evaluateSplit(params, dataset.data.test),
  }));
  const rows = hospitals.reduce((sum, h) => sum + h.rows, 0);
  const correct = hospitals.reduce((sum, h) => sum + h.correct, 0);
  const loss = hospitals.reduce((sum, h) => sum + h.loss * h.rows, 0) / rows;
  return { hospitals, pooled: { rows, correct, accuracy: correct / rows, loss } };
}

function logit(w: Float64Array, b: number, x: Float64Array, row: number, columns: number): number {
  let z = b;
  for (let j = 0; j < columns; j++) z += w[j]! * x[row * columns + j]!;
  return z;
}

function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

/** log(1 + e^z), without overflow. */
function softplus(z: number): number {
  return Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));
}

function readParams(params: TensorSet, columns: number): [Float64Array, number] {
  const { weights, bias } = params;
  checkTensor('weights', weights, columns);
  checkTensor('bias', bias, 1);
  return [weights.data as Float64Array, (bias.data as Float64Array)[0]!];
}

function checkTensor(name: string, tensor: Tensor | undefined, length: number): asserts tensor is Tensor {
  if (tensor === undefined || tensor.dtype !== 'float64' || tensor.shape.length !== 1 || tensor.shape[0] !== length) {
    throw new InvalidArgumentError(
      `params.${name}`,
      `must be a float64 tensor of shape [${length}]` +
        (name === 'weights' ? ` (one weight per feature of the data): check modelArgs.columns` : ''),
      tensor === undefined ? undefined : { dtype: tensor.dtype, shape: tensor.shape },
    );
  }
}

function checkSplit(split: BinarySplit | undefined, name: string): BinarySplit {
  const { rows, columns, x, y } = (typeof split === 'object' && split !== null ? split : {}) as Partial<BinarySplit>;
  if (
    !Number.isSafeInteger(rows) ||
    rows! < 1 ||
    !Number.isSafeInteger(columns) ||
    columns! < 1 ||
    !(x instanceof Float64Array) ||
    x.length !== rows! * columns! ||
    !(y instanceof Uint8Array) ||
    y.length !== rows ||
    !y.every((label) => label === 0 || label === 1)
  ) {
    throw new InvalidArgumentError(
      name,
      'must be { rows ≥ 1, columns ≥ 1, x: Float64Array of rows × columns, y: Uint8Array of rows labels 0 or 1 } ' +
        '(a node of heartDiseaseFederation holds one)',
      { rows, columns, x: x?.constructor?.name, xLength: x?.length, y: y?.constructor?.name, yLength: y?.length },
    );
  }
  return split as BinarySplit;
}

function checkTrainingArgs(args: HeartDiseaseTrainingArgs): {
  epochs: number;
  learningRate: number;
  batchSize: number | undefined;
  l2: number;
} {
  const merged = {
    epochs: args.epochs ?? DEFAULT_HEART_DISEASE_TRAINING_ARGS.epochs,
    learningRate: args.learningRate ?? DEFAULT_HEART_DISEASE_TRAINING_ARGS.learningRate,
    batchSize: args.batchSize,
    l2: args.l2 ?? DEFAULT_HEART_DISEASE_TRAINING_ARGS.l2,
  };
  if (!Number.isSafeInteger(merged.epochs) || merged.epochs < 1) {
    throw new InvalidArgumentError('trainingArgs.epochs', 'must be a positive integer', merged.epochs);
  }
  if (merged.batchSize !== undefined && (!Number.isSafeInteger(merged.batchSize) || merged.batchSize < 1)) {
    throw new InvalidArgumentError('trainingArgs.batchSize', 'must be a positive integer or absent', merged.batchSize);
  }
  if (!(merged.learningRate > 0 && Number.isFinite(merged.learningRate))) {
    throw new InvalidArgumentError('trainingArgs.learningRate', 'must be a positive number', merged.learningRate);
  }
  if (!(merged.l2 >= 0 && Number.isFinite(merged.l2))) {
    throw new InvalidArgumentError('trainingArgs.l2', 'must be a non-negative number', merged.l2);
  }
  return merged;
}
