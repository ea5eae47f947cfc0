/**
 * Shared helpers of the benchmarks: temp dirs, timing, an interleaved repetition runner,
 * medians and ratios, a results table, and a realistic ~200-byte round event.
 *
 * Rule of the house: this machine is noisy, so a bench never reports a lone absolute time as a
 * result. It runs its candidate and a baseline alternately in the same invocation and reports
 * medians and the ratio between them.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import type { EventData } from '../src/log/types.ts';
import type { FileEventLog, FileEventLogOptions } from '../src/log/file/options.ts';

// ---------------------------------------------------------------------------------------------
// Quick mode

/** `--quick` on the command line or `ROUNDLOG_BENCH_QUICK=1`: fewer, shorter repetitions. */
export function isQuick(): boolean {
  const env = process.env.ROUNDLOG_BENCH_QUICK;
  return process.argv.includes('--quick') || env === '1' || env === 'true';
}

/** Value of `--name=value` or `--name value` on the command line, if any. */
export function argValue(name: string): string | undefined {
  const argv = process.argv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === `--${name}`) return argv[i + 1];
    if (arg.startsWith(`--${name}=`)) return arg.slice(name.length + 3);
  }
  return undefined;
}

/** `--reps=N` overrides a bench's repetition count. */
export function repsOr(defaultReps: number): number {
  const raw = argValue('reps');
  const n = raw === undefined ? NaN : Number(raw);
  return Number.isInteger(n) && n > 0 ? n : defaultReps;
}

// ---------------------------------------------------------------------------------------------
// Temp dirs (always under os.tmpdir(), always removed, even on Ctrl-C)

const liveTempDirs = new Set<string>();
let cleanupHooked = false;

function hookCleanup(): void {
  if (cleanupHooked) return;
  cleanupHooked = true;
  process.on('exit', () => {
    for (const dir of liveTempDirs) fs.rmSync(dir, { recursive: true, force: true });
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => process.exit(signal === 'SIGINT' ? 130 : 143));
  }
}

export async function makeTempDir(label: string): Promise<string> {
  hookCleanup();
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `roundlog-bench-${label}-`));
  liveTempDirs.add(dir);
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  await fsp.rm(dir, { recursive: true, force: true });
  liveTempDirs.delete(dir);
}

export async function withTempDir<T>(label: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await makeTempDir(label);
  try {
    return await fn(dir);
  } finally {
    await removeTempDir(dir);
  }
}

/** Total size of the regular files under `dir`, recursively. */
export async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await fsp.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await dirBytes(full);
    else if (entry.isFile()) total += (await fsp.stat(full)).size;
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// Timing

export function now(): bigint {
  return process.hrtime.bigint();
}

export function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Milliseconds taken by `fn`. */
export async function timeMs(fn: () => unknown): Promise<number> {
  const start = now();
  await fn();
  return msSince(start);
}

/** Events per second for `count` events done in `ms`. */
export function perSecond(count: number, ms: number): number {
  return (count * 1000) / ms;
}

// ---------------------------------------------------------------------------------------------
// Statistics

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function min(values: readonly number[]): number {
  return values.length === 0 ? NaN : Math.min(...values);
}

export function max(values: readonly number[]): number {
  return values.length === 0 ? NaN : Math.max(...values);
}

// ---------------------------------------------------------------------------------------------
// Interleaved repetitions

export type Contender = {
  name: string;
  /** One repetition; returns the measured value (its own timing, setup excluded). */
  run: (rep: number) => Promise<number>;
};

export type Samples = Map<string, number[]>;

/**
 * Runs every contender `reps` times, interleaved: repetition r runs all contenders once, in an
 * order rotated by r, so drift of the machine (other load, page cache, thermal) hits each of
 * them alike. `warmup` leading repetitions are run the same way and discarded.
 */
export async function interleave(
  contenders: readonly Contender[],
  options: { reps: number; warmup?: number; onRep?: (rep: number) => void },
): Promise<Samples> {
  const samples: Samples = new Map(contenders.map((c) => [c.name, []]));
  const warmup = options.warmup ?? 1;
  for (let r = -warmup; r < options.reps; r++) {
    const k = ((r % contenders.length) + contenders.length) % contenders.length;
    const order = [...contenders.slice(k), ...contenders.slice(0, k)];
    for (const contender of order) {
      const value = await contender.run(r);
      if (r >= 0) samples.get(contender.name)!.push(value);
    }
    if (r >= 0) options.onRep?.(r);
  }
  return samples;
}

/** Median over repetitions of the per-repetition ratio a/b (pairs samples of the same repetition). */
export function pairedRatio(samples: Samples, a: string, b: string): number {
  const as = samples.get(a) ?? [];
  const bs = samples.get(b) ?? [];
  const n = Math.min(as.length, bs.length);
  return median(Array.from({ length: n }, (_, i) => as[i]! / bs[i]!));
}

export function medianOf(samples: Samples, name: string): number {
  const values = samples.get(name);
  if (values === undefined) throw new Error(`no samples named ${name}`);
  return median(values);
}

// ---------------------------------------------------------------------------------------------
// Formatting

export function formatNumber(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 100) return Math.round(value).toLocaleString('en-US');
  return value.toPrecision(digits);
}

/** `a / b` as `1.23x`. */
export function formatRatio(a: number, b: number): string {
  const ratio = a / b;
  if (!Number.isFinite(ratio)) return 'n/a';
  return `${ratio >= 10 ? ratio.toFixed(1) : ratio.toFixed(2)}x`;
}

/** A plain-text table; the first column and any in `leftColumns` are left-aligned, the rest right. */
export function formatTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  leftColumns: readonly number[] = [],
): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === 0 || leftColumns.includes(i) ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** A table of the samples: one row per contender with median, min, max and n. */
export function samplesTable(samples: Samples, unit: string, names?: readonly string[]): string {
  const rows = (names ?? [...samples.keys()]).map((name) => {
    const values = samples.get(name) ?? [];
    return [
      name,
      formatNumber(median(values)),
      formatNumber(min(values)),
      formatNumber(max(values)),
      String(values.length),
    ];
  });
  return formatTable([`${unit}`, 'median', 'min', 'max', 'n'], rows);
}

export type RatioLine = {
  label: string;
  /** Ratio of the medians. */
  ratio: number;
  /** Median of the per-repetition ratios, when the two sides were run in the same repetitions. */
  paired?: number;
  /** e.g. `<= 1.5x`; printed beside the ratio with whether the ratio of medians meets it. */
  target?: { text: string; met: (ratio: number) => boolean };
};

export function ratioTable(lines: readonly RatioLine[]): string {
  const rows = lines.map((l) => {
    const target = l.target === undefined ? '' : `${l.target.text} ${l.target.met(l.ratio) ? '(met)' : '(NOT met)'}`;
    return [l.label, formatRatio(l.ratio, 1), l.paired === undefined ? '' : formatRatio(l.paired, 1), target];
  });
  return formatTable(['ratio', 'of medians', 'paired median', 'target'], rows, [3]);
}

export function heading(title: string): void {
  console.log(`\n=== ${title} ===`);
}

// ---------------------------------------------------------------------------------------------
// A realistic round event (~200 msgpack bytes)

/** Small deterministic PRNG, so every run writes the same payloads. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const EXPERIMENT = 'cifar10-fedavg-s42';

/**
 * The i-th update event of a federated round: round and node ids, training metrics, and the
 * content hash of the model update stored in the blob store. About 200 bytes as msgpack.
 */
export function roundEvent(i: number, random: () => number = prng(i + 1)): EventData {
  const node = i % 64;
  return {
    type: 'ClientUpdateReceived',
    data: {
      experiment: EXPERIMENT,
      round: Math.floor(i / 64),
      node: `node-${String(node).padStart(3, '0')}`,
      peers: [`node-${String((node + 7) % 64).padStart(3, '0')}`],
      metrics: {
        loss: random() * 2,
        accuracy: random(),
        samples: 256 + Math.floor(random() * 1024),
        ms: Math.floor(random() * 5000),
      },
      update: createHash('sha256').update(`update-${i}`).digest('hex'),
    },
  };
}

/** `count` consecutive round events starting at index `from`. */
export function roundEvents(from: number, count: number): EventData[] {
  const events = new Array<EventData>(count);
  for (let k = 0; k < count; k++) events[k] = roundEvent(from + k);
  return events;
}

// ---------------------------------------------------------------------------------------------
// The log under test

export type OpenFileEventLog = (options: FileEventLogOptions) => Promise<FileEventLog>;

/** `openFileEventLog` from src/log/file, loaded lazily so a missing log fails one bench only. */
export async function loadFileLog(): Promise<OpenFileEventLog> {
  try {
    const mod = await import('../src/log/file/index.ts');
    return mod.openFileEventLog;
  } catch (error) {
    throw new Error(
      `cannot load the file event log from src/log/file/index.ts (${(error as Error).message}); ` +
        `this bench needs it`,
      { cause: error },
    );
  }
}

/** One line saying which mode runs, for the top of a bench's output. */
export function describeMode(): string {
  return isQuick() ? 'quick mode (--quick / ROUNDLOG_BENCH_QUICK=1)' : 'full mode (pass --quick for a short run)';
}
