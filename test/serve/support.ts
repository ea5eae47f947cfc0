/** Helpers of the `roundlog serve` tests: a server on a temporary root, safetensors bodies, JSON replies. */
import type { FastifyInstance } from 'fastify';
import { encodeSafetensors } from '../../src/codec/safetensors.ts';
import { createServer, type ServeOptions } from '../../src/serve/server.ts';
import { tempDir } from '../support/tmp.ts';

export type Served = { app: FastifyInstance; root: string };

/** A server (not listening: requests go through `inject`) on a new root. */
export async function servedRoot(options: ServeOptions = {}): Promise<Served> {
  const root = options.root ?? tempDir('roundlog-serve-');
  const app = await createServer({ createRoot: true, ...options, root });
  return { app, root };
}

/** A safetensors file of one float32 tensor `w` holding `values`. */
export function weights(values: readonly number[]): Buffer {
  return encodeSafetensors({ w: { dtype: 'float32', shape: [values.length], data: Float32Array.from(values) } });
}

/** A safetensors file written by hand (for bodies roundlog would never write). */
export function rawSafetensors(header: unknown, data: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, data]);
}

type Reply = { statusCode: number; body: string; headers: Record<string, unknown>; rawPayload: Buffer };

export function json<T = Record<string, unknown>>(reply: Reply): T {
  return JSON.parse(reply.body) as T;
}

/** POSTs JSON through `inject`. */
export function post(app: FastifyInstance, url: string, body: unknown, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url,
    payload: JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...headers },
  });
}

/** Uploads parameters through `inject`. */
export function upload(app: FastifyInstance, bytes: Buffer, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url: '/v1/params',
    payload: bytes,
    headers: { 'content-type': 'application/octet-stream', ...headers },
  });
}

/** Creates an experiment named `folder` and returns its id. */
export async function createExperiment(app: FastifyInstance, folder: string, extra: object = {}): Promise<string> {
  const reply = await post(app, '/v1/experiments', { folder, ...extra });
  if (reply.statusCode !== 201) throw new Error(`create ${folder}: ${reply.statusCode} ${reply.body}`);
  return json<{ experiment: { experimentId: string } }>(reply).experiment.experimentId;
}

/** Uploads `values` as parameters and records them as round `round` of `folder`; returns the reply body. */
export async function recordRound(
  app: FastifyInstance,
  folder: string,
  round: number,
  values: readonly number[],
  extra: object = {},
): Promise<Record<string, unknown>> {
  const stored = await upload(app, weights(values));
  if (stored.statusCode !== 201) throw new Error(`upload: ${stored.statusCode} ${stored.body}`);
  const { sha256 } = json<{ sha256: string }>(stored);
  const reply = await post(app, `/v1/experiments/${folder}/rounds`, {
    round,
    params: { sha256 },
    metrics: { loss: 1 / (round + 1) },
    state: { step: round },
    ...extra,
  });
  if (reply.statusCode !== 201) throw new Error(`round ${round}: ${reply.statusCode} ${reply.body}`);
  return json(reply);
}
