/**
 * The heart-disease federation end to end through the Experiment facade on a real root: four
 * hospital nodes, 10 rounds of FedAvg with the example's definition, held-out accuracy above a
 * measured floor, and bit-identical parameters from two runs.
 */
import test, { type ExecutionContext } from 'ava';
import type { TensorSet } from '../../src/codec/tensors.ts';
import { Experiment } from '../../src/federated/experiment.ts';
import { heartDiseaseFederation } from '../../examples/heart-disease/data.ts';
import { definition, SEED } from '../../examples/heart-disease/experiment.ts';
import { evaluateHeldOut } from '../../examples/heart-disease/plan.ts';
import { WORKSPACE } from '../support/example-experiment.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const federation = heartDiseaseFederation({ seed: SEED });

async function run(t: ExecutionContext): Promise<TensorSet> {
  const exp = await Experiment.create({ ...definition, federation, root: tempDir(), workspace: WORKSPACE });
  t.is(await exp.run(), 10);
  const params = await exp.parameters();
  await exp.close();
  return params;
}

const bytes = (params: TensorSet) =>
  Object.keys(params)
    .sort()
    .map((name) => [name, params[name]!.dtype, params[name]!.shape, Buffer.from(params[name]!.data.buffer)]);

test('10 rounds over the four hospitals: pooled held-out accuracy above 0.70, the same bits twice', async (t) => {
  t.is(definition.roundLimit, 10);
  const first = await run(t);
  const second = await run(t);
  t.like(first.weights, { dtype: 'float64', shape: [13] });
  t.like(first.bias, { dtype: 'float64', shape: [1] });
  t.deepEqual(bytes(first), bytes(second), 'bit-identical parameters');

  const { hospitals, pooled } = evaluateHeldOut(first, federation);
  t.log(hospitals.map((h) => `${h.hospital} ${h.accuracy.toFixed(4)} (${h.correct}/${h.rows})`).join(', '));
  t.log(`pooled ${pooled.accuracy.toFixed(4)} (${pooled.correct}/${pooled.rows})`);
  // Measured 0.7892 (146/185) with this seed and definition; above 0.70 is 130 or more: 16 patients of margin.
  t.true(pooled.accuracy > 0.7, `pooled held-out accuracy ${pooled.accuracy}`);
  t.deepEqual(evaluateHeldOut(second, federation), { hospitals, pooled });
});
