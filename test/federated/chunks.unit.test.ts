/**
 * `ChunkQueue` (`src/federated/remote/chunks.ts`), through which a reply's chunks reach its put:
 * read in order, ended, failed (the reader's next read throws, what was queued is dropped, even
 * after `end`), each read reported; and `paramsSha256`, computed once per byte array.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { ChunkQueue, paramsSha256 } from '../../src/federated/remote/chunks.ts';

const bytes = (...values: number[]) => new Uint8Array(values);

async function readAll(queue: ChunkQueue): Promise<number[]> {
  const out: number[] = [];
  for await (const chunk of queue) out.push(...chunk);
  return out;
}

test('chunks pushed before and while reading come out in order, then the end', async (t) => {
  let taken = 0;
  const queue = new ChunkQueue(() => taken++);
  queue.push(bytes(1, 2));
  queue.push(bytes(3));
  t.is(queue.length, 2);
  const reading = readAll(queue);
  await Promise.resolve();
  queue.push(bytes(4));
  queue.end();
  queue.push(bytes(5));
  t.deepEqual(await reading, [1, 2, 3, 4]);
  t.is(taken, 3);
  t.true(queue.closed);
});

test('a failure reaches a waiting reader, and one that has not read what was queued', async (t) => {
  const waiting = new ChunkQueue();
  const reading = readAll(waiting);
  await Promise.resolve();
  waiting.fail(new Error('the node disconnected'));
  await t.throwsAsync(reading, { message: 'the node disconnected' });

  const ended = new ChunkQueue();
  ended.push(bytes(1));
  ended.end();
  ended.fail(new Error('the round stopped waiting'));
  t.is(ended.length, 0);
  await t.throwsAsync(readAll(ended), { message: 'the round stopped waiting' });
});

test('a queue is read once', (t) => {
  const queue = new ChunkQueue();
  queue[Symbol.asyncIterator]();
  t.throws(() => queue[Symbol.asyncIterator](), { message: /read once/ });
});

test('paramsSha256 is the SHA-256 of the bytes, kept per array', (t) => {
  const params = bytes(1, 2, 3);
  const expected = createHash('sha256').update(params).digest('hex');
  t.is(paramsSha256(params), expected);
  // Read only by contract: a second call gives what the first computed, without hashing again.
  params[0] = 9;
  t.is(paramsSha256(params), expected);
  t.not(paramsSha256(bytes(9, 2, 3)), expected);
});
