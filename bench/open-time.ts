/**
 * Open time of a small log vs a big one: does opening read the history?
 *
 * Builds two logs once: 10k and 1M events (100k in quick mode) of ~200 bytes, written with
 * appends of up to 1000 events on 4 concurrent streams, plus a "probe" stream of 100 events
 * scattered evenly through the log. Then measures, in repetitions alternating the two logs:
 *   - openFileEventLog({ dir }) + close() in a fresh child process (the child loads the code
 *     first; only the open and the close are timed, by the child, so node and tsx start-up are
 *     excluded; the page cache stays warm, nothing is dropped);
 *   - the same in this process, just reopening (a sample is the median of 5 reopens);
 *   - as a separate measure, the first readStream of the probe stream right after the open
 *     (where a log that loads lazily pays what it skipped on open).
 * Reports medians and the ratio big/small; target for open + close: under 2x.
 *
 *   npx tsx bench/open-time.ts [--quick] [--reps=N] [--big=N]
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { FileLogWarning } from '../src/log/file/options.ts';
import {
  argValue,
  describeMode,
  dirBytes,
  formatNumber,
  heading,
  interleave,
  isQuick,
  loadFileLog,
  makeTempDir,
  median,
  medianOf,
  msSince,
  now,
  pairedRatio,
  ratioTable,
  removeTempDir,
  repsOr,
  roundEvents,
  samplesTable,
  type OpenFileEventLog,
  type Samples,
} from './lib.ts';

const THIS_FILE = fileURLToPath(import.meta.url);
const REPO_ROOT = path.resolve(path.dirname(THIS_FILE), '..');
const CHILD_FLAG = '--open-child';

const BULK_STREAMS = 4;
const PROBES = 100;
const PROBE_STREAM = 'experiment-probe';
const MAX_EVENTS_PER_APPEND = 1000;
/** Open/read/close cycles per in-process sample (see measureOpenRepeated). */
const IN_PROCESS_INNER = 5;

type OpenMeasure = { openMs: number; closeMs: number; readMs: number; readEvents: number; warnings: string[] };

/** Builds a log of `bulk` bulk events + PROBES probe events; returns the number of events. */
async function buildLog(openLog: OpenFileEventLog, dir: string, bulk: number): Promise<number> {
  const pool = roundEvents(0, 4096);
  let cursor = 0;
  const take = (n: number) => {
    const out = new Array(n);
    for (let k = 0; k < n; k++) out[k] = pool[(cursor + k) % pool.length];
    cursor += n;
    return out;
  };
  const log = await openLog({ dir });
  let written = 0;
  try {
    for (let round = 0; round < PROBES; round++) {
      const roundTotal = Math.floor(((round + 1) * bulk) / PROBES) - Math.floor((round * bulk) / PROBES);
      await Promise.all(
        Array.from({ length: BULK_STREAMS }, async (_, s) => {
          let left = Math.floor(((s + 1) * roundTotal) / BULK_STREAMS) - Math.floor((s * roundTotal) / BULK_STREAMS);
          while (left > 0) {
            const n = Math.min(left, MAX_EVENTS_PER_APPEND);
            await log.append(`client-${s}`, take(n));
            left -= n;
            written += n;
          }
        }),
      );
      await log.append(PROBE_STREAM, take(1));
      written++;
    }
  } finally {
    await log.close();
  }
  return written;
}

/** Open, first readStream of the probe stream, close: each timed. */
async function measureOpen(openLog: OpenFileEventLog, dir: string): Promise<OpenMeasure> {
  const warnings: string[] = [];
  const onWarning = (w: FileLogWarning) => warnings.push(`${w.code}: ${w.message}`);
  let start = now();
  const log = await openLog({ dir, onWarning });
  const openMs = msSince(start);
  start = now();
  const read = await log.readStream(PROBE_STREAM);
  const readMs = msSince(start);
  start = now();
  await log.close();
  const closeMs = msSince(start);
  return { openMs, closeMs, readMs, readEvents: read.events.length, warnings };
}

/**
 * In-process opens take milliseconds, below the noise of one sample: a sample is the median of
 * `times` consecutive open / first read / close cycles (each read is the first of its handle).
 */
async function measureOpenRepeated(openLog: OpenFileEventLog, dir: string, times: number): Promise<OpenMeasure> {
  const all: OpenMeasure[] = [];
  for (let i = 0; i < times; i++) all.push(await measureOpen(openLog, dir));
  return {
    openMs: median(all.map((m) => m.openMs)),
    closeMs: median(all.map((m) => m.closeMs)),
    readMs: median(all.map((m) => m.readMs)),
    readEvents: Math.min(...all.map((m) => m.readEvents)),
    warnings: all.flatMap((m) => m.warnings),
  };
}

/** The same in a fresh child process (this file with CHILD_FLAG); the child prints the JSON. */
function measureOpenInChild(dir: string): Promise<OpenMeasure> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', THIS_FILE, CHILD_FLAG, dir], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const last = stdout.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !last.startsWith('{')) {
        reject(new Error(`open-time child exited with ${code}: ${stderr.trim() || stdout.trim()}`));
        return;
      }
      resolve(JSON.parse(last) as OpenMeasure);
    });
  });
}

/** 10000 -> 10k, 1000000 -> 1M. */
function compactCount(n: number): string {
  if (n >= 1e6 && n % 1e5 === 0) return `${n / 1e6}M`;
  if (n >= 1e3 && n % 100 === 0) return `${n / 1e3}k`;
  return String(n);
}

async function childMain(dir: string): Promise<void> {
  const openLog = await loadFileLog(); // loaded before the clock starts
  const measure = await measureOpen(openLog, dir);
  process.stdout.write(`${JSON.stringify(measure)}\n`);
}

export async function main(): Promise<void> {
  const quick = isQuick();
  const reps = repsOr(quick ? 5 : 9);
  const bigArg = Number(argValue('big'));
  const smallN = 10_000;
  const bigN = Number.isInteger(bigArg) && bigArg > 0 ? bigArg : quick ? 100_000 : 1_000_000;
  const smallLabel = `${compactCount(smallN)} events`;
  const bigLabel = `${compactCount(bigN)} events`;

  heading(`open-time: open + close of a ${smallLabel} log vs a ${bigLabel} log`);
  console.log(`${describeMode()}; ${reps} alternating repetitions (+1 warm-up) of each measure`);

  const openLog = await loadFileLog();
  const root = await makeTempDir('open-time');
  try {
    const smallDir = path.join(root, 'small', 'log');
    const bigDir = path.join(root, 'big', 'log');
    let start = now();
    const smallCount = await buildLog(openLog, smallDir, smallN);
    const smallBuildMs = msSince(start);
    start = now();
    const bigCount = await buildLog(openLog, bigDir, bigN);
    const bigBuildMs = msSince(start);
    console.log(
      `(setup) built ${smallCount} events (${formatNumber((await dirBytes(smallDir)) / 2 ** 20)} MiB) in ` +
        `${formatNumber(smallBuildMs / 1000)} s and ${bigCount} events ` +
        `(${formatNumber((await dirBytes(bigDir)) / 2 ** 20)} MiB) ` +
        `in ${formatNumber(bigBuildMs / 1000)} s: appends of <= ${MAX_EVENTS_PER_APPEND} events on ${BULK_STREAMS} ` +
        `concurrent streams, + ${PROBES} scattered probe events`,
    );

    const CHILD_SMALL = `child process, ${smallLabel}`;
    const CHILD_BIG = `child process, ${bigLabel}`;
    const IN_SMALL = `in-process reopen, ${smallLabel}`;
    const IN_BIG = `in-process reopen, ${bigLabel}`;
    const reads: Samples = new Map([CHILD_SMALL, CHILD_BIG, IN_SMALL, IN_BIG].map((n) => [n, []]));
    const warnings = new Set<string>();
    const contender = (name: string, measure: () => Promise<OpenMeasure>) => ({
      name,
      run: async (rep: number) => {
        const m = await measure();
        if (m.readEvents !== PROBES)
          throw new Error(`${name}: probe stream read ${m.readEvents} events, expected ${PROBES}`);
        for (const w of m.warnings) warnings.add(`${name}: ${w}`);
        if (rep >= 0) reads.get(name)!.push(m.readMs);
        return m.openMs + m.closeMs;
      },
    });
    const samples = await interleave(
      [
        contender(CHILD_SMALL, () => measureOpenInChild(smallDir)),
        contender(CHILD_BIG, () => measureOpenInChild(bigDir)),
        contender(IN_SMALL, () => measureOpenRepeated(openLog, smallDir, IN_PROCESS_INNER)),
        contender(IN_BIG, () => measureOpenRepeated(openLog, bigDir, IN_PROCESS_INNER)),
      ],
      { reps, warmup: 1 },
    );

    console.log();
    console.log(samplesTable(samples, 'open + close, ms', [CHILD_SMALL, CHILD_BIG, IN_SMALL, IN_BIG]));
    console.log();
    console.log(
      samplesTable(reads, `first readStream (${PROBES} probe events) after open, ms`, [
        CHILD_SMALL,
        CHILD_BIG,
        IN_SMALL,
        IN_BIG,
      ]),
    );
    if (warnings.size > 0) {
      console.log('\nwarnings from the log on open:');
      for (const w of warnings) console.log(`  ${w}`);
    }
    console.log();
    const under2 = { text: '< 2x', met: (r: number) => r < 2 };
    console.log(
      ratioTable([
        {
          label: `open+close ${bigLabel} ÷ ${smallLabel}, child process`,
          ratio: medianOf(samples, CHILD_BIG) / medianOf(samples, CHILD_SMALL),
          paired: pairedRatio(samples, CHILD_BIG, CHILD_SMALL),
          target: under2,
        },
        {
          label: `open+close ${bigLabel} ÷ ${smallLabel}, in-process`,
          ratio: medianOf(samples, IN_BIG) / medianOf(samples, IN_SMALL),
          paired: pairedRatio(samples, IN_BIG, IN_SMALL),
          target: under2,
        },
        {
          label: `first readStream ${bigLabel} ÷ ${smallLabel}, child (separate measure)`,
          ratio: median(reads.get(CHILD_BIG)!) / median(reads.get(CHILD_SMALL)!),
          paired: pairedRatio(reads, CHILD_BIG, CHILD_SMALL),
        },
        {
          label: `first readStream ${bigLabel} ÷ ${smallLabel}, in-process (separate measure)`,
          ratio: median(reads.get(IN_BIG)!) / median(reads.get(IN_SMALL)!),
          paired: pairedRatio(reads, IN_BIG, IN_SMALL),
        },
      ]),
    );
  } finally {
    await removeTempDir(root);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) {
  const i = process.argv.indexOf(CHILD_FLAG);
  if (i >= 0) await childMain(process.argv[i + 1]!);
  else await main();
}
