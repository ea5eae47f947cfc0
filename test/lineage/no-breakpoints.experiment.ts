/**
 * The logistic-regression example with `saveBreakpoints: false` (Fed-BioMed's default): every round
 * is committed to the log, no breakpoint folder is written. Same seed and settings as the example.
 */
import type { ExperimentDefinition } from '../../src/federated/definition.ts';
import { definition as example } from '../../examples/logistic-regression/experiment.ts';

export const definition: ExperimentDefinition = { ...example, saveBreakpoints: false };

export default definition;
