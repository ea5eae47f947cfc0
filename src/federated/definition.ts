/**
 * An experiment definition: what `roundlog run <module>` imports. The federation is a function,
 * so that `roundlog resume` can build the in-process nodes again from the same module; its
 * `registry` (custom aggregators and strategies by name) is used by `roundlog run` and, taken from
 * the same module again, by `roundlog resume`. Checked when imported (`checkDefinition`,
 * `src/federated/options-schema.ts`).
 */
import type { ExperimentOptions } from './experiment.ts';
import type { Federation } from './training-plan.ts';

export type ExperimentDefinition = Omit<
  ExperimentOptions,
  'federation' | 'root' | 'onRound' | 'definition' | 'workspace'
> & {
  federation: () => Federation | Promise<Federation>;
};
