/**
 * The one mapping from errors to HTTP: a fixed table from an error's `code` to its status, and the
 * JSON body every error response has, `{ code, message, ...fields }` (the error's structured
 * fields, bigints as decimal strings, times as ISO-8601). Fastify's own errors (bad JSON, schema
 * validation, a body over the limit, an unknown media type or route) are first translated into the
 * typed errors of `errors.ts`. An error that is not a roundlog error is `INTERNAL` (500), its
 * message withheld: never a stack trace.
 */
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { RoundlogError } from '../errors.ts';
import {
  BodyTooLargeError,
  InvalidJsonError,
  InvalidRequestError,
  RouteNotFoundError,
  UnsupportedMediaTypeError,
} from './errors.ts';
import { forClient, type ErrorBody } from './messages.ts';

/**
 * HTTP status by error code: every `code` of every roundlog error class of `src/` is here (a test
 * scans the sources for `readonly code = '...'` and fails on one missing), so a request the client
 * got wrong is never a 500 it would retry. A code not here (an error class added without its
 * status) is 500 with its own code and fields.
 */
export const HTTP_STATUS_OF_CODE: Readonly<Record<string, number>> = Object.freeze({
  // 400: the request is wrong, whatever the state of the root.
  INVALID_ARGUMENT: 400,
  INVALID_REQUEST: 400,
  INVALID_JSON: 400,
  INVALID_URL: 400,
  BAD_HTTP_REQUEST: 400,
  CORRUPT_PAYLOAD: 400,
  DECODE_LIMIT: 400,
  UNKNOWN_ENCODING: 400,
  UNRECORDABLE_VALUE: 400,
  FOLDER_NAME_RESERVED: 400,
  UNSAFE_TENSOR_NAME: 400,
  INVALID_METRIC_NAME: 400,
  INVALID_DEFINITION: 400,
  MISMATCHED_TENSORS: 400,
  NOT_AVERAGEABLE: 400,
  ZERO_SAMPLE_SIZE: 400,
  UNKNOWN_AGGREGATOR: 400,
  UNKNOWN_STRATEGY: 400,
  AMBIGUOUS_DATASET: 400,
  NO_MATCHING_DATASET: 400,
  PATH_OUTSIDE: 400,
  EXPORT_TARGET_REFUSED: 400,
  USAGE: 400,
  // 401: no token, or not this server's.
  UNAUTHORIZED: 401,
  // 404: the thing named does not exist.
  NOT_FOUND: 404,
  EXPERIMENT_NOT_FOUND: 404,
  ROUND_NOT_FOUND: 404,
  NO_BREAKPOINT: 404,
  ROUND_PRUNED: 404,
  ROUND_NOT_IN_HISTORY: 404,
  METRIC_NOT_FOUND: 404,
  BLOB_NOT_FOUND: 404,
  STREAM_NOT_FOUND: 404,
  // 409: the request conflicts with the experiment's state now; read it again and decide.
  CONCURRENT_MODIFICATION: 409,
  WRONG_EXPECTED_REVISION: 409,
  EXPERIMENT_RUNNING: 409,
  RUN_NOT_OWNED: 409,
  NODE_DATASET_CHANGED: 409,
  NODE_TAGS_MISMATCH: 409,
  NODE_NOT_IN_EXPERIMENT: 409,
  REMOTE_NODES_REQUIRED: 409,
  EXPERIMENT_EXISTS: 409,
  ROUND_MISMATCH: 409,
  IDEMPOTENCY_KEY_REUSED: 409,
  EVENT_ID_AHEAD: 409,
  REWIND_NOT_REQUESTED: 409,
  EXPERIMENT_NOT_CREATED: 409,
  EXPERIMENT_FOLDER_TAKEN: 409,
  EXPERIMENT_FOLDER_AMBIGUOUS: 409,
  TRAINING_PLAN_CHANGED: 409,
  IMPORTED_NOT_RESUMED: 409,
  LINK_TARGET_EXISTS: 409,
  ROUND_LIMIT_REACHED: 409,
  // 413, 415: the body itself.
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  // 408, 414, 431: refused before routing (the router, Node's HTTP parser).
  REQUEST_TIMEOUT: 408,
  PATH_PARAM_TOO_LONG: 414,
  HEADERS_TOO_LARGE: 431,
  // 421: a loopback server asked under another name (DNS rebinding).
  HOST_NOT_ALLOWED: 421,
  APPEND_TOO_LARGE: 413,
  FILE_TOO_LARGE: 413,
  // 503: try again later (another process holds the log, the store is down, the server is closing).
  LOG_LOCKED: 503,
  STORE_UNAVAILABLE: 503,
  CLOSED: 503,
  PROJECTION_LOCKED: 503,
  STORE_REQUEST_FAILED: 503,
  NODE_FAILED: 503,
  NO_REPLIES: 503,
  NOT_ENOUGH_NODES: 503,
  NO_ELIGIBLE_NODES: 503,
  PLAN_NOT_APPROVED: 503,
  NODE_REFUSED: 503,
  NOT_A_RESEARCHER: 503,
  // 500: the server's own data or machine failed (said precisely: the code and its fields).
  BLOB_WRITE_FAILED: 500,
  BREAKPOINT_BLOB_DAMAGED: 500,
  BREAKPOINT_CORRUPT: 500,
  CORRUPT_BLOB: 500,
  CORRUPT_LOG: 500,
  STRAY_TAIL_BYTES: 500,
  INVALID_EVENT_DATA: 500,
  UNKNOWN_EVENT: 500,
  STATE_VERSION_MISMATCH: 500,
  EXPERIMENT_HISTORY_DAMAGED: 500,
  REGISTRY_DAMAGED: 500,
  REFERENCED_BLOB_MISSING: 500,
  PROJECTION_CHECKPOINT_MISMATCH: 500,
  LOG_WRITE_FAILED: 500,
  LOG_READ_ONLY: 500,
  STORAGE_WRITE_FAILED: 500,
  NOT_A_REAL_FOLDER: 500,
  NOT_A_REGULAR_FILE: 500,
  NOT_A_ROOT: 500,
  ROOT_MARKER_INVALID: 500,
  ROOT_NOT_A_DIRECTORY: 500,
  ROOT_NOT_FOUND: 500,
  MISSING_DEPENDENCY: 500,
  MODULE_LOAD_FAILED: 500,
  DEMO_STEP_FAILED: 500,
  DEMO_TIMED_OUT: 500,
  TOKEN_REQUIRED: 500,
  INVALID_TOKEN_FILE: 500,
  LISTEN_FAILED: 500,
  INVALID_NODE_DATASET: 500,
  HEART_DISEASE_MALFORMED: 500,
  INVALID_APPROVAL_LIST: 500,
  INVALID_PLAN_FILE: 500,
  PLAN_CLOSURE_FAILED: 500,
  INVALID_NODE_DIR: 500,
  NODE_FILE_UNREADABLE: 500,
  RESEARCHER_LISTEN_FAILED: 500,
});

export type { ErrorBody };

/** What the server answers for `error`: the status and the JSON body. */
export function errorResponse(error: unknown, limits: BodyLimits): { status: number; body: ErrorBody } {
  const typed = translate(error, limits);
  if (typed === null) {
    return { status: 500, body: { code: 'INTERNAL', message: 'the server failed on this request; see its log' } };
  }
  return { status: statusOf(typed), body: forClient(bodyOf(typed), { root: limits.root }) };
}

/**
 * The status of a typed error: its code's. A safetensors file that does not parse is the client's
 * fault (400) when it is the body it sent, the server's (500) when it is a blob the server stored.
 */
function statusOf(error: RoundlogError): number {
  if (error.code === 'CORRUPT_PAYLOAD' && (error as { source?: unknown }).source !== 'the request body') return 500;
  return HTTP_STATUS_OF_CODE[error.code] ?? 500;
}

/** The limits named in a 413, and the root, which no answer names by its absolute path (`messages.ts`). */
export type BodyLimits = Readonly<{ bodyLimit: number; maxParamsBytes: number; root?: string }>;

/** A roundlog error for `error`: itself, or the typed error a Fastify error stands for; null for anything else. */
export function translate(error: unknown, limits: BodyLimits): RoundlogError | null {
  if (error instanceof RoundlogError) return error;
  if (hasZodFastifySchemaValidationErrors(error)) {
    const first = error.validation[0];
    const where = (error as { validationContext?: string }).validationContext ?? 'body';
    const at = (first?.instancePath ?? '').split('/').filter((p) => p !== '');
    return new InvalidRequestError([where, ...at].join('.'), first?.message ?? 'is not valid');
  }
  const e = error as { code?: unknown; statusCode?: unknown; message?: unknown; validation?: unknown } | null;
  switch (e?.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new InvalidJsonError(String(e.message));
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new BodyTooLargeError(limits.bodyLimit, 'json');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new UnsupportedMediaTypeError(null, ['application/json']);
    case 'FST_ERR_NOT_FOUND':
      return new RouteNotFoundError('?', '?');
    case 'FST_ERR_VALIDATION':
      return new InvalidRequestError('request', String(e.message));
  }
  // The JSON parser's own SyntaxError (Fastify sets statusCode 400 on it).
  if (error instanceof SyntaxError && e?.statusCode === 400) return new InvalidJsonError(error.message);
  return null;
}

/** `{ code, message, ...fields }`: the error's own fields, JSON-safe (no cause, no stack). */
export function bodyOf(error: RoundlogError): ErrorBody {
  const body: ErrorBody = { code: error.code, message: error.message };
  for (const [key, value] of Object.entries(error)) {
    if (key === 'code' || key === 'message' || key === 'name' || key === 'stack' || key === 'cause') continue;
    if (value instanceof Error) continue;
    body[key] = jsonSafe(value);
  }
  return body;
}

/**
 * A value as JSON carries it: bigints as decimal strings, Dates as ISO-8601, errors dropped. Every
 * response body goes through here, so no key is lost to `Object.prototype` (`__proto__`).
 */
export function jsonSafe(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return value.toISOString();
  if (value === null || typeof value !== 'object') return value;
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number>);
  if (Array.isArray(value)) return value.map(jsonSafe);
  // Built with no prototype: a key `__proto__` (a tensor's or a metric's name) stays a key.
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined || v instanceof Error || typeof v === 'function') continue;
    out[key] = jsonSafe(v);
  }
  return out;
}
