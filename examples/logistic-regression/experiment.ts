/**
 * The experiment definition `roundlog run` takes: logistic regression on a synthetic clinical
 * dataset split non-identically across three hospitals, 10 rounds of FedAvg, breakpoints saved.
 *
 *   npx tsx src/cli/main.ts run examples/logistic-regression/experiment.ts
 */
import type { ExperimentDefinition } from '../../src/federated/definition.ts';
import { syntheticClinicalFederation } from './data.ts';

export const SEED = 20_261_126;

export const definition: ExperimentDefinition = {
  tags: ['#clinical', '#heart'],
  trainingPlan: { module: 'examples/logistic-regression/plan.ts', export: 'logisticRegressionPlan' },
  federation: () => syntheticClinicalFederation({ seed: SEED }),
  modelArgs: { columns: 5 },
  trainingArgs: { epochs: 2, batchSize: 32, learningRate: 0.2, l2: 1e-3 },
  roundLimit: 10,
  saveBreakpoints: true,
  seed: SEED,
};

export default definition;
