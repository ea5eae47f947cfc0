/**
 * The researcher-node protocol (`protocol.proto`, package `roundlog.federation.v1`) as grpc-js
 * loads it, with the TypeScript shapes of its messages as @grpc/proto-loader gives them (field
 * names as in the .proto, 64-bit integers as numbers, enums as their names, bytes as Buffers, the
 * `oneof` as `body` naming the field that is set).
 *
 * Message sizes: gRPC refuses messages over 4 MiB by default; parameters travel whole in one
 * message, so both sides set their send and receive limits to `maxMessageBytes` (default
 * `DEFAULT_MAX_MESSAGE_BYTES`, 512 MiB), on the server and on the node's channel.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../version.ts';

/** The protocol revision this release speaks (`Hello.protocol_version`, `Welcome.protocol_version`). */
export const PROTOCOL_VERSION = 1;
/** The revisions a researcher of this release accepts. */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = [1];

/** Largest message either side sends or accepts, in bytes: parameters travel in one message. */
export const DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024 * 1024;

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
};
export type Timings = { decode_ms: number; train_ms: number; encode_ms: number };
export type TrainReply = {
  experiment_id: string;
  round: number;
  attempt: number;
  params: Buffer;
  sample_size: number;
  metrics: Record<string, number>;
  timings: Timings | null;
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
  | { body: 'train_error'; train_error: TrainError };

export type ResearcherMessage =
  | { body: 'welcome'; welcome: Welcome }
  | { body: 'refusal'; refusal: Refusal }
  | { body: 'train_request'; train_request: TrainRequest };

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
