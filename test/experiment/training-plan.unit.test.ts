/** Training plans and federations: dataset selection by tags (Fed-BioMed semantics) and its typed errors. */
import test from 'ava';
import type { TensorSet } from '../../src/codec/tensors.ts';
import { InvalidArgumentError } from '../../src/errors.ts';
import { AmbiguousDatasetError, NoMatchingDatasetError } from '../../src/federated/errors.ts';
import { deriveRng } from '../../src/federated/rng.ts';
import { selectDatasets, type Federation, type TrainingPlan } from '../../src/federated/training-plan.ts';

const federation: Federation<string> = {
  nodes: [
    { id: 'node-c', datasets: [{ id: 'c-heart', tags: ['#heart', '#clinical', '#2024'], data: 'c' }] },
    {
      id: 'node-a',
      datasets: [
        { id: 'a-mnist', tags: ['#mnist'], data: 'a0' },
        { id: 'a-heart', tags: ['#clinical', '#heart'], data: 'a1' },
      ],
    },
    { id: 'node-b', datasets: [{ id: 'b-heart', tags: ['#heart'], data: 'b' }] },
    { id: 'node-d', datasets: [] },
  ],
};

test('each node contributes the dataset carrying all of the tags; the others take no part', (t) => {
  const selected = selectDatasets(federation, ['#clinical', '#heart']);
  t.deepEqual(
    selected.map(({ node, dataset }) => [node, dataset.id, dataset.data]),
    [
      ['node-a', 'a-heart', 'a1'],
      ['node-c', 'c-heart', 'c'],
    ],
  );
  t.deepEqual(
    selectDatasets(federation, ['#heart']).map(({ node }) => node),
    ['node-a', 'node-b', 'node-c'],
  );
  t.deepEqual(
    selectDatasets(federation, ['#2024']).map(({ dataset }) => dataset.id),
    ['c-heart'],
  );
});

test('the node filter restricts the experiment to the nodes it names', (t) => {
  const selected = selectDatasets(federation, ['#heart'], { nodes: ['node-c', 'node-b', 'node-unknown'] });
  t.deepEqual(
    selected.map(({ node }) => node),
    ['node-b', 'node-c'],
  );
});

test('no node with a matching dataset is a NoMatchingDatasetError listing what each node has', (t) => {
  const error = t.throws(() => selectDatasets(federation, ['#heart', '#mnist']), {
    instanceOf: NoMatchingDatasetError,
  });
  t.is(error?.code, 'NO_MATCHING_DATASET');
  t.deepEqual(error?.tags, ['#heart', '#mnist']);
  t.deepEqual(error?.nodes, [
    {
      node: 'node-a',
      datasets: [
        { id: 'a-mnist', tags: ['#mnist'] },
        { id: 'a-heart', tags: ['#clinical', '#heart'] },
      ],
    },
    { node: 'node-b', datasets: [{ id: 'b-heart', tags: ['#heart'] }] },
    { node: 'node-c', datasets: [{ id: 'c-heart', tags: ['#heart', '#clinical', '#2024'] }] },
    { node: 'node-d', datasets: [] },
  ]);
  t.regex(error!.message, /no node holds a dataset tagged with all of \["#heart","#mnist"\]/);
  t.regex(error!.message, /node "node-b" has "b-heart" \["#heart"\]/);
  t.regex(error!.message, /node "node-d" has no dataset/);
  const filtered = t.throws(() => selectDatasets(federation, ['#heart'], { nodes: ['node-z'] }), {
    instanceOf: NoMatchingDatasetError,
  });
  t.deepEqual(filtered?.nodes, []);
  t.regex(filtered!.message, /node filter names none of its nodes/);
});

test('a node with several matching datasets is an AmbiguousDatasetError', (t) => {
  const twice: Federation = {
    nodes: [
      {
        id: 'n',
        datasets: [
          { id: 'x', tags: ['#heart', '#v1'], data: 1 },
          { id: 'y', tags: ['#heart', '#v2'], data: 2 },
        ],
      },
    ],
  };
  const error = t.throws(() => selectDatasets(twice, ['#heart']), { instanceOf: AmbiguousDatasetError });
  t.is(error?.code, 'AMBIGUOUS_DATASET');
  t.like(error, { node: 'n', tags: ['#heart'], datasets: ['x', 'y'] });
  t.is(selectDatasets(twice, ['#heart', '#v2'])[0]?.dataset.id, 'y');
});

test('empty tags and repeated node ids are InvalidArgumentErrors', (t) => {
  t.like(
    t.throws(() => selectDatasets(federation, []), { instanceOf: InvalidArgumentError }),
    { argument: 'tags' },
  );
  t.like(
    t.throws(() => selectDatasets(federation, ['']), { instanceOf: InvalidArgumentError }),
    { argument: 'tags' },
  );
  const repeated: Federation = {
    nodes: [
      { id: 'a', datasets: [] },
      { id: 'a', datasets: [] },
    ],
  };
  t.like(
    t.throws(() => selectDatasets(repeated, ['#x']), { instanceOf: InvalidArgumentError }),
    { argument: 'federation.nodes', received: 'a' },
  );
});

test('a plan for a specific data type is a TrainingPlan, and train may be async', async (t) => {
  type Numbers = readonly number[];
  const meanPlan: TrainingPlan<Numbers, { size: number }> = {
    init: ({ size }) => ({ m: { dtype: 'float64', shape: [size], data: new Float64Array(size) } }),
    async train(params, data, _args, rng) {
      const noise = rng.normal(0, 1e-3);
      const mean = data.reduce((a, b) => a + b, 0) / data.length;
      const m = Float64Array.from(params.m!.data as Float64Array, () => mean + noise);
      return {
        params: { m: { dtype: 'float64', shape: params.m!.shape, data: m } },
        sampleSize: data.length,
        metrics: { mean },
      };
    },
  };
  const generic: TrainingPlan = meanPlan;
  const init: TensorSet = generic.init({ size: 2 }, deriveRng(1, 'init'));
  const run = () => generic.train(init, [1, 2, 3], {}, deriveRng(1, 0, 'n', 'train'));
  const [first, second] = await Promise.all([run(), run()]);
  t.is(first.sampleSize, 3);
  t.deepEqual(first.metrics, { mean: 2 });
  t.deepEqual(first.params, second.params);
  t.true(Math.abs((first.params.m!.data[0] as number) - 2) < 0.01);
});
