/**
 * A data-holding node as a process (`roundlog node start`), as in Fed-BioMed: it holds its dataset,
 * connects out to the researcher (a hospital accepts no connection), says Hello, and trains the
 * rounds it is asked to with a training plan it approved, one request at a time. When the
 * researcher is not there or goes away, it connects again with a growing delay (from
 * `RETRY_MIN_MS`, doubling to `RETRY_MAX_MS`, back to the minimum once welcomed), saying each time
 * in plain words what happened (`connectionFailure`); an address that answers as something else
 * than a roundlog researcher `FOREIGN_ATTEMPTS` times in a row ends it (`NotAResearcherError`).
 *
 * The plan is imported from the approved file (never from the researcher), after checking that its
 * local module closure (the plan file and the local files it imports: `plan-closure.ts`) still has
 * the digest the request names: the digest approved is that of the code run.
 *
 * It speaks protocol revision 2 (parameters in chunks both ways); a researcher of an earlier release
 * refuses it (PROTOCOL_VERSION_MISMATCH, speaking 1 only), and the node connects again at once
 * speaking 1 (parameters whole), saying so in one line.
 *
 * Work belongs to the connection it came on: when the stream ends (the researcher was killed, the
 * link cut), the requests still queued are dropped unstarted, a training in progress has its result
 * discarded, and nothing is sent on a later connection. A researcher that comes back resumes from
 * its log and asks again, under a new attempt number; the node never replies to the old one.
 */
import * as grpc from '@grpc/grpc-js';
import { createHash, type Hash } from 'node:crypto';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { decodeSafetensors, encodeSafetensors } from '../../codec/safetensors.ts';
import { RoundlogError } from '../../errors.ts';
import { importModule } from '../load-module.ts';
import { closureChanges, planClosure } from '../plan-closure.ts';
import { Rng, type RngState } from '../rng.ts';
import type { TrainingPlan } from '../training-plan.ts';
import { APPROVALS_FILE, readApprovals, type ApprovedPlan } from './approvals.ts';
import type { NodeDataset } from './dataset.ts';
import { NodeRefusedError, NotAResearcherError, PlanNotApprovedError } from './errors.ts';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  PARAMS_CHUNK_BYTES,
  PROTOCOL_VERSION,
  federationProtocol,
  messageSizeOptions,
  type NodeMessage,
  type Outgoing,
  type ParamsChunk,
  type ResearcherMessage,
  type TrainErrorCode,
  type TrainRequest,
} from './protocol.ts';

export const RETRY_MIN_MS = 250;
export const RETRY_MAX_MS = 5000;
/**
 * How many attempts in a row may find something at the researcher's address that is not a roundlog
 * researcher (an HTTP server, another gRPC service) before the node gives up (`NotAResearcherError`):
 * such an address is most likely a wrong `--researcher`, which waiting does not fix. Nothing
 * listening, or a connection lost, is retried for ever: a researcher comes and goes.
 */
export const FOREIGN_ATTEMPTS = 5;

export type NodeOptions = {
  id: string;
  tags: readonly string[];
  dataset: NodeDataset;
  /** `host:port` of the researcher. */
  researcher: string;
  /** The node's folder: its approval list. */
  nodeDir: string;
  /**
   * Largest message, and largest parameter file, sent or accepted, in bytes. Default
   * `DEFAULT_MAX_MESSAGE_BYTES`. A request announcing more is refused (BAD_REQUEST).
   */
  maxMessageBytes?: number;
  /** One line per event. */
  onEvent: (line: string) => void;
  /** Stops the node: the stream is closed, `runNode` resolves. */
  signal: AbortSignal;
  /** Awaited after a request is announced, before it is handled (tests hold a node there). */
  beforeTrain?: (request: TrainRequest) => Promise<void>;
};

type Stream = grpc.ClientDuplexStream<Outgoing<NodeMessage>, ResearcherMessage>;

/**
 * Runs the node until `signal` aborts. Rejects with `NodeRefusedError` when the researcher speaks
 * another protocol version (connecting again would not help), and with `NotAResearcherError` once
 * the address answered `FOREIGN_ATTEMPTS` times in a row as something else than a roundlog
 * researcher; a duplicate id is retried, since the researcher may not have seen the node's previous
 * connection end yet. Each attempt that ends says, in one line, what happened and when the next
 * one is (`connectionFailure`).
 */
export async function runNode(options: NodeOptions): Promise<void> {
  const { Client } = federationProtocol();
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const plans = new Map<string, TrainingPlan>();
  let delay = RETRY_MIN_MS;
  let foreign = 0;
  // The revision spoken: 2, or 1 once a researcher of an earlier release refused 2 (until a
  // connection it welcomed ends: it may come back upgraded).
  let version = PROTOCOL_VERSION;
  while (!options.signal.aborted) {
    options.onEvent(`connecting to ${options.researcher}`);
    // A new channel for each attempt: a channel that failed to connect waits out its own backoff
    // (up to 2 minutes) before trying again, and would fail every call until then.
    const client = new Client(options.researcher, grpc.credentials.createInsecure(), {
      ...messageSizeOptions(maxMessageBytes),
    });
    let outcome: Outcome;
    try {
      outcome = await session(client, options, plans, version, maxMessageBytes);
    } finally {
      client.close();
    }
    if (outcome.welcomed) {
      delay = RETRY_MIN_MS;
      version = PROTOCOL_VERSION;
    }
    if (options.signal.aborted) break;
    if (outcome.speaks !== null) {
      options.onEvent(
        `the researcher at ${options.researcher} speaks protocol ${outcome.speaks} only (an earlier release): ` +
          `connecting again speaking protocol ${outcome.speaks}`,
      );
      version = outcome.speaks;
      continue;
    }
    if (outcome.fatal !== null) {
      options.onEvent(outcome.failure.text);
      throw outcome.fatal;
    }
    foreign = outcome.failure.kind === 'foreign' ? foreign + 1 : 0;
    if (foreign >= FOREIGN_ATTEMPTS) {
      options.onEvent(`${outcome.failure.text}; giving up after ${foreign} such answers in a row`);
      throw new NotAResearcherError(options.id, options.researcher, foreign, outcome.failure.text);
    }
    const count = foreign === 0 ? '' : ` (${foreign} of ${FOREIGN_ATTEMPTS} such answers before giving up)`;
    options.onEvent(`${outcome.failure.text}; connecting again in ${delay} ms${count}`);
    await pause(delay, options.signal);
    delay = Math.min(RETRY_MAX_MS, delay * 2);
  }
}

/**
 * How an attempt ended, in plain words: `absent` (nothing listens there, the host is not found or
 * cannot be reached), `lost` (the connection went away), `refused` (the researcher's Refusal),
 * `foreign` (something answered that is not a roundlog researcher), `failed` (any other gRPC status).
 */
export type ConnectionFailure = { kind: 'absent' | 'lost' | 'refused' | 'foreign' | 'failed'; text: string };

/**
 * What a gRPC status that ended a node's stream means, for the line the node prints: the
 * researcher's address and what happened, never the raw status text alone.
 */
export function connectionFailure(
  address: string,
  error: Pick<grpc.ServiceError, 'code' | 'details'> | null,
  welcomed: boolean,
): ConnectionFailure {
  const at = `the researcher at ${address}`;
  // CANCELLED here is the researcher's doing (its server shut down): the node's own cancel ends it.
  if (error === null || error.code === grpc.status.OK || error.code === grpc.status.CANCELLED) {
    return { kind: 'lost', text: `${at} closed the connection` };
  }
  const details = error.details ?? '';
  const http = /Received HTTP status code (\d+)/.exec(details);
  if (http !== null) {
    const status = Number(http[1]);
    // A proxy in front of a researcher that is down answers 502, 503 or 504: waited out.
    if (status === 502 || status === 503 || status === 504) {
      return { kind: 'absent', text: `${address} answered HTTP ${status} (a proxy whose researcher is not up?)` };
    }
    return {
      kind: 'foreign',
      text: `${address} answered HTTP ${status}: it is an HTTP server, not a roundlog researcher`,
    };
  }
  if (error.code === grpc.status.UNIMPLEMENTED) {
    return {
      kind: 'foreign',
      text: `${address} is a gRPC server but not a roundlog researcher (it does not serve roundlog.federation.v1)`,
    };
  }
  if (/Protocol error/i.test(details)) {
    return {
      kind: 'foreign',
      text: `${address} answered, but not in HTTP/2: not a roundlog researcher (an HTTP/1 server or another service?)`,
    };
  }
  if (error.code === grpc.status.UNAVAILABLE) {
    if (welcomed) return { kind: 'lost', text: `lost the connection to ${at}` };
    if (/ECONNREFUSED/.test(details)) return { kind: 'absent', text: `${at} is not listening (connection refused)` };
    if (/Name resolution failed|ENOTFOUND|EAI_AGAIN/.test(details)) {
      return { kind: 'absent', text: `the host of ${address} is not found (its name does not resolve)` };
    }
    const network = /\b(ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ECONNRESET)\b/.exec(details);
    if (network !== null) return { kind: 'absent', text: `${at} cannot be reached (${network[1]})` };
    return { kind: 'absent', text: `${at} closed the connection as it opened` };
  }
  const name = grpc.status[error.code] ?? String(error.code);
  const first = details.split('\n')[0]!.slice(0, 200);
  return {
    kind: 'failed',
    text: `the connection to ${at} failed (gRPC status ${name}${first === '' ? '' : `: ${first}`})`,
  };
}

/** `speaks`: the earlier revision to connect again in, when the researcher refused this one for it. */
type Outcome = { welcomed: boolean; failure: ConnectionFailure; fatal: Error | null; speaks: number | null };

/** One connection, from the Hello to the stream's end, speaking revision `version`. */
function session(
  client: InstanceType<ReturnType<typeof federationProtocol>['Client']>,
  options: NodeOptions,
  plans: Map<string, TrainingPlan>,
  version: number,
  maxParamsBytes: number,
): Promise<Outcome> {
  return new Promise<Outcome>((resolve) => {
    const stream: Stream = client.Connect();
    let welcomed = false;
    let fatal: Error | null = null;
    let speaks: number | null = null;
    let refusal: ConnectionFailure | null = null;
    let status: grpc.ServiceError | null = null;
    // One training at a time, in the order asked.
    let queue = Promise.resolve();
    // Set once the stream is over: the work it brought is orphaned.
    const session: Session = { over: false, version };
    // Revision 2: the request whose parameters are arriving, and the keys whose chunks are ignored.
    let transfer: Transfer | null = null;
    const ignored = new Set<string>();
    const onAbort = () => stream.cancel();
    options.signal.addEventListener('abort', onAbort, { once: true });
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      session.over = true;
      if (transfer !== null) orphaned(session, transfer.request, options, 'while its parameters arrived');
      transfer = null;
      options.signal.removeEventListener('abort', onAbort);
      const failure = refusal ?? connectionFailure(options.researcher, status, welcomed);
      // A write still waiting to be taken (a reply's chunks, the researcher gone) goes with the
      // stream: the stream then closes, and nothing else keeps the session waiting.
      stream.destroy();
      resolve({ welcomed, failure, fatal, speaks });
    };
    // Once the stream's error (its status) is in: the end of the researcher's side, or an error,
    // ends the session even while a write waits (then the stream would never close by itself).
    const over = () => setImmediate(finish);
    // Announced once the node holds the whole request (its parameters received, in revision 2).
    const train = (request: TrainRequest) => {
      options.onEvent(
        `train-request experiment=${request.experiment} round=${request.round} attempt=${request.attempt} ` +
          `plan=${request.plan_id} sha256=${request.plan_sha256}`,
      );
      queue = queue
        .then(() => handle(stream, session, request, options, plans))
        // The stream may be gone by the time a reply is written: the next connection starts afresh.
        .catch((error: unknown) => options.onEvent(`train-error round=${request.round}: ${String(error)}`));
    };
    // A request refused before it is queued: its chunks still coming are ignored without a word.
    const refuse = (request: TrainRequest, message: string) => {
      transfer = null;
      ignore(ignored, keyOf(request));
      answerError(stream, session, request, options, 'BAD_REQUEST', message);
    };
    const chunk = (piece: ParamsChunk) => {
      const k = keyOf(piece);
      if (transfer === null || transfer.key !== k) {
        if (ignore(ignored, k)) {
          options.onEvent(
            `ignored parameters for experiment=${piece.experiment_id} round=${piece.round} ` +
              `attempt=${piece.attempt}: no request of this connection waits for them`,
          );
        }
        return;
      }
      const { request, bytes } = transfer;
      if (piece.offset !== transfer.received) {
        return refuse(
          request,
          `a parameter chunk came at offset ${piece.offset} where offset ${transfer.received} was expected`,
        );
      }
      if (piece.offset + piece.data.length > bytes.length) {
        return refuse(
          request,
          `a parameter chunk runs past the end: bytes ${piece.offset}..${piece.offset + piece.data.length} ` +
            `of a file of params_bytes=${bytes.length}`,
        );
      }
      bytes.set(piece.data, piece.offset);
      transfer.hash.update(piece.data);
      transfer.received += piece.data.length;
      if (transfer.received < bytes.length) return;
      const sha256 = transfer.hash.digest('hex');
      if (sha256 !== request.params_sha256) {
        return refuse(
          request,
          `the parameters received (${bytes.length} bytes) have sha256 ${sha256}, the request says ` +
            `params_sha256=${request.params_sha256}`,
        );
      }
      transfer = null;
      ignore(ignored, k);
      train({ ...request, params: bytes });
    };
    stream.on('data', (message: ResearcherMessage) => {
      if (message.body === 'welcome') {
        welcomed = true;
        session.version = message.welcome.protocol_version === 0 ? version : message.welcome.protocol_version;
        options.onEvent(
          `connected to ${options.researcher} as ${JSON.stringify(options.id)} ` +
            `(protocol ${message.welcome.protocol_version})`,
        );
      } else if (message.body === 'refusal') {
        const { code, message: text, supported_versions: supported } = message.refusal;
        refusal = {
          kind: 'refused',
          text: `refused by the researcher at ${options.researcher} with code ${code}: ${text}`,
        };
        if (code === 'PROTOCOL_VERSION_MISMATCH' && version !== 1 && supported.includes(1)) speaks = 1;
        else if (code !== 'DUPLICATE_NODE_ID') fatal = new NodeRefusedError(options.id, options.researcher, code, text);
      } else if (message.body === 'train_request') {
        const request = message.train_request;
        if (transfer !== null) {
          // The researcher stopped sending its parameters (it gave up on it): never trained.
          options.onEvent(
            `dropped experiment=${transfer.request.experiment} round=${transfer.request.round} ` +
              `attempt=${transfer.request.attempt}: its parameters stopped coming at ${transfer.received} of ` +
              `${transfer.request.params_bytes} bytes`,
          );
          ignore(ignored, transfer.key);
          transfer = null;
        }
        // Revision 1 (or a request carrying its parameters whole): trained as it is.
        if (request.params_bytes === 0) return train(request);
        if (request.params_bytes > maxParamsBytes) {
          return refuse(
            request,
            `its parameters are ${request.params_bytes} bytes (params_bytes), more than this node accepts ` +
              `(${maxParamsBytes} bytes: roundlog node start --max-message-bytes)`,
          );
        }
        ignored.delete(keyOf(request));
        transfer = {
          request,
          key: keyOf(request),
          bytes: Buffer.allocUnsafe(request.params_bytes),
          received: 0,
          hash: createHash('sha256'),
        };
      } else if (message.body === 'params_chunk') {
        chunk(message.params_chunk);
      }
    });
    stream.on('error', (error: grpc.ServiceError) => {
      status = error;
      over();
    });
    stream.on('close', finish);
    stream.on('end', () => {
      stream.end();
      over();
    });
    stream.write({
      hello: {
        protocol_version: version,
        node_id: options.id,
        tags: [...options.tags],
        dataset: {
          rows: options.dataset.rows,
          columns: options.dataset.columns,
          sha256: options.dataset.sha256,
          format: options.dataset.format,
          options: { ...options.dataset.options },
        },
      },
    });
  });
}

/** `version`: the revision the researcher welcomed (1: parameters whole; 2: in chunks). */
type Session = { over: boolean; version: number };

/** Revision 2: a request whose parameters are arriving, into `bytes` (of its `params_bytes`). */
type Transfer = { request: TrainRequest; key: string; bytes: Buffer; received: number; hash: Hash };

const keyOf = (ids: Pick<ParamsChunk, 'experiment_id' | 'round' | 'attempt'>) =>
  `${ids.experiment_id}/${ids.round}/${ids.attempt}`;

/** How many ignored keys a connection remembers (each said once). */
const IGNORED_KEYS = 1024;

/** Remembers `k` among the keys whose chunks are ignored; true the first time. */
function ignore(ignored: Set<string>, k: string): boolean {
  if (ignored.has(k)) return false;
  ignored.add(k);
  if (ignored.size > IGNORED_KEYS) ignored.delete(ignored.values().next().value!);
  return true;
}

/**
 * Whether the request's connection is gone (then says so: the work is dropped, since the researcher
 * that asked for it no longer waits for it).
 */
function orphaned(
  session: Session,
  request: TrainRequest,
  options: NodeOptions,
  what: string,
  gone = session.over,
): boolean {
  if (!gone) return false;
  options.onEvent(
    `dropped experiment=${request.experiment} round=${request.round} attempt=${request.attempt} ${what}: ` +
      `the connection it came on is gone`,
  );
  return true;
}

/** Writes a request's typed error, unless its connection is gone. */
function answerError(
  stream: Stream,
  session: Session,
  request: TrainRequest,
  options: NodeOptions,
  code: TrainErrorCode,
  message: string,
): void {
  if (orphaned(session, request, options, `(its ${code} answer)`)) return;
  options.onEvent(`train-error round=${request.round} ${code}: ${message}`);
  stream.write({
    train_error: {
      experiment_id: request.experiment_id,
      round: request.round,
      attempt: request.attempt,
      code,
      message,
      plan_id: request.plan_id,
      plan_sha256: request.plan_sha256,
    },
  });
}

/**
 * Writes `message` and resolves once gRPC has taken it (its write callback): true, or false when
 * the stream closed first. Awaiting each write keeps at most one chunk in the node's transport.
 */
function written(stream: Stream, message: Outgoing<NodeMessage>): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const closed = () => resolve(false);
    stream.once('close', closed);
    stream.write(message, (error?: Error | null) => {
      stream.off('close', closed);
      resolve(error == null);
    });
  });
}

/** Trains one request and writes its reply (or its typed error), unless its connection is gone. */
async function handle(
  stream: Stream,
  session: Session,
  request: TrainRequest,
  options: NodeOptions,
  plans: Map<string, TrainingPlan>,
): Promise<void> {
  const ids = { experiment_id: request.experiment_id, round: request.round, attempt: request.attempt };
  const fail = (code: TrainErrorCode, message: string) => answerError(stream, session, request, options, code, message);
  if (orphaned(session, request, options, 'before training')) return;
  try {
    await options.beforeTrain?.(request);
    if (orphaned(session, request, options, 'before training')) return;
    let plan: TrainingPlan;
    try {
      plan = await approvedPlan(request, options, plans);
    } catch (error) {
      if (error instanceof PlanNotApprovedError) return fail('PLAN_NOT_APPROVED', error.message);
      return fail('PLAN_LOAD_FAILED', (error as Error).message);
    }
    let trainingArgs: Record<string, unknown>;
    let rngState: RngState;
    let params;
    const t0 = performance.now();
    try {
      trainingArgs = JSON.parse(request.training_args_json) as Record<string, unknown>;
      rngState = { algorithm: request.rng?.algorithm, s: request.rng?.s } as RngState;
      params = decodeSafetensors(request.params, { source: `round ${request.round}'s parameters` });
    } catch (error) {
      return fail('BAD_REQUEST', (error as Error).message);
    }
    const t1 = performance.now();
    const result = await plan.train(params, options.dataset.data, trainingArgs, Rng.fromState(rngState));
    const t2 = performance.now();
    const bytes = encodeSafetensors(result.params);
    const t3 = performance.now();
    if (orphaned(session, request, options, 'after training (its reply)')) return;
    const reply = {
      ...ids,
      sample_size: result.sampleSize,
      metrics: result.metrics,
      timings: { decode_ms: t1 - t0, train_ms: t2 - t1, encode_ms: t3 - t2 },
    };
    if (session.version >= 2) {
      // Revision 2: the parameters first, in chunks, each written once the previous one is taken;
      // the TrainReply last, with their size and hash.
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      for (let offset = 0; offset < bytes.length; offset += PARAMS_CHUNK_BYTES) {
        const data = bytes.subarray(offset, offset + PARAMS_CHUNK_BYTES);
        const sent = await written(stream, { params_chunk: { ...ids, offset, data } });
        if (orphaned(session, request, options, 'while its reply was sent', !sent || session.over)) return;
      }
      const sent = await written(stream, {
        train_reply: { ...reply, params: Buffer.alloc(0), params_bytes: bytes.length, params_sha256: sha256 },
      });
      if (orphaned(session, request, options, 'after training (its reply)', !sent || session.over)) return;
    } else {
      const sent = await written(stream, {
        train_reply: { ...reply, params: bytes, params_bytes: 0, params_sha256: '' },
      });
      if (orphaned(session, request, options, 'after training (its reply)', !sent || session.over)) return;
    }
    options.onEvent(
      `train-reply round=${request.round} attempt=${request.attempt} samples=${result.sampleSize} ` +
        `train_ms=${(t2 - t1).toFixed(1)}`,
    );
  } catch (error) {
    const message = error instanceof RoundlogError ? `${error.code}: ${error.message}` : String(error);
    fail('TRAINING_FAILED', message);
  }
}

/** The approved plan a request names, imported from its approved file (cached by digest). */
async function approvedPlan(
  request: TrainRequest,
  options: NodeOptions,
  plans: Map<string, TrainingPlan>,
): Promise<TrainingPlan> {
  const sha256 = request.plan_sha256;
  const approvals = await readApprovals(options.nodeDir);
  const entry = approvals.find((plan) => plan.sha256 === sha256 && plan.files !== undefined);
  if (entry?.files === undefined) throw notApproved(request, options, approvals);
  // Checked on every request: a closure changed since its approval is not run.
  const refuse = (changed: string[], reason: string) =>
    new PlanNotApprovedError(
      options.id,
      request.plan_id,
      sha256,
      options.nodeDir,
      entry.file,
      approvals.map((plan) => plan.sha256),
      changed,
      `it approved ${entry.file} with that digest on ${entry.approvedAt}, and ${reason}`,
    );
  let closure;
  try {
    closure = await planClosure(entry.file);
  } catch (error) {
    const why = error instanceof RoundlogError ? error.message : String(error);
    throw refuse([], `its files cannot be read as approved now (${why})`);
  }
  if (closure.sha256 !== sha256) {
    const changed = closureChanges(entry.files, closure.files);
    const named = changed.length === 0 ? `its digest is ${closure.sha256} now` : changed.map((c) => c.text).join('; ');
    throw refuse(
      changed.map((c) => c.path),
      `a file of it changed since (paths relative to ${path.dirname(entry.file)}): ${named}`,
    );
  }
  const cached = plans.get(`${sha256}#${request.plan_export}`);
  if (cached !== undefined) return cached;
  // A module is imported once per process: a file changed (and approved again) after its first
  // import would still run its old code, so it is refused until the node restarts.
  const other = [...plans.keys()].find(
    (k) => k.startsWith(`${entry.file}\0`) && !k.startsWith(`${entry.file}\0${sha256}`),
  );
  if (other !== undefined) {
    throw new Error(
      `${entry.file} or a file it imports changed since this node imported it: restart the node to train ` +
        'with the new version',
    );
  }
  const module = await importModule(entry.file);
  const plan = module[request.plan_export] as TrainingPlan | undefined;
  if (typeof plan?.train !== 'function') {
    throw new Error(`${entry.file} has no export ${JSON.stringify(request.plan_export)} with train()`);
  }
  plans.set(`${sha256}#${request.plan_export}`, plan);
  plans.set(`${entry.file}\0${sha256}`, plan);
  return plan;
}

/** The refusal of a digest the approval list does not hold: what the node has approved instead. */
function notApproved(request: TrainRequest, options: NodeOptions, approvals: readonly ApprovedPlan[]) {
  const hash = request.plan_id.lastIndexOf('#');
  const module = hash > 0 ? request.plan_id.slice(0, hash) : request.plan_id;
  // The file to approve: one this node approved before under the plan's module path, else that path.
  const same = approvals.filter((plan) => plan.file === module || plan.file.endsWith(`/${module}`));
  const planFile = same.at(-1)?.file ?? module;
  const legacyNote = ', approved before approvals covered the files a plan imports: approve it again';
  const describe = (plan: ApprovedPlan) =>
    `${plan.file} (digest ${plan.sha256}${plan.files === undefined ? legacyNote : ''})`;
  let reason: string;
  if (approvals.length === 0) {
    reason = `its approval list ${path.join(options.nodeDir, APPROVALS_FILE)} holds no plan`;
  } else {
    const legacy = approvals.find((plan) => plan.files === undefined && plan.sha256 === request.plan_sha256);
    const named = same.at(-1);
    reason =
      legacy !== undefined
        ? `it approved ${describe(legacy)}`
        : named !== undefined
          ? // Most likely the plan, edited since its approval (on the researcher's side or here).
            `it approved ${describe(named)} under that name, with another digest: that file, or a file it ` +
            `imports, is not what the researcher runs (changed since it was approved, there or here); review ` +
            `the difference, then approve it again`
          : `it has approved ${approvals.length === 1 ? 'one other plan' : `${approvals.length} other plans`} ` +
            `only: ${approvals.slice(-5).map(describe).join(', ')}` +
            (approvals.length > 5 ? ` and ${approvals.length - 5} more` : '');
  }
  return new PlanNotApprovedError(
    options.id,
    request.plan_id,
    request.plan_sha256,
    options.nodeDir,
    planFile,
    approvals.map((plan) => plan.sha256),
    [],
    reason,
  );
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
