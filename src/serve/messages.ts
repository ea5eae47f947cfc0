/**
 * Error messages in the API's terms. The engine's errors speak to whoever runs roundlog on the
 * machine: absolute paths of the root, CLI options (`--superseded`, `--take-over`), commands to run
 * (`roundlog ls`). An HTTP client knows none of these: it knows routes, body fields and query
 * parameters, and experiments by name. `forClient` rewrites what a client can act on (the codes a
 * request of the API can meet, worded in the route's fields), and every body (message and fields)
 * has the root's absolute path replaced by paths relative to it. A 5xx keeps the engine's remedy:
 * it is addressed to the server's operator, who runs the roundlog commands it names.
 */
import { shownText } from '../errors.ts';

/** The JSON body of every error answer: `{ code, message, ...fields }`. */
export type ErrorBody = { code: string; message: string; [field: string]: unknown };

/** What a message may name: the root, replaced by relative paths. */
export type ClientContext = Readonly<{ root?: string | undefined }>;

/** `body` as a client is told it: the message in the API's terms, no absolute path of the root. */
export function forClient(body: ErrorBody, context: ClientContext): ErrorBody {
  const out = reworded(body);
  return context.root === undefined ? out : (relativized(out, context.root) as ErrorBody);
}

const string = (value: unknown): string => (typeof value === 'string' ? value : String(value));

function reworded(body: ErrorBody): ErrorBody {
  switch (body.code) {
    case 'EXPERIMENT_NOT_FOUND': {
      // The root is the server's business; the client lists what it may name.
      const { root: _root, ...rest } = body;
      return {
        ...rest,
        message:
          `no experiment ${shownText(string(body.experiment))} on this server; ` +
          'GET /v1/experiments lists the experiments (name one by its folder, id or stream)',
      };
    }
    case 'BLOB_NOT_FOUND': {
      const { store: _store, ...rest } = body;
      return {
        ...rest,
        message:
          `no parameters with SHA-256 ${string(body.sha256)} are stored on this server (never uploaded, or ` +
          'deleted by retention): upload them first (POST /v1/params) and name them by the sha256 it answers',
      };
    }
    case 'ROUND_NOT_IN_HISTORY':
      return {
        ...body,
        message: body.message.replace(
          'Without --superseded or --position, --round names a round of the current branch',
          'Without superseded or position, round names a round of the current branch',
        ),
      };
    case 'EXPERIMENT_RUNNING':
      return {
        ...body,
        message: body.message.replace(
          'take the run over with --take-over (library: takeOver: true), which is recorded',
          'take the run over by starting one with takeOver: true ' +
            '(POST /v1/experiments/{experiment}/runs), which is recorded',
        ),
      };
    case 'METRIC_NOT_FOUND':
      return {
        ...body,
        message: body.message.replace(
          /\(see 'roundlog audit rounds .*' for the nodes of each round\)$/s,
          `(GET /v1/experiments/${encodeURIComponent(string(body.experiment))}/rounds lists the nodes of each round)`,
        ),
      };
    case 'EXPERIMENT_NOT_CREATED':
      return {
        ...body,
        message: body.message.replace(
          "open it by an id or folder that 'roundlog ls' lists",
          'name it by an id or folder that GET /v1/experiments lists',
        ),
      };
    case 'ROUND_LIMIT_REACHED':
      return {
        ...body,
        message:
          `experiment ${string(body.experiment)} has run its round limit of ${string(body.roundLimit)} ` +
          `round${body.roundLimit === 1 ? '' : 's'}: round ${string(body.round)} cannot be recorded, and nothing ` +
          'was; to go on, fork it (POST /v1/experiments/{experiment}/fork), or raise its limit outside this API',
      };
    case 'CORRUPT_PAYLOAD':
      // An upload the client sent: its bytes are wrong, not the server's storage.
      if (body.source !== 'the request body') return body;
      return {
        ...body,
        message:
          `the request body is not a valid safetensors file: ${string(body.reason)}` +
          `${body.byteOffset === undefined ? '' : ` (at byte ${string(body.byteOffset)} of the body)`}; ` +
          'nothing was stored: send the bytes of a safetensors file as written ' +
          '(8-byte header length, JSON header, data)',
      };
    case 'DECODE_LIMIT': {
      // An upload over a maximum of this server: not damage, and not the client's to raise.
      if (body.writing === true || !string(body.what).includes('the request body')) return body;
      const cut = body.message.indexOf('; nothing was allocated.');
      if (cut === -1) return body;
      return {
        ...body,
        message:
          `${body.message.slice(0, cut)}; nothing was stored: this server takes no larger parameters ` +
          `(its operator sets ${string(body.setting)})`,
      };
    }
    default:
      return body;
  }
}

/** Every string of `value` with `root`'s absolute path made relative to it (the root itself: `.`). */
function relativized(value: unknown, root: string): unknown {
  if (typeof value === 'string') return relativePaths(value, root);
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => relativized(v, root));
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [key, v] of Object.entries(value)) out[key] = relativized(v, root);
  return out;
}

function relativePaths(text: string, root: string): string {
  const bare = root.replace(/[/\\]+$/, '');
  if (bare === '' || !text.includes(bare)) return text;
  if (text === bare) return '.';
  return text.replaceAll(`${bare}/`, '').replaceAll(`${bare}\\`, '').replaceAll(bare, 'the root');
}
