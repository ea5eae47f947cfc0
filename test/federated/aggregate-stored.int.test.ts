/**
 * FedAvg from stored replies (`aggregateStored`, read a slice of `STORED_SLICE` elements at a time
 * through `openStoredTensors`) against `aggregate` on the same replies in memory: the same bits, for
 * tensors that span several slices (float64, float32, float16, bfloat16, int64, int32), values
 * spread over many magnitudes (so that another order of summation gives other bits), zero sample
 * sizes, replies given in shuffled orders, on a file blob store (read in place) and an in-memory one
 * (decoded whole); and the same errors as `aggregate`.
 */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { openFileBlobStore } from '../../src/blobs/file.ts';
import { getInMemoryBlobStore } from '../../src/blobs/memory.ts';
import type { BlobStore } from '../../src/blobs/types.ts';
import { CorruptPayloadError } from '../../src/codec/errors.ts';
import { numbersToHalfBits } from '../../src/codec/float16.ts';
import { SAFETENSORS_ENCODING, encodeSafetensors } from '../../src/codec/safetensors.ts';
import type { TensorSet } from '../../src/codec/tensors.ts';
import { InvalidArgumentError } from '../../src/errors.ts';
import { STORED_SLICE, fedAvg, type NodeReply, type StoredNodeReply } from '../../src/federated/aggregators.ts';
import {
  MismatchedTensorsError,
  NoRepliesError,
  NotAverageableError,
  ZeroSampleSizeError,
} from '../../src/federated/errors.ts';
import { Rng } from '../../src/federated/rng.ts';
import { openStoredTensors } from '../../src/federated/stored-tensors.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const LONG = 2 * STORED_SLICE + 5;

function spread(rng: Rng, length: number): Float64Array {
  const out = new Float64Array(length);
  for (let i = 0; i < length; i++) {
    out[i] = (rng.nextFloat() < 0.5 ? -1 : 1) * (1 + rng.nextFloat()) * 2 ** Math.floor(rng.nextFloat() * 61 - 30);
  }
  return out;
}

function params(rng: Rng): TensorSet {
  const values = spread(rng, LONG);
  return {
    w32: { dtype: 'float32', shape: [LONG], data: Float32Array.from(values) },
    w64: { dtype: 'float64', shape: [STORED_SLICE + 3], data: values.slice(0, STORED_SLICE + 3) },
    h16: {
      dtype: 'float16',
      shape: [STORED_SLICE + 7],
      data: numbersToHalfBits(
        values.subarray(0, STORED_SLICE + 7).map((v) => v / 2 ** 20),
        'float16',
      ),
    },
    b16: { dtype: 'bfloat16', shape: [1000], data: numbersToHalfBits(values.subarray(0, 1000), 'bfloat16') },
    i64: {
      dtype: 'int64',
      shape: [STORED_SLICE + 1],
      data: BigInt64Array.from({ length: STORED_SLICE + 1 }, () => BigInt(rng.nextInt(2 ** 30)) - 2n ** 29n),
    },
    n: { dtype: 'int32', shape: [3], data: Int32Array.from([rng.nextInt(1000), -rng.nextInt(1000), 7]) },
  };
}

function replies(seed: number): NodeReply[] {
  const rng = Rng.fromSeed(seed);
  return ['b', 'A', 'node-10', 'node-2', 'é'].map((node, i) => ({
    node,
    sampleSize: i === 2 ? 0 : 1 + rng.nextInt(2 ** 27),
    params: params(rng),
    metrics: {},
  }));
}

async function stored(blobs: BlobStore, list: readonly NodeReply[]): Promise<StoredNodeReply[]> {
  return Promise.all(
    list.map(async ({ node, sampleSize, metrics, params: tensors }) => {
      const { ref } = await blobs.putStream([encodeSafetensors(tensors)], { encoding: SAFETENSORS_ENCODING });
      return { node, sampleSize, metrics, params: await openStoredTensors(blobs, ref, `the reply of ${node}`) };
    }),
  );
}

const context = { round: 0, params: {} };

for (const kind of ['file', 'memory'] as const) {
  test(`from stored replies (${kind} store), FedAvg gives aggregate's bits, in any order`, async (t) => {
    const blobs = kind === 'file' ? await openFileBlobStore({ dir: tempDir() }) : getInMemoryBlobStore();
    try {
      const list = replies(kind === 'file' ? 1 : 2);
      const expected = encodeSafetensors(fedAvg().aggregate(list, {}, context).params);
      const rng = Rng.fromSeed(9);
      const order = [...list];
      for (let i = order.length - 1; i > 0; i--) {
        const j = rng.nextInt(i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      const result = await fedAvg().aggregateStored!(await stored(blobs, order), { kept: 1 }, context);
      t.deepEqual(result.state, { kept: 1 });
      t.true(encodeSafetensors(result.params).equals(expected), `replies in the order ${order.map((r) => r.node)}`);
      // Another order of summation gives other bits here, so the test sees the order.
      const total = list.reduce((sum, r) => sum + r.sampleSize, 0);
      const reversed = [...list].sort((a, b) => (a.node < b.node ? 1 : -1));
      const other = new Float64Array(STORED_SLICE + 3);
      for (const r of reversed) {
        const data = r.params.w64!.data as Float64Array;
        for (let i = 0; i < other.length; i++) other[i]! += r.sampleSize * data[i]!;
      }
      const w64 = result.params.w64!.data as Float64Array;
      t.true(
        w64.some((v, i) => v !== other[i]! / total),
        'summing in reverse node-id order changes some element',
      );
    } finally {
      await blobs.close();
    }
  });
}

test('from a file store, replies are read a slice at a time, never whole', async (t) => {
  const files = await openFileBlobStore({ dir: tempDir() });
  let gets = 0;
  const blobs: BlobStore = { ...files, get: (blob) => (gets++, files.get(blob)) };
  try {
    const list = replies(3);
    const opened = await stored(blobs, list);
    let largest = 0;
    let reads = 0;
    const watched = opened.map((reply) => ({
      ...reply,
      params: {
        tensors: reply.params.tensors,
        read: async (name: string, start: number, end: number) => {
          reads++;
          largest = Math.max(largest, end - start);
          return reply.params.read(name, start, end);
        },
      },
    }));
    const result = await fedAvg().aggregateStored!(watched, {}, context);
    t.true(encodeSafetensors(result.params).equals(encodeSafetensors(fedAvg().aggregate(list, {}, context).params)));
    t.is(gets, 0, 'no reply is read whole from the store');
    t.is(largest, STORED_SLICE);
    // Each weighted reply's slices: 3 of w32, 2 of w64, 2 of h16, 1 of b16, 2 of i64, 1 of n.
    t.is(reads, 11 * list.filter((r) => r.sampleSize > 0).length);
  } finally {
    await files.close();
  }
});

test('from stored replies, FedAvg throws what aggregate throws', async (t) => {
  const blobs = getInMemoryBlobStore();
  const small = (node: string, sampleSize: number, tensors: TensorSet): NodeReply => ({
    node,
    sampleSize,
    params: tensors,
    metrics: {},
  });
  const w = (length: number): TensorSet => ({
    w: { dtype: 'float32', shape: [length], data: new Float32Array(length) },
  });
  const cases: Array<[string, NodeReply[], new (...args: never[]) => Error]> = [
    ['no replies', [], NoRepliesError],
    ['a shape that differs', [small('a', 1, w(2)), small('b', 1, w(3))], MismatchedTensorsError],
    ['only zero sample sizes', [small('a', 0, w(2)), small('b', 0, w(2))], ZeroSampleSizeError],
    ['a node twice', [small('a', 1, w(2)), small('a', 2, w(2))], InvalidArgumentError],
    [
      'a bool tensor',
      [small('a', 1, { m: { dtype: 'bool', shape: [2], data: new Uint8Array([0, 1]) } })],
      NotAverageableError,
    ],
  ];
  for (const [what, list, type] of cases) {
    const batch = t.throws(() => fedAvg().aggregate(list, {}, context), { instanceOf: type }, what);
    const fromStored = await t.throwsAsync(fedAvg().aggregateStored!(await stored(blobs, list), {}, context), {
      instanceOf: type,
    });
    t.is(fromStored!.message, batch!.message, what);
  }
});

test('a stored reply that is not safetensors, and reads outside a tensor, are typed errors naming them', async (t) => {
  const dir = tempDir();
  const blobs = await openFileBlobStore({ dir });
  try {
    const { ref } = await blobs.put(Buffer.from('{"not": "safetensors"}'), { encoding: SAFETENSORS_ENCODING });
    const error = await t.throwsAsync(openStoredTensors(blobs, ref, 'the reply of node x to round 3'), {
      instanceOf: CorruptPayloadError,
    });
    t.regex(error!.message, /the reply of node x to round 3/);
    const tensors: TensorSet = { w: { dtype: 'float32', shape: [4], data: Float32Array.from([1, 2, 3, 4]) } };
    const good = await blobs.putStream([encodeSafetensors(tensors)], { encoding: SAFETENSORS_ENCODING });
    const reader = await openStoredTensors(blobs, good.ref, 'the reply of node y');
    t.deepEqual([...((await reader.read('w', 1, 3)) as Float32Array)], [2, 3]);
    await t.throwsAsync(reader.read('w', 2, 5), {
      instanceOf: InvalidArgumentError,
      message: /0 <= start <= end <= 4/,
    });
    await t.throwsAsync(reader.read('v', 0, 1), { instanceOf: InvalidArgumentError, message: /the reply of node y/ });
    // A file cut short after its header was read: the read names the byte where it ends.
    writeFileSync(path.join(blobs.fileOf(good.ref.sha256)!), encodeSafetensors(tensors).subarray(0, -8));
    await t.throwsAsync(reader.read('w', 0, 4), { instanceOf: CorruptPayloadError, message: /the file ends at byte/ });
  } finally {
    await blobs.close();
  }
});
