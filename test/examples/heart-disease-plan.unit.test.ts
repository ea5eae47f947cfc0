/**
 * The heart-disease training plan (examples/heart-disease/plan.ts): float64 parameters, gradient
 * descent checked by hand on one step, determinism given the RNG, the held-out evaluation's
 * pooled accuracy weighted by held-out sizes, and the held-out metrics a node reports.
 */
import test from 'ava';
import { InvalidArgumentError } from '../../src/errors.ts';
import { deriveRng } from '../../src/federated/rng.ts';
import type { TensorSet } from '../../src/codec/tensors.ts';
import { heartDiseaseFederation, type HeartDiseaseNodeData } from '../../examples/heart-disease/data.ts';
import { evaluateHeldOut, evaluateSplit, heartDiseasePlan } from '../../examples/heart-disease/plan.ts';

const federation = heartDiseaseFederation({ seed: 4 });
const cleveland = federation.nodes[0]!.datasets[0]!.data;
const bits = (params: TensorSet) =>
  Object.entries(params).map(([name, t]) => [name, t.dtype, t.shape, Buffer.from((t.data as Float64Array).buffer)]);

test('init: float64 weights [13] and bias [1], zeros unless initScale', (t) => {
  const params = heartDiseasePlan.init({}, deriveRng(1, 'init'));
  t.like(params.weights, { dtype: 'float64', shape: [13] });
  t.like(params.bias, { dtype: 'float64', shape: [1] });
  t.deepEqual([...(params.weights!.data as Float64Array)], new Array(13).fill(0));
  const drawn = heartDiseasePlan.init({ initScale: 0.1 }, deriveRng(1, 'init'));
  t.deepEqual(bits(drawn), bits(heartDiseasePlan.init({ initScale: 0.1 }, deriveRng(1, 'init'))));
  t.true([...(drawn.weights!.data as Float64Array)].some((w) => w !== 0));
});

test('one full-batch step, by hand: w -= lr × mean(error × x), b -= lr × mean(error)', (t) => {
  // Two patients, one feature: x = 1 (disease), x = -1 (none). From zeros, sigmoid(0) = 0.5, so the
  // errors are -0.5 and 0.5: the weight's gradient is (-0.5 × 1 + 0.5 × -1) / 2 = -0.5, the bias's 0.
  const data = { train: { rows: 2, columns: 1, x: Float64Array.of(1, -1), y: Uint8Array.of(1, 0) } };
  const params = heartDiseasePlan.init({ columns: 1 }, deriveRng(1, 'init'));
  const result = heartDiseasePlan.train(
    params,
    data as unknown as HeartDiseaseNodeData,
    { learningRate: 0.1 },
    deriveRng(1),
  );
  t.false(result instanceof Promise);
  const { params: trained, sampleSize, metrics } = result as Awaited<typeof result>;
  t.deepEqual([...(trained.weights!.data as Float64Array)], [0.05]);
  t.deepEqual([...(trained.bias!.data as Float64Array)], [0]);
  t.is(sampleSize, 2);
  t.is(metrics.accuracy, 1);
  t.is(metrics.loss, Math.log1p(Math.exp(-0.05)));
});

test('full batch draws nothing from the RNG; mini-batches draw their order from it', async (t) => {
  const params = heartDiseasePlan.init({}, deriveRng(1, 'init'));
  const train = async (rng: number, args: object) =>
    bits((await heartDiseasePlan.train(params, cleveland, { epochs: 3, ...args }, deriveRng(rng))).params);
  t.deepEqual(await train(1, {}), await train(2, {}));
  t.deepEqual(await train(1, { batchSize: 16 }), await train(1, { batchSize: 16 }));
  t.notDeepEqual(await train(1, { batchSize: 16 }), await train(2, { batchSize: 16 }));
  const result = await heartDiseasePlan.train(params, cleveland, {}, deriveRng(1));
  t.is(result.sampleSize, cleveland.train.rows, 'the node is weighted by its training patients');
});

test('parameters of another dtype or size, and bad training arguments, are refused by name', async (t) => {
  const float32: TensorSet = {
    weights: { dtype: 'float32', shape: [13], data: new Float32Array(13) },
    bias: { dtype: 'float32', shape: [1], data: new Float32Array(1) },
  };
  await t.throwsAsync(async () => heartDiseasePlan.train(float32, cleveland, {}, deriveRng(1)), {
    instanceOf: InvalidArgumentError,
    message: /params\.weights must be a float64 tensor of shape \[13\]/,
  });
  const params = heartDiseasePlan.init({ columns: 5 }, deriveRng(1, 'init'));
  t.throws(() => evaluateSplit(params, cleveland.test), { message: /modelArgs\.columns/ });
  for (const args of [{ epochs: 0 }, { learningRate: -1 }, { batchSize: 1.5 }, { l2: NaN }]) {
    await t.throwsAsync(
      async () => heartDiseasePlan.train(heartDiseasePlan.init({}, deriveRng(1)), cleveland, args, deriveRng(1)),
      { instanceOf: InvalidArgumentError, message: new RegExp(`trainingArgs\\.${Object.keys(args)[0]}`) },
    );
  }
});

test('held-out evaluation: per hospital in node-id order, pooled weighted by held-out sizes', async (t) => {
  const { params } = await heartDiseasePlan.train(
    heartDiseasePlan.init({}, deriveRng(1)),
    cleveland,
    { epochs: 20, learningRate: 0.5 },
    deriveRng(1),
  );
  const { hospitals, pooled } = evaluateHeldOut(params, federation);
  t.deepEqual(
    hospitals.map(({ node, rows }) => [node, rows]),
    [
      ['cleveland', 61],
      ['hungarian', 59],
      ['switzerland', 25],
      ['va', 40],
    ],
  );
  for (const h of hospitals) {
    const data = federation.nodes.find(({ id }) => id === h.node)!.datasets[0]!.data;
    t.like(h, evaluateSplit(params, data.test));
  }
  t.is(pooled.rows, 185);
  t.is(
    pooled.correct,
    hospitals.reduce((sum, h) => sum + h.correct, 0),
  );
  const weighted = hospitals.reduce((sum, h) => sum + h.accuracy * h.rows, 0) / 185;
  t.true(Math.abs(pooled.accuracy - weighted) < 1e-12);
  t.is(pooled.accuracy, pooled.correct / 185);
});

test('a node reports the held-out accuracy of the parameters it was sent, not of those it trained', async (t) => {
  const sent = heartDiseasePlan.init({ initScale: 0.3 }, deriveRng(2, 'init'));
  const { params: trained, metrics } = await heartDiseasePlan.train(sent, cleveland, { epochs: 3 }, deriveRng(2));
  const heldOut = evaluateSplit(sent, cleveland.test);
  t.is(metrics.heldOutAccuracy, heldOut.accuracy);
  t.is(metrics.heldOutRows, cleveland.test.rows);
  t.not(evaluateSplit(trained, cleveland.test).accuracy, heldOut.accuracy);
  t.deepEqual(Object.keys(metrics).sort(), ['accuracy', 'heldOutAccuracy', 'heldOutRows', 'loss']);
});
