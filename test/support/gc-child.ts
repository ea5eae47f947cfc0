/**
 * A child process that runs `gc` on a root each time a line `gc` comes on stdin, for tests of gc
 * beside a running experiment in another process. Prints `ready` once, then after each gc
 * `gc <rounds pruned> <blobs deleted>`, or `error <code> <message>` (and goes on). Exits at the
 * end of stdin.
 *
 *   gc-child <root> <keepLast>
 */
import { createInterface } from 'node:readline';
import { gc } from '../../src/projections/index.ts';

const [root, keepLastArg] = process.argv.slice(2);
if (root === undefined || keepLastArg === undefined) throw new Error('usage: gc-child <root> <keepLast>');
const retention = { keepLast: Number(keepLastArg), keepEvery: null };
const say = (line: string) => process.stdout.write(`${line}\n`);
say('ready');
for await (const line of createInterface({ input: process.stdin })) {
  if (line !== 'gc') continue;
  try {
    const report = await gc({ root, retention });
    const pruned = report.experiments.reduce((n, e) => n + e.pruned.length, 0);
    say(`gc ${pruned} ${report.blobsDeleted.length}`);
  } catch (error) {
    const code = (error as { code?: unknown })?.code ?? 'UNKNOWN';
    say(`error ${String(code)} ${String((error as Error)?.message).replace(/\n/g, ' ')}`);
  }
}
process.exit(0);
