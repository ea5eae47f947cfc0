/**
 * Storing 100 MB of float32 parameters in the file blob store, against the baseline of writing
 * and fsyncing the same bytes to a plain file, in one run with alternating repetitions. Target:
 * a put within 1.5x of the baseline. The parameters are encoded as new rounds store them
 * (`tensors/safetensors`, as `putTensors` does).
 *
 *     npx tsx bench/blob-put.ts [--mb 100] [--reps 7]
 */
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { openFileBlobStore } from '../src/blobs/file.ts';
import { SAFETENSORS_ENCODING, encodeSafetensors, encodeSafetensorsChunks } from '../src/codec/safetensors.ts';
import { argValue, isQuick, repsOr } from './lib.ts';

const TARGET_RATIO = 1.5;

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;
const WRITE_CHUNK_BYTES = 8 * 1024 * 1024;

export async function main(): Promise<void> {
  const elements = Math.floor((Number(argValue('mb') ?? '100') * 1e6) / 4);
  const reps = repsOr(isQuick() ? 3 : 7);
  const params = normalFloat32(elements, 0.02);
  const tensors = { 'model.weight': { dtype: 'float32' as const, shape: [elements], data: params } };
  const raw = Buffer.from(params.buffer, params.byteOffset, params.byteLength);

  const root = mkdtempSync(path.join(os.tmpdir(), 'roundlog-bench-blob-put-'));
  try {
    const store = await openFileBlobStore({ dir: path.join(root, 'blobs') });
    const baselineFile = path.join(root, 'baseline.bin');
    const timings = {
      baseline: [] as number[],
      putRaw: [] as number[],
      putAgain: [] as number[],
      encode: [] as number[],
      putEncoded: [] as number[],
      encodeChunks: [] as number[],
      putStream: [] as number[],
      encodeChunksAndPut: [] as number[],
    };
    let encoding = '';
    let encodedBytes = 0;

    const random = mulberry32(0xb10b);
    for (let rep = -1; rep < reps; rep++) {
      const warmUp = rep < 0;
      const record = (series: number[], ms: number) => warmUp || series.push(ms);
      const runs: (() => Promise<void>)[] = [
        async () => {
          record(timings.baseline, writeAndFsync(baselineFile, raw));
          unlinkSync(baselineFile);
        },
        async () => {
          let start = performance.now();
          const { ref, created } = await store.put(raw);
          record(timings.putRaw, performance.now() - start);
          if (!created) throw new Error('put of new bytes reported created: false');
          start = performance.now();
          await store.put(raw);
          record(timings.putAgain, performance.now() - start);
          await store.delete(ref.sha256);
        },
        async () => {
          let start = performance.now();
          const encoded = encodeSafetensors(tensors);
          record(timings.encode, performance.now() - start);
          start = performance.now();
          const { ref } = await store.put(encoded, { encoding: SAFETENSORS_ENCODING });
          record(timings.putEncoded, performance.now() - start);
          encoding = SAFETENSORS_ENCODING;
          encodedBytes = encoded.length;
          await store.delete(ref.sha256);
        },
        async () => {
          const start = performance.now();
          const { encoding, chunks } = encodeSafetensorsChunks(tensors);
          const encoded = performance.now();
          const { ref } = await store.putStream(chunks, { encoding });
          record(timings.encodeChunks, encoded - start);
          record(timings.putStream, performance.now() - encoded);
          record(timings.encodeChunksAndPut, performance.now() - start);
          await store.delete(ref.sha256);
        },
      ];
      // A fresh order every repetition, so that no variant always runs first or after the same
      // neighbour, and a full GC before each run, so that no run pays for another's garbage
      // (the one-buffer encode leaves 100 MB behind it).
      for (const run of shuffled(runs, random)) {
        collectGarbage();
        await run();
      }
    }
    await store.close();

    const base = median(timings.baseline);
    const encodedTotal = timings.encode.map((ms, i) => ms + timings.putEncoded[i]!);
    console.log(
      `blob put: ${(raw.length / 1e6).toFixed(0)} MB of float32 ~ N(0, 0.02), median of ${reps} alternating runs`,
    );
    console.log(
      `node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown cpu'}, ${os.cpus().length} cpus, ` +
        `temp dir on ${os.tmpdir()}`,
    );
    console.log(
      `tensor codec output: ${encoding}, ${encodedBytes} bytes (${(encodedBytes / raw.length).toFixed(4)} of raw)\n`,
    );
    const rows: [string, number[]][] = [
      ['baseline: write + fsync to a plain file', timings.baseline],
      ['put raw bytes (new blob)', timings.putRaw],
      ['put same bytes again (stored already)', timings.putAgain],
      ['encode with tensor codec', timings.encode],
      ['put encoded bytes (new blob)', timings.putEncoded],
      ['encode + put', encodedTotal],
      ['encode as chunks (no copy)', timings.encodeChunks],
      ['putStream of the chunks (new blob)', timings.putStream],
      ['encode as chunks + putStream', timings.encodeChunksAndPut],
    ];
    const width = Math.max(...rows.map(([label]) => label.length));
    console.log(`${'operation'.padEnd(width)}  median ms    min ms    max ms   MB/s  vs baseline`);
    for (const [label, series] of rows) {
      const ms = median(series);
      console.log(
        `${label.padEnd(width)}  ${ms.toFixed(1).padStart(9)}  ${Math.min(...series)
          .toFixed(1)
          .padStart(8)}  ` +
          `${Math.max(...series)
            .toFixed(1)
            .padStart(8)}  ${(raw.length / 1e3 / ms).toFixed(0).padStart(5)}  ${(ms / base).toFixed(2).padStart(10)}x`,
      );
    }
    const ratioRaw = median(timings.putRaw) / base;
    const ratioChunks = median(timings.encodeChunksAndPut) / base;
    const ratioBuffer = median(encodedTotal) / base;
    console.log(
      `\nRATIO put/baseline = ${ratioRaw.toFixed(2)}x (raw bytes), ` +
        `${ratioChunks.toFixed(2)}x (tensor codec chunks + putStream), ` +
        `${ratioBuffer.toFixed(2)}x (encodeSafetensors into one buffer + put); ` +
        `target <= ${TARGET_RATIO}x: ${ratioRaw <= TARGET_RATIO && ratioChunks <= TARGET_RATIO ? 'met' : 'NOT met'}`,
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function writeAndFsync(file: string, bytes: Buffer): number {
  const start = performance.now();
  const fd = openSync(file, 'w');
  for (let offset = 0; offset < bytes.length;) {
    offset += writeSync(fd, bytes, offset, Math.min(WRITE_CHUNK_BYTES, bytes.length - offset));
  }
  fsyncSync(fd);
  closeSync(fd);
  return performance.now() - start;
}

/** Normally distributed float32 values from a seeded generator, like trained dense-layer weights. */
function normalFloat32(length: number, std: number): Float32Array {
  const uniform = mulberry32(0x5eed);
  const values = new Float32Array(length);
  for (let i = 0; i < length; i++)
    values[i] = std * Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  return values;
}

/** Uniform numbers in (0, 1) from a seed. */
function mulberry32(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 2 ** 32;
  };
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
