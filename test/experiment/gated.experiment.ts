/**
 * The logistic-regression example, for tests that SIGKILL `roundlog run` inside its first round:
 * with `ROUNDLOG_TEST_GATE=1` in the environment, the first node to read its data for training
 * (which happens only after the round's `RoundStarted` is durable) prints `gate <node>` and the
 * process blocks until a line comes on stdin. Without it, the example exactly.
 */
import type { ExperimentDefinition } from '../../src/federated/definition.ts';
import type { Federation } from '../../src/federated/training-plan.ts';
import { definition as example } from '../../examples/logistic-regression/experiment.ts';
import { onDataRead, readLineSync } from '../support/gate.ts';

async function federation(): Promise<Federation> {
  const plain = await example.federation();
  if (process.env.ROUNDLOG_TEST_GATE !== '1') return plain;
  let gated = false;
  return onDataRead(plain, (node) => {
    if (gated) return;
    gated = true;
    process.stdout.write(`gate ${node}\n`);
    readLineSync();
  });
}

export const definition: ExperimentDefinition = { ...example, federation };

export default definition;
