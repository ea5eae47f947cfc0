/**
 * The event catalogue as schemas: the shape every event's data must have (data version 1), checked
 * with zod where events cross the boundary, in both directions. `upcast` checks every event read
 * back (a damaged log, or one other tooling wrote, is an `InvalidEventDataError` naming the event
 * and the field, never a crash in a fold), and `checkEventsToAppend` checks every event before it
 * is appended, so what is written can always be read back.
 *
 * The bounds: identifiers and names at most 4096 characters (folder names 255, plain, no path),
 * free text (a rewind's reason, a failure's message) at most 64 KiB, counts and rounds safe
 * non-negative integers, hashes 64 hex digits, log positions decimal strings, and the caller's own
 * values (`state`, `config`, training and model arguments, component configs) nested at most
 * `MAX_RECORDABLE_DEPTH` levels. Unknown extra fields are kept (a later release may add optional
 * ones within a version).
 */
import { z } from 'zod';
import { InvalidArgumentError } from '../errors.ts';
import { MAX_RECORDABLE_DEPTH } from './errors.ts';
import type { ExperimentEventType } from './events.ts';

/** Longest identifier or name (characters): ids, node names, module paths, metric names. */
export const MAX_NAME_LENGTH = 4096;
/** Longest free text (characters): a rewind's reason, a failure's message. */
export const MAX_TEXT_LENGTH = 64 * 1024;

export const text = z.string().max(MAX_NAME_LENGTH);
const prose = z.string().max(MAX_TEXT_LENGTH);
/** A POSIX signal's name, as Node names it (`SIGTERM`, `SIGINT`): what `RunEnded.signal` records. */
export const SIGNAL_NAME = /^SIG[A-Z0-9]{1,12}$/;
const signalName = z.string().regex(SIGNAL_NAME);
export const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits (a SHA-256)');
// Log positions: a file log's are 64-bit; EventStoreDB's combine its commit and prepare positions (up to 39 digits).
export const decimal = z.string().regex(/^(0|[1-9]\d{0,38})$/, 'expected a non-negative integer as a decimal string');
export const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/**
 * The largest round index (and `roundCurrent`) an event may carry. The fold keeps the rounds of a
 * branch in an array indexed by round: an imported breakpoint at round R stands for R + 1 rounds,
 * so a bound keeps one forged number from costing gigabytes.
 */
export const MAX_ROUND = 1_000_000;
const round = z.number().int().min(0).max(MAX_ROUND);
/** Any number a caller may record (recordable refuses NaN and ±Infinity; older logs may hold them). */
const anyNumber = z.custom<number>((v) => typeof v === 'number', { message: 'expected a number' });
export const folderName = z
  .string()
  .min(1)
  .max(255)
  .refine((name) => !name.includes('/') && !name.includes('\\') && name !== '.' && name !== '..', {
    message: 'expected a plain folder name',
  });

/** `RunStarted.remote`, `ForkedFrom.remote`: the address a researcher listened on and the node ids. */
const remoteRun = z.looseObject({ listen: text.min(1), nodes: z.array(text.min(1)).min(1) });

/** Whether `value` nests arrays and objects deeper than `max` levels (cycles count as too deep). */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (max <= 0) return true;
  if (Array.isArray(value)) {
    for (const item of value)
      if (item !== null && typeof item === 'object' && nestedDeeperThan(item, max - 1)) return true;
    return false;
  }
  for (const key in value) {
    const item = (value as Record<string, unknown>)[key];
    if (item !== null && typeof item === 'object' && nestedDeeperThan(item, max - 1)) return true;
  }
  return false;
}

/** A caller's own value: anything, nested at most `MAX_RECORDABLE_DEPTH` levels. */
export const bounded = z.unknown().refine((v) => !nestedDeeperThan(v, MAX_RECORDABLE_DEPTH), {
  message: `nested deeper than ${MAX_RECORDABLE_DEPTH} levels of arrays and objects`,
});
export const record = z.record(text, z.unknown()).refine((v) => !nestedDeeperThan(v, MAX_RECORDABLE_DEPTH), {
  message: `nested deeper than ${MAX_RECORDABLE_DEPTH} levels of arrays and objects`,
});
export const metrics = z.record(text, anyNumber.nullable());
export const blobRef = z.looseObject({ sha256, bytes: count, encoding: text });
export const planRef = z.looseObject({ module: text, export: text, sha256, source: blobRef });
export const retention = z.looseObject({
  keepLast: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  keepEvery: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).nullable(),
});
export const component = z.looseObject({ name: text, config: record });
export const federated = z.looseObject({
  tags: z.array(text).max(4096),
  nodes: z.array(text).max(65536).nullable(),
  trainingPlan: planRef,
  modelArgs: record,
  trainingArgs: record,
  aggregator: component,
  strategy: component,
  workspace: text.nullable().optional(),
});
export const actor = z.looseObject({ user: text, host: text, pid: z.number().int() });
export const importedFrom = z.looseObject({
  experimentId: text,
  folder: folderName,
  round,
  logPosition: decimal,
  breakpointSha256: sha256,
  params: blobRef,
  state: bounded,
});
export const experimentCreated = z.looseObject({
  v: z.literal(1),
  experimentId: text.min(1),
  number: count,
  folder: folderName,
  roundLimit: count.nullable(),
  seed: z.number().int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER),
  saveBreakpoints: z.boolean(),
  initialParams: blobRef.nullable(),
  config: bounded,
  federated: federated.nullable(),
  createdBy: actor,
  roundlogVersion: text,
  importedFrom: importedFrom.nullable(),
});

const v1 = z.literal(1);
const owner = z.looseObject({ user: text, host: text, pid: z.number().int(), processStart: text.nullable() });

/** The schema of each experiment event's data, by type. */
export const EVENT_SCHEMAS: Readonly<Record<ExperimentEventType, z.ZodType>> = {
  ExperimentCreated: experimentCreated,
  RoundStarted: z.looseObject({ v: v1, round, attempt: count, nodes: z.array(text) }),
  NodeReplied: z.looseObject({
    v: v1,
    round,
    attempt: count,
    node: text,
    sampleSize: anyNumber,
    params: blobRef,
    metrics,
    durationMs: anyNumber,
  }),
  RoundCompleted: z.looseObject({
    v: v1,
    round,
    attempt: count,
    params: blobRef,
    state: bounded,
    nodes: z.array(
      z.looseObject({
        node: text,
        sampleSize: anyNumber,
        metrics,
        dataset: z
          .looseObject({
            sha256: text,
            rows: anyNumber,
            columns: anyNumber,
            format: text,
            options: z.record(text, text).optional(),
          })
          .optional(),
      }),
    ),
    metrics,
    breakpoint: z.boolean(),
    durationMs: anyNumber,
  }),
  SettingsChanged: z.looseObject({
    v: v1,
    roundLimit: count.nullable().optional(),
    retention: retention.nullable().optional(),
    trainingArgs: record.optional(),
    saveBreakpoints: z.boolean().optional(),
    trainingPlan: planRef.optional(),
    by: actor,
  }),
  Resumed: z.looseObject({
    v: v1,
    roundCurrent: round,
    breakpoint: text.nullable(),
    folder: folderName.nullable(),
    by: actor,
  }),
  Rewound: z.looseObject({ v: v1, roundCurrent: round, reason: prose, supersededRounds: z.array(round), by: actor }),
  ForkedFrom: z.looseObject({
    v: v1,
    parentId: text,
    parentFolder: folderName,
    parentRound: round,
    parentPosition: decimal,
    remote: remoteRun.nullable().optional(),
  }),
  Forked: z.looseObject({ v: v1, childId: text, childFolder: folderName, round, by: actor }),
  RoundsPruned: z.looseObject({
    v: v1,
    rounds: z.array(z.looseObject({ round, position: decimal })),
    retention,
    by: actor,
  }),
  ExperimentFinished: z.looseObject({ v: v1, roundCurrent: round }),
  RunStarted: z.looseObject({
    v: v1,
    runId: text,
    owner,
    heartbeatMs: anyNumber,
    tookOver: z.looseObject({ runId: text, owner }).nullable(),
    remote: remoteRun.nullable().optional(),
  }),
  RunHeartbeat: z.looseObject({ v: v1, runId: text }),
  RunFailed: z.looseObject({
    v: v1,
    runId: text.nullable(),
    round,
    attempt: count.nullable(),
    code: text,
    message: prose,
  }),
  RunEnded: z.looseObject({ v: v1, runId: text, roundCurrent: round, signal: signalName.nullable().optional() }),
};

/** The data of the registry stream's `ExperimentRegistered`. */
export const experimentRegistered = z.looseObject({
  v: v1,
  number: count,
  experimentId: text.min(1),
  folder: folderName,
  stream: z.string().min(1).max(1024),
});

/**
 * Checks events about to be appended against the schemas `upcast` reads them with, so nothing is
 * written that cannot be read back. Throws `InvalidArgumentError` naming `events[i].data.<field>`
 * (or `events[i].type` for a type no schema has). Checked: experiment events, and the registry's
 * `ExperimentRegistered`.
 */
export function checkEventsToAppend(events: readonly Readonly<{ type: string; data: unknown }>[]): void {
  for (const [i, event] of events.entries()) {
    const schema =
      event.type === 'ExperimentRegistered'
        ? experimentRegistered
        : Object.hasOwn(EVENT_SCHEMAS, event.type)
          ? EVENT_SCHEMAS[event.type as ExperimentEventType]
          : null;
    if (schema === null) {
      throw new InvalidArgumentError(`events[${i}].type`, 'must be an experiment event type', event.type);
    }
    const wrong = schemaProblem(schema, event.data);
    if (wrong !== null) {
      const at = valueAt(event.data, wrong.path);
      const rule = `does not fit the ${event.type} event's schema (${wrong.message})`;
      throw new InvalidArgumentError(`events[${i}].${wrong.field}`, rule, at);
    }
  }
}

/**
 * What is wrong with `data` against `schema`: the field's path (`data.nodes[2].metrics.loss`), the
 * problem, and zod's message; null when nothing.
 */
export function schemaProblem(
  schema: z.ZodType,
  data: unknown,
): { field: string; problem: string; path: readonly PropertyKey[]; message: string } | null {
  const checked = schema.safeParse(data);
  if (checked.success) return null;
  const issue = checked.error.issues[0]!;
  return {
    field: fieldPath(issue.path),
    problem: `is ${describeValue(valueAt(data, issue.path))}: ${issue.message}`,
    path: issue.path,
    message: issue.message,
  };
}

/** A field path as messages write it: `params.bytes`, `nodes[2].node`; `data` for the whole. */
export function fieldPath(at: readonly PropertyKey[]): string {
  let out = 'data';
  for (const key of at) {
    out +=
      typeof key === 'number'
        ? `[${key}]`
        : /^[A-Za-z_$][\w$]*$/.test(String(key))
          ? `.${String(key)}`
          : `[${JSON.stringify(String(key))}]`;
  }
  return out;
}

/** The value at `at` inside `object` (undefined when the path leaves it). */
export function valueAt(object: unknown, at: readonly PropertyKey[]): unknown {
  let value = object;
  for (const key of at) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** A value as a message shows it: its JSON cut at 80 characters (never serializing more than that); `missing`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'missing';
  if (typeof value === 'string') {
    const shown = JSON.stringify(value.length > 80 ? value.slice(0, 77) : value);
    return value.length > 80 ? `${shown.slice(0, -1)}..." (${value.length} characters)` : shown;
  }
  if (value === null || typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return 'an object';
}
