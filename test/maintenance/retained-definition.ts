/**
 * An experiment definition for `roundlog run` with a retention policy: the logistic-regression
 * example, keeping the parameters of the last 2 rounds and of every 5th round.
 */
import type { ExperimentDefinition } from '../../src/federated/definition.ts';
import example from '../../examples/logistic-regression/experiment.ts';

export const definition: ExperimentDefinition = { ...example, retention: { keepLast: 2, keepEvery: 5 } };

export default definition;
