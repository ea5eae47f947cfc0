/**
 * `roundlog serve` as an application: `createServer(options)` builds the Fastify instance (routes,
 * schemas, the OpenAPI document, authentication, errors) over one round log opened on the root
 * with its projections, without listening; `listen` is the caller's (the CLI's, or a test's
 * `inject`). Closing the instance waits for the requests in flight, ends the live event streams
 * and closes the round log. Runs are left as their clients left them: a client whose server went
 * away resumes its run (the lease is its, not the server's).
 *
 * The API contract is `GET /openapi.json` (generated from the schemas of `schemas.ts`); the
 * mapping of errors to statuses is `status.ts`; idempotent retries are `idempotency.ts`; streamed
 * parameter uploads are `params.ts`; one experiment's requests are queued by `experiments.ts`.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import { STATUS_CODES } from 'node:http';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import {
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import { auditEvents, experimentHistory, followEvents, lineage, metricSeries, roundsTable } from '../audit/index.ts';
import { isEventType } from '../audit/common.ts';
import { CorruptBlobError } from '../blobs/errors.ts';
import { SAFETENSORS_ENCODING, encodeSafetensorsChunks } from '../codec/safetensors.ts';
import { DTYPES } from '../codec/dtypes.ts';
import { InvalidArgumentError } from '../errors.ts';
import type { RecordedEvent } from '../log/types.ts';
import { readHistory } from '../engine/registry.ts';
import { processStartOf, runLiveness, statusOf } from '../engine/lease.ts';
import {
  decideCompleteRound,
  decideEndRun,
  decideFail,
  decideHeartbeat,
  decideResume,
  decideStartRun,
} from '../model/decide/index.ts';
import {
  ConcurrentModificationError,
  ExperimentExistsError,
  ExperimentRunningError,
  RoundNotFoundError,
  RunNotOwnedError,
} from '../model/errors.ts';
import type { ExperimentEvent, ExperimentEventType, Forked, ForkedFrom, Rewound, RunStarted } from '../model/events.ts';
import { breakpointFolderName } from '../model/names.ts';
import { checkRetention } from '../model/retention.ts';
import { roundCurrent, replay, type ExperimentState } from '../model/state.ts';
import {
  chooseRound,
  exportRound,
  forkExperiment,
  openRoundLog,
  replayRound,
  rewindExperiment,
  type ExperimentHandle,
  type OpenRoundLogOptions,
} from '../projections/index.ts';
import { VERSION } from '../version.ts';
import { listExperiments } from '../cli/experiments.ts';
import {
  BadHttpRequestError,
  EventIdAheadError,
  HostNotAllowedError,
  InvalidUrlError,
  PathParamTooLongError,
  TokenRequiredError,
  IdempotencyKeyReusedError,
  RoundMismatchError,
  RouteNotFoundError,
  UnauthorizedError,
  InvalidRequestError,
  UnsupportedMediaTypeError,
} from './errors.ts';
import { ExperimentAccess } from './experiments.ts';
import { unsafeIntegerError } from './json.ts';
import { keyOfId, requestIds, type RequestIds } from './idempotency.ts';
import { storeParams, storedParams, tensorsOf, type TensorInfo } from './params.ts';
import {
  MAX_PATH_PARAM_LENGTH,
  auditEventsQuery,
  createExperimentBody,
  createdExperimentReply,
  experimentReply,
  recordedRoundReply,
  revisionReply,
  roundReply,
  startedRunReply,
  storedParamsReply,
  decimalString,
  endRunBody,
  errorSchema,
  eventsQuery,
  experimentParams,
  exportQuery,
  failRunBody,
  forkBody,
  metricParams,
  metricQuery,
  recordRoundBody,
  replayBody,
  rewindBody,
  roundParams,
  runParams,
  startRunBody,
} from './schemas.ts';
import { errorResponse, jsonSafe, type BodyLimits } from './status.ts';

/** The API version in paths (`/v1`) and in `GET /v1/version`. */
export const API_VERSION = 1;
/** Default limit of a JSON request body: 16 MiB. */
export const DEFAULT_BODY_LIMIT = 16 * 1024 * 1024;
/** Default limit of a parameters upload: 4 GiB. */
export const DEFAULT_MAX_PARAMS_BYTES = 4 * 1024 ** 3;
/** Default interval of the `: keep-alive` comment of a live event stream. */
export const DEFAULT_KEEP_ALIVE_MS = 15_000;
/** The router's limit of one path parameter in the URL: `MAX_PATH_PARAM_LENGTH` characters percent-encoded. */
export const MAX_URL_PARAM_LENGTH = 3 * MAX_PATH_PARAM_LENGTH;
/** Default heartbeat interval of a run started over HTTP. */
export const DEFAULT_RUN_HEARTBEAT_MS = 30_000;

export type ServeOptions = Omit<OpenRoundLogOptions, 'projections' | 'newId'> & {
  /**
   * Where the server will listen, for the security rule only (`listen` is the caller's): a host
   * that is not loopback needs a `token` (`TokenRequiredError` otherwise). Default `127.0.0.1`.
   */
  host?: string;
  /** The bearer token clients must send (`Authorization: Bearer <token>`); null for none. */
  token?: string | null;
  /** Largest JSON body, in bytes. Default `DEFAULT_BODY_LIMIT`. */
  bodyLimit?: number;
  /** Largest parameters upload, in bytes. Default `DEFAULT_MAX_PARAMS_BYTES`. */
  maxParamsBytes?: number;
  /** Interval of the live event streams' keep-alive comment, in ms. Default 15 s. */
  keepAliveMs?: number;
  /** How often the live event streams look for new events, in ms. Default 50. */
  pollIntervalMs?: number;
  /** Fastify's request log (pino) on stderr. Default false. */
  logger?: boolean;
  /**
   * Called with every error answered with a 5xx (the client sees its code, or `INTERNAL` with no
   * detail): where the server's operator reads what failed. Default: nothing.
   */
  onServerError?: (error: unknown, request: Readonly<{ method: string; url: string }>) => void;
};

/** Whether `host` is a loopback address (or `localhost`): reachable from this machine only. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || /^::ffff:127\.\d+\.\d+\.\d+$/.test(h);
}

/** The host name of a `Host` header: `[::1]:8080` is `::1`, `localhost:8080` is `localhost`. */
function hostnameOf(header: string): string {
  const h = header.trim();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') === -1 ? undefined : h.indexOf(']'));
  const colon = h.lastIndexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}

type SendResult = { status: number; body: unknown };

/**
 * The HTTP service over the round log of `options.root`. Refuses (`TokenRequiredError`) a
 * non-loopback `host` without a token; the round log is opened here and closed with the instance.
 */
export async function createServer(options: ServeOptions = {}): Promise<FastifyInstance> {
  const host = options.host ?? '127.0.0.1';
  const token = options.token ?? null;
  if (token === null && !isLoopback(host)) throw new TokenRequiredError(host);
  const keepAliveMs = options.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS;
  // A creation with a request id takes the experiment id derived from it (`idempotency.ts`): the
  // first id the round log draws inside that creation, and only there.
  const derivedIds = new AsyncLocalStorage<{ id: string | null }>();
  const {
    host: _host,
    token: _token,
    bodyLimit: _bodyLimit,
    maxParamsBytes: _max,
    keepAliveMs: _keepAlive,
    pollIntervalMs,
    logger,
    onServerError,
    ...roundLogOptions
  } = options;
  const rl = await openRoundLog({
    ...roundLogOptions,
    newId: () => {
      const slot = derivedIds.getStore();
      if (slot?.id) {
        const id = slot.id;
        slot.id = null;
        return id;
      }
      return randomUUID();
    },
  });
  const access = new ExperimentAccess(rl);
  // Every error answer names paths relative to the root, never the root's absolute path.
  const limits: BodyLimits = {
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    maxParamsBytes: options.maxParamsBytes ?? DEFAULT_MAX_PARAMS_BYTES,
    root: rl.root,
  };
  // Closing stops accepting, closes idle keep-alive connections and waits for requests in flight.
  const app = Fastify({
    logger: logger ?? false,
    bodyLimit: limits.bodyLimit,
    forceCloseConnections: 'idle',
    // Percent-encoded, a parameter of MAX_PATH_PARAM_LENGTH characters takes up to 3 bytes each
    // in the URL: the router lets it through and the route's schema judges the decoded value.
    maxParamLength: MAX_URL_PARAM_LENGTH,
    // The router's own refusals (a parameter too long, a URL that does not decode): typed JSON.
    frameworkErrors: (error, request, reply) => {
      const url = request.url.split('?')[0]!;
      const typed =
        error.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? new PathParamTooLongError(url, MAX_URL_PARAM_LENGTH)
          : error.code === 'FST_ERR_BAD_URL'
            ? new InvalidUrlError(url)
            : error;
      const { status, body } = errorResponse(typed, limits);
      void (reply as FastifyReply).code(status).type('application/json; charset=utf-8').send(JSON.stringify(body));
    },
    // What Node's HTTP parser refuses (headers too large, a bad Content-Length, a malformed
    // request): the same JSON, written on the socket, which then closes.
    clientErrorHandler: (error, socket) => {
      const reason = (error as NodeJS.ErrnoException).code ?? 'HPE_INVALID';
      if (reason === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      const { status, body } = errorResponse(new BadHttpRequestError(reason), limits);
      const text = JSON.stringify(body);
      socket.end(
        `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
      );
    },
  });
  const streams = new Set<Readonly<{ end: () => void }>>();
  // Live event streams never end by themselves: ended first, so closing does not wait for them.
  app.addHook('preClose', async () => {
    for (const stream of streams) stream.end();
  });
  app.addHook('onClose', async () => {
    await access.close();
    await rl.close();
  });
  // JSON bodies: Fastify's parser (prototype poisoning refused), then integers past 2^53 refused
  // by their field (`json.ts`): JSON.parse would round them without a word.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  // JSON routes take JSON only: text/plain is 415 as form types are (Fastify parses it by default).
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    parseJson(request, text, (error: Error | null, value?: unknown) => {
      if (error) return done(error, undefined);
      const unsafe = unsafeIntegerError(text);
      if (unsafe !== null) return done(unsafe, undefined);
      done(null, value);
    });
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler((error, request, reply) => {
    const mediaType = (error as { code?: unknown }).code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE';
    const accepted = request.url.startsWith('/v1/params') ? 'application/octet-stream' : 'application/json';
    const typed = mediaType
      ? new UnsupportedMediaTypeError(request.headers['content-type'] ?? null, [accepted])
      : error;
    const { status, body } = errorResponse(typed, limits);
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed');
      onServerError?.(error, { method: request.method, url: request.url });
    }
    if (reply.raw.headersSent) {
      reply.raw.destroy();
      return;
    }
    void reply.code(status).type('application/json; charset=utf-8').send(JSON.stringify(body));
  });
  app.setNotFoundHandler((request, reply) => {
    const { status, body } = errorResponse(new RouteNotFoundError(request.method, request.url.split('?')[0]!), limits);
    void reply.code(status).type('application/json; charset=utf-8').send(JSON.stringify(body));
  });

  const tokenDigest = token === null ? null : createHash('sha256').update(token).digest();
  // On loopback, a page of another site can reach the server through a name it rebinds to
  // 127.0.0.1: its requests carry that name in Host, refused here (before the token, health too).
  if (isLoopback(host)) {
    app.addHook('onRequest', async (request) => {
      const given = request.headers.host;
      if (given === undefined || !isLoopback(hostnameOf(given))) throw new HostNotAllowedError(given ?? null);
    });
  }
  app.addHook('onRequest', async (request) => {
    if (tokenDigest === null || request.url === '/v1/health') return;
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (match === null) throw new UnauthorizedError('missing');
    // Both sides hashed first: equal lengths for timingSafeEqual, and no timing tells how much matched.
    const given = createHash('sha256').update(match[1]!).digest();
    if (!timingSafeEqual(given, tokenDigest)) throw new UnauthorizedError('invalid');
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'roundlog serve',
        version: VERSION,
        description:
          'Record and read training rounds of a roundlog root over HTTP. Every error is JSON ' +
          '{ code, message, ...fields }; bigints (revisions, log positions) are decimal strings.',
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      },
      ...(token === null ? {} : { security: [{ bearer: [] }] }),
    },
    transform: jsonSchemaTransform,
  });

  const api = app.withTypeProvider<ZodTypeProvider>();
  const send = (reply: FastifyReply, result: SendResult) =>
    reply
      .code(result.status)
      .type('application/json; charset=utf-8')
      .send(JSON.stringify(jsonSafe(result.body)));
  const errors = { default: errorSchema };
  const binary = { 200: z.unknown().describe('the file (application/octet-stream)'), default: errorSchema };

  // ---- service ------------------------------------------------------------------------------

  api.get(
    '/v1/health',
    { schema: { summary: 'liveness', response: { 200: z.object({ status: z.literal('ok') }) } } },
    async (_request, reply) => send(reply, { status: 200, body: { status: 'ok' } }),
  );
  api.get(
    '/v1/version',
    {
      schema: {
        summary: 'the roundlog version and the API version',
        response: { 200: z.object({ version: z.string(), api: z.number() }) },
      },
    },
    async (_request, reply) => send(reply, { status: 200, body: { version: VERSION, api: API_VERSION } }),
  );
  app.get('/openapi.json', { schema: { hide: true } }, async (_request, reply) =>
    reply.send(finishedOpenApi(app.swagger() as unknown as OpenApiDocument, token !== null)),
  );

  // ---- experiments --------------------------------------------------------------------------

  api.get(
    '/v1/experiments',
    { schema: { summary: 'the experiments of the root, as `roundlog ls --json` lists them', response: errors } },
    async (_request, reply) => {
      const { root: _root, ...where } = roundLogOptions;
      const experiments = await listExperiments(rl.root, { ...where, createRoot: false });
      return send(reply, { status: 200, body: { experiments } });
    },
  );

  api.post(
    '/v1/experiments',
    {
      schema: {
        summary: 'create an experiment',
        body: createExperimentBody.optional(),
        response: { 201: createdExperimentReply, ...errors },
      },
    },
    async (request, reply) => {
      const { requestId, ...content } = request.body ?? {};
      const result = await access.exclusive(async () => {
        const registered = await rl.listExperiments();
        let experimentId: string | null = null;
        if (requestId !== undefined) {
          const ids = requestIds('registry', 'create', requestId, content);
          experimentId = ids.ids(1)[0]!;
          const found = registered.find((e) => keyOfId(e.experimentId) === ids.key);
          if (found !== undefined) {
            if (found.experimentId !== experimentId) throw new IdempotencyKeyReusedError('(a creation)', requestId);
            // The creation's append: its ExperimentCreated, and a SettingsChanged when it set a retention.
            return created(found, content.retention ? 1n : 0n);
          }
        }
        const taken = content.folder === undefined ? undefined : registered.find((e) => e.folder === content.folder);
        if (taken !== undefined) throw new ExperimentExistsError(taken.experimentId, taken.folder);
        const handle = await derivedIds.run({ id: experimentId }, () =>
          rl.createExperiment({
            ...(content.folder === undefined ? {} : { folder: content.folder }),
            ...(content.roundLimit === undefined ? {} : { roundLimit: content.roundLimit }),
            ...(content.seed === undefined ? {} : { seed: content.seed }),
            ...(content.saveBreakpoints === undefined ? {} : { saveBreakpoints: content.saveBreakpoints }),
            ...(content.config === undefined ? {} : { config: content.config }),
            ...(content.retention ? { retention: checkRetention(content.retention) } : {}),
          }),
        );
        const c = handle.created;
        return created(
          { experimentId: c.experimentId, folder: c.folder, number: c.number, stream: handle.stream },
          handle.state.revision,
        );
      });
      return send(reply, result);
    },
  );

  api.get(
    '/v1/experiments/:experiment',
    {
      schema: {
        summary: 'an experiment: its state, status, open run and settings',
        params: experimentParams,
        response: { 200: experimentReply, ...errors },
      },
    },
    async (request, reply) => {
      const body = await access.with(request.params.experiment, async (handle) => describe(handle));
      return send(reply, { status: 200, body });
    },
  );

  // ---- runs ---------------------------------------------------------------------------------

  api.post(
    '/v1/experiments/:experiment/runs',
    {
      schema: {
        summary: 'start a run (or resume one: when rounds exist the history records the resume)',
        params: experimentParams,
        body: startRunBody,
        response: { 201: startedRunReply, ...errors },
      },
    },
    async (request, reply) => {
      const { requestId, ...content } = request.body;
      const result = await mutate(request.params.experiment, 'start-run', requestId, content, {
        decide: (handle) => {
          const state = handle.state;
          const owner = {
            user: content.owner.user ?? content.owner.name ?? 'client',
            host: content.owner.host,
            pid: content.owner.pid,
            // A client on this host: the start time of its pid now (it is making this request), so a
            // later process that gets the same pid is not taken for it (`ownerLiveness`).
            processStart: content.owner.host === os.hostname() ? processStartOf(content.owner.pid) : null,
          };
          const actor = { user: owner.user, host: owner.host, pid: owner.pid };
          const lease = {
            runId: randomUUID(),
            owner,
            heartbeatMs: content.heartbeatMs ?? DEFAULT_RUN_HEARTBEAT_MS,
            takeOver: content.takeOver ?? false,
            liveness: runLiveness(state),
            now: new Date(),
          };
          // Refused first (naming the owner) while a live run holds it; then, with rounds, a resume.
          decideStartRun(state, lease);
          const rc = roundCurrent(state);
          const resumed =
            rc === 0 ? [] : decideResume(state, { round: rc - 1, breakpoint: breakpointFolderName(rc - 1) }, { actor });
          return [...resumed, ...decideStartRun(state, lease)];
        },
        respond: (events, state) => {
          const started = events.find((e) => e.type === 'RunStarted')!.data as RunStarted;
          return {
            status: 201,
            body: {
              runId: started.runId,
              roundCurrent: roundCurrent(state),
              revision: events.at(-1)!.revision,
              resumed: events.some((e) => e.type === 'Resumed'),
            },
          };
        },
      });
      return send(reply, result);
    },
  );

  api.post(
    '/v1/experiments/:experiment/runs/:runId/heartbeat',
    {
      schema: {
        summary: 'the run is alive',
        params: runParams,
        body: endRunBody.optional(),
        response: { 200: revisionReply, ...errors },
      },
    },
    async (request, reply) => {
      const { runId } = request.params;
      const result = await mutate(
        request.params.experiment,
        'heartbeat',
        request.body?.requestId,
        { runId },
        {
          decide: (handle) => decideHeartbeat(handle.state, { runId }),
          respond: (events) => ({ status: 200, body: { revision: events.at(-1)!.revision } }),
        },
      );
      return send(reply, result);
    },
  );

  api.post(
    '/v1/experiments/:experiment/runs/:runId/end',
    {
      schema: {
        summary: 'end the run (nothing to end: nothing appended)',
        params: runParams,
        body: endRunBody.optional(),
        response: { 200: revisionReply, ...errors },
      },
    },
    async (request, reply) => {
      const { runId } = request.params;
      const result = await mutate(
        request.params.experiment,
        'end-run',
        request.body?.requestId,
        { runId },
        {
          decide: (handle) => decideEndRun(handle.state, { runId }),
          respond: (events, state) => ({ status: 200, body: { revision: events.at(-1)?.revision ?? state.revision } }),
        },
      );
      return send(reply, result);
    },
  );

  api.post(
    '/v1/experiments/:experiment/runs/:runId/fail',
    {
      schema: {
        summary: 'the run failed: records its error',
        params: runParams,
        body: failRunBody,
        response: { 200: revisionReply, ...errors },
      },
    },
    async (request, reply) => {
      const { runId } = request.params;
      const { requestId, ...content } = request.body;
      const result = await mutate(
        request.params.experiment,
        'fail-run',
        requestId,
        { runId, ...content },
        {
          decide: (handle) => {
            const state = handle.state;
            if (state.run?.runId !== runId) {
              const current = state.run === null ? null : { runId: state.run.runId, owner: state.run.owner };
              throw new RunNotOwnedError(state.folder, runId, current);
            }
            return decideFail(state, { code: content.code ?? 'CLIENT_FAILED', message: content.message });
          },
          respond: (events) => ({ status: 200, body: { revision: events.at(-1)!.revision } }),
        },
      );
      return send(reply, result);
    },
  );

  // ---- parameters and rounds ----------------------------------------------------------------

  await app.register(async (scope) => {
    // Only this route takes a raw body: the stream goes to the blob store as it arrives.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));
    scope.withTypeProvider<ZodTypeProvider>().post(
      '/v1/params',
      {
        schema: {
          summary:
            'store parameters: a safetensors body (Content-Type: application/octet-stream), streamed; ' +
            'content-addressed (SHA-256), so a retry stores nothing twice',
          response: { 201: storedParamsReply, ...errors },
        },
      },
      async (request, reply) => {
        const body = request.body as Readable | undefined;
        if (body === undefined || typeof (body as Readable).pipe !== 'function') {
          throw new UnsupportedMediaTypeError(request.headers['content-type'] ?? null, ['application/octet-stream']);
        }
        const length = request.headers['content-length'];
        const declared = length === undefined ? null : Number(length);
        const stored = await storeParams(rl.blobs, body, declared, limits.maxParamsBytes).catch((error: unknown) => {
          // A refused body left unread: the connection ends after the answer (`drainable`).
          if (!body.readableEnded && body.readableFlowing !== true) reply.header('connection', 'close');
          throw error;
        });
        return send(reply, {
          status: 201,
          body: {
            sha256: stored.ref.sha256,
            size: stored.ref.bytes,
            encoding: stored.ref.encoding,
            tensors: stored.tensors,
            created: stored.created,
          },
        });
      },
    );
  });

  api.post(
    '/v1/experiments/:experiment/rounds',
    {
      schema: {
        summary: 'record a round (durable before the response)',
        params: experimentParams,
        body: recordRoundBody,
        headers: z.looseObject({ 'if-match': z.string().optional() }),
        response: { 201: recordedRoundReply, ...errors },
      },
    },
    async (request, reply) => {
      const { requestId, expectedRevision, ...content } = request.body;
      const expected = expectedRevisionOf(expectedRevision, request.headers['if-match']);
      const result = await mutate(request.params.experiment, 'record-round', requestId, content, {
        expected,
        decide: async (handle) => {
          const state = handle.state;
          if (content.runId !== undefined && state.run?.runId !== content.runId) {
            const current = state.run === null ? null : { runId: state.run.runId, owner: state.run.owner };
            throw new RunNotOwnedError(state.folder, content.runId, current);
          }
          // Without a run id the client holds no run: refused while a live run of another holds it,
          // as every other writer is (rewind; a second start), so the owner's next round still fits.
          if (content.runId === undefined && state.run !== null && statusOf(state) === 'running') {
            throw new ExperimentRunningError(state.folder, state.run.owner, state.run.since, state.run.lastSeen);
          }
          const rc = roundCurrent(state);
          if (content.round !== rc) throw new RoundMismatchError(state.folder, content.round, rc);
          const { ref } = await storedParams(rl.blobs, content.params.sha256);
          return decideCompleteRound(state, {
            round: content.round,
            params: ref,
            state: content.state ?? null,
            metrics: content.metrics ?? {},
            ...(content.breakpoint === undefined ? {} : { breakpoint: content.breakpoint }),
            ...(content.durationMs === undefined ? {} : { durationMs: content.durationMs }),
          });
        },
        respond: (events, state) => {
          const completed = events.find((e) => e.type === 'RoundCompleted')!;
          const data = completed.data as { round: number; breakpoint: boolean };
          const folder = path.join('experiments', state.folder, breakpointFolderName(data.round));
          return {
            status: 201,
            body: {
              round: data.round,
              revision: events.at(-1)!.revision,
              position: completed.position,
              breakpoint: data.breakpoint ? folder : null,
            },
          };
        },
      });
      return send(reply, result);
    },
  );

  api.get(
    '/v1/experiments/:experiment/rounds/:round',
    {
      schema: {
        summary: 'a round: its parameters (described), state, metrics, settings',
        params: roundParams,
        response: { 200: roundReply, ...errors },
      },
    },
    async (request, reply) => {
      const body = await access.with(request.params.experiment, async (handle) => {
        const { record } = pickRound(handle.state, request.params.round);
        return {
          round: record.round,
          attempt: record.attempt,
          params: {
            sha256: record.params.sha256,
            size: record.params.bytes,
            encoding: record.params.encoding,
            tensors: await tensorsOfRef(record.params),
          },
          state: record.state,
          metrics: record.metrics,
          settings: record.settings,
          position: record.position,
          revision: handle.state.revision,
        };
      });
      return send(reply, { status: 200, body });
    },
  );

  api.get(
    '/v1/experiments/:experiment/rounds/:round/params',
    { schema: { summary: "a round's parameters as a safetensors file", params: roundParams, response: binary } },
    async (request, reply) => {
      const ref = await access.with(
        request.params.experiment,
        async (handle) => pickRound(handle.state, request.params.round).record.params,
      );
      reply.header('x-roundlog-params-sha256', ref.sha256);
      reply.type('application/octet-stream');
      if (ref.encoding === SAFETENSORS_ENCODING) {
        const file = rl.blobs.fileOf(ref.sha256);
        if (file !== null) {
          reply.header('content-length', ref.bytes);
          return reply.send(createReadStream(file).pipe(hashChecked(ref.sha256)));
        }
        return reply.send(await rl.blobs.get(ref));
      }
      // An older encoding: decoded and written as safetensors, as `roundlog export` does.
      return reply.send(Buffer.concat(encodeSafetensorsChunks(await rl.getTensors(ref)).chunks));
    },
  );

  // ---- audit --------------------------------------------------------------------------------

  api.get(
    '/v1/experiments/:experiment/history',
    {
      schema: {
        summary: 'the timeline of the experiment (`roundlog history --json`)',
        params: experimentParams,
        response: errors,
      },
    },
    async (request, reply) =>
      send(reply, { status: 200, body: await experimentHistory(rl, { experiment: request.params.experiment }) }),
  );
  api.get(
    '/v1/experiments/:experiment/events',
    {
      schema: {
        summary: "the experiment's events (`roundlog audit events --json`)",
        params: experimentParams,
        querystring: auditEventsQuery,
        response: errors,
      },
    },
    async (request, reply) => {
      const types = request.query.type === undefined ? undefined : eventTypes(request.query.type);
      const result = await auditEvents(rl, {
        experiments: [request.params.experiment],
        ...(types === undefined ? {} : { types }),
      });
      return send(reply, { status: 200, body: result });
    },
  );
  api.get(
    '/v1/experiments/:experiment/rounds',
    {
      schema: {
        summary: 'the rounds table (`roundlog audit rounds --json`)',
        params: experimentParams,
        response: errors,
      },
    },
    async (request, reply) =>
      send(reply, { status: 200, body: await roundsTable(rl, { experiment: request.params.experiment }) }),
  );
  api.get(
    '/v1/experiments/:experiment/metrics/:name',
    {
      schema: {
        summary: 'a metric over the current branch (`roundlog audit metric --json`)',
        params: metricParams,
        querystring: metricQuery,
        response: errors,
      },
    },
    async (request, reply) => {
      const result = await metricSeries(rl, {
        experiment: request.params.experiment,
        metric: request.params.name,
        ...(request.query.node === undefined ? {} : { node: request.query.node }),
      });
      return send(reply, { status: 200, body: { name: result.metric, ...result } });
    },
  );
  api.get(
    '/v1/experiments/:experiment/lineage',
    {
      schema: {
        summary: 'ancestors and descendants (`roundlog audit lineage --json`)',
        params: experimentParams,
        response: errors,
      },
    },
    async (request, reply) =>
      send(reply, { status: 200, body: await lineage(rl, { experiment: request.params.experiment }) }),
  );

  // ---- history operations -------------------------------------------------------------------

  api.post(
    '/v1/experiments/:experiment/rewind',
    {
      schema: {
        summary: 'rewind to a round (`roundlog rewind`)',
        params: experimentParams,
        body: rewindBody,
        response: errors,
      },
    },
    async (request, reply) => {
      const { requestId, expectedRevision, ...content } = request.body;
      const expected = expectedRevisionOf(expectedRevision, request.headers['if-match']);
      const name = request.params.experiment;
      const result = await access.with(name, async (handle) => {
        const ids = requestId === undefined ? null : requestIds(handle.stream, 'rewind', requestId, content);
        if (ids !== null) {
          const replayed = await retried(handle, ids, requestId!, (events, state) => ({
            status: 200,
            body: rewoundBody(handle, events, state),
          }));
          if (replayed !== null) return replayed;
        }
        checkExpected(handle, expected);
        const rewound = await rewindExperiment(rl, handle.id, {
          round: content.round,
          reason: content.reason ?? 'rewound through roundlog serve',
          ...(content.by === undefined ? {} : { by: actorOf(content.by) }),
          ...(ids === null ? {} : { eventIds: ids.ids }),
        });
        return {
          status: 200,
          body: {
            ...rewound,
            breakpoint: path.relative(rl.root, rewound.breakpoint),
            moved: rewound.moved.map((m) => path.relative(rl.root, m)),
          },
        };
      });
      return send(reply, result);
    },
  );

  api.post(
    '/v1/experiments/:experiment/fork',
    {
      schema: {
        summary: 'fork a new experiment from a round (`roundlog fork`)',
        params: experimentParams,
        body: forkBody,
        response: errors,
      },
    },
    async (request, reply) => {
      const { requestId, ...content } = request.body;
      const name = request.params.experiment;
      const result = await access.exclusive(() =>
        access.with(name, async (handle) => {
          let childId: string | null = null;
          if (requestId !== undefined) {
            const ids = requestIds(handle.stream, 'fork', requestId, content);
            childId = ids.ids(1)[0]!;
            const found = (await rl.listExperiments()).find((e) => keyOfId(e.experimentId) === ids.key);
            if (found !== undefined) {
              if (found.experimentId !== childId) throw new IdempotencyKeyReusedError(handle.state.folder, requestId);
              return { status: 201, body: await forkedBody(found.experimentId) };
            }
          }
          // A folder an experiment has already: the answer POST /v1/experiments gives.
          if (content.folder !== undefined) {
            const taken = (await rl.listExperiments()).find((e) => e.folder === content.folder);
            if (taken !== undefined) throw new ExperimentExistsError(taken.experimentId, taken.folder);
          }
          const forked = await derivedIds.run({ id: childId }, () =>
            forkExperiment(rl, handle.id, {
              round: content.round,
              ...(content.folder === undefined ? {} : { name: content.folder }),
              ...(content.by === undefined ? {} : { by: actorOf(content.by) }),
              ...(content.superseded === undefined ? {} : { superseded: content.superseded }),
              ...(content.position === undefined ? {} : { position: BigInt(content.position) }),
            }),
          );
          // Answered from the log, as a retry is: the same fields both times.
          return { status: 201, body: await forkedBody(forked.childId) };
        }),
      );
      return send(reply, result);
    },
  );

  api.post(
    '/v1/experiments/:experiment/replay',
    {
      schema: {
        summary: 'rebuild the state after a round as a breakpoint folder under <root>/replays (`roundlog replay`)',
        params: experimentParams,
        body: replayBody,
        response: errors,
      },
    },
    async (request, reply) => {
      const { requestId: _requestId, ...content } = request.body;
      // Writes no event, and a second replay of the same round finds its folder there (`created: false`).
      const replayed = await replayRound(rl, request.params.experiment, {
        round: content.round,
        ...(content.superseded === undefined ? {} : { superseded: content.superseded }),
        ...(content.position === undefined ? {} : { position: BigInt(content.position) }),
      });
      const { state: _state, ...result } = replayed;
      return send(reply, { status: 200, body: { ...result, path: path.relative(rl.root, replayed.path) } });
    },
  );

  api.get(
    '/v1/experiments/:experiment/export',
    {
      schema: {
        summary: "a round's parameters as a file: safetensors or npz (`roundlog export`)",
        params: experimentParams,
        querystring: exportQuery,
        response: binary,
      },
    },
    async (request, reply) => {
      const format = request.query.format ?? 'safetensors';
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'roundlog-export-'));
      let file: Awaited<ReturnType<typeof fs.open>>;
      let result: Awaited<ReturnType<typeof exportRound>>;
      try {
        const out = path.join(dir, `params.${format}`);
        result = await exportRound(rl, request.params.experiment, {
          round: Number(request.query.round),
          out,
          format,
          ...(request.query.superseded === 'true' ? { superseded: true } : {}),
          ...(request.query.position === undefined ? {} : { position: BigInt(request.query.position) }),
        });
        // Opened, then its folder removed: the open file streams out and nothing is left behind.
        file = await fs.open(out, 'r');
      } finally {
        await fs.rm(dir, { recursive: true, force: true });
      }
      reply.header('x-roundlog-file-sha256', result.sha256);
      reply.header('content-length', result.bytes);
      reply.header('content-disposition', `attachment; filename="${result.folder}-round${result.round}.${format}"`);
      return reply.type('application/octet-stream').send(file.createReadStream());
    },
  );

  // ---- live events --------------------------------------------------------------------------

  api.get(
    '/v1/events',
    {
      schema: {
        summary: 'live events as Server-Sent Events, resumable with Last-Event-ID (id: the log position)',
        querystring: eventsQuery,
        headers: z.looseObject({ 'last-event-id': z.string().optional() }),
        response: errors,
      },
    },
    async (request, reply) => {
      const header = request.headers['last-event-id'];
      const fromHeader = typeof header === 'string' && header !== '';
      const lastText = fromHeader ? header : request.query.lastEventId;
      if (lastText !== undefined && !decimalString.safeParse(lastText).success) {
        // Named as the client sent it: the header, or the query parameter.
        const field = fromHeader ? 'headers.last-event-id' : 'querystring.lastEventId';
        throw new InvalidRequestError(field, 'must be a log position (a decimal string)');
      }
      const after = lastText === undefined ? -1n : BigInt(lastText);
      const experiment = request.query.experiment;
      // Fails here (as JSON) for an unknown experiment, before the stream starts.
      if (experiment !== undefined) await rl.openExperiment(experiment);
      // An id past the log's end is no id of this log: refused, not waited on for ever.
      if (after >= 0n) {
        const { lastPosition } = await rl.withReader((log) =>
          log.readAll({ direction: 'backwards', fromPosition: 'end', maxCount: 1 }),
        );
        if (lastPosition === null || after > lastPosition) throw new EventIdAheadError(after, lastPosition);
      }
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      raw.write(': roundlog events\n\n');
      const subscription = followEvents(rl, {
        ...(experiment === undefined ? {} : { experiments: [experiment] }),
        ...(pollIntervalMs === undefined ? {} : { pollIntervalMs }),
      }).subscribe({
        next: (followed) => {
          if (followed.kind === 'caughtUp') {
            raw.write(`: caught up at ${followed.position ?? 'start'}\n\n`);
            return;
          }
          const event = followed.item;
          // Resumed after the client's last event: nothing at or before it again, nothing after it missed.
          if (event.position <= after) return;
          raw.write(`id: ${event.position}\nevent: ${event.type}\ndata: ${JSON.stringify(jsonSafe(event))}\n\n`);
        },
        error: (error: unknown) => {
          const { body } = errorResponse(error, limits);
          raw.write(`event: error\ndata: ${JSON.stringify(body)}\n\n`);
          stop();
        },
      });
      const timer = setInterval(() => raw.write(': keep-alive\n\n'), keepAliveMs);
      const entry = { end: () => stop() };
      streams.add(entry);
      function stop() {
        clearInterval(timer);
        subscription.unsubscribe();
        streams.delete(entry);
        if (!raw.writableEnded) raw.end();
      }
      request.raw.on('close', stop);
    },
  );

  // ---- helpers (closures over the round log) ------------------------------------------------

  type Mutation = {
    expected?: bigint | null;
    decide: (handle: ExperimentHandle) => readonly ExperimentEvent[] | Promise<readonly ExperimentEvent[]>;
    respond: (events: readonly RecordedEvent[], state: ExperimentState) => SendResult;
  };

  /**
   * A request that appends to one experiment: alone among its experiment's requests; a retry of a
   * request id answered from the log (nothing appended); the expected revision checked; the events
   * decided on the state now, given the request's ids, appended (durable on return).
   */
  async function mutate(
    name: string,
    route: string,
    requestId: string | undefined,
    content: unknown,
    mutation: Mutation,
  ): Promise<SendResult> {
    return access.with(name, async (handle) => {
      const ids = requestId === undefined ? null : requestIds(handle.stream, route, requestId, content);
      if (ids !== null) {
        const replayed = await retried(handle, ids, requestId!, mutation.respond);
        if (replayed !== null) return replayed;
      }
      checkExpected(handle, mutation.expected ?? null);
      const events = await mutation.decide(handle);
      if (events.length === 0) return mutation.respond([], handle.state);
      const withIds = ids === null ? events : events.map((e, i) => ({ ...e, id: ids.ids(events.length)[i]! }));
      const recorded = await handle.append(withIds);
      access.requestIndex(handle).recorded(recorded);
      return mutation.respond(recorded, handle.state);
    });
  }

  /**
   * The first response of a request already done (its events found by id), or null;
   * `IdempotencyKeyReusedError` for other content.
   */
  async function retried(
    handle: ExperimentHandle,
    ids: RequestIds,
    requestId: string,
    respond: (events: readonly RecordedEvent[], state: ExperimentState) => SendResult,
  ): Promise<SendResult | null> {
    const found = await access.requestIndex(handle).find((fn) => rl.withReader(fn), handle.state.revision, ids);
    if (found.kind === 'none') return null;
    if (found.kind === 'reused') throw new IdempotencyKeyReusedError(handle.state.folder, requestId);
    // The state right after the request's events, as the first response saw it.
    const last = found.events.at(-1)!;
    const named = { folder: handle.created.folder, stream: handle.stream };
    const events = await rl.withReader(
      async (log) => (await readHistory(log, named, { maxCount: Number(last.revision) + 1 })).events,
    );
    const state = replay(events);
    return respond(
      found.events,
      handle.state.folder === state.folder ? state : { ...state, folder: handle.state.folder },
    );
  }

  function checkExpected(handle: ExperimentHandle, expected: bigint | null): void {
    if (expected === null) return;
    const actual = handle.state.revision;
    if (actual !== expected) throw new ConcurrentModificationError(handle.state.folder, expected, actual);
  }

  async function tensorsOfRef(ref: {
    sha256: string;
    bytes: number;
    encoding: string;
  }): Promise<Record<string, TensorInfo>> {
    if (ref.encoding === SAFETENSORS_ENCODING) return { ...(await storedParams(rl.blobs, ref.sha256)).tensors };
    const tensors = await rl.getTensors(ref);
    return Object.fromEntries(
      Object.entries(tensors).map(([n, t]) => [n, { dtype: DTYPES[t.dtype].safetensors, shape: [...t.shape] }]),
    );
  }

  function rewoundBody(handle: ExperimentHandle, events: readonly RecordedEvent[], state: ExperimentState): unknown {
    const rewound = events.find((e) => e.type === 'Rewound')!;
    const data = rewound.data as Rewound;
    const round = data.roundCurrent - 1;
    return {
      experimentId: handle.id,
      folder: state.folder,
      round,
      roundCurrent: data.roundCurrent,
      supersededRounds: data.supersededRounds,
      reason: data.reason,
      by: data.by,
      settingsRestored: events.some((e) => e.type === 'SettingsChanged'),
      logPosition: rewound.position,
      breakpoint: path.join('experiments', state.folder, breakpointFolderName(round)),
      moved: [],
    };
  }

  async function forkedBody(childId: string): Promise<unknown> {
    const child = await rl.openExperiment(childId);
    const from = (
      await rl.withReader((log) => readHistory(log, { folder: child.created.folder, stream: child.stream }))
    ).events.find((e) => e.type === 'ForkedFrom')?.data as ForkedFrom | undefined;
    const parent = from === undefined ? null : await rl.openExperiment(from.parentId);
    const forked =
      parent === null
        ? undefined
        : ((
            await rl.withReader((log) => readHistory(log, { folder: parent.created.folder, stream: parent.stream }))
          ).events.find((e) => e.type === 'Forked' && (e.data as Forked).childId === childId)?.data as
            Forked | undefined);
    const imported = child.created.importedFrom;
    return {
      parentId: from?.parentId ?? null,
      parentFolder: parent?.state.folder ?? from?.parentFolder ?? null,
      round: from?.parentRound ?? null,
      parentPosition: from?.parentPosition ?? null,
      childId: child.id,
      childFolder: child.state.folder,
      childNumber: child.created.number,
      roundCurrent: child.roundCurrent(),
      params: imported?.params ?? null,
      breakpointSha256: imported?.breakpointSha256 ?? null,
      by: forked?.by ?? null,
      breakpoint:
        from === undefined
          ? null
          : path.join('experiments', child.state.folder, breakpointFolderName(from.parentRound)),
    };
  }

  return app;
}

function created(
  experiment: Readonly<{ experimentId: string; folder: string; number: number; stream: string }>,
  revision: bigint,
): SendResult {
  const { experimentId, folder, number, stream } = experiment;
  return { status: 201, body: { experiment: { experimentId, folder, number, stream }, revision } };
}

/** The experiment as `GET /v1/experiments/{experiment}` describes it. */
function describe(handle: ExperimentHandle): unknown {
  const state = handle.state;
  const created = handle.created;
  return {
    experimentId: created.experimentId,
    number: created.number,
    folder: state.folder,
    stream: handle.stream,
    roundCurrent: roundCurrent(state),
    roundLimit: state.settings.roundLimit,
    revision: state.revision,
    position: state.position,
    status: statusOf(state),
    run:
      state.run === null
        ? null
        : {
            runId: state.run.runId,
            owner: state.run.owner,
            since: state.run.since,
            lastSeen: state.run.lastSeen,
            heartbeatMs: state.run.heartbeatMs,
          },
    failure: state.failure,
    finished: state.finished,
    settings: state.settings,
    seed: created.seed,
    config: created.config,
  };
}

/** Round `last` or R of the current branch (`chooseRound`'s errors; none completed: round 0 not found). */
function pickRound(state: ExperimentState, given: string) {
  if (given === 'last') {
    const rc = roundCurrent(state);
    if (rc === 0) throw new RoundNotFoundError(state.folder, 0, 0);
    return chooseRound(state, { round: rc - 1 });
  }
  return chooseRound(state, { round: Number(given) });
}

/** The actor a client names (`by`, the shape of a run owner): recorded as who rewound or forked. */
function actorOf(by: Readonly<{ host: string; pid: number; user?: string; name?: string }>) {
  return { user: by.user ?? by.name ?? 'client', host: by.host, pid: by.pid };
}

/** The expected revision of a request: its field, or `If-Match: "<revision>"`; both given, they must agree. */
function expectedRevisionOf(field: string | undefined, ifMatch: string | string[] | undefined): bigint | null {
  const header = Array.isArray(ifMatch) ? ifMatch[0] : ifMatch;
  let fromHeader: bigint | null = null;
  if (header !== undefined && header !== '*') {
    const text = header
      .trim()
      .replace(/^W\//, '')
      .replace(/^"(.*)"$/, '$1');
    if (!decimalString.safeParse(text).success) {
      throw new InvalidRequestError('headers.if-match', 'must be a revision: "<decimal digits>"');
    }
    fromHeader = BigInt(text);
  }
  const fromField = field === undefined ? null : BigInt(field);
  if (fromHeader !== null && fromField !== null && fromHeader !== fromField) {
    throw new InvalidRequestError(
      'headers.if-match',
      `names revision ${fromHeader}, the body's expectedRevision ${fromField}`,
    );
  }
  return fromField ?? fromHeader;
}

function eventTypes(list: string): ExperimentEventType[] {
  const types = list
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  for (const type of types) {
    if (!isEventType(type))
      throw new InvalidArgumentError('type', 'must be experiment event types, comma-separated', type);
  }
  return types as ExperimentEventType[];
}

/**
 * Passes the bytes on, hashing them, one chunk behind: the last chunk goes out only once the whole
 * has hashed to `sha256`, so damaged bytes on disk cut the response short (the client sees fewer
 * bytes than `Content-Length`, never a complete answer).
 */
function hashChecked(sha256: string): Transform {
  const hash = createHash('sha256');
  let held: Buffer | null = null;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      const out = held;
      held = chunk;
      callback(null, out ?? undefined);
    },
    flush(callback) {
      const actual = hash.digest('hex');
      if (actual !== sha256) {
        callback(new CorruptBlobError(sha256, actual, 'the blob store'));
        return;
      }
      callback(null, held ?? undefined);
    },
  });
}

type OpenApiOperation = {
  requestBody?: unknown;
  responses?: Record<string, { description?: string; content?: unknown }>;
  security?: unknown[];
};
type OpenApiDocument = { paths?: Record<string, Record<string, OpenApiOperation>> };

const BINARY = { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } };
/** The routes whose body or answer is a file, not JSON. */
const BINARY_UPLOADS = ['/v1/params'];
const BINARY_DOWNLOADS = ['/v1/experiments/{experiment}/rounds/{round}/params', '/v1/experiments/{experiment}/export'];

/**
 * The OpenAPI document as the schemas cannot say it: the raw bodies (an upload, the file
 * downloads) as `application/octet-stream`, and with a token the bearer requirement on every
 * operation but `/v1/health`.
 */
function finishedOpenApi(doc: OpenApiDocument, withToken: boolean): OpenApiDocument {
  const out = structuredClone(doc);
  for (const [route, operations] of Object.entries(out.paths ?? {})) {
    for (const operation of Object.values(operations)) {
      if (BINARY_UPLOADS.includes(route)) operation.requestBody = { required: true, content: BINARY };
      if (BINARY_DOWNLOADS.includes(route)) {
        operation.responses = { ...operation.responses, 200: { description: 'the file', content: BINARY } };
      }
      if (withToken) operation.security = route === '/v1/health' ? [] : [{ bearer: [] }];
    }
  }
  return out;
}

export type { FastifyInstance, FastifyRequest };
export { tensorsOf };
