/**
 * The request schemas of the HTTP API (zod, checked by Fastify before a handler runs, and the
 * source of the OpenAPI document). The bounds are the model's (`src/model/schemas.ts`): names,
 * hashes, folder names and recordable values are checked by the same schemas the log checks
 * every event with.
 */
import { z } from 'zod';
import { MAX_ROUND, MAX_TEXT_LENGTH, sha256, text } from '../model/schemas.ts';
import { REQUEST_ID } from './idempotency.ts';

export const requestId = z
  .string()
  .regex(REQUEST_ID, 'expected 1 to 128 characters of A-Z a-z 0-9 . _ : -')
  .describe('Makes the request idempotent: a retry with the same id and content returns the first response');
/** A revision or log position: a decimal string (JSON numbers lose bigints). */
export const decimalString = z
  .string()
  .regex(/^(0|[1-9]\d{0,38})$/, 'expected a non-negative integer as a decimal string');
const roundIndex = z.number().int().min(0).max(MAX_ROUND);
const anyJson = z.unknown().describe('any JSON value');

/** The longest path parameter (after percent-decoding), in characters: the schemas' and the router's limit. */
export const MAX_PATH_PARAM_LENGTH = 4096;

export const experimentParams = z.object({
  experiment: z
    .string()
    .min(1)
    .max(MAX_PATH_PARAM_LENGTH)
    .describe('folder name, id, stream name or path, as the CLI takes them'),
});

export const createExperimentBody = z.strictObject({
  folder: z.string().min(1).max(100).optional().describe('folder name under <root>/experiments'),
  roundLimit: z.number().int().min(0).nullable().optional(),
  seed: z
    .number()
    .int()
    .min(-(2 ** 53 - 1))
    .max(2 ** 53 - 1)
    .optional(),
  saveBreakpoints: z.boolean().optional(),
  config: anyJson.optional(),
  retention: z
    .strictObject({ keepLast: z.number().int().min(1), keepEvery: z.number().int().min(1).nullable().optional() })
    .nullable()
    .optional()
    .describe("which rounds' parameters are kept (`roundlog gc`'s policy, applied as rounds complete)"),
  requestId: requestId.optional(),
});

export const runOwner = z.strictObject({
  host: text.min(1),
  pid: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31),
  name: text.optional().describe('who runs it (recorded as the owner user); default "client"'),
  user: text.optional(),
});

export const startRunBody = z.strictObject({
  owner: runOwner,
  heartbeatMs: z
    .number()
    .int()
    .min(1)
    .max(24 * 3600 * 1000)
    .optional(),
  takeOver: z.boolean().optional(),
  requestId: requestId.optional(),
});

export const runParams = experimentParams.extend({ runId: z.string().min(1).max(MAX_PATH_PARAM_LENGTH) });

export const endRunBody = z.strictObject({ requestId: requestId.optional() });

export const failRunBody = z.strictObject({
  message: z.string().max(MAX_TEXT_LENGTH),
  code: z.string().min(1).max(200).optional().describe('the error code or type; default CLIENT_FAILED'),
  requestId: requestId.optional(),
});

export const recordRoundBody = z.strictObject({
  round: roundIndex,
  params: z.looseObject({ sha256 }),
  metrics: z.record(text, z.number()).optional(),
  state: anyJson.optional(),
  runId: text.min(1).optional(),
  expectedRevision: decimalString.optional(),
  breakpoint: z.boolean().optional(),
  durationMs: z.number().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  requestId: requestId.optional(),
});

export const roundParams = experimentParams.extend({
  round: z.union([z.literal('last'), z.string().regex(/^\d{1,7}$/, 'expected a round index or "last"')]),
});

export const metricParams = experimentParams.extend({ name: z.string().min(1).max(MAX_PATH_PARAM_LENGTH) });
export const metricQuery = z.object({ node: text.min(1).optional() });

export const rewindBody = z.strictObject({
  round: roundIndex,
  by: runOwner
    .optional()
    .describe('who asks (recorded as `by` in the audit trail), as a run owner; default the server process'),
  reason: z.string().min(1).max(MAX_TEXT_LENGTH).optional(),
  expectedRevision: decimalString.optional(),
  requestId: requestId.optional(),
});

export const forkBody = z.strictObject({
  round: roundIndex,
  by: runOwner
    .optional()
    .describe('who asks (recorded as `by` in the audit trail), as a run owner; default the server process'),
  folder: z.string().min(1).max(100).optional(),
  superseded: z.boolean().optional(),
  position: decimalString.optional(),
  requestId: requestId.optional(),
});

export const replayBody = z.strictObject({
  round: roundIndex,
  superseded: z.boolean().optional(),
  position: decimalString.optional(),
  requestId: requestId.optional(),
});

export const exportQuery = z.object({
  round: z.string().regex(/^\d{1,7}$/, 'expected a round index'),
  format: z.enum(['safetensors', 'npz']).optional(),
  position: decimalString.optional(),
  superseded: z.enum(['true', 'false']).optional(),
});

export const eventsQuery = z.object({
  experiment: z.string().min(1).max(4096).optional(),
  lastEventId: decimalString.optional().describe('as the Last-Event-ID header, for clients that cannot set it'),
});

export const auditEventsQuery = z.object({
  type: z.string().max(4096).optional().describe('comma-separated event types'),
});

export const errorSchema = z
  .looseObject({ code: z.string(), message: z.string() })
  .describe('every error: the library error code, its message and its structured fields');

// ---- responses (documentation of the 2xx bodies; bigints are decimal strings) -------------------

const tensorInfo = z.object({
  dtype: z.string().describe('safetensors dtype: F32, BF16, BOOL, ...'),
  shape: z.array(z.number()),
});

export const createdExperimentReply = z.object({
  experiment: z.object({ experimentId: z.string(), folder: z.string(), number: z.number(), stream: z.string() }),
  revision: decimalString,
});

export const startedRunReply = z.object({
  runId: z.string(),
  roundCurrent: z.number(),
  revision: decimalString,
  resumed: z.boolean(),
});

export const revisionReply = z.object({ revision: decimalString });

export const storedParamsReply = z.object({
  sha256: z.string(),
  size: z.number().describe('bytes'),
  encoding: z.literal('tensors/safetensors'),
  tensors: z.record(z.string(), tensorInfo),
  created: z.boolean().describe('false when the store held these bytes already (a retry)'),
});

export const recordedRoundReply = z.object({
  round: z.number(),
  revision: decimalString,
  position: decimalString,
  breakpoint: z.string().nullable().describe('the breakpoint folder, relative to the root'),
});

export const roundReply = z.looseObject({
  round: z.number(),
  attempt: z.number(),
  params: z.object({
    sha256: z.string(),
    size: z.number(),
    encoding: z.string(),
    tensors: z.record(z.string(), tensorInfo),
  }),
  state: anyJson,
  metrics: z.record(z.string(), z.number().nullable()),
  settings: z.looseObject({}),
  position: decimalString,
  revision: decimalString,
});

export const experimentReply = z.looseObject({
  experimentId: z.string(),
  folder: z.string(),
  roundCurrent: z.number(),
  revision: decimalString,
  status: z.enum(['created', 'running', 'crashed', 'failed', 'stopped', 'finished']),
  run: z
    .object({
      runId: z.string(),
      owner: z.looseObject({}),
      since: z.string(),
      lastSeen: z.string(),
      heartbeatMs: z.number(),
    })
    .nullable(),
  settings: z.looseObject({}),
});
