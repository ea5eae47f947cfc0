/**
 * An experiment definition module with a custom aggregator (the SCAFFOLD-like one of
 * test/support/scaffold.ts) in its `registry`, for `roundlog run` and `roundlog resume` tests.
 */
import type { ExperimentDefinition } from '../../src/federated/definition.ts';
import { syntheticClinicalFederation } from '../../examples/logistic-regression/data.ts';
import { scaffold, scaffoldRegistry } from './scaffold.ts';

export const definition: ExperimentDefinition = {
  tags: ['#clinical'],
  trainingPlan: { module: 'examples/logistic-regression/plan.ts', export: 'logisticRegressionPlan' },
  federation: () => syntheticClinicalFederation({ seed: 11 }),
  modelArgs: { columns: 5 },
  trainingArgs: { epochs: 1, batchSize: 32, learningRate: 0.2 },
  roundLimit: 4,
  saveBreakpoints: true,
  seed: 3,
  aggregator: scaffold({ scale: 0.5, eta: 0.3 }),
  registry: { aggregators: scaffoldRegistry() },
};

export default definition;
