/**
 * Every error of `roundlog serve` is the library's typed error as JSON `{ code, message, ...fields }`
 * with the status of the one table (`src/serve/status.ts`), Fastify's own errors included; a
 * rejected upload stores nothing; the token is required and compared; a non-loopback host without
 * a token does not start.
 */
import anyTest, { type TestFn } from 'ava';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { RoundlogError } from '../../src/errors.ts';
import { ExperimentRunningError, RoundNotFoundError } from '../../src/model/errors.ts';
import { TokenRequiredError } from '../../src/serve/errors.ts';
import { createServer, isLoopback } from '../../src/serve/server.ts';
import { HTTP_STATUS_OF_CODE, errorResponse } from '../../src/serve/status.ts';
import { roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import {
  createExperiment,
  json,
  post,
  rawSafetensors,
  recordRound,
  servedRoot,
  upload,
  weights,
  type Served,
} from './support.ts';

const test = anyTest as TestFn<Served>;

test.beforeEach(async (t) => {
  t.context = await servedRoot({ maxParamsBytes: 4096, bodyLimit: 2048 });
  await createExperiment(t.context.app, 'exp');
});
test.afterEach.always(async (t) => {
  await t.context.app.close();
});
test.after.always(removeTempDirs);

/** Every file under `dir` (the blob store's stored blobs and temporaries). */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

test('the status table: a code, its status; another roundlog error 500, its code; anything else INTERNAL', (t) => {
  const limits = { bodyLimit: 1, maxParamsBytes: 1 };
  t.is(HTTP_STATUS_OF_CODE.EXPERIMENT_NOT_FOUND, 404);
  t.is(HTTP_STATUS_OF_CODE.CONCURRENT_MODIFICATION, 409);
  t.is(HTTP_STATUS_OF_CODE.UNAUTHORIZED, 401);
  t.is(HTTP_STATUS_OF_CODE.BODY_TOO_LARGE, 413);
  t.is(HTTP_STATUS_OF_CODE.UNSUPPORTED_MEDIA_TYPE, 415);
  t.is(HTTP_STATUS_OF_CODE.CORRUPT_PAYLOAD, 400);
  const running = errorResponse(
    new ExperimentRunningError(
      'exp',
      { user: 'u', host: 'h', pid: 1, processStart: null },
      new Date(0),
      new Date(1000),
    ),
    limits,
  );
  t.is(running.status, 409);
  t.like(running.body, { code: 'EXPERIMENT_RUNNING', experiment: 'exp', since: '1970-01-01T00:00:00.000Z' });
  const notFound = errorResponse(new RoundNotFoundError('exp', 3, 2), limits);
  t.deepEqual(Object.keys(notFound.body).sort(), ['code', 'experiment', 'message', 'round', 'roundCurrent']);
  class Odd extends RoundlogError {
    readonly code = 'SOMETHING_ODD' as const;
    readonly size = 10n;
  }
  t.deepEqual(errorResponse(new Odd('odd'), limits), {
    status: 500,
    body: { code: 'SOMETHING_ODD', message: 'odd', size: '10' },
  });
  const internal = errorResponse(new TypeError('x is undefined'), limits);
  t.is(internal.status, 500);
  t.is(internal.body.code, 'INTERNAL');
  t.false(JSON.stringify(internal.body).includes('x is undefined'));
});

test('bad JSON is 400 INVALID_JSON; a schema violation is 400 INVALID_REQUEST naming the field', async (t) => {
  const { app } = t.context;
  const bad = await app.inject({
    method: 'POST',
    url: '/v1/experiments/exp/rounds',
    payload: '{"round": 0,',
    headers: { 'content-type': 'application/json' },
  });
  t.is(bad.statusCode, 400);
  t.is(json(bad).code, 'INVALID_JSON');
  const invalid = await post(app, '/v1/experiments/exp/rounds', { round: -1, params: { sha256: 'zz' } });
  t.is(invalid.statusCode, 400);
  t.like(json(invalid), { code: 'INVALID_REQUEST', field: 'body.round' });
  const badId = await post(app, '/v1/experiments', { requestId: 'has space' });
  t.is(badId.statusCode, 400);
  t.like(json(badId), { code: 'INVALID_REQUEST', field: 'body.requestId' });
  const extra = await post(app, '/v1/experiments', { colour: 'blue' });
  t.is(extra.statusCode, 400);
  t.is(json(extra).code, 'INVALID_REQUEST');
});

test('unknown experiment, round, parameters and route are 404 with their codes', async (t) => {
  const { app } = t.context;
  const experiment = await app.inject({ url: '/v1/experiments/nope' });
  t.is(experiment.statusCode, 404);
  t.like(json(experiment), { code: 'EXPERIMENT_NOT_FOUND', experiment: 'nope' });
  const round = await app.inject({ url: '/v1/experiments/exp/rounds/last' });
  t.is(round.statusCode, 404);
  t.like(json(round), { code: 'ROUND_NOT_FOUND', experiment: 'exp', roundCurrent: 0 });
  const params = await post(app, '/v1/experiments/exp/rounds', { round: 0, params: { sha256: 'a'.repeat(64) } });
  t.is(params.statusCode, 404);
  t.like(json(params), { code: 'BLOB_NOT_FOUND', sha256: 'a'.repeat(64) });
  const route = await app.inject({ url: '/v2/anything' });
  t.is(route.statusCode, 404);
  t.like(json(route), { code: 'NOT_FOUND', method: 'GET', path: '/v2/anything' });
  const runs = await post(app, '/v1/experiments/nope/runs', { owner: { host: 'h', pid: 1 } });
  t.is(runs.statusCode, 404);
});

test('a stale expected revision (field or If-Match): 409 with experiment, expected and actual revision', async (t) => {
  const { app } = t.context;
  await recordRound(app, 'exp', 0, [1]);
  const { sha256 } = json<{ sha256: string }>(await upload(app, weights([2])));
  const stale = await post(app, '/v1/experiments/exp/rounds', { round: 1, params: { sha256 }, expectedRevision: '0' });
  t.is(stale.statusCode, 409);
  t.like(json(stale), {
    code: 'CONCURRENT_MODIFICATION',
    experiment: 'exp',
    expectedRevision: '0',
    actualRevision: '1',
  });
  const header = await post(app, '/v1/experiments/exp/rounds', { round: 1, params: { sha256 } }, { 'if-match': '"0"' });
  t.is(header.statusCode, 409);
  t.like(json(header), { code: 'CONCURRENT_MODIFICATION', expectedRevision: '0' });
  const right = await post(app, '/v1/experiments/exp/rounds', { round: 1, params: { sha256 } }, { 'if-match': '"1"' });
  t.is(right.statusCode, 201, right.body);
  // Recording a round out of turn: 409 naming the round expected.
  const twice = await post(app, '/v1/experiments/exp/rounds', { round: 1, params: { sha256 } });
  t.is(twice.statusCode, 409);
  t.like(json(twice), { code: 'ROUND_MISMATCH', round: 1, roundCurrent: 2 });
});

test('safetensors with a wrong dtype, a bool not 0/1, or cut short: 400 CORRUPT_PAYLOAD, nothing stored', async (t) => {
  const { app, root } = t.context;
  const before = await filesUnder(path.join(root, 'blobs'));
  const wrongDtype = rawSafetensors({ w: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, Buffer.alloc(2));
  const dtype = await upload(app, wrongDtype);
  t.is(dtype.statusCode, 400);
  t.like(json(dtype), { code: 'CORRUPT_PAYLOAD', encoding: 'tensors/safetensors' });
  t.regex(json<{ message: string }>(dtype).message, /F8_E4M3/);
  const bool = await upload(
    app,
    rawSafetensors({ b: { dtype: 'BOOL', shape: [3], data_offsets: [0, 3] } }, Buffer.from([0, 1, 2])),
  );
  t.is(bool.statusCode, 400);
  t.regex(json<{ message: string }>(bool).message, /bool tensor "b" has byte 2 at element 2/);
  const whole = weights([1, 2, 3, 4]);
  const short = await app.inject({
    method: 'POST',
    url: '/v1/params',
    payload: whole.subarray(0, whole.length - 3),
    headers: { 'content-type': 'application/octet-stream' },
  });
  t.is(short.statusCode, 400);
  t.is(json(short).code, 'CORRUPT_PAYLOAD');
  const notSafetensors = await upload(app, Buffer.from('hello, this is not a tensor file at all'));
  t.is(notSafetensors.statusCode, 400);
  t.is(json(notSafetensors).code, 'CORRUPT_PAYLOAD');
  t.deepEqual(await filesUnder(path.join(root, 'blobs')), before);
});

test('a header past the format (nested arrays, a field twice): 400 CORRUPT_PAYLOAD at its byteOffset', async (t) => {
  const { app, root } = t.context;
  const before = await filesUnder(path.join(root, 'blobs'));
  const body = (header: string, data: Buffer) => {
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(Buffer.byteLength(header)));
    return Buffer.concat([length, Buffer.from(header), data]);
  };
  const prefix = '{"w": {"dtype": "F32", "shape": [';
  const nested = await upload(
    app,
    body(`${prefix}${'['.repeat(1000)}${']'.repeat(1001)}, "data_offsets": [0, 4]}}`, Buffer.alloc(4)),
  );
  t.is(nested.statusCode, 400);
  t.like(json(nested), { code: 'CORRUPT_PAYLOAD', encoding: 'tensors/safetensors', byteOffset: 8 + prefix.length });
  t.regex(json<{ message: string }>(nested).message, /nested deeper than the format allows/);
  // JSON.parse would keep the second dtype (F32, matching the 4 bytes) and let the file through.
  const twice = '{"w": {"dtype": "U8", "dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}';
  const repeated = await upload(app, body(twice, Buffer.alloc(4)));
  t.is(repeated.statusCode, 400);
  t.like(json(repeated), { code: 'CORRUPT_PAYLOAD', byteOffset: 8 + twice.indexOf('"dtype": "F32"') });
  t.regex(json<{ message: string }>(repeated).message, /names the field "dtype" more than once/);
  t.deepEqual(await filesUnder(path.join(root, 'blobs')), before);
});

test('bodies over the limits are 413 BODY_TOO_LARGE with limitBytes; a wrong media type is 415', async (t) => {
  const { app, root } = t.context;
  const before = await filesUnder(path.join(root, 'blobs'));
  const big = weights(Array.from({ length: 2000 }, (_, i) => i));
  const params = await upload(app, big);
  t.is(params.statusCode, 413);
  t.like(json(params), { code: 'BODY_TOO_LARGE', limitBytes: 4096, limit: 'params' });
  // Refused on its Content-Length, unread: the connection ends after the answer.
  t.is(params.headers.connection, 'close');
  t.deepEqual(await filesUnder(path.join(root, 'blobs')), before);
  const state = await post(app, '/v1/experiments/exp/rounds', {
    round: 0,
    params: { sha256: 'a'.repeat(64) },
    state: 'x'.repeat(5000),
  });
  t.is(state.statusCode, 413);
  t.like(json(state), { code: 'BODY_TOO_LARGE', limitBytes: 2048, limit: 'json' });
  const text = await app.inject({
    method: 'POST',
    url: '/v1/experiments',
    payload: 'folder=a',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  t.is(text.statusCode, 415);
  t.like(json(text), { code: 'UNSUPPORTED_MEDIA_TYPE', accepted: ['application/json'] });
  const jsonParams = await post(app, '/v1/params', { w: [1, 2] });
  t.is(jsonParams.statusCode, 415);
  t.like(json(jsonParams), { code: 'UNSUPPORTED_MEDIA_TYPE', accepted: ['application/octet-stream'] });
});

test('a folder taken is 409 EXPERIMENT_EXISTS; a reserved one 400', async (t) => {
  const { app } = t.context;
  const taken = await post(app, '/v1/experiments', { folder: 'exp' });
  t.is(taken.statusCode, 409);
  t.like(json(taken), { code: 'EXPERIMENT_EXISTS', folder: 'exp' });
  const reserved = await post(app, '/v1/experiments', { folder: 'Experiment_0042' });
  t.is(reserved.statusCode, 400);
  t.is(json(reserved).code, 'FOLDER_NAME_RESERVED');
});

test('a recorded value the log cannot hold is 400 UNRECORDABLE_VALUE, nothing appended', async (t) => {
  const { app } = t.context;
  const { sha256 } = json<{ sha256: string }>(await upload(app, weights([1])));
  const deep = JSON.parse('['.repeat(600) + ']'.repeat(600)) as unknown;
  const reply = await post(app, '/v1/experiments/exp/rounds', { round: 0, params: { sha256 }, state: deep });
  t.is(reply.statusCode, 400, reply.body);
  t.is(json(reply).code, 'UNRECORDABLE_VALUE');
  t.like(json(await app.inject({ url: '/v1/experiments/exp' })), { revision: '0' });
});

test('with a token: missing or wrong is 401 UNAUTHORIZED, the right one passes; health needs none', async (t) => {
  const root = tempDir('roundlog-serve-');
  const token = 'a-long-enough-secret-token';
  const app = await createServer({ root, createRoot: true, token, host: '0.0.0.0' });
  try {
    const missing = await app.inject({ url: '/v1/experiments' });
    t.is(missing.statusCode, 401);
    t.like(json(missing), { code: 'UNAUTHORIZED', reason: 'missing' });
    const wrong = await app.inject({
      url: '/v1/experiments',
      headers: { authorization: 'Bearer a-long-enough-secret-tokeN' },
    });
    t.is(wrong.statusCode, 401);
    t.like(json(wrong), { code: 'UNAUTHORIZED', reason: 'invalid' });
    const short = await app.inject({ url: '/v1/experiments', headers: { authorization: 'Bearer a' } });
    t.is(short.statusCode, 401);
    const right = await app.inject({ url: '/v1/experiments', headers: { authorization: `Bearer ${token}` } });
    t.is(right.statusCode, 200, right.body);
    t.is((await app.inject({ url: '/v1/health' })).statusCode, 200);
    const doc = json<{ security?: unknown }>(
      await app.inject({ url: '/openapi.json', headers: { authorization: `Bearer ${token}` } }),
    );
    t.deepEqual(doc.security, [{ bearer: [] }]);
  } finally {
    await app.close();
  }
});

test('a non-loopback host without a token is refused before anything opens', async (t) => {
  t.true(isLoopback('127.0.0.1'));
  t.true(isLoopback('::1'));
  t.true(isLoopback('localhost'));
  t.false(isLoopback('0.0.0.0'));
  t.false(isLoopback('192.168.1.5'));
  const root = path.join(tempDir('roundlog-serve-'), 'never');
  const error = await t.throwsAsync(createServer({ root, createRoot: true, host: '0.0.0.0' }), {
    instanceOf: TokenRequiredError,
  });
  t.is(error?.code, 'TOKEN_REQUIRED');
  await t.throwsAsync(fs.stat(root));
});

test('a failure that is not a roundlog error: 500 INTERNAL with no detail; the operator gets the error', async (t) => {
  const seen: { error: unknown; url: string }[] = [];
  const app = await createServer({
    root: tempDir('roundlog-serve-'),
    createRoot: true,
    onServerError: (error, request) => seen.push({ error, url: request.url }),
  });
  try {
    app.get('/v1/test-failure', async () => {
      throw new TypeError('secret detail at /home/user/.ssh');
    });
    const reply = await app.inject({ url: '/v1/test-failure' });
    t.is(reply.statusCode, 500);
    t.deepEqual(Object.keys(json(reply)).sort(), ['code', 'message']);
    t.is(json(reply).code, 'INTERNAL');
    t.false(reply.body.includes('secret'));
    t.is(seen.length, 1);
    t.is(seen[0]!.url, '/v1/test-failure');
    t.regex((seen[0]!.error as Error).message, /secret detail/);
  } finally {
    await app.close();
  }
});

test('roundlog serve refuses a token file it cannot use, naming it, before listening', async (t) => {
  const dir = tempDir('roundlog-serve-token-');
  const short = path.join(dir, 'short');
  await fs.writeFile(short, 'abc\n');
  const spaced = path.join(dir, 'spaced');
  await fs.writeFile(spaced, 'a token with spaces in it\n');
  for (const [file, problem] of [
    [short, /holds a token of 3 characters/],
    [spaced, /spaces or non-ASCII/],
    [path.join(dir, 'missing'), /cannot be read \(ENOENT\)/],
  ] as const) {
    const run = await roundlog(['serve', '--root', path.join(dir, 'root'), '--port', '0', '--token-file', file]);
    t.is(run.code, 1, run.stderr);
    t.is(run.stdout, '');
    t.true(run.stderr.includes(file), run.stderr);
    t.regex(run.stderr, problem);
  }
});
