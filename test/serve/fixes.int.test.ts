/**
 * Faults found in a first trial of `roundlog serve`, each a kind of mistake checked everywhere it
 * could be made: writes that bypass the run lease, error codes without a status, numbers JSON
 * loses, Fastify's own answers, the Host of a loopback server, ...
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import anyTest, { type TestFn } from 'ava';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { encodeSafetensors } from '../../src/codec/safetensors.ts';
import { HTTP_STATUS_OF_CODE } from '../../src/serve/status.ts';
import { roundlog, startRoundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { createExperiment, json, post, recordRound, servedRoot, upload, weights, type Served } from './support.ts';
import { killSpawned } from '../support/child.ts';

const test = anyTest as TestFn<Served>;

test.beforeEach(async (t) => {
  t.context = await servedRoot();
  await createExperiment(t.context.app, 'exp');
});
test.afterEach.always(async (t) => {
  await t.context.app.close();
});
test.after.always(killSpawned);
test.after.always(removeTempDirs);

test('a round without runId while another holds a live run: 409 EXPERIMENT_RUNNING, nothing recorded', async (t) => {
  const { app } = t.context;
  await recordRound(app, 'exp', 0, [1]);
  // This process owns the run: alive for as long as the test runs.
  const owner = { host: os.hostname(), pid: process.pid, name: 'owner' };
  const started = await post(app, '/v1/experiments/exp/runs', { owner, heartbeatMs: 60_000 });
  t.is(started.statusCode, 201, started.body);
  const runId = json<{ runId: string }>(started).runId;
  const intruder = await recordRound(app, 'exp', 1, [2]).catch((e: Error) => e.message);
  t.regex(String(intruder), /409.*EXPERIMENT_RUNNING/);
  // The owner's round still fits.
  const own = await recordRound(app, 'exp', 1, [2], { runId });
  t.is(own.round, 1);
  // Rewind, the other writer, is refused the same way.
  const rewind = await post(app, '/v1/experiments/exp/rewind', { round: 0 });
  t.is(rewind.statusCode, 409);
  t.is(json(rewind).code, 'EXPERIMENT_RUNNING');
});

test('every error code of src/ has an explicit status; an invalid metric name is 400, not 500', async (t) => {
  const codes = new Set<string>();
  for (const file of fs.readdirSync('src', { recursive: true, encoding: 'utf8' })) {
    if (!file.endsWith('.ts')) continue;
    const text = fs.readFileSync(path.join('src', file), 'utf8');
    for (const m of text.matchAll(/readonly code = '([A-Z0-9_]+)'/g)) codes.add(m[1]!);
    // A class with several codes declares their union: `readonly code: 'A' | 'B';`.
    for (const m of text.matchAll(/readonly code: ('[A-Z0-9_]+'(?:\s*\|\s*'[A-Z0-9_]+')*);/g)) {
      for (const c of m[1]!.matchAll(/'([A-Z0-9_]+)'/g)) codes.add(c[1]!);
    }
  }
  t.true(codes.size > 50);
  const missing = [...codes].filter((code) => HTTP_STATUS_OF_CODE[code] === undefined);
  t.deepEqual(missing, [], 'codes without a status in src/serve/status.ts');
  const { app } = t.context;
  for (const name of ['', 'a\u0001b', 'm'.repeat(300)]) {
    const reply = await recordRound(app, 'exp', 0, [1], { metrics: { [name]: 1 } }).catch((e: Error) => e.message);
    t.regex(String(reply), /^round 0: 400 /, name);
  }
});

test('an integer past 2^53 anywhere in a JSON body is 400 INVALID_REQUEST naming its field', async (t) => {
  const { app } = t.context;
  const stored = await upload(app, weights([1]));
  const { sha256 } = json<{ sha256: string }>(stored);
  const send = (state: string, metrics = '{}') =>
    app.inject({
      method: 'POST',
      url: '/v1/experiments/exp/rounds',
      headers: { 'content-type': 'application/json' },
      payload: `{"round":0,"params":{"sha256":"${sha256}"},"metrics":${metrics},"state":${state}}`,
    });
  const big = await send('{"a":{"list":[1, 2, 9007199254740993]}}');
  t.is(big.statusCode, 400, big.body);
  t.like(json(big), { code: 'INVALID_REQUEST', field: 'body.state.a.list.2' });
  const negative = await send('{"n":-9007199254740993}');
  t.like(json(negative), { code: 'INVALID_REQUEST', field: 'body.state.n' });
  // Doubles written as doubles, keys that look like numbers, and the largest safe integer pass.
  const fine = await send(
    '{"x":1e300,"y":9007199254740993.5,"9007199254740993":9007199254740991,"s":"9007199254740993"}',
  );
  t.is(fine.statusCode, 201, fine.body);
  const round = json<{ state: Record<string, unknown> }>(
    await app.inject({ method: 'GET', url: '/v1/experiments/exp/rounds/0' }),
  );
  t.is(round.state['9007199254740993'], 9007199254740991);
});

test('long path parameters pass to the schema; the router and Node refuse as typed JSON', async (t) => {
  const { app } = t.context;
  await recordRound(app, 'exp', 0, [1]);
  // A metric name of 256 characters is legal: its own 404, not the router's 414.
  const metric = await app.inject({ method: 'GET', url: `/v1/experiments/exp/metrics/${'m'.repeat(256)}` });
  t.is(metric.statusCode, 404, metric.body);
  t.is(json(metric).code, 'METRIC_NOT_FOUND');
  const named = await app.inject({ method: 'GET', url: `/v1/experiments/${'e'.repeat(4096)}` });
  t.is(json(named).code, 'EXPERIMENT_NOT_FOUND');
  const over = await app.inject({ method: 'GET', url: `/v1/experiments/${'e'.repeat(4097)}` });
  t.is(over.statusCode, 400);
  t.like(json(over), { code: 'INVALID_REQUEST', field: 'params.experiment' });
  const huge = await app.inject({ method: 'GET', url: `/v1/experiments/${'e'.repeat(20_000)}` });
  t.is(huge.statusCode, 414);
  t.like(json(huge), { code: 'PATH_PARAM_TOO_LONG', maxLength: 3 * 4096 });
  const bad = await app.inject({ method: 'GET', url: '/v1/experiments/%zz' });
  t.is(bad.statusCode, 400);
  t.is(json(bad).code, 'INVALID_URL');
  const method = await app.inject({ method: 'DELETE', url: '/v1/experiments' });
  t.is(method.statusCode, 404);
  t.is(json(method).code, 'NOT_FOUND');
  // Node's HTTP parser: headers too large, a Content-Length that is not a number.
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as net.AddressInfo;
  const raw = (request: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
      socket.on('end', () => resolve(answer));
      socket.on('error', reject);
    });
  const headers = await raw(`GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'x'.repeat(20_000)}\r\n\r\n`);
  t.regex(headers, /^HTTP\/1.1 431 /);
  t.is(JSON.parse(headers.split('\r\n\r\n')[1]!).code, 'HEADERS_TOO_LARGE');
  const length = await raw('POST /v1/experiments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n');
  t.regex(length, /^HTTP\/1.1 400 /);
  t.is(JSON.parse(length.split('\r\n\r\n')[1]!).code, 'BAD_HTTP_REQUEST');
});

test('on loopback, a Host that is not a loopback name is 421 HOST_NOT_ALLOWED (DNS rebinding)', async (t) => {
  const { app } = t.context;
  for (const host of ['evil.example:8080', 'evil.example', '10.0.0.5:8080', '127.0.0.1.evil.example']) {
    const reply = await app.inject({ method: 'GET', url: '/v1/experiments', headers: { host } });
    t.is(reply.statusCode, 421, host);
    t.like(json(reply), { code: 'HOST_NOT_ALLOWED', host });
  }
  for (const host of ['localhost:8080', '127.0.0.1:8080', '127.1.2.3', '[::1]:8080', 'LOCALHOST']) {
    const reply = await app.inject({ method: 'GET', url: '/v1/experiments', headers: { host } });
    t.is(reply.statusCode, 200, host);
  }
  // Listening elsewhere with a token: any Host, as before.
  const open = await servedRoot({ host: '0.0.0.0', token: 'a-token-of-enough-length' });
  const reply = await open.app.inject({
    method: 'GET',
    url: '/v1/experiments',
    headers: { host: 'trainer.example:8080', authorization: 'Bearer a-token-of-enough-length' },
  });
  t.is(reply.statusCode, 200);
  await open.app.close();
});

test('OpenAPI: binary bodies and answers, bearer security on all but health, the CLI names', async (t) => {
  type Op = {
    summary?: string;
    requestBody?: { content: Record<string, unknown> };
    responses: Record<string, { content?: Record<string, unknown> }>;
    security?: unknown[];
    parameters?: { name: string; in: string }[];
  };
  type Doc = { paths: Record<string, Record<string, Op>> };
  const token = 'a-token-of-enough-length';
  const secured = await servedRoot({ token });
  const doc = json<Doc>(
    await secured.app.inject({ url: '/openapi.json', headers: { authorization: `Bearer ${token}` } }),
  );
  await secured.app.close();
  const result = await new Validator().validate(doc as never);
  t.true(result.valid, JSON.stringify(result.errors));
  const upload = doc.paths['/v1/params']!.post!;
  t.deepEqual(Object.keys(upload.requestBody!.content), ['application/octet-stream']);
  t.false((upload.parameters ?? []).some((p) => p.name === 'idempotency-key'));
  for (const route of ['/v1/experiments/{experiment}/rounds/{round}/params', '/v1/experiments/{experiment}/export']) {
    t.deepEqual(Object.keys(doc.paths[route]!.get!.responses['200']!.content!), ['application/octet-stream'], route);
  }
  for (const [route, operations] of Object.entries(doc.paths)) {
    for (const operation of Object.values(operations)) {
      t.deepEqual(operation.security, route === '/v1/health' ? [] : [{ bearer: [] }], route);
    }
  }
  t.regex(doc.paths['/v1/experiments/{experiment}/lineage']!.get!.summary!, /roundlog audit lineage/);
});

test('serve --root opens a root as other commands do; --init makes only a missing or empty folder one', async (t) => {
  const missing = path.join(tempDir('roundlog-serve-root-'), 'missing');
  const run = await roundlog(['serve', '--root', missing, '--port', '0']);
  t.is(run.code, 1, run.stderr);
  t.regex(run.stderr, /there is no roundlog root at/);
  t.false(fs.existsSync(missing));
  const unrelated = tempDir('roundlog-serve-root-');
  fs.writeFileSync(path.join(unrelated, 'notes.txt'), 'mine\n');
  for (const extra of [[], ['--init']]) {
    const refused = await roundlog(['serve', '--root', unrelated, '--port', '0', ...extra]);
    t.is(refused.code, 1, refused.stderr);
    t.regex(refused.stderr, /is not a roundlog root/);
    t.deepEqual(fs.readdirSync(unrelated), ['notes.txt']);
  }
  const child = startRoundlog(['serve', '--root', missing, '--init', '--port', '0']);
  await child.waitFor((line) => line.startsWith('http://'));
  t.true(fs.existsSync(path.join(missing, 'roundlog-root.json')));
  child.process.kill('SIGTERM');
  t.is((await child.exited).code, 0);
});

test('a fork retried answers the same fields; a folder taken is 409 EXPERIMENT_EXISTS naming it', async (t) => {
  const { app } = t.context;
  await recordRound(app, 'exp', 0, [1]);
  const first = await post(app, '/v1/experiments/exp/fork', { round: 0, folder: 'branch', requestId: 'f1' });
  t.is(first.statusCode, 201, first.body);
  const again = await post(app, '/v1/experiments/exp/fork', { round: 0, folder: 'branch', requestId: 'f1' });
  t.deepEqual(json(again), json(first));
  t.like(json(first), { parentFolder: 'exp', childFolder: 'branch', round: 0 });
  t.truthy(json<{ params: { sha256: string } }>(first).params.sha256);
  for (const folder of ['exp', 'branch']) {
    const taken = await post(app, '/v1/experiments/exp/fork', { round: 0, folder });
    t.is(taken.statusCode, 409, taken.body);
    t.like(json(taken), { code: 'EXPERIMENT_EXISTS', folder });
  }
});

test('rewind and fork record the client that asks (`by`), not the server process', async (t) => {
  const { app } = t.context;
  await recordRound(app, 'exp', 0, [1]);
  await recordRound(app, 'exp', 1, [2]);
  const by = { host: 'laptop-7', pid: 31337, name: 'carol' };
  const rewound = await post(app, '/v1/experiments/exp/rewind', { round: 0, by });
  t.is(rewound.statusCode, 200, rewound.body);
  t.deepEqual(json(rewound).by, { user: 'carol', host: 'laptop-7', pid: 31337 });
  const forked = await post(app, '/v1/experiments/exp/fork', { round: 0, folder: 'b', by: { ...by, user: 'dave' } });
  t.is(forked.statusCode, 201, forked.body);
  t.deepEqual(json(forked).by, { user: 'dave', host: 'laptop-7', pid: 31337 });
  const events = json<{ events: { type: string; data: { by?: unknown } }[] }>(
    await app.inject({ url: '/v1/experiments/exp/events?type=Rewound,Forked' }),
  ).events;
  t.deepEqual(
    events.map((e) => [e.type, e.data.by]),
    [
      ['Rewound', { user: 'carol', host: 'laptop-7', pid: 31337 }],
      ['Forked', { user: 'dave', host: 'laptop-7', pid: 31337 }],
    ],
  );
});

test('a JSON route given text/plain is 415 UNSUPPORTED_MEDIA_TYPE, as form types are', async (t) => {
  const { app } = t.context;
  for (const type of ['text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded']) {
    const reply = await app.inject({
      method: 'POST',
      url: '/v1/experiments',
      headers: { 'content-type': type },
      payload: '{"folder":"x"}',
    });
    t.is(reply.statusCode, 415, type);
    t.like(json(reply), { code: 'UNSUPPORTED_MEDIA_TYPE', accepted: ['application/json'] });
  }
});

test('a tensor named __proto__ is described like any other, in every answer that lists tensors', async (t) => {
  const { app } = t.context;
  const bytes = encodeSafetensors(
    Object.fromEntries([
      ['__proto__', { dtype: 'float32', shape: [1], data: Float32Array.from([1]) }],
      ['constructor', { dtype: 'float32', shape: [2], data: Float32Array.from([1, 2]) }],
    ]) as never,
  );
  const stored = await upload(app, bytes);
  t.is(stored.statusCode, 201, stored.body);
  const expected = ['__proto__', 'constructor'];
  t.deepEqual(Object.keys(json<{ tensors: object }>(stored).tensors).sort(), expected);
  t.true(stored.body.includes('"__proto__":{"dtype":"F32","shape":[1]}'));
  const { sha256 } = json<{ sha256: string }>(stored);
  const recorded = await post(app, '/v1/experiments/exp/rounds', { round: 0, params: { sha256 } });
  t.is(recorded.statusCode, 201, recorded.body);
  const round = await app.inject({ url: '/v1/experiments/exp/rounds/0' });
  t.true(round.body.includes('"__proto__":{"dtype":"F32","shape":[1]}'), round.body);
});

test('serve refuses a token file of two lines, a --body-limit past its bound, and a port taken', async (t) => {
  const dir = tempDir('roundlog-serve-opts-');
  const root = path.join(dir, 'root');
  const file = path.join(dir, 'token');
  fs.writeFileSync(file, 'first-token-0123456789\nsecond-token-0123456789\n');
  const two = await roundlog(['serve', '--root', root, '--init', '--port', '0', '--token-file', file]);
  t.is(two.code, 1, two.stderr);
  t.regex(two.stderr, /holds 2 non-empty lines/);
  const big = await roundlog(['serve', '--root', root, '--init', '--port', '0', '--body-limit', String(2 ** 40)]);
  t.is(big.code, 2, big.stderr);
  t.regex(big.stderr, /--body-limit must be at most/);
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const { port } = taken.address() as net.AddressInfo;
  const busy = await roundlog(['serve', '--root', root, '--init', '--port', String(port)]);
  taken.close();
  t.is(busy.code, 1, busy.stderr);
  t.regex(busy.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE.*--port`));
  t.notRegex(busy.stderr, /\n\s+at /);
});
