/**
 * Exports a round in this process and prints its peak resident set size (kB) before and after:
 * `export-rss.ts <root> <experiment> <round> <out> <format>`. The peak is Linux's `VmHWM` (of this
 * program's memory only: `getrusage`'s maxRSS keeps the peak of the process that spawned it).
 */
import { readFileSync } from 'node:fs';
import { exportRound, openRoundLog, type ExportFormat } from '../../src/projections/index.ts';

const [root, experiment, round, out, format] = process.argv.slice(2) as [string, string, string, string, ExportFormat];
const peakKiB = () => Number(/^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
const rl = await openRoundLog({ root });
await rl.openExperiment(experiment);
const before = peakKiB();
const result = await exportRound(rl, experiment, { round: Number(round), out, format });
const after = peakKiB();
await rl.close();
console.log(JSON.stringify({ before, after, bytes: result.bytes, method: result.method }));
