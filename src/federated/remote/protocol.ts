/**
 * The researcher-node protocol (`protocol.proto`, package `roundlog.federation.v1`) as grpc-js
 * loads it, with the TypeScript shapes of its messages as @grpc/proto-loader gives them (field
 * names as in the .proto, 64-bit integers as numbers, enums as their names, bytes as Buffers, the
 * `oneof` as `body` naming the field that is set).
 *
 * Message sizes: gRPC refuses messages over 4 MiB by default. In revision 2 parameters travel in
 * `ParamsChunk`s of `PARAMS_CHUNK_BYTES` (1 MiB) each, so no message comes near that limit; in
 * revision 1 (still spoken with a node or researcher of an earlier release) they travel whole in
 * one message. Both sides set their send and receive limits to `maxMessageBytes` (default
 * `DEFAULT_MAX_MESSAGE_BYTES`, 512 MiB), on the server and on the node's channel, and refuse a
 * parameter file larger than that in either revision.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../version.ts';

/**
 * The protocol revision this release speaks first (`Hello.protocol_version`): 2, parameters in
 * chunks. A node refused by a researcher that speaks 1 only connects again speaking 1.
 */
export const PROTOCOL_VERSION = 2;
/** The revisions this release speaks: a researcher answers each node in the one its Hello named. */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = [1, 2];

/**
 * Largest message either side sends or accepts, in bytes, and largest parameter file (safetensors)
 * either side sends or accepts whole (revision 1) or in chunks (revision 2).
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024 * 1024;

/** Bytes of parameters per `ParamsChunk` (revision 2): every chunk of a file but its last holds this many. */
export const PARAMS_CHUNK_BYTES = 1024 * 1024;

/** The .proto, shipped with the package. */
export const PROTO_FILE = path.join(PACKAGE_ROOT, 'src', 'federated', 'remote', 'protocol.proto');

export type DatasetInfo = {
  rows: number;
  columns: number;
  sha256: string;
  format: string;
  /** The loader's options (`DatasetFingerprint.options`); `{}` when none, and from a node of an earlier build. */
  options?: Record<string, string>;
};
export type Hello = { protocol_version: number; node_id: string; tags: string[]; dataset: DatasetInfo | null };
export type Welcome = { protocol_version: number };
export type RefusalCode = 'REFUSAL_UNSPECIFIED' | 'PROTOCOL_VERSION_MISMATCH' | 'DUPLICATE_NODE_ID' | 'BAD_HELLO';
export type Refusal = { code: RefusalCode; message: string; supported_versions: number[] };
export type RngStateMessage = { algorithm: string; s: number[] };
export type TrainRequest = {
  experiment_id: string;
  round: number;
  attempt: number;
  params: Buffer;
  training_args_json: string;
  model_args_json: string;
  plan_id: string;
  plan_export: string;
  plan_sha256: string;
  rng: RngStateMessage | null;
  experiment: string;
  /** Revision 2: the size in bytes of the parameter file whose chunks follow (0 in revision 1). */
  params_bytes: number;
  /** Revision 2: its hex SHA-256 ('' in revision 1). */
  params_sha256: string;
};
/**
 * Revision 2: `data` is the parameter file's bytes from `offset` on, of the request (experiment_id,
 * round, attempt).
 */
export type ParamsChunk = { experiment_id: string; round: number; attempt: number; offset: number; data: Buffer };
export type Timings = { decode_ms: number; train_ms: number; encode_ms: number };
export type TrainReply = {
  experiment_id: string;
  round: number;
  attempt: number;
  params: Buffer;
  sample_size: number;
  metrics: Record<string, number>;
  timings: Timings | null;
  /** Revision 2: the size in bytes of the parameter file the chunks before it carried (0 in revision 1). */
  params_bytes: number;
  /** Revision 2: its hex SHA-256 ('' in revision 1). */
  params_sha256: string;
};
export type TrainErrorCode =
  'TRAIN_ERROR_UNSPECIFIED' | 'PLAN_NOT_APPROVED' | 'PLAN_LOAD_FAILED' | 'BAD_REQUEST' | 'TRAINING_FAILED' | 'BUSY';
export type TrainError = {
  experiment_id: string;
  round: number;
  attempt: number;
  code: TrainErrorCode;
  message: string;
  plan_id: string;
  plan_sha256: string;
};

export type NodeMessage =
  | { body: 'hello'; hello: Hello }
  | { body: 'train_reply'; train_reply: TrainReply }
  | { body: 'train_error'; train_error: TrainError }
  | { body: 'params_chunk'; params_chunk: ParamsChunk };

export type ResearcherMessage =
  | { body: 'welcome'; welcome: Welcome }
  | { body: 'refusal'; refusal: Refusal }
  | { body: 'train_request'; train_request: TrainRequest }
  | { body: 'params_chunk'; params_chunk: ParamsChunk };

/** A message to write: the `oneof` field alone (proto-loader sets `body` from it). */
export type Outgoing<M> = M extends { body: infer K extends string } ? Omit<M, 'body'> & { body?: K } : never;

export type FederationService = grpc.ServiceDefinition;

type FederationClientConstructor = new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => grpc.Client & {
  Connect(options?: grpc.CallOptions): grpc.ClientDuplexStream<Outgoing<NodeMessage>, ResearcherMessage>;
};

let loaded: { service: FederationService; Client: FederationClientConstructor } | null = null;

/** The service definition and client class of `roundlog.federation.v1.Federation`. */
export function federationProtocol(): { service: FederationService; Client: FederationClientConstructor } {
  if (loaded !== null) return loaded;
  const definition = protoLoader.loadSync(PROTO_FILE, {
    keepCase: true,
    longs: Number,
    enums: String,
    bytes: Buffer,
    defaults: true,
    arrays: true,
    objects: false,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    roundlog: { federation: { v1: { Federation: FederationClientConstructor & { service: FederationService } } } };
  };
  const Client = pkg.roundlog.federation.v1.Federation;
  loaded = { service: Client.service, Client };
  return loaded;
}

/** The channel or server options that lift gRPC's 4 MiB limit to `maxMessageBytes` both ways. */
export function messageSizeOptions(maxMessageBytes: number): grpc.ChannelOptions {
  return {
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
  };
}
