/**
 * Child process for test/io/tensor-bounds.e2e.test.ts: stores the bytes of a file as a blob of a
 * new root, reads them back as tensors through `RoundLog.getTensors` (the record's `bytes` as the
 * bound), and prints one JSON line: the error's code (or "decoded"), and the process's peak
 * resident memory before and after the read (kB), so the parent can tell whether anything large
 * was allocated.
 */
import { readFileSync } from 'node:fs';
import { openRoundLog } from '../../src/engine/round-log.ts';

const [file, root, encoding] = process.argv.slice(2) as [string, string, string];
const rl = await openRoundLog({ root });
try {
  const { ref } = await rl.blobs.put(readFileSync(file), { encoding });
  const before = process.resourceUsage().maxRSS;
  let outcome: string;
  try {
    await rl.getTensors(ref);
    outcome = 'decoded';
  } catch (error) {
    outcome = String((error as { code?: unknown }).code ?? (error as Error).name);
  }
  const after = process.resourceUsage().maxRSS;
  console.log(JSON.stringify({ outcome, before, after }));
} finally {
  await rl.close();
}
