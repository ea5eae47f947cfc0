/**
 * A real training plan: binary logistic regression trained by mini-batch gradient descent with L2
 * regularization. Parameters are `{ weights: float32 [columns], bias: float32 [1] }`; training works
 * in float64 and sends float32. Every random draw (initial weights, batch order) comes from the
 * given RNG, so training is deterministic.
 */
import type { Tensor, TensorSet } from '../../src/codec/tensors.ts';
import { InvalidArgumentError } from '../../src/errors.ts';
import type { TrainResult, TrainingPlan } from '../../src/federated/training-plan.ts';

/** Rows of features (row-major, already standardized) and 0/1 labels. */
export type BinaryDataset = Readonly<{ rows: number; columns: number; x: Float64Array; y: Uint8Array }>;

export type LogisticModelArgs = Readonly<{
  /** The number of features. */
  columns: number;
  /** The standard deviation of the initial weights; 0 starts from zeros. Default 0. */
  initScale?: number;
}>;

export type LogisticTrainingArgs = Readonly<{
  /** Passes over the node's data per round. Default 1. */
  epochs?: number;
  /** Rows per gradient step. Default 32. */
  batchSize?: number;
  /** Step size. Default 0.1. */
  learningRate?: number;
  /** L2 penalty on the weights (not the bias). Default 1e-3. */
  l2?: number;
}>;

export const DEFAULT_TRAINING_ARGS = { epochs: 1, batchSize: 32, learningRate: 0.1, l2: 1e-3 } as const;

export type Evaluation = { loss: number; accuracy: number };

export const logisticRegressionPlan: TrainingPlan<BinaryDataset, LogisticModelArgs, LogisticTrainingArgs> = {
  init({ columns, initScale = 0 }, rng) {
    if (!Number.isSafeInteger(columns) || columns < 1)
      throw new InvalidArgumentError('modelArgs.columns', 'must be a positive integer', columns);
    if (!(initScale >= 0))
      throw new InvalidArgumentError('modelArgs.initScale', 'must be a non-negative number', initScale);
    const weights = new Float32Array(columns);
    if (initScale > 0) for (let j = 0; j < columns; j++) weights[j] = rng.normal(0, initScale);
    return {
      weights: { dtype: 'float32', shape: [columns], data: weights },
      bias: { dtype: 'float32', shape: [1], data: new Float32Array(1) },
    };
  },

  train(params, data, trainingArgs, rng): TrainResult {
    checkData(data);
    const { epochs, batchSize, learningRate, l2 } = checkTrainingArgs(trainingArgs);
    const { rows, columns, x, y } = data;
    const [w0, b0] = readParams(params, columns);
    const w = Float64Array.from(w0);
    let b = b0;
    const gradW = new Float64Array(columns);
    const order = Array.from({ length: rows }, (_, i) => i);
    for (let epoch = 0; epoch < epochs; epoch++) {
      const shuffled = rng.shuffle(order);
      for (let start = 0; start < rows; start += batchSize) {
        const batch = shuffled.slice(start, start + batchSize);
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
      weights: { dtype: 'float32', shape: [columns], data: Float32Array.from(w) },
      bias: { dtype: 'float32', shape: [1], data: Float32Array.of(b) },
    };
    return { params: trained, sampleSize: rows, metrics: evaluateLogisticRegression(trained, data) };
  },
};

/** Mean log-loss and accuracy (threshold 0.5) of `params` on `data`. */
export function evaluateLogisticRegression(params: TensorSet, data: BinaryDataset): Evaluation {
  checkData(data);
  const { rows, columns, x, y } = data;
  const [w, b] = readParams(params, columns);
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < rows; i++) {
    const z = logit(w, b, x, i, columns);
    loss += y[i] === 1 ? softplus(-z) : softplus(z);
    if ((z >= 0 ? 1 : 0) === y[i]) correct++;
  }
  return { loss: loss / rows, accuracy: correct / rows };
}

function logit(w: Float32Array | Float64Array, b: number, x: Float64Array, row: number, columns: number): number {
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

function readParams(params: TensorSet, columns: number): [Float32Array, number] {
  const { weights, bias } = params;
  checkTensor('weights', weights, [columns]);
  checkTensor('bias', bias, [1]);
  return [weights.data as Float32Array, (bias.data as Float32Array)[0]!];
}

function checkTensor(name: string, tensor: Tensor | undefined, shape: readonly number[]): asserts tensor is Tensor {
  if (
    tensor === undefined ||
    tensor.dtype !== 'float32' ||
    tensor.shape.length !== shape.length ||
    tensor.shape.some((dim, i) => dim !== shape[i])
  ) {
    throw new InvalidArgumentError(
      `params.${name}`,
      `must be a float32 tensor of shape [${shape}] ` +
        `(the model has ${shape[0]} ${name === 'bias' ? 'bias' : 'features'})`,
      tensor === undefined ? undefined : { dtype: tensor.dtype, shape: tensor.shape },
    );
  }
}

function checkData(data: BinaryDataset): void {
  const { rows, columns, x, y } = (typeof data === 'object' && data !== null ? data : {}) as Partial<BinaryDataset>;
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
      'data',
      'must be { rows ≥ 1, columns ≥ 1, x: Float64Array of rows × columns, y: Uint8Array of rows labels 0 or 1 }',
      { rows, columns, x: x?.constructor?.name, xLength: x?.length, y: y?.constructor?.name, yLength: y?.length },
    );
  }
}

function checkTrainingArgs(args: LogisticTrainingArgs): Required<LogisticTrainingArgs> {
  const merged = {
    epochs: args.epochs ?? DEFAULT_TRAINING_ARGS.epochs,
    batchSize: args.batchSize ?? DEFAULT_TRAINING_ARGS.batchSize,
    learningRate: args.learningRate ?? DEFAULT_TRAINING_ARGS.learningRate,
    l2: args.l2 ?? DEFAULT_TRAINING_ARGS.l2,
  };
  const positiveInteger = (name: 'epochs' | 'batchSize') => {
    if (!Number.isSafeInteger(merged[name]) || merged[name] < 1) {
      throw new InvalidArgumentError(`trainingArgs.${name}`, 'must be a positive integer', merged[name]);
    }
  };
  positiveInteger('epochs');
  positiveInteger('batchSize');
  if (!(merged.learningRate > 0 && Number.isFinite(merged.learningRate))) {
    throw new InvalidArgumentError('trainingArgs.learningRate', 'must be a positive number', merged.learningRate);
  }
  if (!(merged.l2 >= 0 && Number.isFinite(merged.l2))) {
    throw new InvalidArgumentError('trainingArgs.l2', 'must be a non-negative number', merged.l2);
  }
  return merged;
}
