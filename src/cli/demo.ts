/**
 * `roundlog demo` (what `npm start` runs): a round-based run recorded in the round log, crashed
 * with SIGKILL part-way, recovered, resumed to the end, and checked bit for bit against a run
 * that never stopped.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { openFileBlobStore } from '../blobs/file.ts';
import type { BlobRef } from '../blobs/types.ts';
import { decodeTensors, encodeTensors, type TensorSet } from '../codec/tensors.ts';
import { openFileEventLog } from '../log/file/index.ts';
import type { RecordedEvent } from '../log/types.ts';
import { rootLayout } from '../root.ts';
import { table, type Io } from './args.ts';

const PARAMETERS = 250_000;

type DemoStarted = { rounds: number; seed: number; parameters: number };
type RoundCompleted = { round: number; params: BlobRef; loss: number };

/** The "training" of one round: a deterministic function of the seed, the round and the previous parameters. */
export function trainRound(previous: Float32Array, seed: number, round: number): { weights: Float32Array; loss: number } {
  const weights = new Float32Array(previous.length);
  let state = (seed ^ Math.imul(round + 1, 0x9e3779b1)) >>> 0;
  let loss = 0;
  for (let i = 0; i < weights.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const gradient = previous[i]! - Math.sin(i * 0.001) + ((state / 4294967296 - 0.5) * 0.01);
    weights[i] = previous[i]! - 0.3 * gradient;
    loss += gradient * gradient;
  }
  return { weights, loss: loss / weights.length };
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The worker: continues the run in `stream` from its last committed round. Killed by the parent. */
export async function demoWorker(root: string, stream: string, rounds: number, seed: number, io: Io): Promise<void> {
  const layout = rootLayout(root);
  const log = await openFileEventLog({ dir: layout.log });
  const blobs = await openFileBlobStore({ dir: layout.blobs });
  try {
    const history = await log.readStream(stream).catch(() => null);
    let revision = history?.lastRevision ?? -1n;
    let weights: Float32Array = new Float32Array(PARAMETERS);
    let round = 0;
    if (history === null) {
      const started: DemoStarted = { rounds, seed, parameters: PARAMETERS };
      revision = (await log.append(stream, [{ type: 'DemoStarted', data: started }], { expectedRevision: 'no_stream' })).nextExpectedRevision;
    } else {
      const last = history.events.filter((e) => e.type === 'RoundCompleted').at(-1);
      if (last !== undefined) {
        const data = last.data as RoundCompleted;
        const tensors = decodeTensors(data.params.encoding, await blobs.get(data.params));
        weights = tensors.weights!.data as Float32Array;
        round = data.round + 1;
      }
      revision = (
        await log.append(stream, [{ type: 'DemoResumed', data: { fromRound: round, pid: process.pid } }], { expectedRevision: revision })
      ).nextExpectedRevision;
      io.out(`resumed at round ${round}/${rounds} from the log (process ${process.pid})`);
    }
    for (; round < rounds; round++) {
      const trained = trainRound(weights, seed, round);
      weights = trained.weights;
      const params: TensorSet = { weights: { dtype: 'float32', shape: [PARAMETERS], data: weights } };
      const encoded = encodeTensors(params);
      const { ref } = await blobs.put(encoded.bytes, { encoding: encoded.encoding });
      const completed: RoundCompleted = { round, params: ref, loss: trained.loss };
      revision = (await log.append(stream, [{ type: 'RoundCompleted', data: completed }], { expectedRevision: revision })).nextExpectedRevision;
      io.out(`round ${round + 1}/${rounds} committed  loss ${trained.loss.toFixed(6)}  params ${ref.sha256.slice(0, 12)}`);
    }
    await log.append(stream, [{ type: 'DemoFinished', data: { rounds } }], { expectedRevision: revision });
    io.out('finished');
  } finally {
    await blobs.close();
    await log.close();
  }
}

/** Runs the worker as a child process and kills it with SIGKILL after `killAfterRounds` committed rounds. */
function runWorker(root: string, stream: string, rounds: number, seed: number, killAfterRounds: number | null, io: Io): Promise<{ killed: boolean }> {
  const script = process.argv[1]!;
  const child = spawn(process.execPath, [...process.execArgv, script, 'demo-worker', '--root', root, '--stream', stream, '--rounds', String(rounds), '--seed', String(seed)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let committed = 0;
  let killed = false;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    io.out(`  [worker ${child.pid}] ${line}`);
    if (line.startsWith('round ') && ++committed === killAfterRounds) {
      child.kill('SIGKILL');
      killed = true;
      io.out(`  [demo] SIGKILL sent to worker ${child.pid} after ${committed} committed rounds: simulated crash`);
    }
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL' && killed) resolve({ killed: true });
      else if (code === 0) resolve({ killed: false });
      else reject(new Error(`demo worker exited with ${code ?? signal}`));
    });
  });
}

export async function demo(root: string, rounds: number, crashAfter: number, io: Io): Promise<number> {
  const layout = rootLayout(root);
  const seed = 20_261_126;
  const stream = `demo-${new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15)}-${process.pid}`;
  io.out(`roundlog demo: ${rounds} rounds of ${PARAMETERS.toLocaleString('en-US')} float32 parameters`);
  io.out(`root ${root}  (log ${layout.log}, blobs ${layout.blobs})  stream ${stream}`);
  io.out('');
  io.out(`1. train, and crash the training process after round ${crashAfter}`);
  await runWorker(root, stream, rounds, seed, crashAfter, io);

  io.out('');
  io.out('2. reopen the log after the crash');
  {
    const log = await openFileEventLog({ dir: layout.log, onWarning: (w) => io.out(`  [log] warning: ${w.message}`) });
    const { events } = await log.readStream(stream);
    const done = events.filter((e) => e.type === 'RoundCompleted');
    io.out(`  ${done.length} committed rounds in the log; last: round ${done.length}/${rounds}`);
    await log.close();
  }

  io.out('');
  io.out('3. resume from the last committed round, in a new process, and run to the end');
  await runWorker(root, stream, rounds, seed, null, io);

  io.out('');
  io.out('4. check: a run that never stopped gives the same parameters, bit for bit');
  let reference: Float32Array = new Float32Array(PARAMETERS);
  for (let round = 0; round < rounds; round++) reference = trainRound(reference, seed, round).weights;
  const expected = sha256(new Uint8Array(reference.buffer));
  const log = await openFileEventLog({ dir: layout.log });
  const blobs = await openFileBlobStore({ dir: layout.blobs });
  try {
    const { events } = await log.readStream(stream);
    const last = events.filter((e) => e.type === 'RoundCompleted').at(-1)!.data as RoundCompleted;
    const final = decodeTensors(last.params.encoding, await blobs.get(last.params)).weights!.data as Float32Array;
    const actual = sha256(new Uint8Array(final.buffer, final.byteOffset, final.byteLength));
    const same = actual === expected;
    io.out(`  uninterrupted run  sha256 ${expected}`);
    io.out(`  crashed + resumed  sha256 ${actual}  ${same ? 'identical' : 'DIFFERENT'}`);
    const logCheck = await log.verify();
    const blobCheck = await blobs.verify();
    io.out(`  log verify: ${logCheck.ok ? 'ok' : 'PROBLEMS'} (${logCheck.eventsChecked} records)  blob verify: ${blobCheck.ok ? 'ok' : 'PROBLEMS'} (${blobCheck.blobsChecked} blobs)`);

    io.out('');
    io.out(`5. the stream's history (roundlog events ${stream})`);
    for (const line of timeline(events)) io.out(`  ${line}`);
    return same && logCheck.ok && blobCheck.ok ? 0 : 1;
  } finally {
    await blobs.close();
    await log.close();
  }
}

export function timeline(events: readonly RecordedEvent[]): string[] {
  return table(
    ['rev', 'position', 'time', 'type', 'details'],
    events.map((e) => [String(e.revision), String(e.position), e.timestamp.toISOString(), e.type, describe(e)]),
  );
}

function describe(event: RecordedEvent): string {
  const data = event.data as Record<string, unknown> | null;
  if (data === null || typeof data !== 'object') return JSON.stringify(data) ?? '';
  if (event.type === 'RoundCompleted') {
    const { round, loss, params } = data as RoundCompleted;
    return `round ${round}  loss ${loss.toFixed(6)}  params ${params.sha256.slice(0, 12)} (${params.bytes} B, ${params.encoding})`;
  }
  const text = JSON.stringify(data, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  return text.length > 100 ? `${text.slice(0, 97)}...` : text;
}
