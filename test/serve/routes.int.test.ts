/**
 * `roundlog serve` route by route, through `inject` (no socket): experiments, runs, parameters,
 * rounds, the audit queries, the history operations and the OpenAPI document, over a real root.
 */
import anyTest, { type TestFn } from 'ava';
import { Validator } from '@seriousme/openapi-schema-validator';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeSafetensors } from '../../src/codec/safetensors.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { removeTempDirs } from '../support/tmp.ts';
import { createExperiment, json, post, recordRound, servedRoot, upload, weights, type Served } from './support.ts';

const test = anyTest as TestFn<Served>;

test.beforeEach(async (t) => {
  t.context = await servedRoot();
});
test.afterEach.always(async (t) => {
  await t.context.app.close();
});
test.after.always(removeTempDirs);

test('health, version and an OpenAPI 3 document that validates and lists every route', async (t) => {
  const { app } = t.context;
  t.deepEqual(json(await app.inject({ url: '/v1/health' })), { status: 'ok' });
  const version = json<{ version: string; api: number }>(await app.inject({ url: '/v1/version' }));
  t.is(version.api, 1);
  t.regex(version.version, /^\d+\.\d+\.\d+/);
  const doc = json<{ openapi: string; paths: Record<string, unknown> }>(await app.inject({ url: '/openapi.json' }));
  const result = await new Validator().validate(doc as never);
  t.true(result.valid, JSON.stringify(result.errors));
  t.regex(doc.openapi, /^3\./);
  for (const route of [
    '/v1/experiments',
    '/v1/experiments/{experiment}',
    '/v1/experiments/{experiment}/runs',
    '/v1/experiments/{experiment}/runs/{runId}/heartbeat',
    '/v1/experiments/{experiment}/runs/{runId}/end',
    '/v1/experiments/{experiment}/runs/{runId}/fail',
    '/v1/params',
    '/v1/experiments/{experiment}/rounds',
    '/v1/experiments/{experiment}/rounds/{round}',
    '/v1/experiments/{experiment}/rounds/{round}/params',
    '/v1/experiments/{experiment}/history',
    '/v1/experiments/{experiment}/events',
    '/v1/experiments/{experiment}/metrics/{name}',
    '/v1/experiments/{experiment}/lineage',
    '/v1/experiments/{experiment}/rewind',
    '/v1/experiments/{experiment}/fork',
    '/v1/experiments/{experiment}/replay',
    '/v1/experiments/{experiment}/export',
    '/v1/events',
  ]) {
    t.true(route in doc.paths, `${route} in the OpenAPI document`);
  }
  // The answers are documented too: a round's, and the error body of every route.
  type Operation = { responses: Record<string, { content?: Record<string, { schema: { properties?: object } }> }> };
  const rounds = (doc.paths['/v1/experiments/{experiment}/rounds'] as { post: Operation }).post;
  t.deepEqual(Object.keys(rounds.responses['201']!.content!['application/json']!.schema.properties ?? {}).sort(), [
    'breakpoint',
    'position',
    'revision',
    'round',
  ]);
  t.truthy(rounds.responses.default);
});

test('create, list and describe an experiment as ls --json does', async (t) => {
  const { app } = t.context;
  const created = await post(app, '/v1/experiments', { folder: 'mnist', roundLimit: 5, seed: 7, config: { lr: 0.1 } });
  t.is(created.statusCode, 201, created.body);
  const body = json<{
    experiment: { experimentId: string; folder: string; number: number; stream: string };
    revision: string;
  }>(created);
  t.is(body.experiment.folder, 'mnist');
  t.is(body.experiment.number, 0);
  t.is(body.revision, '0');
  const listed = json<{ experiments: { folder: string; id: string; status: string }[] }>(
    await app.inject({ url: '/v1/experiments' }),
  );
  t.deepEqual(
    listed.experiments.map((e) => [e.folder, e.id, e.status]),
    [['mnist', body.experiment.experimentId, 'created']],
  );
  for (const name of ['mnist', body.experiment.experimentId]) {
    const described = json<Record<string, unknown>>(await app.inject({ url: `/v1/experiments/${name}` }));
    t.is(described.experimentId, body.experiment.experimentId);
    t.is(described.roundCurrent, 0);
    t.is(described.revision, '0');
    t.is(described.status, 'created');
    t.is(described.run, null);
    t.is((described.settings as { roundLimit: number }).roundLimit, 5);
    t.deepEqual(described.config, { lr: 0.1 });
  }
});

test('record rounds, load the last and round 0: params, state, metrics, settings; the bytes as uploaded', async (t) => {
  const { app, root } = t.context;
  await createExperiment(app, 'exp', { saveBreakpoints: true });
  const bytes0 = weights([1, 2, 3]);
  const stored = await upload(app, bytes0);
  t.is(stored.statusCode, 201, stored.body);
  const uploaded = json<{ sha256: string; size: number; encoding: string; tensors: unknown }>(stored);
  t.is(uploaded.size, bytes0.length);
  t.is(uploaded.encoding, 'tensors/safetensors');
  t.deepEqual(uploaded.tensors, { w: { dtype: 'F32', shape: [3] } });
  // Content-addressed: the same bytes again store nothing.
  t.like(json(await upload(app, bytes0)), { sha256: uploaded.sha256, created: false });
  const first = await post(app, '/v1/experiments/exp/rounds', {
    round: 0,
    params: { sha256: uploaded.sha256 },
    metrics: { loss: 0.5 },
    state: { optimizer: { step: 1 } },
  });
  t.is(first.statusCode, 201, first.body);
  const recorded = json<{ round: number; revision: string; position: string; breakpoint: string | null }>(first);
  t.is(recorded.round, 0);
  t.is(recorded.revision, '1');
  t.regex(recorded.position, /^\d+$/);
  t.is(recorded.breakpoint, path.join('experiments', 'exp', 'breakpoint_0000'));
  // Durable and projected before the response: the breakpoint folder is there.
  t.truthy(await fs.stat(path.join(root, recorded.breakpoint!)));
  await recordRound(app, 'exp', 1, [4, 5, 6]);

  const last = json<Record<string, unknown>>(await app.inject({ url: '/v1/experiments/exp/rounds/last' }));
  t.is(last.round, 1);
  t.deepEqual(last.metrics, { loss: 0.5 });
  t.deepEqual(last.state, { step: 1 });
  t.deepEqual((last.params as { tensors: unknown }).tensors, { w: { dtype: 'F32', shape: [3] } });
  t.is(last.revision, '2');
  const zero = json<Record<string, unknown>>(await app.inject({ url: '/v1/experiments/exp/rounds/0' }));
  t.deepEqual(zero.state, { optimizer: { step: 1 } });
  t.is((zero.settings as { saveBreakpoints: boolean }).saveBreakpoints, true);

  const params = await app.inject({ url: '/v1/experiments/exp/rounds/0/params' });
  t.is(params.statusCode, 200);
  t.is(params.headers['content-type'], 'application/octet-stream');
  t.true(params.rawPayload.equals(bytes0));
  const decoded = decodeSafetensors(params.rawPayload);
  t.deepEqual(Array.from(decoded.w!.data as Float32Array), [1, 2, 3]);
});

test('a retried round with the same request id answers the first response and appends nothing', async (t) => {
  const { app } = t.context;
  await createExperiment(app, 'exp');
  const { sha256 } = json<{ sha256: string }>(await upload(app, weights([1])));
  const body = { round: 0, params: { sha256 }, metrics: { loss: 1 }, requestId: 'round-0.attempt:1' };
  const first = await post(app, '/v1/experiments/exp/rounds', { ...body, expectedRevision: '0' });
  t.is(first.statusCode, 201, first.body);
  // The retry carries its original precondition, stale now: still the first answer.
  const again = await post(app, '/v1/experiments/exp/rounds', { ...body, expectedRevision: '0' });
  t.is(again.statusCode, 201, again.body);
  t.deepEqual(json(again), json(first));
  const described = json<{ revision: string; roundCurrent: number }>(await app.inject({ url: '/v1/experiments/exp' }));
  t.is(described.revision, '1');
  t.is(described.roundCurrent, 1);
  // The same id for other content is refused, naming it.
  const other = await post(app, '/v1/experiments/exp/rounds', { ...body, metrics: { loss: 2 } });
  t.is(other.statusCode, 409);
  t.like(json(other), { code: 'IDEMPOTENCY_KEY_REUSED', requestId: 'round-0.attempt:1', experiment: 'exp' });
});

test('a retried creation answers the same experiment; the same id for another folder is refused', async (t) => {
  const { app } = t.context;
  const body = { folder: 'a', retention: { keepLast: 2 }, requestId: 'create-a' };
  const first = await post(app, '/v1/experiments', body);
  const again = await post(app, '/v1/experiments', body);
  t.is(first.statusCode, 201, first.body);
  t.is(again.statusCode, 201);
  t.deepEqual(json(again), json(first));
  t.is(json(first).revision, '1');
  t.like(json(await app.inject({ url: '/v1/experiments/a' })), {
    settings: { retention: { keepLast: 2, keepEvery: null } },
  });
  t.is(json<{ experiments: unknown[] }>(await app.inject({ url: '/v1/experiments' })).experiments.length, 1);
  const other = await post(app, '/v1/experiments', { folder: 'b', requestId: 'create-a' });
  t.is(other.statusCode, 409);
  t.is(json(other).code, 'IDEMPOTENCY_KEY_REUSED');
});

test('runs: start, a second owner is EXPERIMENT_RUNNING, heartbeat, end; a resume is in the history', async (t) => {
  const { app } = t.context;
  await createExperiment(app, 'exp');
  // Another host: its liveness is the heartbeat's, recent.
  const owner = { host: 'trainer-1', pid: 4242, name: 'alice' };
  const started = await post(app, '/v1/experiments/exp/runs', { owner, heartbeatMs: 60_000, requestId: 'start-1' });
  t.is(started.statusCode, 201, started.body);
  const run = json<{ runId: string; roundCurrent: number; revision: string; resumed: boolean }>(started);
  t.is(run.roundCurrent, 0);
  t.false(run.resumed);
  const retry = await post(app, '/v1/experiments/exp/runs', { owner, heartbeatMs: 60_000, requestId: 'start-1' });
  t.deepEqual(json(retry), json(started));

  const second = await post(app, '/v1/experiments/exp/runs', { owner: { host: 'trainer-2', pid: 1 } });
  t.is(second.statusCode, 409);
  const running = json<{ code: string; experiment: string; owner: { host: string; pid: number; user: string } }>(
    second,
  );
  t.is(running.code, 'EXPERIMENT_RUNNING');
  t.is(running.experiment, 'exp');
  t.like(running.owner, { host: 'trainer-1', pid: 4242, user: 'alice' });

  const described = json<{ status: string; run: { runId: string } }>(await app.inject({ url: '/v1/experiments/exp' }));
  t.is(described.status, 'running');
  t.is(described.run.runId, run.runId);

  await recordRound(app, 'exp', 0, [1], { runId: run.runId });
  const beat = await post(app, `/v1/experiments/exp/runs/${run.runId}/heartbeat`, {});
  t.is(beat.statusCode, 200, beat.body);
  const ended = await post(app, `/v1/experiments/exp/runs/${run.runId}/end`, {});
  t.is(ended.statusCode, 200, ended.body);
  // The run is over: recording under it is refused.
  const { sha256 } = json<{ sha256: string }>(await upload(app, weights([2])));
  const late = await post(app, '/v1/experiments/exp/rounds', { round: 1, params: { sha256 }, runId: run.runId });
  t.is(late.statusCode, 409);
  t.like(json(late), { code: 'RUN_NOT_OWNED', runId: run.runId, current: null });

  const resumed = await post(app, '/v1/experiments/exp/runs', { owner: { host: 'trainer-2', pid: 7 } });
  t.is(resumed.statusCode, 201, resumed.body);
  t.like(json(resumed), { roundCurrent: 1, resumed: true });
  const history = json<{ entries: { kind: string }[] }>(await app.inject({ url: '/v1/experiments/exp/history' }));
  t.deepEqual(
    history.entries.map((e) => e.kind),
    ['created', 'run-started', 'round', 'run-ended', 'resumed', 'run-started'],
  );
  const failed = await post(app, `/v1/experiments/exp/runs/${json<{ runId: string }>(resumed).runId}/fail`, {
    message: 'CUDA out of memory',
    code: 'RuntimeError',
  });
  t.is(failed.statusCode, 200, failed.body);
  t.like(json(await app.inject({ url: '/v1/experiments/exp' })), { status: 'failed' });
});

test('audit queries: events, rounds table, metric series, lineage, as the CLI prints them', async (t) => {
  const { app } = t.context;
  await createExperiment(app, 'exp');
  await recordRound(app, 'exp', 0, [1]);
  await recordRound(app, 'exp', 1, [2]);
  const events = json<{ events: { type: string; position: string; revision: string }[] }>(
    await app.inject({ url: '/v1/experiments/exp/events' }),
  );
  t.deepEqual(
    events.events.map((e) => e.type),
    ['ExperimentCreated', 'RoundCompleted', 'RoundCompleted'],
  );
  t.regex(events.events[0]!.position, /^\d+$/);
  const only = json<{ events: { type: string }[] }>(
    await app.inject({ url: '/v1/experiments/exp/events?type=RoundCompleted' }),
  );
  t.is(only.events.length, 2);
  const rounds = json<{ rounds: { round: number }[] }>(await app.inject({ url: '/v1/experiments/exp/rounds' }));
  t.deepEqual(
    rounds.rounds.map((r) => r.round),
    [0, 1],
  );
  const metric = json<{ name: string; points: { round: number; value: number }[] }>(
    await app.inject({ url: '/v1/experiments/exp/metrics/loss' }),
  );
  t.is(metric.name, 'loss');
  t.deepEqual(
    metric.points.map((p) => [p.round, p.value]),
    [
      [0, 1],
      [1, 0.5],
    ],
  );
  const unknown = await app.inject({ url: '/v1/experiments/exp/metrics/accuracy' });
  t.is(unknown.statusCode, 404);
  t.is(json(unknown).code, 'METRIC_NOT_FOUND');
  const lineage = json<Record<string, unknown>>(await app.inject({ url: '/v1/experiments/exp/lineage' }));
  t.truthy(lineage.experiment);
});

test('rewind, fork, replay and export: the CLI operations, with their typed results', async (t) => {
  const { app, root } = t.context;
  await createExperiment(app, 'exp');
  for (let round = 0; round < 3; round++) await recordRound(app, 'exp', round, [round]);

  const stale = await post(app, '/v1/experiments/exp/rewind', { round: 0, expectedRevision: '1' });
  t.is(stale.statusCode, 409);
  t.like(json(stale), { code: 'CONCURRENT_MODIFICATION', expectedRevision: '1', actualRevision: '3' });
  const rewound = await post(
    app,
    '/v1/experiments/exp/rewind',
    { round: 1, reason: 'diverged', requestId: 'rw-1' },
    { 'if-match': '"3"' },
  );
  t.is(rewound.statusCode, 200, rewound.body);
  t.like(json(rewound), { round: 1, roundCurrent: 2, supersededRounds: [2], reason: 'diverged' });
  const again = await post(app, '/v1/experiments/exp/rewind', { round: 1, reason: 'diverged', requestId: 'rw-1' });
  t.is(again.statusCode, 200, again.body);
  t.like(json(again), { round: 1, roundCurrent: 2, supersededRounds: [2], logPosition: json(rewound).logPosition });
  t.like(json(await app.inject({ url: '/v1/experiments/exp' })), { roundCurrent: 2, revision: '4' });

  const forked = await post(app, '/v1/experiments/exp/fork', { round: 0, folder: 'branch', requestId: 'fork-1' });
  t.is(forked.statusCode, 201, forked.body);
  t.like(json(forked), { parentFolder: 'exp', childFolder: 'branch', round: 0, roundCurrent: 1 });
  const forkAgain = await post(app, '/v1/experiments/exp/fork', { round: 0, folder: 'branch', requestId: 'fork-1' });
  t.is(forkAgain.statusCode, 201, forkAgain.body);
  t.like(json(forkAgain), { childId: json(forked).childId, childFolder: 'branch' });
  t.is(json<{ experiments: unknown[] }>(await app.inject({ url: '/v1/experiments' })).experiments.length, 2);

  const replayed = await post(app, '/v1/experiments/exp/replay', { round: 1 });
  t.is(replayed.statusCode, 200, replayed.body);
  const replay = json<{ path: string; round: number }>(replayed);
  t.is(replay.round, 1);
  t.truthy(await fs.stat(path.join(root, replay.path, 'breakpoint.json')));

  const exported = await app.inject({ url: '/v1/experiments/exp/export?round=2&superseded=true&format=safetensors' });
  t.is(exported.statusCode, 200, exported.body);
  t.deepEqual(Array.from(decodeSafetensors(exported.rawPayload).w!.data as Float32Array), [2]);
  const npz = await app.inject({ url: '/v1/experiments/exp/export?round=0&format=npz' });
  t.is(npz.statusCode, 200);
  t.is(npz.rawPayload.subarray(0, 2).toString('latin1'), 'PK');
  // Nothing left behind in the temporary folder.
  const left = (await fs.readdir(os.tmpdir())).filter((n) => n.startsWith('roundlog-export-'));
  t.deepEqual(left, []);
});

test('what the server records reads back through the library (no second implementation)', async (t) => {
  const { app, root } = t.context;
  await createExperiment(app, 'exp');
  await recordRound(app, 'exp', 0, [0.25, -1]);
  await app.close();
  const rl = await openRoundLog({ root, createRoot: false });
  try {
    const handle = await rl.openExperiment('exp');
    const loaded = await handle.loadRound('last');
    t.deepEqual(Array.from(loaded.params.w!.data as Float32Array), [0.25, -1]);
    t.deepEqual(loaded.state, { step: 0 });
  } finally {
    await rl.close();
  }
  t.context = await servedRoot({ root });
});

test('live events over a socket: keep-alive comments, events with their position as id, ended by close', async (t) => {
  await t.context.app.close();
  t.context = await servedRoot({ keepAliveMs: 20, pollIntervalMs: 10 });
  const { app } = t.context;
  await createExperiment(app, 'exp');
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const response = await fetch(`${url}/v1/events?experiment=exp`);
  t.is(response.status, 200);
  t.regex(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!(text.includes('event: ExperimentCreated') && text.includes(': keep-alive'))) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  t.regex(text, /id: \d+\nevent: ExperimentCreated\ndata: \{/);
  t.regex(text, /: keep-alive\n\n/);
  // Closing the server ends the stream (it does not wait for the client to go).
  await app.close();
  for (;;) {
    const { done } = await reader.read();
    if (done) break;
  }
  t.pass();
  t.context = await servedRoot();
});

test('live events of an unknown experiment: 404 EXPERIMENT_NOT_FOUND before any stream starts', async (t) => {
  const reply = await t.context.app.inject({ url: '/v1/events?experiment=nope' });
  t.is(reply.statusCode, 404);
  t.is(json(reply).code, 'EXPERIMENT_NOT_FOUND');
  const bad = await t.context.app.inject({ url: '/v1/events', headers: { 'last-event-id': 'x' } });
  t.is(bad.statusCode, 400);
  t.like(json(bad), { code: 'INVALID_REQUEST', field: 'headers.last-event-id' });
});

test('a run of a process of this host that is gone is replaced at once; a live one: EXPERIMENT_RUNNING', async (t) => {
  const { app } = t.context;
  await createExperiment(app, 'exp');
  await recordRound(app, 'exp', 0, [1]);
  // A client process that ran and exited (as a SIGKILLed training loop would have).
  const gone = spawn(process.execPath, ['-e', '']);
  await once(gone, 'exit');
  const first = await post(app, '/v1/experiments/exp/runs', { owner: { host: os.hostname(), pid: gone.pid! } });
  t.is(first.statusCode, 201, first.body);
  const replaced = await post(app, '/v1/experiments/exp/runs', { owner: { host: os.hostname(), pid: process.pid } });
  t.is(replaced.statusCode, 201, replaced.body);
  t.like(json(replaced), { resumed: true, roundCurrent: 1 });
  // This process is alive: a third client is refused, naming it.
  const refused = await post(app, '/v1/experiments/exp/runs', { owner: { host: os.hostname(), pid: gone.pid! } });
  t.is(refused.statusCode, 409);
  t.like(json(refused), { code: 'EXPERIMENT_RUNNING', owner: { pid: process.pid } });
  // Its start time was recorded: a later process with the same pid would not pass for it.
  t.regex(json<{ owner: { processStart: string } }>(refused).owner.processStart, /^.+:\d+$/);
  // Unless it takes the run over, which is recorded.
  const taken = await post(app, '/v1/experiments/exp/runs', { owner: { host: os.hostname(), pid: 1 }, takeOver: true });
  t.is(taken.statusCode, 201, taken.body);
  const history = json<{ entries: { kind: string }[] }>(await app.inject({ url: '/v1/experiments/exp/history' }));
  t.is(history.entries.filter((e) => e.kind === 'run-started').length, 3);
});

test('requests of one experiment are queued: heartbeats racing rounds never conflict', async (t) => {
  const { app } = t.context;
  await createExperiment(app, 'exp');
  const { runId } = json<{ runId: string }>(
    await post(app, '/v1/experiments/exp/runs', { owner: { host: 'elsewhere', pid: 1 } }),
  );
  for (let round = 0; round < 3; round++) {
    const { sha256 } = json<{ sha256: string }>(await upload(app, weights([round])));
    const replies = await Promise.all([
      post(app, `/v1/experiments/exp/runs/${runId}/heartbeat`, {}),
      post(app, '/v1/experiments/exp/rounds', { round, params: { sha256 }, runId, requestId: `r${round}` }),
      post(app, `/v1/experiments/exp/runs/${runId}/heartbeat`, {}),
    ]);
    t.deepEqual(
      replies.map((r) => r.statusCode),
      [200, 201, 200],
    );
  }
  t.like(json(await app.inject({ url: '/v1/experiments/exp' })), { roundCurrent: 3, revision: '10' });
});

test('a retry reaching another server of the root (which read the experiment before): the first answer', async (t) => {
  const { app, root } = t.context;
  await createExperiment(app, 'exp');
  const other = (await servedRoot({ root })).app;
  try {
    // The second server reads the experiment (and its request ids) before the first appends.
    t.is((await other.inject({ url: '/v1/experiments/exp' })).statusCode, 200);
    const { sha256 } = json<{ sha256: string }>(await upload(app, weights([1])));
    const body = { round: 0, params: { sha256 }, requestId: 'once' };
    const first = await post(app, '/v1/experiments/exp/rounds', body);
    t.is(first.statusCode, 201, first.body);
    const retry = await post(other, '/v1/experiments/exp/rounds', body);
    t.is(retry.statusCode, 201, retry.body);
    t.deepEqual(json(retry), json(first));
    const reused = await post(other, '/v1/experiments/exp/rounds', { ...body, metrics: { loss: 1 } });
    t.is(json(reused).code, 'IDEMPOTENCY_KEY_REUSED');
    t.like(json(await other.inject({ url: '/v1/experiments/exp' })), { revision: '1' });
  } finally {
    await other.close();
  }
});

test('parameters damaged on disk are never served whole: CORRUPT_BLOB, or a download cut short', async (t) => {
  const { app, root } = t.context;
  await createExperiment(app, 'exp');
  // One of a single chunk (refused before any byte goes out), one of many (cut before its last).
  const small = weights(Array.from({ length: 100 }, (_, i) => i));
  const large = weights(Array.from({ length: 500_000 }, (_, i) => i));
  for (const [round, bytes] of [small, large].entries()) {
    const { sha256 } = json<{ sha256: string }>(await upload(app, bytes));
    t.is((await post(app, '/v1/experiments/exp/rounds', { round, params: { sha256 } })).statusCode, 201);
    const handle = await fs.open(path.join(root, 'blobs', sha256.slice(0, 2), sha256.slice(2)), 'r+');
    await handle.write(Buffer.from([0xff]), 0, 1, bytes.length - 1);
    await handle.close();
  }
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const refused = await fetch(`${url}/v1/experiments/exp/rounds/0/params`);
  t.is(refused.status, 500);
  t.like(await refused.json(), { code: 'CORRUPT_BLOB' });
  const cut = await fetch(`${url}/v1/experiments/exp/rounds/1/params`);
  t.is(cut.status, 200);
  t.is(cut.headers.get('content-length'), String(large.length));
  await t.throwsAsync(cut.arrayBuffer());
});
