/**
 * Parameters in chunks (protocol revision 2): the hash of a request's parameter file, computed once
 * per file whatever the number of nodes it goes to, and the queue through which a reply's chunks
 * reach its `storeReply` as they arrive.
 */
import { createHash } from 'node:crypto';

const hashes = new WeakMap<Uint8Array, string>();

/**
 * The hex SHA-256 of `bytes`, computed once per object: a round passes the same `Uint8Array` (read
 * only) to every node it selects, so its parameters are hashed once per round, not once per node.
 */
export function paramsSha256(bytes: Uint8Array): string {
  let sha256 = hashes.get(bytes);
  if (sha256 === undefined) {
    sha256 = createHash('sha256').update(bytes).digest('hex');
    hashes.set(bytes, sha256);
  }
  return sha256;
}

/**
 * An async iterable of byte chunks that a producer pushes to and one consumer (a blob put) reads.
 * `end()` ends it once the chunks pushed are read; `fail(error)` makes the consumer's next read
 * throw `error` at once (the chunks still queued are dropped), so a put fed by it fails and leaves
 * nothing. `length` is how many chunks wait to be read; `onTaken` is called each time one is read
 * (the producer resumes its source when few are left).
 */
export class ChunkQueue implements AsyncIterable<Uint8Array> {
  private readonly chunks: Uint8Array[] = [];
  private waiting: { resolve: (result: IteratorResult<Uint8Array>) => void; reject: (error: Error) => void } | null =
    null;
  private ended = false;
  private error: Error | null = null;
  private iterated = false;

  constructor(private readonly onTaken: () => void = () => undefined) {}

  /** Chunks pushed and not read yet. */
  get length(): number {
    return this.chunks.length;
  }

  /** Whether `end` or `fail` was called. */
  get closed(): boolean {
    return this.ended || this.error !== null;
  }

  push(chunk: Uint8Array): void {
    if (this.closed) return;
    if (this.waiting !== null) {
      const { resolve } = this.waiting;
      this.waiting = null;
      resolve({ value: chunk, done: false });
      this.onTaken();
    } else {
      this.chunks.push(chunk);
    }
  }

  end(): void {
    if (this.closed) return;
    this.ended = true;
    if (this.waiting !== null && this.chunks.length === 0) {
      const { resolve } = this.waiting;
      this.waiting = null;
      resolve({ value: undefined, done: true });
    }
  }

  fail(error: Error): void {
    // Also after `end()`: a consumer still reading what was pushed then fails.
    if (this.error !== null) return;
    this.error = error;
    this.chunks.length = 0;
    if (this.waiting !== null) {
      const { reject } = this.waiting;
      this.waiting = null;
      reject(error);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.iterated) throw new Error('a ChunkQueue is read once');
    this.iterated = true;
    return {
      next: () => {
        if (this.error !== null) return Promise.reject(this.error);
        const chunk = this.chunks.shift();
        if (chunk !== undefined) {
          this.onTaken();
          return Promise.resolve({ value: chunk, done: false });
        }
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
      },
      return: () => {
        // The consumer stopped early (its put failed): nothing more is kept.
        this.chunks.length = 0;
        this.ended = true;
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
