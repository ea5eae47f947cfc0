/**
 * `roundlog serve` as a real process over real HTTP (node fetch): it prints its URL first; a
 * training loop records rounds; the server is SIGKILLed mid-request and started again on the same
 * root: every committed round is there, a retried request answers its first response, and the
 * run goes on; the live event stream resumes across the restart with Last-Event-ID, with no gap
 * and no duplicate; SIGTERM closes it with exit 0.
 */
import test from 'ava';
import { promises as fs } from 'node:fs';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startRoundlog } from '../support/cli.ts';
import { killSpawned, type Child } from '../support/child.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { weights } from './support.ts';

const started: Child[] = [];
test.after.always(killSpawned);
test.after.always(() => {
  // A test that failed midway leaves no server running.
  for (const child of started) if (child.process.exitCode === null) child.process.kill('SIGKILL');
  removeTempDirs();
});

type Server = { child: Child; url: string };

/** Starts `roundlog serve --port 0` on `root` and waits for the URL it prints first. */
async function startServer(root: string, extra: string[] = []): Promise<Server> {
  const child = startRoundlog(['serve', '--root', root, '--init', '--port', '0', ...extra]);
  started.push(child);
  const url = await child.waitFor((line) => line.startsWith('http://'));
  return { child, url };
}

async function kill(server: Server): Promise<void> {
  server.child.process.kill('SIGKILL');
  await server.child.exited;
}

async function call<T = Record<string, unknown>>(
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: T }> {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as T };
}

/** One round as a client records it: parameters uploaded, then the round, under `requestId`. */
async function record(url: string, round: number, runId: string, requestId: string) {
  const upload = await fetch(`${url}/v1/params`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: weights([round, round + 0.5]),
  });
  const { sha256 } = (await upload.json()) as { sha256: string };
  return call<{ round: number; revision: string; position: string }>('POST', `${url}/v1/experiments/exp/rounds`, {
    round,
    params: { sha256 },
    metrics: { loss: 1 / (round + 1) },
    state: { round },
    runId,
    requestId,
  });
}

test('SIGKILL mid-upload, restart: committed rounds kept, a retry answers as before, the run goes on', async (t) => {
  const root = tempDir('roundlog-serve-e2e-');
  let server = await startServer(root);
  const created = await call('POST', `${server.url}/v1/experiments`, { folder: 'exp', requestId: 'create' });
  t.is(created.status, 201, JSON.stringify(created.body));
  const owner = { host: os.hostname(), pid: process.pid, name: 'loop' };
  const started = await call<{ runId: string }>('POST', `${server.url}/v1/experiments/exp/runs`, {
    owner,
    requestId: 'run-1',
  });
  t.is(started.status, 201, JSON.stringify(started.body));
  const { runId } = started.body;
  const answers = [];
  for (let round = 0; round < 3; round++) {
    const answer = await record(server.url, round, runId, `round-${round}`);
    t.is(answer.status, 201, JSON.stringify(answer.body));
    answers.push(answer.body);
  }
  // An upload in flight: half of a body sent, the rest never comes; the server dies under it.
  const partial = weights(Array.from({ length: 50_000 }, (_, i) => i));
  const { port, hostname } = new URL(server.url);
  const inFlight = request({
    host: hostname,
    port,
    method: 'POST',
    path: '/v1/params',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(partial.length) },
  });
  inFlight.on('error', () => undefined);
  await new Promise<void>((resolve) => inFlight.write(partial.subarray(0, partial.length / 2), () => resolve()));
  await kill(server);
  inFlight.destroy();

  server = await startServer(root);
  const described = await call<{ roundCurrent: number; revision: string; run: { runId: string } }>(
    'GET',
    `${server.url}/v1/experiments/exp`,
  );
  t.is(described.body.roundCurrent, 3);
  t.is(described.body.run.runId, runId);
  // The client did not see the answer to round 2 (say): it sends it again, and gets the first answer.
  const retry = await record(server.url, 2, runId, 'round-2');
  t.is(retry.status, 201);
  t.deepEqual(retry.body, answers[2]);
  t.is(
    (await call<{ revision: string }>('GET', `${server.url}/v1/experiments/exp`)).body.revision,
    described.body.revision,
  );
  // The run goes on where it was.
  for (let round = 3; round < 5; round++) {
    const answer = await record(server.url, round, runId, `round-${round}`);
    t.is(answer.status, 201, JSON.stringify(answer.body));
  }
  const ended = await call('POST', `${server.url}/v1/experiments/exp/runs/${runId}/end`, {});
  t.is(ended.status, 200);
  const history = await call<{ entries: { kind: string; round?: number }[] }>(
    'GET',
    `${server.url}/v1/experiments/exp/history`,
  );
  t.deepEqual(
    history.body.entries.filter((e) => e.kind === 'round').map((e) => e.round),
    [0, 1, 2, 3, 4],
  );
  const last = await fetch(`${server.url}/v1/experiments/exp/rounds/last/params`);
  t.true(Buffer.from(await last.arrayBuffer()).equals(weights([4, 4.5])));
  // The half-sent upload left no blob behind: only the five rounds' parameters are stored.
  const files = (await fs.readdir(path.join(root, 'blobs'), { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => `${path.basename(e.parentPath)}${e.name}`);
  t.is(files.length, 5, files.join(', '));
  for (const name of files) t.regex(name, /^[0-9a-f]{64}$/);

  server.child.process.kill('SIGTERM');
  const exit = await server.child.exited;
  t.is(exit.code, 0, server.child.stderr());
});

type SseEvent = { id: string; event: string; data: { type: string; position: string } };

/** Reads a live event stream until `until` says stop; returns the events read. */
async function readEvents(
  url: string,
  lastEventId: string | null,
  until: (events: SseEvent[]) => boolean,
): Promise<SseEvent[]> {
  const controller = new AbortController();
  const response = await fetch(`${url}/v1/events?experiment=exp`, {
    headers: lastEventId === null ? {} : { 'last-event-id': lastEventId },
    signal: controller.signal,
  });
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let text = '';
  const reader = response.body!.getReader();
  while (!until(events)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = text.indexOf('\n\n')) >= 0) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      const fields: Record<string, string> = Object.fromEntries(
        block
          .split('\n')
          .filter((l) => !l.startsWith(':'))
          .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trimStart()]),
      );
      if (fields.id !== undefined) {
        events.push({
          id: fields.id,
          event: fields.event ?? '',
          data: JSON.parse(fields.data ?? 'null') as SseEvent['data'],
        });
      }
    }
  }
  controller.abort();
  await reader.cancel().catch(() => undefined);
  return events;
}

test('live events resume across a server restart with Last-Event-ID: no gap, no duplicate', async (t) => {
  const root = tempDir('roundlog-serve-e2e-');
  let server = await startServer(root);
  await call('POST', `${server.url}/v1/experiments`, { folder: 'exp' });
  const { runId } = (
    await call<{ runId: string }>('POST', `${server.url}/v1/experiments/exp/runs`, {
      owner: { host: os.hostname(), pid: process.pid },
    })
  ).body;
  await record(server.url, 0, runId, 'r0');
  // Reads until it has seen round 1, which is recorded once the stream is open.
  const reading = readEvents(
    server.url,
    null,
    (events) => events.filter((e) => e.event === 'RoundCompleted').length >= 2,
  );
  await record(server.url, 1, runId, 'r1');
  const first = await reading;
  t.deepEqual(
    first.map((e) => e.event),
    ['ExperimentCreated', 'RunStarted', 'RoundCompleted', 'RoundCompleted'],
  );
  for (const e of first) t.is(e.id, e.data.position);
  await kill(server);

  server = await startServer(root);
  await record(server.url, 2, runId, 'r2');
  await record(server.url, 3, runId, 'r3');
  const rest = await readEvents(server.url, first.at(-1)!.id, (events) => events.length >= 2);
  t.deepEqual(
    rest.map((e) => e.event),
    ['RoundCompleted', 'RoundCompleted'],
  );
  const all = await call<{ events: { position: string }[] }>('GET', `${server.url}/v1/experiments/exp/events`);
  t.deepEqual(
    [...first, ...rest].map((e) => e.id),
    all.body.events.map((e) => e.position),
  );
  server.child.process.kill('SIGTERM');
  t.is((await server.child.exited).code, 0);
});

test('a non-loopback host without --token-file: exit 1 saying why, listening on nothing', async (t) => {
  const root = tempDir('roundlog-serve-e2e-');
  const child = startRoundlog(['serve', '--root', root, '--port', '0', '--host', '0.0.0.0']);
  const exit = await child.exited;
  t.is(exit.code, 1);
  t.deepEqual(child.lines, []);
  t.regex(child.stderr(), /without a token.*--token-file/);
});

test('with --token-file on any host: requests need the token', async (t) => {
  const root = tempDir('roundlog-serve-e2e-');
  const tokenFile = path.join(tempDir('roundlog-serve-token-'), 'token');
  await fs.writeFile(tokenFile, 'e2e-token-0123456789abcdef\n');
  const server = await startServer(root, ['--host', '127.0.0.1', '--token-file', tokenFile]);
  t.is((await fetch(`${server.url}/v1/experiments`)).status, 401);
  const ok = await fetch(`${server.url}/v1/experiments`, {
    headers: { authorization: 'Bearer e2e-token-0123456789abcdef' },
  });
  t.is(ok.status, 200);
  server.child.process.kill('SIGINT');
  t.is((await server.child.exited).code, 0);
});
