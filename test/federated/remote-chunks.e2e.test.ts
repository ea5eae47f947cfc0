/**
 * Protocol revision 2: parameters in chunks (`ParamsChunk`), both ways, and the negotiation with
 * revision 1.
 *
 * - 5 MiB + 3 bytes of parameters go to a real `roundlog node start` process and come back in
 *   chunks, bit for bit both ways.
 * - A node of an earlier release (a raw gRPC client speaking revision 1: whole parameters) still
 *   trains through the researcher.
 * - A raw client speaking 2 whose reply has a wrong params_sha256, a chunk at a wrong offset, or
 *   that disconnects mid-chunks fails the request with `NodeFailedError` naming the node and the
 *   fault, and the reply's put (a real file blob store) leaves no file.
 * - A round that stops waiting mid-chunks (its abort signal) fails the request and the put leaves
 *   nothing; the rest of that reply is a late reply, logged once.
 * - Chunks of a reply no request waits for are logged once, not once per chunk.
 * - A real node refuses (BAD_REQUEST, naming the fault) parameters above its --max-message-bytes, a
 *   chunk at a wrong offset, one past the end, and bytes of another hash; then still trains.
 * - A node whose researcher speaks 1 only (a raw gRPC server refusing 2) connects again speaking 1
 *   and trains.
 */
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CLINICAL_FEATURES, syntheticClinicalFederation } from '../../examples/logistic-regression/data.ts';
import { openFileBlobStore, type FileBlobStore } from '../../src/blobs/file.ts';
import { SAFETENSORS_ENCODING, encodeSafetensors } from '../../src/codec/safetensors.ts';
import type { TensorSet } from '../../src/codec/tensors.ts';
import { approvePlan } from '../../src/federated/remote/approvals.ts';
import { numericCsv } from '../../src/federated/remote/dataset.ts';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  PARAMS_CHUNK_BYTES,
  federationProtocol,
  messageSizeOptions,
  type NodeMessage,
  type Outgoing,
  type ResearcherMessage,
  type TrainReply,
  type TrainRequest,
} from '../../src/federated/remote/protocol.ts';
import { listenForNodes, type RemoteFederation } from '../../src/federated/remote/researcher.ts';
import { deriveRng } from '../../src/federated/rng.ts';
import type { RemoteTrainRequest } from '../../src/federated/training-plan.ts';
import { NodeFailedError } from '../../src/model/errors.ts';
import { killSpawned, type Child } from '../support/child.ts';
import { startRoundlog } from '../support/cli.ts';
import { replyStore, requestParams } from '../support/reply-store.ts';
import { removeTempDirs, seededRandom, tempDir } from '../support/tmp.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const MiB = 1024 * 1024;

function dataFile(): string {
  const file = path.join(tempDir(), 'a.csv');
  const data = syntheticClinicalFederation({ seed: 3, nodes: 1, rows: [40] }).nodes[0]!.datasets[0]!.data;
  writeFileSync(file, numericCsv(CLINICAL_FEATURES, data));
  return file;
}

async function researcher(t: ExecutionContext, events: string[] = []): Promise<RemoteFederation> {
  const federation = await listenForNodes({ onEvent: (line) => events.push(line) });
  t.teardown(() => federation.close());
  return federation;
}

function startNode(t: ExecutionContext, id: string, address: string, nodeDir: string, extra: string[] = []): Child {
  const args = ['node', 'start', '--id', id, '--data', dataFile(), '--tags', '#t', '--researcher', address];
  const child = startRoundlog([...args, '--node-dir', nodeDir, ...extra]);
  t.teardown(async () => {
    if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
    await child.exited;
  });
  return child;
}

/**
 * A plan that reverses each tensor's elements (bits moved, never computed) and reports, as metric
 * `seen`, the first 48 bits of the SHA-256 of the bytes it was sent (each tensor's, in name order).
 */
async function reversingPlan(nodeDir: string): Promise<string> {
  const planFile = path.join(tempDir(), 'reverse-plan.ts');
  writeFileSync(
    planFile,
    `import { createHash } from 'node:crypto';
export const reversePlan = {
  init: () => ({}),
  train: (params, data) => {
    const hash = createHash('sha256');
    for (const name of Object.keys(params).sort()) {
      const d = params[name].data;
      hash.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      d.reverse();
    }
    return { params, sampleSize: data.rows, metrics: { seen: hash.digest().readUIntBE(0, 6) } };
  },
};
`,
  );
  return (await approvePlan(nodeDir, planFile)).sha256;
}

/** What `reversingPlan` reports as `seen` for `tensors`. */
function seen(tensors: TensorSet): number {
  const hash = createHash('sha256');
  for (const name of Object.keys(tensors).sort()) {
    const d = tensors[name]!.data;
    hash.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return hash.digest().readUIntBE(0, 6);
}

/** 5 MiB of finite float32 values and 3 bytes: a file of six chunks, none a whole number of elements. */
function oddTensors(): TensorSet {
  const random = seededRandom(7);
  const w = new Float32Array((5 * MiB) / 4);
  for (let i = 0; i < w.length; i++) w[i] = (random() - 0.5) * 1e6;
  return {
    w: { dtype: 'float32', shape: [w.length], data: w },
    tail: { dtype: 'uint8', shape: [3], data: new Uint8Array([1, 2, 255]) },
  };
}

function reversed(tensors: TensorSet): TensorSet {
  return Object.fromEntries(
    Object.entries(tensors).map(([name, tensor]) => {
      const data = tensor.data.slice();
      data.reverse();
      return [name, { ...tensor, data }];
    }),
  ) as TensorSet;
}

const bytesOf = (tensors: TensorSet) => Buffer.from(encodeSafetensors(tensors));

function request(node: string, sha256: string, params: Pick<RemoteTrainRequest, 'params' | 'storeReply'>) {
  return {
    experiment: 'Experiment_chunks',
    experimentId: 'chunks',
    node,
    round: 2,
    attempt: 1,
    ...params,
    trainingArgs: {},
    modelArgs: {},
    plan: { module: 'reverse-plan.ts', export: 'reversePlan', sha256 },
    rng: deriveRng(1, 2, node, 'train').state(),
  } satisfies RemoteTrainRequest;
}

test.serial('5 MiB + 3 bytes of parameters travel to a node process and back in chunks, bit for bit', async (t) => {
  const nodeDir = tempDir();
  const sha256 = await reversingPlan(nodeDir);
  const federation = await researcher(t);
  const node = startNode(t, 'a', federation.address, nodeDir);
  t.regex(await node.waitFor((l) => / connected to /.test(l)), /\(protocol 2\)$/);
  const tensors = oddTensors();
  const sent = bytesOf(tensors);
  t.true(sent.length > 5 * MiB + 3 && sent.length % PARAMS_CHUNK_BYTES !== 0);
  const store = replyStore();
  const result = await federation.remote.train(
    request('a', sha256, requestParams(tensors, store)),
    new AbortController().signal,
  );
  // Both ways: the node trained on the very bytes sent, and the reply stored is the node's bytes.
  t.is(result.metrics.seen, seen(tensors));
  t.is(result.sampleSize, 40);
  const back = await store.tensors(result.stored);
  t.true(bytesOf(back).equals(bytesOf(reversed(tensors))));
  t.is(result.stored.bytes, sent.length);
  t.is(
    result.stored.sha256,
    createHash('sha256')
      .update(bytesOf(reversed(tensors)))
      .digest('hex'),
  );
});

test.serial('a node whose researcher goes away while it sends its reply drops it and connects again', async (t) => {
  const nodeDir = tempDir();
  const sha256 = await reversingPlan(nodeDir);
  const first = await listenForNodes({});
  t.teardown(() => first.close());
  const node = startNode(t, 'a', first.address, nodeDir);
  await node.waitFor((l) => / connected to /.test(l));
  // 48 chunks back; a store that never reads them pauses the node's stream after a few, so the
  // node's writes wait when the researcher goes.
  const w = new Float32Array((48 * MiB) / 4);
  let storing!: () => void;
  const stored = new Promise<void>((resolve) => (storing = resolve));
  const params = bytesOf({ w: { dtype: 'float32', shape: [w.length], data: w } });
  const reply = first.remote.train(
    request('a', sha256, {
      params,
      storeReply: () => {
        storing();
        return new Promise(() => undefined);
      },
    }),
    new AbortController().signal,
  );
  reply.catch(() => undefined);
  await stored;
  await first.close();
  const dropped = 'dropped experiment=Experiment_chunks round=2 attempt=1 while its reply was sent: ';
  await node.waitFor((l) => l.includes(`${dropped}the connection it came on is gone`));
  // It stays up and connects again, as to a researcher that comes back.
  const second = await listenForNodes({ port: first.port });
  t.teardown(() => second.close());
  await second.waitForNodes(['a']);
  t.is(node.process.exitCode, null, node.lines.join('\n'));
  t.false(
    node.lines.some((l) => / train-reply /.test(l)),
    'no reply is said to be sent',
  );
});

test.serial('parameters larger than the researcher accepts are refused before anything is sent', async (t) => {
  const federation = await listenForNodes({ maxMessageBytes: 4096 });
  t.teardown(() => federation.close());
  const tensors: TensorSet = { w: { dtype: 'float32', shape: [2048], data: new Float32Array(2048) } };
  const error = await t.throwsAsync(
    federation.remote.train(request('a', 'f'.repeat(64), requestParams(tensors)), new AbortController().signal),
    { instanceOf: NodeFailedError },
  );
  t.like(error, { node: 'a', round: 2 });
  t.regex(
    error!.message,
    /the round's parameters are \d+ bytes, more than this researcher sends or accepts \(4096 bytes\)/,
  );
  t.regex(error!.message, /--max-message-bytes of run and resume/);
});

/** A raw gRPC client of the researcher: what it was sent, in order, and a way to wait for more. */
type RawNode = {
  stream: grpc.ClientDuplexStream<Outgoing<NodeMessage>, ResearcherMessage>;
  messages: ResearcherMessage[];
  /** Resolves with the `count`-th message (1-based) once it has come. */
  nth(count: number): Promise<ResearcherMessage>;
  /** The next TrainRequest and, in revision 2, its parameters gathered from the chunks that follow it. */
  request(): Promise<{ request: TrainRequest; params: Buffer; chunks: number[] }>;
  /** Writes `message`, resolving once gRPC has taken it. */
  send(message: Outgoing<NodeMessage>): Promise<void>;
  closed: Promise<void>;
};

async function rawNode(t: ExecutionContext, address: string, id: string, version: number): Promise<RawNode> {
  const { Client } = federationProtocol();
  // Whole parameters (revision 1) are above gRPC's default 4 MiB.
  const client = new Client(address, grpc.credentials.createInsecure(), messageSizeOptions(DEFAULT_MAX_MESSAGE_BYTES));
  t.teardown(() => client.close());
  const stream = client.Connect();
  const messages: ResearcherMessage[] = [];
  const waiters: (() => void)[] = [];
  stream.on('data', (message: ResearcherMessage) => {
    messages.push(message);
    for (const wake of waiters.splice(0)) wake();
  });
  let failure: Error | null = null;
  let over = false;
  stream.on('error', (error: Error) => (failure = error));
  const closed = new Promise<void>((resolve) =>
    stream.on('close', () => {
      over = true;
      for (const wake of waiters.splice(0)) wake();
      resolve();
    }),
  );

  const nth = async (count: number) => {
    while (messages.length < count) {
      if (over) throw new Error(`the stream closed after ${messages.length} messages (${String(failure)})`);
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
    return messages[count - 1]!;
  };
  let read = 1;
  const raw: RawNode = {
    stream,
    messages,
    nth,
    closed,
    send: (message) => new Promise((resolve) => stream.write(message, () => resolve())),
    async request() {
      let message = await nth(++read);
      if (message.body !== 'train_request') throw new Error(`expected a TrainRequest, got ${message.body}`);
      const request = message.train_request;
      if (request.params_bytes === 0) return { request, params: request.params, chunks: [] };
      const parts: Buffer[] = [];
      const chunks: number[] = [];
      let received = 0;
      while (received < request.params_bytes) {
        message = await nth(++read);
        if (message.body !== 'params_chunk') throw new Error(`expected a ParamsChunk, got ${message.body}`);
        if (message.params_chunk.offset !== received) throw new Error(`chunk at ${message.params_chunk.offset}`);
        parts.push(message.params_chunk.data);
        chunks.push(message.params_chunk.data.length);
        received += message.params_chunk.data.length;
      }
      return { request, params: Buffer.concat(parts), chunks };
    },
  };
  stream.write({
    hello: {
      protocol_version: version,
      node_id: id,
      tags: ['#t'],
      dataset: { rows: 1, columns: 1, sha256: createHash('sha256').update(id).digest('hex'), format: 'numeric-csv' },
    },
  });
  const welcome = await nth(1);
  if (welcome.body !== 'welcome') throw new Error(`not welcomed: ${JSON.stringify(welcome)}`);
  t.is(welcome.welcome.protocol_version, version);
  return raw;
}

/** Every file under `dir` (none when it does not exist). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => statSync(path.join(dir, f)).isFile());
}

/**
 * A `storeReply` into a real file blob store, and a promise resolved once the put has taken its
 * first chunk (its temp file exists then).
 */
async function fileStore(): Promise<{
  blobs: FileBlobStore;
  storeReply: RemoteTrainRequest['storeReply'];
  firstTaken: Promise<void>;
}> {
  const blobs = await openFileBlobStore({ dir: path.join(tempDir(), 'blobs') });
  let taken!: () => void;
  const firstTaken = new Promise<void>((resolve) => (taken = resolve));
  async function* tap(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
    for await (const chunk of chunks) {
      yield chunk;
      taken();
    }
  }
  return {
    blobs,
    firstTaken,
    storeReply: (chunks) => blobs.putStream(tap(chunks), { encoding: SAFETENSORS_ENCODING }),
  };
}

const small: TensorSet = { w: { dtype: 'float32', shape: [3], data: new Float32Array([1, 2, 3]) } };
const replyIds = (r: TrainRequest) => ({ experiment_id: r.experiment_id, round: r.round, attempt: r.attempt });

function trainReply(r: TrainRequest, fields: Partial<TrainReply>): Outgoing<NodeMessage> {
  return {
    train_reply: {
      ...replyIds(r),
      params: Buffer.alloc(0),
      sample_size: 7,
      metrics: { loss: 0.5 },
      timings: null,
      params_bytes: 0,
      params_sha256: '',
      ...fields,
    },
  };
}

/** Sends `bytes` as a reply's chunks (revision 2), then its TrainReply with `fields` over the right ones. */
async function sendChunkedReply(raw: RawNode, r: TrainRequest, bytes: Buffer, fields: Partial<TrainReply> = {}) {
  for (let offset = 0; offset < bytes.length; offset += PARAMS_CHUNK_BYTES) {
    const data = bytes.subarray(offset, offset + PARAMS_CHUNK_BYTES);
    await raw.send({ params_chunk: { ...replyIds(r), offset, data } });
  }
  const params_sha256 = createHash('sha256').update(bytes).digest('hex');
  await raw.send(trainReply(r, { params_bytes: bytes.length, params_sha256, ...fields }));
}

test.serial('a node speaking protocol 1 gets whole parameters and its whole reply is stored', async (t) => {
  const federation = await researcher(t);
  const raw = await rawNode(t, federation.address, 'old', 1);
  const store = await fileStore();
  const tensors = oddTensors();
  const training = federation.remote.train(
    request('old', 'ab'.repeat(32), { params: bytesOf(tensors), storeReply: store.storeReply }),
    new AbortController().signal,
  );
  const { request: r, params, chunks } = await raw.request();
  t.deepEqual(chunks, []);
  t.is(r.params_bytes, 0);
  t.true(params.equals(bytesOf(tensors)));
  const reply = bytesOf(reversed(tensors));
  await raw.send(trainReply(r, { params: reply }));
  const result = await training;
  t.like(result, { sampleSize: 7, metrics: { loss: 0.5 } });
  t.true((await store.blobs.get(result.stored)).equals(reply));
  t.false(raw.messages.some((m) => m.body === 'params_chunk'));
});

test.serial('a node speaking protocol 2 is sent its parameters in order, in chunks, with their hash', async (t) => {
  const federation = await researcher(t);
  const raw = await rawNode(t, federation.address, 'new', 2);
  const store = await fileStore();
  const tensors = oddTensors();
  const sent = bytesOf(tensors);
  const training = federation.remote.train(
    request('new', 'ab'.repeat(32), { params: sent, storeReply: store.storeReply }),
    new AbortController().signal,
  );
  const { request: r, params, chunks } = await raw.request();
  t.is(r.params.length, 0);
  t.is(r.params_bytes, sent.length);
  t.is(r.params_sha256, createHash('sha256').update(sent).digest('hex'));
  t.true(params.equals(sent));
  t.deepEqual(chunks, [...Array(5).fill(PARAMS_CHUNK_BYTES), sent.length - 5 * PARAMS_CHUNK_BYTES]);
  const reply = bytesOf(reversed(tensors));
  await sendChunkedReply(raw, r, reply);
  const result = await training;
  t.true((await store.blobs.get(result.stored)).equals(reply));
  t.deepEqual(result.stored, {
    sha256: createHash('sha256').update(reply).digest('hex'),
    bytes: reply.length,
    encoding: SAFETENSORS_ENCODING,
  });
});

/** Runs one request to raw node `id` whose reply `misbehave` sends wrong; checks the failure and the store. */
async function faultyReply(
  t: ExecutionContext,
  misbehave: (raw: RawNode, r: TrainRequest, reply: Buffer, firstTaken: Promise<void>) => Promise<void>,
): Promise<NodeFailedError> {
  const federation = await researcher(t);
  const raw = await rawNode(t, federation.address, 'faulty', 2);
  const store = await fileStore();
  const training = federation.remote.train(
    request('faulty', 'ab'.repeat(32), { params: bytesOf(small), storeReply: store.storeReply }),
    new AbortController().signal,
  );
  const { request: r } = await raw.request();
  const reply = bytesOf(oddTensors());
  const [error] = await Promise.all([
    t.throwsAsync(training, { instanceOf: NodeFailedError }),
    misbehave(raw, r, reply, store.firstTaken),
  ]);
  t.like(error, { node: 'faulty', round: 2, experiment: 'Experiment_chunks' });
  // The put failed and left nothing: no blob, no temp file.
  t.deepEqual(filesUnder(store.blobs.dir), []);
  return error;
}

test.serial('a reply whose params_sha256 differs fails the request naming the fault; nothing is stored', async (t) => {
  const error = await faultyReply(t, async (raw, r, reply) => {
    await sendChunkedReply(raw, r, reply, { params_sha256: '0'.repeat(64) });
  });
  t.regex(
    error.message,
    new RegExp(`its reply's parameters have sha256 [0-9a-f]{64}, its TrainReply says params_sha256=${'0'.repeat(64)}`),
  );
  t.regex(error.message, /faulty/);
  t.regex(error.message, /round 2/);
});

test.serial('a reply chunk at a wrong offset fails the request naming the fault; nothing is stored', async (t) => {
  const error = await faultyReply(t, async (raw, r, reply, firstTaken) => {
    await raw.send({ params_chunk: { ...replyIds(r), offset: 0, data: reply.subarray(0, PARAMS_CHUNK_BYTES) } });
    await firstTaken;
    const data = reply.subarray(PARAMS_CHUNK_BYTES + 5, 2 * PARAMS_CHUNK_BYTES);
    await raw.send({ params_chunk: { ...replyIds(r), offset: PARAMS_CHUNK_BYTES + 5, data } });
  });
  t.regex(
    error.message,
    new RegExp(`a chunk at offset ${PARAMS_CHUNK_BYTES + 5} where offset ${PARAMS_CHUNK_BYTES} was expected`),
  );
});

test.serial('a node that disconnects mid-chunks fails the request naming it; nothing is stored', async (t) => {
  const error = await faultyReply(t, async (raw, r, reply, firstTaken) => {
    for (const offset of [0, PARAMS_CHUNK_BYTES]) {
      const data = reply.subarray(offset, offset + PARAMS_CHUNK_BYTES);
      await raw.send({ params_chunk: { ...replyIds(r), offset, data } });
    }
    await firstTaken;
    raw.stream.cancel();
  });
  t.regex(error.message, /the node disconnected/);
});

test.serial(
  'a round that stops waiting mid-chunks fails the request; nothing is stored, the rest is a late reply',
  async (t) => {
    const events: string[] = [];
    const federation = await researcher(t, events);
    const raw = await rawNode(t, federation.address, 'slow', 2);
    const store = await fileStore();
    const controller = new AbortController();
    const training = federation.remote.train(
      request('slow', 'ab'.repeat(32), { params: bytesOf(small), storeReply: store.storeReply }),
      controller.signal,
    );
    const { request: r } = await raw.request();
    const reply = bytesOf(oddTensors());
    await raw.send({ params_chunk: { ...replyIds(r), offset: 0, data: reply.subarray(0, PARAMS_CHUNK_BYTES) } });
    await store.firstTaken;
    controller.abort();
    const error = await t.throwsAsync(training, { instanceOf: NodeFailedError });
    t.like(error, { node: 'slow', round: 2 });
    t.regex(error.message, /the round stopped waiting for it/);
    t.deepEqual(filesUnder(store.blobs.dir), []);
    // The rest of the reply, then a request answered after it: every message before was read by then.
    await sendChunkedReply(raw, r, reply);
    const next = federation.remote.train(
      { ...request('slow', 'ab'.repeat(32), requestParams(small)), attempt: 2 },
      new AbortController().signal,
    );
    const { request: r2 } = await raw.request();
    await sendChunkedReply(raw, r2, bytesOf(small));
    await next;
    // Said once (not once per chunk), whether or not attempt 2 was waiting by then.
    const late = events.filter((line) => /ignored a late/.test(line));
    t.is(late.length, 1, late.join('\n'));
    t.regex(
      late[0]!,
      /^ignored a late reply of node "slow": experiment=chunks round=2 attempt=1: no request waits for it/,
    );
  },
);

test.serial('chunks of a reply no request waits for are ignored and logged once', async (t) => {
  const events: string[] = [];
  const federation = await researcher(t, events);
  const raw = await rawNode(t, federation.address, 'chatty', 2);
  const unknown = { experiment_id: 'chunks', round: 9, attempt: 3 };
  const bytes = bytesOf(oddTensors());
  for (let offset = 0; offset < 3 * PARAMS_CHUNK_BYTES; offset += PARAMS_CHUNK_BYTES) {
    await raw.send({ params_chunk: { ...unknown, offset, data: bytes.subarray(offset, offset + PARAMS_CHUNK_BYTES) } });
  }
  await raw.send({
    train_reply: {
      ...unknown,
      params: Buffer.alloc(0),
      sample_size: 1,
      metrics: {},
      timings: null,
      params_bytes: 3 * MiB,
      params_sha256: '',
    },
  });
  // A request answered after them: every message before it was read by then.
  const store = replyStore();
  const training = federation.remote.train(
    request('chatty', 'ab'.repeat(32), requestParams(small, store)),
    new AbortController().signal,
  );
  const { request: r } = await raw.request();
  await sendChunkedReply(raw, r, bytesOf(small));
  await training;
  const late = events.filter((line) => /ignored a late/.test(line));
  t.deepEqual(late, [
    'ignored a late reply of node "chatty": experiment=chunks round=9 attempt=3: no request waits for it',
  ]);
});

test.serial('a node whose researcher speaks protocol 1 only connects again speaking 1 and trains', async (t) => {
  const nodeDir = tempDir();
  const sha256 = await reversingPlan(nodeDir);
  const hellos: number[] = [];
  let replied!: (reply: TrainReply) => void;
  const reply = new Promise<TrainReply>((resolve) => (replied = resolve));
  const sent = bytesOf(small);
  const server = new grpc.Server();
  server.addService(federationProtocol().service, {
    Connect: (call: grpc.ServerDuplexStream<NodeMessage, Outgoing<ResearcherMessage>>) => {
      call.on('error', () => undefined);
      call.on('data', (message: NodeMessage) => {
        if (message.body === 'hello') {
          hellos.push(message.hello.protocol_version);
          if (message.hello.protocol_version !== 1) {
            call.write({
              refusal: {
                code: 'PROTOCOL_VERSION_MISMATCH',
                message: `the node speaks protocol ${message.hello.protocol_version}; this researcher speaks 1`,
                supported_versions: [1],
              },
            });
            return call.end();
          }
          call.write({ welcome: { protocol_version: 1 } });
          call.write({
            train_request: {
              experiment_id: 'chunks',
              experiment: 'Experiment_chunks',
              round: 2,
              attempt: 1,
              params: sent,
              training_args_json: '{}',
              model_args_json: '{}',
              plan_id: 'reverse-plan.ts#reversePlan',
              plan_export: 'reversePlan',
              plan_sha256: sha256,
              rng: { algorithm: 'xoshiro128**', s: [...deriveRng(1, 2, 'a', 'train').state().s] },
              params_bytes: 0,
              params_sha256: '',
            },
          });
        } else if (message.body === 'train_reply') {
          replied(message.train_reply);
        }
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, p) =>
      error === null ? resolve(p) : reject(error),
    ),
  );
  t.teardown(() => server.forceShutdown());
  const address = `127.0.0.1:${port}`;
  const node = startNode(t, 'a', address, nodeDir);
  const fallback = await node.waitFor((l) => /speaks protocol 1 only/.test(l));
  t.is(
    fallback,
    `node a: the researcher at ${address} speaks protocol 1 only (an earlier release): ` +
      'connecting again speaking protocol 1',
  );
  t.regex(await node.waitFor((l) => / connected to /.test(l)), /\(protocol 1\)$/);
  const answer = await reply;
  t.deepEqual(hellos, [2, 1]);
  t.is(answer.sample_size, 40);
  t.is(answer.params_bytes, 0);
  t.true(Buffer.from(answer.params).equals(bytesOf(reversed(small))));
  t.is(answer.metrics.seen, seen(small));
  t.false(
    node.lines.some((l) => /PROTOCOL_VERSION_MISMATCH/.test(l)),
    node.lines.join('\n'),
  );
});

/**
 * A raw researcher speaking revision 2 to one real node process: what the node sent, in order, and
 * the node's stream to write to.
 */
async function rawResearcher(t: ExecutionContext) {
  const messages: NodeMessage[] = [];
  const waiters: (() => void)[] = [];
  let connected!: (call: grpc.ServerDuplexStream<NodeMessage, Outgoing<ResearcherMessage>>) => void;
  const call = new Promise<grpc.ServerDuplexStream<NodeMessage, Outgoing<ResearcherMessage>>>(
    (resolve) => (connected = resolve),
  );
  const server = new grpc.Server();
  server.addService(federationProtocol().service, {
    Connect: (stream: grpc.ServerDuplexStream<NodeMessage, Outgoing<ResearcherMessage>>) => {
      stream.on('error', () => undefined);
      stream.on('data', (message: NodeMessage) => {
        messages.push(message);
        if (message.body === 'hello') {
          stream.write({ welcome: { protocol_version: message.hello.protocol_version } });
          connected(stream);
        }
        for (const wake of waiters.splice(0)) wake();
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, p) =>
      error === null ? resolve(p) : reject(error),
    ),
  );
  t.teardown(() => server.forceShutdown());
  let read = 0;
  return {
    address: `127.0.0.1:${port}`,
    call,
    /** The node's next message after those already read. */
    async next(): Promise<NodeMessage> {
      while (messages.length <= read) await new Promise<void>((resolve) => waiters.push(resolve));
      return messages[read++]!;
    },
  };
}

test.serial('a node refuses parameters too large, out of order, past the end or of another hash', async (t) => {
  const nodeDir = tempDir();
  const sha256 = await reversingPlan(nodeDir);
  const researcher = await rawResearcher(t);
  const node = startNode(t, 'a', researcher.address, nodeDir, ['--max-message-bytes', String(4 * MiB)]);
  const call = await researcher.call;
  const hello = await researcher.next();
  t.is(hello.body === 'hello' && hello.hello.protocol_version, 2);
  const sent = bytesOf(small);
  const digest = createHash('sha256').update(sent).digest('hex');
  const ask = (attempt: number, fields: Partial<TrainRequest> = {}) =>
    call.write({
      train_request: {
        experiment_id: 'chunks',
        experiment: 'Experiment_chunks',
        round: 2,
        attempt,
        params: Buffer.alloc(0),
        training_args_json: '{}',
        model_args_json: '{}',
        plan_id: 'reverse-plan.ts#reversePlan',
        plan_export: 'reversePlan',
        plan_sha256: sha256,
        rng: { algorithm: 'xoshiro128**', s: [...deriveRng(1, 2, 'a', 'train').state().s] },
        params_bytes: sent.length,
        params_sha256: digest,
        ...fields,
      },
    });
  const chunk = (attempt: number, offset: number, data: Buffer) =>
    call.write({ params_chunk: { experiment_id: 'chunks', round: 2, attempt, offset, data } });
  const refusal = async (attempt: number) => {
    const message = await researcher.next();
    if (message.body !== 'train_error') throw new Error(`expected a TrainError, got ${message.body}`);
    t.like(message.train_error, { attempt, code: 'BAD_REQUEST' });
    return message.train_error.message;
  };
  ask(1, { params_bytes: 4 * MiB + 1 });
  t.regex(
    await refusal(1),
    /its parameters are 4194305 bytes \(params_bytes\), more than this node accepts \(4194304 bytes/,
  );
  ask(2);
  chunk(2, 0, sent.subarray(0, 8));
  chunk(2, 9, sent.subarray(9));
  t.regex(await refusal(2), /a parameter chunk came at offset 9 where offset 8 was expected/);
  ask(3);
  chunk(3, 0, Buffer.concat([sent, Buffer.from([0])]));
  t.regex(
    await refusal(3),
    new RegExp(`runs past the end: bytes 0\\.\\.${sent.length + 1} of a file of params_bytes=${sent.length}`),
  );
  ask(4, { params_sha256: 'f'.repeat(64) });
  chunk(4, 0, sent);
  t.regex(await refusal(4), new RegExp(`have sha256 ${digest}, the request says params_sha256=${'f'.repeat(64)}`));
  // Still serving: the same parameters, sent right, are trained on, and the reply comes in chunks.
  ask(5);
  chunk(5, 0, sent.subarray(0, 8));
  chunk(5, 8, sent.subarray(8));
  const parts: Buffer[] = [];
  let message = await researcher.next();
  while (message.body === 'params_chunk') {
    parts.push(message.params_chunk.data);
    message = await researcher.next();
  }
  if (message.body !== 'train_reply') throw new Error(`expected a TrainReply, got ${message.body}`);
  const reply = Buffer.concat(parts);
  t.true(reply.equals(bytesOf(reversed(small))));
  t.like(message.train_reply, {
    attempt: 5,
    sample_size: 40,
    params_bytes: reply.length,
    params_sha256: createHash('sha256').update(reply).digest('hex'),
  });
  t.is(message.train_reply.params.length, 0);
  t.false(
    node.lines.some((l) => /train-request .* attempt=[1-4] /.test(l)),
    node.lines.join('\n'),
  );
});
