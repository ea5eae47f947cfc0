/**
 * Runs every benchmark's main() in sequence: the known ones in a fixed order, then any other
 * bench/*.ts that exports main(). Files that are absent are reported and skipped.
 *
 *   npm run bench -- [--quick] [--reps=N] [name ...]
 *   npx tsx bench/run-all.ts [--quick] [name ...]     (names: append-floor, open-time, ...)
 *
 * --quick (or ROUNDLOG_BENCH_QUICK=1) is passed through to every bench. Exits 1 when a bench
 * failed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatTable, isQuick, msSince, now } from './lib.ts';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ORDER = ['append-floor', 'append-concurrent', 'open-time', 'blob-put', 'tensor-shuffle'];
/** Not benchmarks: helpers, this runner, and files starting with `_`. */
const NOT_BENCHES = new Set(['lib', 'run-all']);

function benchNames(): string[] {
  const present = fs
    .readdirSync(BENCH_DIR)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && !f.startsWith('_'))
    .map((f) => f.slice(0, -3))
    .filter((name) => !NOT_BENCHES.has(name));
  const others = present.filter((name) => !ORDER.includes(name)).sort();
  return [...ORDER, ...others];
}

export async function main(): Promise<void> {
  // The benches read quick mode from argv or the environment; set the latter so that child
  // processes the benches start see it too.
  if (isQuick()) process.env.ROUNDLOG_BENCH_QUICK = '1';
  const requested = process.argv.slice(2).filter((a) => !a.startsWith('--') && !/^\d+$/.test(a));
  const names = requested.length > 0 ? requested : benchNames();
  console.log(`roundlog benchmarks (${isQuick() ? 'quick' : 'full'} mode): ${names.join(', ')}`);

  const results: string[][] = [];
  for (const name of names) {
    const file = path.join(BENCH_DIR, `${name}.ts`);
    if (!fs.existsSync(file)) {
      results.push([name, 'skipped (file absent)', '']);
      continue;
    }
    const start = now();
    try {
      const mod = (await import(pathToFileURL(file).href)) as { main?: () => Promise<void> };
      if (typeof mod.main !== 'function') {
        results.push([name, 'skipped (no exported main)', '']);
        continue;
      }
      await mod.main();
      results.push([name, 'ok', `${(msSince(start) / 1000).toFixed(1)} s`]);
    } catch (error) {
      console.error(`\n${name} failed:`, error);
      results.push([name, 'FAILED', `${(msSince(start) / 1000).toFixed(1)} s`]);
      process.exitCode = 1;
    }
  }
  console.log('\n=== summary ===');
  console.log(formatTable(['bench', 'status', 'wall time'], results, [1]));
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) await main();
