/**
 * The experiment definition `roundlog run` takes: logistic regression on the UCI heart-disease data
 * of four hospitals (one in-process node each, `data.ts`), 10 rounds of FedAvg, breakpoints saved.
 *
 *   npx tsx src/cli/main.ts run examples/heart-disease/experiment.ts
 *   npx tsx examples/heart-disease/evaluate.ts     # runs it in a temporary root, prints held-out accuracy
 */
import type { ExperimentDefinition } from '../../src/federated/definition.ts';
import { HEART_DISEASE_TAGS, heartDiseaseFederation } from './data.ts';

export const SEED = 20_261_205;

export const definition: ExperimentDefinition = {
  tags: [...HEART_DISEASE_TAGS],
  trainingPlan: { module: 'examples/heart-disease/plan.ts', export: 'heartDiseasePlan' },
  federation: () => heartDiseaseFederation({ seed: SEED }),
  modelArgs: { columns: 13 },
  trainingArgs: { epochs: 5, learningRate: 0.5 },
  roundLimit: 10,
  saveBreakpoints: true,
  seed: SEED,
};

export default definition;
