/**
 * What checking event data against its type's schema costs when an experiment is opened.
 *
 * Every event read back is checked by its type's schema (`src/model/schemas.ts`) before it is
 * folded. This builds one experiment of R rounds (1000; 200 in quick mode) with the low-level API
 * (`recordRound` with 3 node replies: 5 events a round, small parameters), reads its stream once,
 * and then measures, in interleaved repetitions, each on events read afresh:
 *   - read: `readStream` of the experiment's stream from the file log (decode included);
 *   - read + fold: the same, then `replay` of the events (each one checked, then folded);
 *   - check: the schema check alone of every event (`safeParse` of its data; the read untimed).
 * Reports medians and the ratio check ÷ (read + fold): the share of opening an experiment from
 * its log that the check is.
 *
 *   npx tsx bench/event-check.ts [--quick] [--reps=N] [--rounds=N]
 */
import { pathToFileURL } from 'node:url';
import type { TensorSet } from '../src/codec/tensors.ts';
import type { RecordedEvent } from '../src/log/types.ts';
import { EVENT_SCHEMAS } from '../src/model/schemas.ts';
import type { ExperimentEventType } from '../src/model/events.ts';
import { replay } from '../src/model/state.ts';
import { openRoundLog } from '../src/projections/index.ts';
import {
  argValue,
  describeMode,
  formatNumber,
  heading,
  interleave,
  isQuick,
  makeTempDir,
  medianOf,
  msSince,
  now,
  pairedRatio,
  ratioTable,
  removeTempDir,
  repsOr,
  samplesTable,
} from './lib.ts';

function params(round: number): TensorSet {
  const data = new Float32Array(16).map((_, i) => round + i / 16);
  return { weights: { dtype: 'float32', shape: [16], data } };
}

export async function main(): Promise<void> {
  const rounds = Number(argValue('rounds') ?? (isQuick() ? 200 : 1000));
  const reps = repsOr(isQuick() ? 7 : 21);
  heading(`event-check: schema check of event data on open, ${rounds} rounds (${describeMode()})`);
  const root = await makeTempDir('event-check');
  try {
    const rl = await openRoundLog({ root });
    let stream: string;
    try {
      const handle = await rl.createExperiment({ roundLimit: null, initialParams: params(0) });
      stream = handle.stream;
      const nodes = ['hospital-a', 'hospital-b', 'hospital-c'];
      // As the facade records a federated round: RoundStarted, then 3 NodeReplied and RoundCompleted.
      for (let round = 0; round < rounds; round++) {
        await handle.append([{ type: 'RoundStarted', data: { v: 1, round, attempt: 1, nodes } }]);
        const replies = [];
        for (const [k, node] of nodes.entries()) {
          replies.push({
            round,
            attempt: 1,
            node,
            sampleSize: 1000 + 100 * k,
            params: await rl.putTensors(params(round + k)),
            metrics: { loss: 2 / (round + 1) + k * 0.01, accuracy: 1 - 1 / (round + 2) },
            durationMs: 1500 + k,
          });
        }
        await handle.recordRound({
          round,
          attempt: 1,
          params: params(round + 1),
          state: {},
          metrics: { loss: 1 / (round + 1) },
          nodes: replies.map((r) => ({ node: r.node, sampleSize: r.sampleSize, metrics: r.metrics })),
          replies,
          durationMs: 1600,
          breakpoint: false,
        });
      }
    } finally {
      await rl.close();
    }

    const reader = await openRoundLog({ root });
    try {
      const read = async (): Promise<readonly RecordedEvent[]> =>
        (await reader.withReader((log) => log.readStream(stream))).events;
      const events = await read();
      console.log(`${events.length} events in the experiment's stream`);
      // Each sample reads the events afresh: `upcast` remembers the data objects it has checked,
      // so folding the same objects twice would not check them again.
      const samples = await interleave(
        [
          {
            name: 'read',
            run: async () => {
              const start = now();
              await read();
              return msSince(start);
            },
          },
          {
            name: 'read + fold',
            run: async () => {
              const start = now();
              replay(await read());
              return msSince(start);
            },
          },
          {
            name: 'check',
            run: async () => {
              const fresh = await read();
              const start = now();
              for (const e of fresh) EVENT_SCHEMAS[e.type as ExperimentEventType].safeParse(e.data);
              return msSince(start);
            },
          },
        ],
        { reps },
      );
      console.log(samplesTable(samples, 'ms'));
      const check = medianOf(samples, 'check');
      const open = medianOf(samples, 'read + fold');
      console.log(`check per event: ${formatNumber((check * 1000) / events.length)} µs (median, this machine)`);
      console.log(
        ratioTable([
          {
            label: 'check ÷ (read + fold): its share of opening from the log',
            ratio: check / open,
            paired: pairedRatio(samples, 'check', 'read + fold'),
          },
          {
            label: '(read + fold) ÷ read: folding, checks included, over reading',
            ratio: open / medianOf(samples, 'read'),
            paired: pairedRatio(samples, 'read + fold', 'read'),
          },
        ]),
      );
    } finally {
      await reader.close();
    }
  } finally {
    await removeTempDir(root);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) await main();
