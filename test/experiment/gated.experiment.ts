/**
 * The logistic-regression example, for tests that SIGKILL `roundlog run` inside its first round:
 * with `ROUNDLOG_TEST_GATE=1` in the environment, the first node to read its data for training
 * (which happens only after the round's `RoundStarted` is durable) prints `gate <node>` and the
 * process blocks until a line comes on stdin. Without it, the example exactly.
 */
import { readSync } from 'node:fs';
import type { ExperimentDefinition } from '../../src/federated/definition.ts';
import type { Federation } from '../../src/federated/training-plan.ts';
import { definition as example } from '../../examples/logistic-regression/experiment.ts';

/** Blocks the whole process until a line arrives on stdin. */
function readLineSync(): void {
  const byte = Buffer.alloc(1);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, byte, 0, 1, null);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      throw error;
    }
    if (n === 0 || byte[0] === 0x0a) return;
  }
}

async function federation(): Promise<Federation> {
  const plain = await example.federation();
  if (process.env.ROUNDLOG_TEST_GATE !== '1') return plain;
  let gated = false;
  return {
    nodes: plain.nodes.map((node) => ({
      id: node.id,
      datasets: node.datasets.map((dataset) => ({
        id: dataset.id,
        tags: dataset.tags,
        get data() {
          if (!gated) {
            gated = true;
            process.stdout.write(`gate ${node.id}\n`);
            readLineSync();
          }
          return dataset.data;
        },
      })),
    })),
  };
}

export const definition: ExperimentDefinition = { ...example, federation };

export default definition;
