/**
 * The researcher's side of nodes as processes: a gRPC server the nodes connect to (outbound from
 * the hospitals), and a `Federation` whose nodes are the ones connected now. `Experiment.create`
 * and `loadBreakpoint` take it as they take in-process nodes; each round selects the connected
 * nodes by their tags, sends each selected node a TrainRequest on its stream, and awaits the reply
 * within the experiment's node timeout.
 *
 * A node that disconnects while a round waits on it fails the round (`NodeFailedError`, naming the
 * node and round: nothing of the round is committed); a node refusing the plan fails it with
 * `NodePlanNotApprovedError`. A node that connects again takes part in the next round.
 *
 * Replies are matched to requests by (experiment, round, attempt) on the node's stream; a reply no
 * request waits for (an attempt the round gave up on) is logged and ignored. Each connected node's
 * dataset fingerprint (its Hello's) is what `remote.dataset` reports; a request names the one the
 * round checked, and a node that connected again with another one since is refused
 * (`NodeDatasetChangedError`).
 *
 * Each connection is spoken to in the protocol revision its Hello named. In revision 2 parameters
 * travel in `PARAMS_CHUNK_BYTES` chunks both ways: a request's are written a chunk at a time, each
 * once the previous one is taken by the transport; a reply's chunks go to the request's
 * `storeReply` as they arrive, the node's stream paused while they wait, and are checked against
 * the TrainReply's size and SHA-256 before the put may end. So what a round holds does not grow
 * with the number of nodes. In revision 1 (a node of an earlier release) they travel whole.
 *
 * By default a round selects among the nodes connected when it starts. With `expected` (node ids),
 * the federation's nodes are those ids whether connected or not, as their last Hello described
 * them: a round that starts while one of them is away fails naming it (`NodeFailedError`), instead
 * of going on without it, so every round trains on the same hospitals and the run's parameters are
 * those of a run that was never interrupted.
 */
import * as grpc from '@grpc/grpc-js';
import net from 'node:net';
import { createHash, type Hash } from 'node:crypto';
import type { PutResult } from '../../blobs/types.ts';
import { NodeFailedError } from '../../model/errors.ts';
import type { RemoteRun } from '../../model/events.ts';
import type { Node, RemoteTrainRequest, RemoteTrainer, StoredTrainResult } from '../training-plan.ts';
import { datasetSummary, sameFingerprint } from '../fingerprints.ts';
import { ChunkQueue, paramsSha256 } from './chunks.ts';
import { NodeDatasetChangedError, NodePlanNotApprovedError, ResearcherListenError } from './errors.ts';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  PARAMS_CHUNK_BYTES,
  SUPPORTED_PROTOCOL_VERSIONS,
  federationProtocol,
  messageSizeOptions,
  type DatasetInfo,
  type Hello,
  type NodeMessage,
  type Outgoing,
  type ParamsChunk,
  type Refusal,
  type ResearcherMessage,
  type TrainError,
  type TrainReply,
  type TrainRequest,
} from './protocol.ts';

export type ListenOptions = {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: a port the system chooses (`federation.port`). */
  port?: number;
  /**
   * Largest message sent or accepted, and largest reply parameter file accepted in chunks, in bytes.
   * Default `DEFAULT_MAX_MESSAGE_BYTES`.
   */
  maxMessageBytes?: number;
  /** One line per event: a node connected, refused, disconnected. */
  onEvent?: (line: string) => void;
  /**
   * The node ids every round needs: they are the federation's nodes, connected or not (once seen),
   * and a round that starts while one is away fails naming it. Absent, the connected nodes.
   */
  expected?: readonly string[];
};

/** A connected node, as its Hello described it. */
export type ConnectedNode = Readonly<{ id: string; tags: readonly string[]; dataset: DatasetInfo; since: Date }>;

type Call = grpc.ServerDuplexStream<NodeMessage, Outgoing<ResearcherMessage>>;

type Pending = {
  request: RemoteTrainRequest;
  resolve: (result: StoredTrainResult) => void;
  reject: (error: Error) => void;
  /** Revision 2: the reply's chunks, from its first on. */
  incoming?: Incoming;
};

/** A reply arriving in chunks (revision 2): they go to the request's `storeReply` through `queue`. */
type Incoming = {
  queue: ChunkQueue;
  put: Promise<PutResult>;
  /** Bytes received so far (the offset the next chunk must start at). */
  received: number;
  /** SHA-256 of the bytes received: checked against the TrainReply's before the put may end. */
  hash: Hash;
};

type Connection = {
  node: ConnectedNode;
  call: Call;
  /** The revision its Hello named: 1, parameters whole in one message; 2, in chunks. */
  version: number;
  pending: Map<string, Pending>;
  /**
   * Keys whose chunks are ignored without a word more: a request that failed or that no request
   * waits for (said once, by `late`). The oldest are forgotten past `IGNORED_KEYS`.
   */
  ignored: Set<string>;
  /** Revision 2: requests wait here for their turn to be written on this stream, one at a time. */
  sending: Promise<void>;
  /** The replies whose queues hold too many chunks: the stream is paused while any does. */
  pausedBy: Set<Incoming>;
};

/** A reply's queue holding more chunks than this pauses its node's stream, until it holds `RESUME_AT` or fewer. */
const PAUSE_AT = 4;
const RESUME_AT = 1;
/** How many ignored keys a connection remembers (each said once). */
const IGNORED_KEYS = 1024;

const key = (experimentId: string, round: number, attempt: number) => `${experimentId}/${round}/${attempt}`;

/**
 * Starts the researcher's server on `host:port`; nodes connect to it. The listening socket is this
 * module's own (each connection is handed to gRPC), so that `close` can destroy every connection:
 * gRPC alone ends them and waits for the node to close its side, which a stopped node never does.
 */
export async function listenForNodes(options: ListenOptions = {}): Promise<RemoteFederation> {
  const host = options.host ?? '127.0.0.1';
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const server = new grpc.Server(messageSizeOptions(maxMessageBytes));
  const federation = new RemoteFederation(
    server,
    options.onEvent ?? (() => undefined),
    options.expected,
    maxMessageBytes,
  );
  server.addService(federationProtocol().service, { Connect: (call: Call) => federation.accept(call) });
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const listener = net.createServer((socket) => federation.connection(socket, injector));
  const port = await new Promise<number>((resolve, reject) => {
    listener.once('error', (error: NodeJS.ErrnoException) => {
      injector.destroy();
      server.forceShutdown();
      const address = `${host.includes(':') ? `[${host}]` : host}:${options.port ?? 0}`;
      reject(new ResearcherListenError(address, error.code ?? error.message, error));
    });
    listener.listen(options.port ?? 0, host, () => resolve((listener.address() as net.AddressInfo).port));
  });
  federation.listening(listener, injector);
  federation.address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  federation.port = port;
  return federation;
}

/** The nodes connected to a researcher's server, as a `Federation`. */
export class RemoteFederation {
  /** `host:port` the server listens on. */
  address = '';
  port = 0;
  private readonly connections = new Map<string, Connection>();
  /** The last Hello of each expected node seen. */
  private readonly seen = new Map<string, ConnectedNode>();
  private readonly watchers = new Set<() => void>();
  private closed = false;
  /** Revision-1 requests wait here for their turn to be written (see `train`). */
  private sending: Promise<void> = Promise.resolve();

  constructor(
    private readonly server: grpc.Server,
    private readonly onEvent: (line: string) => void,
    private readonly expected?: readonly string[],
    /** Largest reply parameter file accepted, in bytes. */
    private readonly maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES,
  ) {}

  /**
   * The connected nodes, each with the one dataset its Hello described (no data: it stays on the
   * node); with `expected`, the expected nodes seen so far, connected or not.
   */
  get nodes(): readonly Node[] {
    const nodes =
      this.expected === undefined
        ? this.connected()
        : this.expected
            .flatMap((id) => this.seen.get(id) ?? [])
            .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return nodes.map((node) => ({
      id: node.id,
      datasets: [{ id: `${node.id}/${node.dataset.sha256.slice(0, 12)}`, tags: [...node.tags], data: null }],
    }));
  }

  /** The connected nodes (in id order) and what their Hello said. */
  connected(): ConnectedNode[] {
    return [...this.connections.values()]
      .map(({ node }) => node)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  readonly remote: RemoteTrainer = {
    train: (request, signal) => this.train(request, signal),
    dataset: (node) => this.connections.get(node)?.node.dataset ?? null,
    describe: () => this.describe(),
    required: () => this.expected ?? null,
  };

  /** The address nodes connect to and the node ids every round needs (the expected ones, else those connected). */
  describe(): RemoteRun {
    return { listen: this.address, nodes: [...(this.expected ?? this.connected().map(({ id }) => id))] };
  }

  /** Resolves once every node of `ids` is connected (or rejects when `signal` aborts). */
  waitForNodes(ids: readonly string[], signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (ids.every((id) => this.connections.has(id))) {
          this.watchers.delete(check);
          resolve();
        } else if (signal?.aborted === true) {
          this.watchers.delete(check);
          reject(signal.reason as Error);
        }
      };
      this.watchers.add(check);
      signal?.addEventListener('abort', check, { once: true });
      check();
    });
  }

  /** The listening socket and what hands its connections to gRPC (`listenForNodes`). */
  private listener: net.Server | null = null;
  private injector: grpc.ConnectionInjector | null = null;
  /** Every connection open now, whatever gRPC makes of it. */
  private readonly sockets = new Set<net.Socket>();

  /** @internal `listenForNodes`: where connections come from. */
  listening(listener: net.Server, injector: grpc.ConnectionInjector): void {
    this.listener = listener;
    this.injector = injector;
  }

  /** @internal A node's connection, handed to gRPC (destroyed at once once closed). */
  connection(socket: net.Socket, injector: grpc.ConnectionInjector): void {
    if (this.closed) return void socket.destroy();
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    injector.injectConnection(socket);
  }

  /**
   * Stops the server: every stream is cancelled, every request still waiting fails, and every
   * connection is destroyed (a node that is stopped or unreachable never closes its side: waiting
   * for it would keep this process alive).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const connection of [...this.connections.values()]) this.drop(connection, 'the researcher closed');
    this.injector?.destroy();
    this.server.forceShutdown();
    this.listener?.close();
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  /** A node's stream: its Hello first, then its replies. */
  accept(call: Call): void {
    let connection: Connection | null = null;
    const end = (why: string) => {
      if (connection !== null && this.connections.get(connection.node.id) === connection) this.drop(connection, why);
      connection = null;
    };
    call.on('data', (message: NodeMessage) => {
      if (connection === null) {
        if (message.body !== 'hello') return this.refuse(call, 'BAD_HELLO', `the first message must be a Hello`);
        connection = this.hello(call, message.hello);
        return;
      }
      if (message.body === 'params_chunk') this.chunk(connection, message.params_chunk);
      else if (message.body === 'train_reply') this.reply(connection, message.train_reply);
      else if (message.body === 'train_error') this.failed(connection, message.train_error);
    });
    call.on('end', () => {
      end('the node closed its stream');
      call.end();
    });
    call.on('cancelled', () => end('the connection was lost'));
    call.on('error', (error: Error) => end(`the stream failed: ${error.message}`));
    call.on('close', () => end('the connection was lost'));
  }

  private hello(call: Call, hello: Hello): Connection | null {
    if (!SUPPORTED_PROTOCOL_VERSIONS.includes(hello.protocol_version)) {
      this.refuse(
        call,
        'PROTOCOL_VERSION_MISMATCH',
        `the node speaks protocol ${hello.protocol_version}; ` +
          `this researcher speaks ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')}`,
      );
      return null;
    }
    const id = hello.node_id;
    if (typeof id !== 'string' || id === '' || hello.dataset === null || hello.tags.length === 0) {
      this.refuse(call, 'BAD_HELLO', 'a Hello needs a node id, tags and its dataset');
      return null;
    }
    if (this.connections.has(id)) {
      const connected = this.connections.get(id)!.node;
      const since = connected.since.toISOString();
      // Other data under the same id is another node (a hospital's file is its own), never to be let in
      // in the other's place without a word.
      const otherData = hello.dataset.sha256 !== connected.dataset.sha256;
      this.refuse(
        call,
        'DUPLICATE_NODE_ID',
        `a node ${JSON.stringify(id)} is already connected (since ${since})` +
          (otherData
            ? ` holding other data (sha256 ${connected.dataset.sha256}; this one's is ${hello.dataset.sha256}): ` +
              'this is most likely another node: start it with its own --id'
            : ': if this is another node, start it with its own --id; if it is the same node started twice, ' +
              'stop one (this one is let in once the other has gone)'),
      );
      return null;
    }
    const node: ConnectedNode = { id, tags: [...hello.tags], dataset: { ...hello.dataset }, since: new Date() };
    const version = hello.protocol_version;
    const connection: Connection = {
      node,
      call,
      version,
      pending: new Map(),
      ignored: new Set(),
      sending: Promise.resolve(),
      pausedBy: new Set(),
    };
    this.connections.set(id, connection);
    if (this.expected?.includes(id) === true) this.seen.set(id, node);
    this.onEvent(
      `node ${JSON.stringify(id)} connected: tags ${node.tags.join(',')}, dataset ${datasetSummary(node.dataset)}`,
    );
    // The same file under two ids is most likely one hospital started twice (its rows would count
    // twice in every average); it may also be meant (a test federation), so it is said, not refused.
    for (const other of this.connections.values()) {
      if (other !== connection && other.node.dataset.sha256 === node.dataset.sha256) {
        this.onEvent(
          `warning: nodes ${JSON.stringify(other.node.id)} and ${JSON.stringify(id)} hold the same data file ` +
            `(sha256 ${node.dataset.sha256}): their rows count twice in every round they both train; ` +
            `stop one of them unless this is meant`,
        );
      }
    }
    // Spoken in the revision the node named: a node of an earlier release still trains.
    call.write({ welcome: { protocol_version: version } });
    for (const watcher of [...this.watchers]) watcher();
    return connection;
  }

  private refuse(call: Call, code: Refusal['code'], message: string): void {
    this.onEvent(`refused a node: ${code}: ${message}`);
    call.write({ refusal: { code, message, supported_versions: [...SUPPORTED_PROTOCOL_VERSIONS] } });
    call.end();
  }

  private drop(connection: Connection, why: string): void {
    this.connections.delete(connection.node.id);
    this.onEvent(`node ${JSON.stringify(connection.node.id)} disconnected: ${why}`);
    for (const [k, pending] of connection.pending) {
      const { experiment, node, round } = pending.request;
      const reason = `the node disconnected (${why})`;
      this.fail(
        connection,
        k,
        pending,
        new NodeFailedError(experiment, node, round, reason, undefined, this.describe()),
      );
    }
    try {
      connection.call.end();
    } catch {
      // Already ended.
    }
  }

  private train(request: RemoteTrainRequest, signal: AbortSignal): Promise<StoredTrainResult> {
    const { experiment, experimentId, node, round, attempt } = request;
    if (request.params.byteLength > this.maxMessageBytes) {
      // Refused before anything is sent: the node's reply, as large, would be refused after training.
      const reason =
        `the round's parameters are ${request.params.byteLength} bytes, more than this researcher sends or ` +
        `accepts (${this.maxMessageBytes} bytes): raise it (--max-message-bytes of run and resume, ` +
        `listenForNodes' maxMessageBytes) and the nodes' (--max-message-bytes of node start)`;
      return Promise.reject(new NodeFailedError(experiment, node, round, reason, undefined, this.describe()));
    }
    const connection = this.connections.get(node);
    if (connection === undefined || this.closed) {
      return Promise.reject(
        new NodeFailedError(experiment, node, round, 'the node is not connected', undefined, this.describe()),
      );
    }
    const now = connection.node.dataset;
    if (request.dataset !== undefined && !sameFingerprint(request.dataset, now)) {
      // It connected again with other data since the round checked it: never trained on.
      return Promise.reject(
        new NodeDatasetChangedError(experiment, node, round, request.dataset, null, now, this.describe()),
      );
    }
    const k = key(experimentId, round, attempt);
    if (connection.pending.has(k)) {
      const reason = `a request for attempt ${attempt} of this round is already waiting on it`;
      return Promise.reject(new NodeFailedError(experiment, node, round, reason, undefined, this.describe()));
    }
    connection.ignored.delete(k);
    // Resolved once the request is answered, fails or is given up: its turn to send then ends.
    let over!: () => void;
    const settled = new Promise<void>((resolve) => (over = resolve));
    const result = new Promise<StoredTrainResult>((resolve, reject) => {
      const onAbort = () => {
        const error = new NodeFailedError(
          experiment,
          node,
          round,
          'the round stopped waiting for it',
          undefined,
          this.describe(),
        );
        const pending = connection.pending.get(k);
        if (pending?.request === request) this.fail(connection, k, pending, error, false);
        else {
          over();
          reject(error);
        }
      };
      connection.pending.set(k, {
        request,
        resolve: (result) => {
          signal.removeEventListener('abort', onAbort);
          over();
          resolve(result);
        },
        reject: (error) => {
          signal.removeEventListener('abort', onAbort);
          over();
          reject(error);
        },
      });
      signal.addEventListener('abort', onAbort, { once: true });
    });
    const message = {
      experiment_id: experimentId,
      experiment,
      round,
      attempt,
      training_args_json: JSON.stringify(request.trainingArgs),
      model_args_json: JSON.stringify(request.modelArgs),
      plan_id: `${request.plan.module}#${request.plan.export}`,
      plan_export: request.plan.export,
      plan_sha256: request.plan.sha256,
      rng: { algorithm: request.rng.algorithm, s: [...request.rng.s] },
    };
    const unsent = (error: unknown) => {
      const pending = connection.pending.get(k);
      if (pending?.request !== request) return;
      const reason = `the request could not be sent: ${(error as Error).message}`;
      this.fail(connection, k, pending, new NodeFailedError(experiment, node, round, reason, error, this.describe()));
    };
    if (connection.version >= 2) {
      // Revision 2: the parameters follow the request in chunks, each written once the previous
      // one is flushed to the node's connection (at most one chunk per node waits in the
      // transport), one request at a time on each stream. Nodes are sent to at once.
      const sendable = () => connection.pending.get(k)?.request === request && !this.closed;
      connection.sending = connection.sending.then(() =>
        this.sendChunked(connection, request, { ...message, params: Buffer.alloc(0) }, sendable, settled).catch(unsent),
      );
      return result;
    }
    // Revision 1: one request's parameters on the wire at a time, across nodes: gRPC serializes
    // and frames each message into buffers of its own (two copies of the parameters each), held
    // until it is flushed. The next request goes once this one is flushed to the node's
    // connection, or is over (answered, failed, given up: a stalled node holds the others back no
    // longer than its own timeout).
    this.sending = this.sending.then(
      () =>
        new Promise<void>((sent) => {
          void settled.then(sent);
          if (connection.pending.get(k)?.request !== request || this.closed) return sent();
          try {
            connection.call.write(
              {
                train_request: {
                  ...message,
                  params: Buffer.from(request.params.buffer, request.params.byteOffset, request.params.byteLength),
                  params_bytes: 0,
                  params_sha256: '',
                },
              },
              () => sent(),
            );
          } catch (error) {
            unsent(error);
            sent();
          }
        }),
    );
    return result;
  }

  /**
   * Writes a revision-2 request: its TrainRequest (with the parameter file's size and SHA-256,
   * hashed once per round: `paramsSha256`), then its parameters in `PARAMS_CHUNK_BYTES` chunks,
   * each written once the previous one's write completed. Stops as soon as the request is over
   * (`sendable` false, `settled` resolved): the node drops a request whose chunks stop when the
   * next request comes.
   */
  private async sendChunked(
    connection: Connection,
    request: RemoteTrainRequest,
    message: Omit<TrainRequest, 'params_bytes' | 'params_sha256'>,
    sendable: () => boolean,
    settled: Promise<void>,
  ): Promise<void> {
    if (!sendable()) return;
    const params = request.params;
    const write = (outgoing: Outgoing<ResearcherMessage>) =>
      Promise.race([
        new Promise<void>((resolve, reject) =>
          connection.call.write(outgoing, (error?: Error | null) => (error == null ? resolve() : reject(error))),
        ),
        settled,
      ]);
    await write({
      train_request: {
        ...message,
        params_bytes: params.byteLength,
        params_sha256: paramsSha256(params),
      },
    });
    const ids = { experiment_id: request.experimentId, round: request.round, attempt: request.attempt };
    for (let offset = 0; offset < params.byteLength; offset += PARAMS_CHUNK_BYTES) {
      if (!sendable()) return;
      const length = Math.min(PARAMS_CHUNK_BYTES, params.byteLength - offset);
      const data = Buffer.from(params.buffer, params.byteOffset + offset, length);
      await write({ params_chunk: { ...ids, offset, data } });
    }
  }

  /**
   * A chunk of a reply (revision 2). The first starts the request's `storeReply`, fed by a queue
   * the next ones are pushed to as they arrive; the node's stream is paused while that queue holds
   * more than `PAUSE_AT` chunks, so a slow store holds back the node (through HTTP/2's flow
   * control), never the researcher's memory. A chunk not at the offset where the previous one
   * ended, or past `maxMessageBytes`, fails the request (its put fails: nothing is stored). A
   * chunk no request waits for is ignored, and said once per key (`late`).
   */
  private chunk(connection: Connection, chunk: ParamsChunk): void {
    const k = key(chunk.experiment_id, chunk.round, chunk.attempt);
    const pending = connection.pending.get(k);
    if (pending === undefined) {
      if (this.ignore(connection, k)) this.late(connection, 'reply', chunk);
      return;
    }
    const { experiment, node, round } = pending.request;
    const failed = (reason: string) =>
      this.fail(
        connection,
        k,
        pending,
        new NodeFailedError(experiment, node, round, reason, undefined, this.describe()),
      );
    const expected = pending.incoming?.received ?? 0;
    if (chunk.offset !== expected) {
      return failed(
        `its reply's parameters came out of order: a chunk at offset ${chunk.offset} where offset ` +
          `${expected} was expected (protocol 2)`,
      );
    }
    if (expected + chunk.data.length > this.maxMessageBytes) {
      return failed(
        `its reply's parameters run past ${this.maxMessageBytes} bytes, the most this researcher accepts ` +
          `(listenForNodes' maxMessageBytes)`,
      );
    }
    const incoming = pending.incoming ?? this.receive(connection, k, pending);
    incoming.received += chunk.data.length;
    incoming.hash.update(chunk.data);
    incoming.queue.push(chunk.data);
    if (incoming.queue.length > PAUSE_AT && !connection.pausedBy.has(incoming)) {
      connection.pausedBy.add(incoming);
      if (connection.pausedBy.size === 1) connection.call.pause();
    }
  }

  /** Starts storing a reply that arrives in chunks: its `storeReply`, fed by a queue. */
  private receive(connection: Connection, k: string, pending: Pending): Incoming {
    const queue: ChunkQueue = new ChunkQueue(() => {
      if (queue.length <= RESUME_AT) this.unpause(connection, incoming);
    });
    // Started once this chunk is queued (a store that throws at once fails the put, as any failure).
    const put = Promise.resolve().then(() => pending.request.storeReply(queue));
    const incoming: Incoming = { queue, put, received: 0, hash: createHash('sha256') };
    pending.incoming = incoming;
    // A put that fails by itself (the store, a round that has failed) fails the request at once.
    incoming.put.catch((error: unknown) => {
      if (incoming.queue.closed || connection.pending.get(k) !== pending) return;
      const { experiment, node, round } = pending.request;
      const reason = `its reply could not be stored: ${(error as Error).message}`;
      this.fail(connection, k, pending, new NodeFailedError(experiment, node, round, reason, error, this.describe()));
    });
    return incoming;
  }

  private unpause(connection: Connection, incoming: Incoming): void {
    if (!connection.pausedBy.delete(incoming)) return;
    if (connection.pausedBy.size === 0) connection.call.resume();
  }

  /**
   * Fails a request waiting on `connection`: it is forgotten, and a reply arriving in chunks has
   * its queue fail, so that its put fails and leaves nothing; the request rejects with `error` once
   * that put is over. The rest of that reply is ignored without a word, unless `quiet` is false
   * (the round stopped waiting: it is then a late reply, said once).
   */
  private fail(connection: Connection, k: string, pending: Pending, error: Error, quiet = true): void {
    if (connection.pending.get(k) === pending) connection.pending.delete(k);
    const incoming = pending.incoming;
    if (incoming === undefined) return pending.reject(error);
    if (quiet) this.ignore(connection, k);
    this.unpause(connection, incoming);
    incoming.queue.fail(error);
    const rejected = () => pending.reject(error);
    incoming.put.then(rejected, rejected);
  }

  /** Remembers `k` as a key whose chunks are ignored; true the first time. */
  private ignore(connection: Connection, k: string): boolean {
    if (connection.ignored.has(k)) return false;
    connection.ignored.add(k);
    if (connection.ignored.size > IGNORED_KEYS) {
      connection.ignored.delete(connection.ignored.values().next().value!);
    }
    return true;
  }

  /**
   * A TrainReply. In revision 2 it ends the reply its chunks carried: the bytes received must be
   * `params_bytes` and hash to `params_sha256` (checked before the put may end: a reply that
   * differs leaves nothing stored), and the stored blob must say the same. In revision 1 (no
   * chunk came, `params_bytes` 0) its `params` are the reply, stored as they are.
   */
  private reply(connection: Connection, reply: TrainReply): void {
    const k = key(reply.experiment_id, reply.round, reply.attempt);
    const pending = connection.pending.get(k);
    if (pending === undefined) {
      // Said already when its chunks came (or its request failed): said once per key.
      if (this.ignore(connection, k)) this.late(connection, 'reply', reply);
      return;
    }
    const { experiment, node, round } = pending.request;
    const failure = (reason: string, cause?: unknown) =>
      new NodeFailedError(experiment, node, round, reason, cause, this.describe());
    const metrics = { ...reply.metrics };
    const incoming = pending.incoming;
    if (incoming === undefined) {
      connection.pending.delete(k);
      if (reply.params_bytes > 0) {
        const reason =
          `its reply announced ${reply.params_bytes} bytes of parameters (params_bytes) ` + 'but no chunk of them came';
        return pending.reject(failure(reason));
      }
      // Stored as it is (the round reads the file's header back and fails the round if it is not
      // safetensors); the message goes once it is written.
      pending.request.storeReply([reply.params]).then(
        ({ ref }) => pending.resolve({ stored: ref, sampleSize: reply.sample_size, metrics }),
        (error: unknown) =>
          pending.reject(failure(`its reply could not be stored: ${(error as Error).message}`, error)),
      );
      return;
    }
    const sha256 = incoming.hash.digest('hex');
    if (incoming.received !== reply.params_bytes) {
      const reason =
        `its reply's chunks hold ${incoming.received} bytes of parameters, its TrainReply says ` +
        `params_bytes=${reply.params_bytes}`;
      return this.fail(connection, k, pending, failure(reason));
    }
    if (sha256 !== reply.params_sha256) {
      const reason =
        `its reply's parameters have sha256 ${sha256}, its TrainReply says params_sha256=` +
        `${reply.params_sha256 === '' ? '(none)' : reply.params_sha256}`;
      return this.fail(connection, k, pending, failure(reason));
    }
    connection.pending.delete(k);
    this.ignore(connection, k);
    incoming.queue.end();
    incoming.put.then(
      ({ ref }) => {
        if (ref.bytes !== reply.params_bytes || ref.sha256 !== reply.params_sha256) {
          const reason =
            `its reply was stored as ${ref.bytes} bytes with sha256 ${ref.sha256}, its TrainReply says ` +
            `params_bytes=${reply.params_bytes} params_sha256=${reply.params_sha256}`;
          return pending.reject(failure(reason));
        }
        pending.resolve({ stored: ref, sampleSize: reply.sample_size, metrics });
      },
      (error: unknown) => pending.reject(failure(`its reply could not be stored: ${(error as Error).message}`, error)),
    );
  }

  /**
   * A reply or error no request waits for: an attempt the round stopped waiting for (its node timed
   * out, another node failed), or one this researcher never sent. Recognised by (experiment, round,
   * attempt), logged, and ignored: it never reaches a round.
   */
  private late(
    connection: Connection,
    what: string,
    ids: Pick<TrainReply, 'experiment_id' | 'round' | 'attempt'>,
  ): void {
    const waiting = [...connection.pending.values()]
      .map(({ request }) => request)
      .filter((r) => r.experimentId === ids.experiment_id && r.round === ids.round)
      .map((r) => r.attempt);
    this.onEvent(
      `ignored a late ${what} of node ${JSON.stringify(connection.node.id)}: experiment=${ids.experiment_id} ` +
        `round=${ids.round} attempt=${ids.attempt}: no request waits for it` +
        (waiting.length === 0 ? '' : ` (the round waits for attempt ${waiting.join(', ')})`),
    );
  }

  private failed(connection: Connection, failure: TrainError): void {
    const k = key(failure.experiment_id, failure.round, failure.attempt);
    const pending = connection.pending.get(k);
    if (pending === undefined) return this.late(connection, `error (${failure.code})`, failure);
    const { experiment, node, round, plan } = pending.request;
    const planId = `${plan.module}#${plan.export}`;
    const error =
      failure.code === 'PLAN_NOT_APPROVED'
        ? new NodePlanNotApprovedError(experiment, node, round, planId, plan.sha256, failure.message, this.describe())
        : new NodeFailedError(
            experiment,
            node,
            round,
            `${failure.code}: ${failure.message}`,
            undefined,
            this.describe(),
          );
    // A reply being received in chunks is abandoned: its put fails, nothing is stored.
    this.fail(connection, k, pending, error);
  }
}
