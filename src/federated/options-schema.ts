/**
 * The options of an experiment as they cross a boundary: a definition module's export (what
 * `roundlog run <module>` and `resume` import, a user's module) and `Experiment.create`'s options
 * (a user's code). Both are checked with one zod schema of their fields before anything uses
 * them: names and module paths bounded, counts integers, arguments plain and bounded in depth,
 * aggregator and strategy objects with their functions, the registry a table of functions.
 */
import { z } from 'zod';
import { InvalidArgumentError } from '../errors.ts';
import { describeValue, MAX_NAME_LENGTH, record, retention, schemaProblem, valueAt } from '../model/schemas.ts';
import { InvalidDefinitionError } from './errors.ts';

const fn = z.custom<(...args: never[]) => unknown>((v) => typeof v === 'function', {
  message: 'expected a function',
});
const name = z.string().min(1).max(MAX_NAME_LENGTH);
const positive = z
  .number()
  .positive()
  .max(2 ** 31 - 1);
const spec = { name, config: record };
const aggregator = z.looseObject({ ...spec, initialState: fn, aggregate: fn });
const strategy = z.looseObject({ ...spec, initialState: fn, select: fn });
const moduleRef = z.looseObject({ module: name, export: name.optional() });

/** The fields a definition and `Experiment.create`'s options share. */
const fields = {
  tags: z.array(name).max(4096),
  trainingPlan: moduleRef,
  nodes: z.array(name).max(65536).optional(),
  trainingArgs: record.optional(),
  modelArgs: record.optional(),
  roundLimit: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullable().optional(),
  saveBreakpoints: z.boolean().optional(),
  experimentationFolder: z.string().min(1).max(255).optional(),
  store: z.string().max(MAX_NAME_LENGTH).optional(),
  blobs: z.string().max(MAX_NAME_LENGTH).optional(),
  namespace: z.string().max(MAX_NAME_LENGTH).optional(),
  seed: z.number().int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER).optional(),
  aggregator: aggregator.optional(),
  strategy: strategy.optional(),
  registry: z
    .looseObject({ aggregators: z.record(name, fn).optional(), strategies: z.record(name, fn).optional() })
    .optional(),
  nodeTimeoutMs: positive.optional(),
  onDatasetChange: z.enum(['refuse', 'record']).optional(),
  retention: retention.nullable().optional(),
  heartbeatMs: positive.optional(),
};

const definitionSchema = z.looseObject({ ...fields, federation: fn });

/**
 * What a federation is (`Federation`): nodes by id, each with its tagged datasets. A dataset is a
 * plain (stripping) object schema: only `id` and `tags` are read, never `data` or any other field,
 * which may be a getter loading the node's data (a loose schema would copy, so read, every key).
 */
const federationSchema = z.looseObject({
  nodes: z
    .array(
      z.looseObject({
        id: name,
        datasets: z.array(z.object({ id: name, tags: z.array(z.string().max(MAX_NAME_LENGTH)) })),
      }),
    )
    .max(65536),
});

const optionsSchema = z.looseObject({
  ...fields,
  federation: federationSchema,
  root: z.string().max(MAX_NAME_LENGTH).optional(),
  workspace: z.string().max(MAX_NAME_LENGTH).optional(),
  onRound: fn.optional(),
  definition: moduleRef.nullable().optional(),
});

/**
 * Checks the definition `value` (the export `exported` of the module `module`, file `file`).
 * Throws `InvalidDefinitionError` naming the module, the export and the field.
 */
export function checkDefinition(value: unknown, module: string, exported: string, file: string): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidDefinitionError(
      module,
      exported,
      file,
      exported,
      `is ${describeValue(value)}: expected an object`,
    );
  }
  const wrong = schemaProblem(definitionSchema, value);
  if (wrong !== null) {
    throw new InvalidDefinitionError(module, exported, file, wrong.field.replace(/^data/, exported), wrong.problem);
  }
}

/** `Experiment.create`'s options, checked: `InvalidArgumentError` naming the field (`options.tags[2]`). */
export function checkExperimentOptions(value: unknown): void {
  const wrong = schemaProblem(optionsSchema, value);
  if (wrong !== null) {
    const field = wrong.field.replace(/^data/, 'options');
    throw new InvalidArgumentError(field, `does not fit (${wrong.message})`, valueAt(value, wrong.path));
  }
}

/**
 * What a definition's `federation()` returned (`value`), checked before anything is recorded:
 * `InvalidDefinitionError` naming the module's file and `<export>.federation()` with the field inside.
 */
export function checkDefinitionFederation(value: unknown, module: string, exported: string, file: string): void {
  const wrong = schemaProblem(federationSchema, value);
  if (wrong !== null) {
    const field = wrong.field.replace(/^data/, `${exported}.federation()`);
    throw new InvalidDefinitionError(module, exported, file, field, `${wrong.problem} (returned by federation())`);
  }
}

/**
 * A federation a caller's code gave (`Experiment.loadBreakpoint`'s `federation`, or what its function
 * returned), checked before anything is recorded: `InvalidArgumentError` naming the field.
 */
export function checkFederation(value: unknown, argument: string): void {
  const wrong = schemaProblem(federationSchema, value);
  if (wrong !== null) {
    const field = wrong.field.replace(/^data/, argument);
    throw new InvalidArgumentError(field, `does not fit (${wrong.message})`, valueAt(value, wrong.path));
  }
}
