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
 * Work belongs to the connection it came on: when the stream ends (the researcher was killed, the
 * link cut), the requests still queued are dropped unstarted, a training in progress has its result
 * discarded, and nothing is sent on a later connection. A researcher that comes back resumes from
 * its log and asks again, under a new attempt number; the node never replies to the old one.
 */
import * as grpc from '@grpc/grpc-js';
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
  PROTOCOL_VERSION,
  federationProtocol,
  messageSizeOptions,
  type NodeMessage,
  type Outgoing,
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
  while (!options.signal.aborted) {
    options.onEvent(`connecting to ${options.researcher}`);
    // A new channel for each attempt: a channel that failed to connect waits out its own backoff
    // (up to 2 minutes) before trying again, and would fail every call until then.
    const client = new Client(options.researcher, grpc.credentials.createInsecure(), {
      ...messageSizeOptions(maxMessageBytes),
    });
    let outcome: Outcome;
    try {
      outcome = await session(client, options, plans);
    } finally {
      client.close();
    }
    if (outcome.welcomed) delay = RETRY_MIN_MS;
    if (options.signal.aborted) break;
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

type Outcome = { welcomed: boolean; failure: ConnectionFailure; fatal: Error | null };

/** One connection, from the Hello to the stream's end. */
function session(
  client: InstanceType<ReturnType<typeof federationProtocol>['Client']>,
  options: NodeOptions,
  plans: Map<string, TrainingPlan>,
): Promise<Outcome> {
  return new Promise<Outcome>((resolve) => {
    const stream: Stream = client.Connect();
    let welcomed = false;
    let fatal: Error | null = null;
    let refusal: ConnectionFailure | null = null;
    let status: grpc.ServiceError | null = null;
    // One training at a time, in the order asked.
    let queue = Promise.resolve();
    // Set once the stream is over: the work it brought is orphaned.
    const session: Session = { over: false };
    const onAbort = () => stream.cancel();
    options.signal.addEventListener('abort', onAbort, { once: true });
    const finish = () => {
      session.over = true;
      options.signal.removeEventListener('abort', onAbort);
      const failure = refusal ?? connectionFailure(options.researcher, status, welcomed);
      resolve({ welcomed, failure, fatal });
    };
    stream.on('data', (message: ResearcherMessage) => {
      if (message.body === 'welcome') {
        welcomed = true;
        options.onEvent(
          `connected to ${options.researcher} as ${JSON.stringify(options.id)} ` +
            `(protocol ${message.welcome.protocol_version})`,
        );
      } else if (message.body === 'refusal') {
        const { code, message: text } = message.refusal;
        refusal = {
          kind: 'refused',
          text: `refused by the researcher at ${options.researcher} with code ${code}: ${text}`,
        };
        if (code !== 'DUPLICATE_NODE_ID') fatal = new NodeRefusedError(options.id, options.researcher, code, text);
      } else if (message.body === 'train_request') {
        const request = message.train_request;
        options.onEvent(
          `train-request experiment=${request.experiment} round=${request.round} attempt=${request.attempt} ` +
            `plan=${request.plan_id} sha256=${request.plan_sha256}`,
        );
        queue = queue
          .then(() => handle(stream, session, request, options, plans))
          // The stream may be gone by the time a reply is written: the next connection starts afresh.
          .catch((error: unknown) => options.onEvent(`train-error round=${request.round}: ${String(error)}`));
      }
    });
    stream.on('error', (error: grpc.ServiceError) => {
      status = error;
    });
    stream.on('close', finish);
    stream.on('end', () => stream.end());
    stream.write({
      hello: {
        protocol_version: PROTOCOL_VERSION,
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

type Session = { over: boolean };

/**
 * Whether the request's connection is gone (then says so: the work is dropped, since the researcher
 * that asked for it no longer waits for it).
 */
function orphaned(session: Session, request: TrainRequest, options: NodeOptions, what: string): boolean {
  if (!session.over) return false;
  options.onEvent(
    `dropped experiment=${request.experiment} round=${request.round} attempt=${request.attempt} ${what}: ` +
      `the connection it came on is gone`,
  );
  return true;
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
  const fail = (code: TrainErrorCode, message: string) => {
    if (orphaned(session, request, options, `(its ${code} answer)`)) return;
    options.onEvent(`train-error round=${request.round} ${code}: ${message}`);
    stream.write({
      train_error: { ...ids, code, message, plan_id: request.plan_id, plan_sha256: request.plan_sha256 },
    });
  };
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
    stream.write({
      train_reply: {
        ...ids,
        params: bytes,
        sample_size: result.sampleSize,
        metrics: result.metrics,
        timings: { decode_ms: t1 - t0, train_ms: t2 - t1, encode_ms: t3 - t2 },
      },
    });
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
    reason =
      legacy !== undefined
        ? `it approved ${describe(legacy)}`
        : `it has approved ${approvals.length === 1 ? 'one other plan' : `${approvals.length} other plans`} only: ` +
          approvals.slice(-5).map(describe).join(', ') +
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
