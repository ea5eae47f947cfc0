/**
 * The README's library example, runnable: `npx tsx examples/quickstart.ts [root]`.
 * Records two rounds, reopens the log as a restarted process would, and reads the last round back.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { firstValueFrom, filter } from 'rxjs';
import {
  TensorEncoding,
  decodeTensors,
  encodeSafetensors,
  openFileBlobStore,
  openFileEventLog,
  type BlobRef,
} from '../src/index.ts';

const root = process.argv[2] ?? mkdtempSync(path.join(os.tmpdir(), 'roundlog-quickstart-'));
type RoundCompleted = { round: number; params: BlobRef; metrics: { loss: number } };

{
  const log = await openFileEventLog({ dir: path.join(root, 'log') });
  const blobs = await openFileBlobStore({ dir: path.join(root, 'blobs') });
  let expectedRevision: bigint | 'no_stream' = 'no_stream';
  for (const [round, loss] of [
    [0, 0.41],
    [1, 0.27],
  ] as const) {
    const weights = new Float32Array([1, 2, 3, 4, 5, 6].map((x) => x / (round + 1)));
    // The safetensors file of the tensors (what roundlog stores for new rounds), tagged with its encoding.
    const params = encodeSafetensors({ weights: { dtype: 'float32', shape: [2, 3], data: weights } });
    const { ref } = await blobs.put(params, { encoding: TensorEncoding.safetensors });
    const data: RoundCompleted = { round, params: ref, metrics: { loss } };
    ({ nextExpectedRevision: expectedRevision } = await log.append('experiment-1', [{ type: 'RoundCompleted', data }], {
      expectedRevision,
    }));
  }
  await blobs.close();
  await log.close();
}

// A restarted process: the last committed round and its parameters, checked against their hash.
const log = await openFileEventLog({ dir: path.join(root, 'log') });
const blobs = await openFileBlobStore({ dir: path.join(root, 'blobs') });
const { events } = await log.readStream('experiment-1', { direction: 'backwards', maxCount: 1 });
const last = events[0]!.data as RoundCompleted;
const { weights } = decodeTensors(last.params.encoding, await blobs.get(last.params));
console.log(
  `last committed round: ${last.round}, loss ${last.metrics.loss}, ` +
    `weights [${Array.from(weights!.data as Float32Array).join(', ')}]`,
);

// Follow the stream: history first, then the caught-up marker.
const caughtUp = await firstValueFrom(
  log.subscribe({ stream: 'experiment-1' }).pipe(filter((item) => item.kind === 'caughtUp')),
);
console.log(`caught up at log position ${caughtUp.kind === 'caughtUp' ? caughtUp.position : '?'}`);
await blobs.close();
await log.close();
