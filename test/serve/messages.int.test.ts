/**
 * What an HTTP client is told: messages in the API's terms (no absolute path of the root, no CLI
 * option), a Last-Event-ID past the log's end refused, request ids remembered whatever the number
 * of heartbeats, and the messages that misled (no rounds yet, an unknown metric, a body that is not
 * safetensors, a round's operation asked on a path the API does not have).
 */
import anyTest, { type TestFn } from 'ava';
import { promises as fs, realpathSync } from 'node:fs';
import path from 'node:path';
import { removeTempDirs } from '../support/tmp.ts';
import { setDecodeLimits } from '../../src/codec/limits.ts';
import { IDEMPOTENCY_WINDOW } from '../../src/serve/idempotency.ts';
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
  t.context = await servedRoot();
});
test.afterEach.always(async (t) => {
  await t.context.app.close();
});
test.after.always(removeTempDirs);

type Reply = Awaited<ReturnType<Served['app']['inject']>>;

/** No absolute path of the root, no CLI option, no roundlog command: what a client cannot act on. */
function assertClientTerms(t: { false: (v: boolean, m?: string) => void }, root: string, label: string, reply: Reply) {
  for (const form of new Set([root, realpathSync(root)])) t.false(reply.body.includes(form), `${label}: ${reply.body}`);
  t.false(/(^|[\s("'])--[a-z]/.test(reply.body), `${label} names a CLI option: ${reply.body}`);
  t.false(/'roundlog [a-z]/.test(reply.body), `${label} names a roundlog command: ${reply.body}`);
}

test('error answers name routes, fields and paths relative to the root, never the root or CLI options', async (t) => {
  const { app, root } = t.context;
  await createExperiment(app, 'exp');
  for (let round = 0; round < 2; round++) await recordRound(app, 'exp', round, [round]);
  const cases: [string, Promise<Reply>, number, string][] = [
    ['unknown experiment', app.inject({ url: '/v1/experiments/nope' }), 404, 'EXPERIMENT_NOT_FOUND'],
    ['unknown experiment (events)', app.inject({ url: '/v1/events?experiment=nope' }), 404, 'EXPERIMENT_NOT_FOUND'],
    [
      'parameters never uploaded',
      post(app, '/v1/experiments/exp/rounds', { round: 2, params: { sha256: 'a'.repeat(64) } }),
      404,
      'BLOB_NOT_FOUND',
    ],
    [
      'no superseded round',
      post(app, '/v1/experiments/exp/fork', { round: 1, superseded: true }),
      404,
      'ROUND_NOT_IN_HISTORY',
    ],
    [
      'no round at that position',
      app.inject({ url: '/v1/experiments/exp/export?round=1&position=1' }),
      404,
      'ROUND_NOT_IN_HISTORY',
    ],
    ['a node with no metric', app.inject({ url: '/v1/experiments/exp/metrics/loss?node=n1' }), 404, 'METRIC_NOT_FOUND'],
  ];
  for (const [label, request, status, code] of cases) {
    const reply = await request;
    t.is(reply.statusCode, status, `${label}: ${reply.body}`);
    t.is(json(reply).code, code, label);
    assertClientTerms(t, root, label, reply);
  }
  const unknown = json(await app.inject({ url: '/v1/experiments/nope' }));
  t.false('root' in unknown, 'the root is not a field of the answer');
  t.regex(String(unknown.message), /GET \/v1\/experiments lists/);
  const blob = json(await post(app, '/v1/experiments/exp/rounds', { round: 2, params: { sha256: 'b'.repeat(64) } }));
  t.false('store' in blob);
  t.regex(String(blob.message), /POST \/v1\/params/);
  const superseded = json(await post(app, '/v1/experiments/exp/fork', { round: 1, superseded: true }));
  t.regex(String(superseded.message), /Without superseded or position, round names a round of the current branch/);

  // A live run of another client: the take-over is a field of the runs route.
  t.is((await post(app, '/v1/experiments/exp/runs', { owner: { host: 'elsewhere', pid: 1 } })).statusCode, 201);
  const running = await post(app, '/v1/experiments/exp/runs', { owner: { host: 'elsewhere', pid: 2 } });
  t.is(json(running).code, 'EXPERIMENT_RUNNING');
  t.regex(String(json(running).message), /takeOver: true \(POST \/v1\/experiments\/\{experiment\}\/runs\)/);
  assertClientTerms(t, root, 'running', running);

  // The limits of a body: which limit, not the operator's option.
  const small = await servedRoot({ bodyLimit: 200, maxParamsBytes: 64 });
  try {
    const params = await upload(small.app, weights(new Array(64).fill(1)));
    t.is(params.statusCode, 413);
    t.like(json(params), { code: 'BODY_TOO_LARGE', limit: 'params', limitBytes: 64 });
    assertClientTerms(t, small.root, 'params too large', params);
    const body = await post(small.app, '/v1/experiments', { folder: 'x'.repeat(300) });
    t.is(body.statusCode, 413);
    t.like(json(body), { code: 'BODY_TOO_LARGE', limit: 'json', limitBytes: 200 });
    assertClientTerms(t, small.root, 'body too large', body);
  } finally {
    await small.app.close();
  }
  const locked = await servedRoot({ token: 'a-token-of-enough-length' });
  try {
    for (const headers of [{}, { authorization: 'Bearer not-the-token-at-all' }]) {
      const reply = await locked.app.inject({ url: '/v1/experiments', headers });
      t.is(reply.statusCode, 401);
      assertClientTerms(t, locked.root, 'unauthorized', reply);
    }
  } finally {
    await locked.app.close();
  }
});

test("a stored blob that is not safetensors is the server's fault: 500, not the 400 of an upload", async (t) => {
  const { app, root } = t.context;
  await createExperiment(app, 'exp');
  const recorded = await recordRound(app, 'exp', 0, [0]);
  t.truthy(recorded);
  const { params } = json<{ params: { sha256: string } }>(await app.inject({ url: '/v1/experiments/exp/rounds/0' }));
  // The file store's layout: blobs/<first two hex digits>/<the rest>.
  const file = path.join(root, 'blobs', params.sha256.slice(0, 2), params.sha256.slice(2));
  await fs.access(file);
  // Its header's length made to run past the end: the server's storage is damaged, not the request.
  await fs.chmod(file, 0o644);
  await fs.writeFile(file, Buffer.from([0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0x7b, 0x7d]));
  const fresh = await servedRoot({ root });
  try {
    const reply = await fresh.app.inject({ url: '/v1/experiments/exp/rounds/0' });
    t.is(reply.statusCode, 500, reply.body);
    t.is(json(reply).code, 'CORRUPT_PAYLOAD');
    t.regex(String(json(reply).message), new RegExp(`in blob ${params.sha256}: .*damaged storage`));
    assertClientTerms(t, root, 'damaged blob', reply);
  } finally {
    await fresh.app.close();
  }
});

test('Last-Event-ID past the end of the log: 409 EVENT_ID_AHEAD naming it and the last position', async (t) => {
  const { app } = t.context;
  await createExperiment(app, 'exp');
  const far = await app.inject({ url: '/v1/events?experiment=exp', headers: { 'last-event-id': '1000000' } });
  t.is(far.statusCode, 409, far.body);
  // The log's last position: the experiment's last event, or a later one of the log (the registry's).
  const last = BigInt(String(json(far).lastPosition));
  const events = json<{ events: { position: string }[] }>(await app.inject({ url: '/v1/experiments/exp/events' }));
  t.true(last >= BigInt(events.events.at(-1)!.position));
  for (const [where, headers, query] of [
    ['header', { 'last-event-id': String(last + 1n) }, ''],
    ['query', {}, `&lastEventId=${last + 1n}`],
  ] as const) {
    const reply = await app.inject({ url: `/v1/events?experiment=exp${query}`, headers });
    t.is(reply.statusCode, 409, `${where}: ${reply.body}`);
    const body = json(reply);
    t.is(body.code, 'EVENT_ID_AHEAD');
    t.is(body.lastEventId, String(last + 1n));
    t.is(body.lastPosition, String(last));
    t.regex(String(body.message), new RegExp(`Last-Event-ID ${last + 1n} is past the end .* position ${last}`));
  }
  // The last event's own id is a resume with nothing missed: the stream starts, and waits.
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const response = await fetch(`${url}/v1/events?experiment=exp`, { headers: { 'last-event-id': String(last) } });
  t.is(response.status, 200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!text.includes(': caught up')) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  t.notRegex(text, /^id: /m, 'nothing at or before the last id again');
  await app.close();
  for (;;) if ((await reader.read()).done) break;
  t.context = await servedRoot();
});

test('a request id is remembered after more heartbeats than the window holds, across a restart', async (t) => {
  const { app, root } = t.context;
  await createExperiment(app, 'exp');
  const started = json<{ runId: string }>(
    await post(app, '/v1/experiments/exp/runs', { owner: { host: 'elsewhere', pid: 7 } }),
  );
  const stored = json<{ sha256: string }>(await upload(app, weights([1, 2])));
  const round = {
    round: 0,
    params: { sha256: stored.sha256 },
    runId: started.runId,
    metrics: { loss: 0.5 },
    requestId: 'round-0',
  };
  const first = await post(app, '/v1/experiments/exp/rounds', round);
  t.is(first.statusCode, 201, first.body);
  for (let i = 0; i <= IDEMPOTENCY_WINDOW; i++) {
    const beat = await post(app, `/v1/experiments/exp/runs/${started.runId}/heartbeat`, {});
    if (beat.statusCode !== 200) t.fail(beat.body);
  }
  // A new server reads the window from the log: the heartbeats (no request id) do not count.
  await app.close();
  t.context = await servedRoot({ root });
  const retry = await post(t.context.app, '/v1/experiments/exp/rounds', round);
  t.is(retry.statusCode, 201, retry.body);
  t.deepEqual(json(retry), json(first));
});

test('misleading messages: no rounds yet, unknown metric, a body that is not safetensors, rounds/0/fork', async (t) => {
  const { app } = t.context;
  await createExperiment(app, 'empty');
  for (const [label, request] of [
    ['round 0', app.inject({ url: '/v1/experiments/empty/rounds/0' })],
    ['last round', app.inject({ url: '/v1/experiments/empty/rounds/last' })],
    ['fork', post(app, '/v1/experiments/empty/fork', { round: 0 })],
  ] as const) {
    const reply = await request;
    t.is(reply.statusCode, 404, label);
    t.is(json(reply).code, 'ROUND_NOT_FOUND');
    t.regex(String(json(reply).message), /experiment empty has no rounds yet/, label);
    t.notRegex(reply.body, /-1/, label);
  }

  // A metric name no round records is 404 whether or not a round is completed; a known name with
  // no point on the current branch (recorded only by superseded rounds) is 200 with no point.
  const none = await app.inject({ url: '/v1/experiments/empty/metrics/loss' });
  t.is(none.statusCode, 404, none.body);
  t.like(json(none), { code: 'METRIC_NOT_FOUND', available: [] });
  t.regex(String(json(none).message), /no completed round of its own yet/);
  await createExperiment(app, 'exp');
  await recordRound(app, 'exp', 0, [0]);
  await recordRound(app, 'exp', 1, [1], { metrics: { loss: 1, acc: 0.5 } });
  const unknown = await app.inject({ url: '/v1/experiments/exp/metrics/nope' });
  t.is(unknown.statusCode, 404);
  t.like(json(unknown), { code: 'METRIC_NOT_FOUND', available: ['loss', 'acc'] });
  t.is((await post(app, '/v1/experiments/exp/rewind', { round: 0 })).statusCode, 200);
  const superseded = await app.inject({ url: '/v1/experiments/exp/metrics/acc' });
  t.is(superseded.statusCode, 200, superseded.body);
  t.deepEqual(json(superseded).points, []);

  // The client's body is not safetensors: its fault (400), said so, with the offset in the body.
  const header = Buffer.alloc(8);
  header.writeBigUInt64LE(5n);
  const bad = await upload(app, Buffer.concat([header, Buffer.from('{bad}')]));
  t.is(bad.statusCode, 400);
  t.like(json(bad), { code: 'CORRUPT_PAYLOAD', byteOffset: 9 });
  t.regex(String(json(bad).message), /^the request body is not a valid safetensors file: .* \(at byte 9 of the body\)/);
  t.notRegex(bad.body, /damaged storage|restore them from a copy/);
  const boolean = await upload(
    app,
    rawSafetensors({ b: { dtype: 'BOOL', shape: [2], data_offsets: [0, 2] } }, Buffer.from([0, 7])),
  );
  t.is(boolean.statusCode, 400);
  t.notRegex(boolean.body, /damaged storage/);

  // A round's operation asked on a path the API does not have: the 404 says so and names the route.
  const path = await post(app, '/v1/experiments/exp/rounds/0/fork', {});
  t.is(path.statusCode, 404);
  t.is(json(path).code, 'NOT_FOUND');
  t.regex(String(json(path).message), /the API has no such path/);
  t.regex(String(json(path).message), /POST \/v1\/experiments\/exp\/fork with the round in the body: \{"round": 0\}/);
});

// Serial: the decode limits are the process's, lowered here for one upload (serial tests run first, alone).
test.serial('an upload over a decode maximum of the server: said so, not called damage, nothing stored', async (t) => {
  const { app } = t.context;
  const eight = weights([1, 2, 3, 4, 5, 6, 7, 8]);
  const previous = setDecodeLimits({ maxTensorBytes: 16 });
  try {
    const large = await upload(app, eight);
    t.is(large.statusCode, 400, large.body);
    t.is(json(large).code, 'DECODE_LIMIT');
    t.regex(String(json(large).message), /the request body would take 32 bytes .* nothing was stored: this server/);
    t.notRegex(large.body, /damaged/);
  } finally {
    setDecodeLimits(previous);
  }
});
