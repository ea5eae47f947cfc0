/**
 * `Experiment.create` options for tests of the facade on a real root: the logistic-regression
 * example (its plan from the repository, the workspace), on the example federation of seed 11.
 */
import { fileURLToPath } from 'node:url';
import { Experiment, type ExperimentOptions } from '../../src/federated/experiment.ts';
import { syntheticClinicalFederation } from '../../examples/logistic-regression/data.ts';

/** The repository: the workspace the example's plan module resolves against. */
export const WORKSPACE = fileURLToPath(new URL('../..', import.meta.url));

/** The example federation (three hospitals, seed 11), one per test process. */
export const federation = syntheticClinicalFederation({ seed: 11 });

/** The example, 1 epoch a round, 4 rounds, breakpoints saved, seed 5, in `root`; `overrides` replace fields. */
export function exampleOptions(root: string, overrides: Partial<ExperimentOptions> = {}): ExperimentOptions {
  return {
    tags: ['#clinical'],
    trainingPlan: { module: 'examples/logistic-regression/plan.ts', export: 'logisticRegressionPlan' },
    federation,
    modelArgs: { columns: 5 },
    trainingArgs: { epochs: 1, batchSize: 32, learningRate: 0.2 },
    roundLimit: 4,
    saveBreakpoints: true,
    seed: 5,
    root,
    workspace: WORKSPACE,
    ...overrides,
  };
}

/** Creates the example in `root` (`exampleOptions`), runs `rounds` rounds, closes it; returns its folder. */
export async function runExample(root: string, rounds: number): Promise<string> {
  const exp = await Experiment.create(exampleOptions(root));
  await exp.run({ rounds });
  const dir = exp.experimentationPath();
  await exp.close();
  return dir;
}
