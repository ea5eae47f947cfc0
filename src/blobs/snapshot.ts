/**
 * The caller's bytes, taken when a put is called. A put awaits (hashing, writing, fsyncing) while
 * the caller goes on: a training loop that refills its buffers for the next round, or a stream
 * reader that reuses its buffer after yielding it, must not change what is stored. So every
 * adapter copies the bytes before its first await (`ownBytes`), takes every chunk of an iterable
 * (an array of buffers, say) at once, and copies each chunk of an async iterable as it arrives
 * (`ownSource`). The cost is one memory copy of the bytes, small beside writing them durably.
 */
import { InvalidArgumentError } from '../errors.ts';
import type { BlobSource } from './types.ts';

/** A copy of `bytes` the caller cannot change. Throws `InvalidArgumentError` for anything but bytes. */
export function ownBytes(bytes: Uint8Array): Buffer {
  if (!(bytes instanceof Uint8Array)) {
    throw new InvalidArgumentError('bytes', 'must be a Uint8Array or Buffer', bytes === null ? null : typeof bytes);
  }
  return Buffer.from(bytes);
}

/**
 * The chunks of `source`, each copied: those of a (synchronous) iterable now, those of an async
 * iterable as each arrives. Throws `InvalidArgumentError` for a source that is neither, or a chunk
 * that is not bytes (an async iterable's bad chunk rejects the put).
 */
export function ownSource(source: BlobSource): BlobSource {
  if (source === null || typeof source !== 'object') {
    throw new InvalidArgumentError('source', 'must be an iterable or async iterable of Uint8Array chunks', source);
  }
  if (Symbol.asyncIterator in source) return copiedAsync(source);
  if (!(Symbol.iterator in source)) {
    throw new InvalidArgumentError('source', 'must be an iterable or async iterable of Uint8Array chunks', source);
  }
  return Array.from(source, ownChunk);
}

async function* copiedAsync(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) yield ownChunk(chunk);
}

function ownChunk(chunk: Uint8Array): Buffer {
  if (!(chunk instanceof Uint8Array)) {
    throw new InvalidArgumentError('source', 'must yield Uint8Array chunks', chunk === null ? null : typeof chunk);
  }
  return Buffer.from(chunk);
}
