/**
 * Runs the heart-disease experiment (`experiment.ts`) in a temporary root and prints the held-out
 * accuracy of its final parameters for each hospital and pooled (weighted by held-out sizes).
 *
 *   npx tsx examples/heart-disease/evaluate.ts [rounds]     # default: the definition's round limit
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Experiment } from '../../src/federated/experiment.ts';
import { heartDiseaseFederation } from './data.ts';
import { definition, SEED } from './experiment.ts';
import { evaluateHeldOut } from './plan.ts';

const rounds = process.argv[2] === undefined ? definition.roundLimit! : Number(process.argv[2]);
const root = mkdtempSync(path.join(os.tmpdir(), 'roundlog-heart-disease-'));
try {
  const federation = heartDiseaseFederation({ seed: SEED });
  const exp = await Experiment.create({
    ...definition,
    federation,
    roundLimit: rounds,
    saveBreakpoints: false,
    root,
    workspace: fileURLToPath(new URL('../..', import.meta.url)),
  });
  await exp.run();
  const { hospitals, pooled } = evaluateHeldOut(await exp.parameters(), federation);
  await exp.close();
  console.log(`held-out accuracy after ${rounds} rounds (seed ${SEED}, ${JSON.stringify(definition.trainingArgs)})`);
  for (const h of hospitals) {
    const score = `${h.accuracy.toFixed(4)}  (${h.correct}/${h.rows})`;
    console.log(`  ${h.hospital.padEnd(12)} ${score}  loss ${h.loss.toFixed(4)}`);
  }
  console.log(`  ${'pooled'.padEnd(12)} ${pooled.accuracy.toFixed(4)}  (${pooled.correct}/${pooled.rows})`);
} finally {
  rmSync(root, { recursive: true, force: true });
}
