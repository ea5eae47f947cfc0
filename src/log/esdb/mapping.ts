/**
 * How roundlog's streams, positions and event data map onto the server's: the namespace
 * prefix and what it hides, `(commit, prepare)` packed into one bigint, and binary event
 * data of one encoding byte then the encoded value.
 */
import type { Position, ResolvedEvent } from '@eventstore/db-client';
import { decodeValue, encodeValue } from '../../codec/values.ts';
import { InvalidArgumentError } from '../../errors.ts';
import { StoreRequestFailedError } from '../errors.ts';
import type { RecordedEvent } from '../types.ts';
import type { EsdbState } from './state.ts';

export type ServerEvent = NonNullable<ResolvedEvent['event']>;

const POSITION_SHIFT = 64n;
const PREPARE_MASK = (1n << POSITION_SHIFT) - 1n;

export function packPosition(position: Position): bigint {
  return (position.commit << POSITION_SHIFT) | position.prepare;
}

export function unpackPosition(position: bigint): Position {
  return { commit: position >> POSITION_SHIFT, prepare: position & PREPARE_MASK };
}

export function serverStream(log: EsdbState, stream: string): string {
  return log.namespace + stream;
}

/** The roundlog stream of a server stream, or null when it is not one of this log's. */
export function visibleStream(log: EsdbState, serverStream: string, type: string): string | null {
  if (serverStream.startsWith('$') || type.startsWith('$') || !serverStream.startsWith(log.namespace)) return null;
  const stream = serverStream.slice(log.namespace.length);
  const hidden = stream.length === 0 || stream.startsWith('$') || log.hide.some((prefix) => stream.startsWith(prefix));
  return hidden ? null : stream;
}

export function toRecorded(log: EsdbState, event: ServerEvent): RecordedEvent | null {
  const stream = visibleStream(log, event.streamId, event.type);
  if (stream === null) return null;
  if (event.position === undefined) {
    const reason = `the server sent event ${event.id} of ${event.streamId} without its position`;
    throw new StoreRequestFailedError(log.store, 'read', reason, null);
  }
  return {
    type: event.type,
    data: decode(log, event),
    stream,
    revision: event.revision,
    position: packPosition(event.position),
    id: event.id,
    timestamp: event.created,
  };
}

/** One byte of value encoding, then the encoded bytes. */
export function encode(data: unknown, index: number): Buffer {
  let encoded: ReturnType<typeof encodeValue>;
  try {
    encoded = encodeValue(data);
  } catch (error) {
    throw new InvalidArgumentError(`events[${index}].data`, `must be serializable (${(error as Error).message})`, data);
  }
  const bytes = Buffer.allocUnsafe(1 + encoded.bytes.length);
  bytes[0] = encoded.encoding;
  encoded.bytes.copy(bytes, 1);
  return bytes;
}

export function decode(log: EsdbState, event: ServerEvent): unknown {
  const bytes = event.data as Uint8Array;
  const what =
    `event ${event.id} (${event.type}) at revision ${event.revision} ` + `of stream ${JSON.stringify(event.streamId)}`;
  if (event.isJson || !(bytes instanceof Uint8Array) || bytes.length === 0) {
    throw new StoreRequestFailedError(
      log.store,
      'read',
      `${what} was not written by roundlog (roundlog writes binary events: one encoding byte, then msgpack); ` +
        `remove it or keep other writers out of this namespace`,
      null,
    );
  }
  try {
    return decodeValue(bytes[0]!, bytes.subarray(1));
  } catch (error) {
    const reason = `${what} cannot be decoded: ${(error as Error).message}`;
    throw new StoreRequestFailedError(log.store, 'read', reason, error);
  }
}
