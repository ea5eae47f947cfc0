/**
 * Does byte-shuffling float32 tensors before lz4 (as blosc does) pay for itself on trained-model
 * parameters? A study of roundlog 0.1.0's msgpack tensor encodings (still read; new rounds are
 * stored as safetensors, uncompressed). Runs, in one process and on the same data: the msgpack
 * codec without compression, with lz4 where it shrinks, and with a 4-byte shuffle
 * before lz4, and prints size ratios and encode/decode throughput side by side, with a raw
 * write + fsync of the same bytes as the yardstick of the 1.5x round-commit budget.
 *
 *     npx tsx bench/tensor-shuffle.ts [--mib 64] [--reps 5]
 */
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { lz4Compress, lz4DecompressInto } from '../src/codec/lz4.ts';
import { Packr } from 'msgpackr';
import { decodeTensors, encodeTensors, type TensorSet } from '../src/codec/tensors.ts';

type Variant = {
  name: string;
  encode: (tensors: TensorSet) => { encoding: string; bytes: Buffer };
  decode: (encoded: { encoding: string; bytes: Buffer }) => TensorSet;
};

const VARIANTS: readonly Variant[] = [
  {
    name: 'none',
    encode: (tensors) => encodeTensors(tensors, { compress: false }),
    decode: ({ encoding, bytes }) => decodeTensors(encoding, bytes),
  },
  {
    name: 'lz4 (shipped)',
    encode: (tensors) => encodeTensors(tensors),
    decode: ({ encoding, bytes }) => decodeTensors(encoding, bytes),
  },
  { name: 'shuffle4+lz4', encode: encodeShuffled, decode: decodeShuffled },
];

export async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { mib: { type: 'string', default: '64' }, reps: { type: 'string', default: '5' } },
  });
  const elements = (Number(values.mib) * 1024 * 1024) / 4;
  const reps = Number(values.reps);
  const datasets = makeDatasets(elements);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'roundlog-bench-shuffle-'));
  try {
    console.log(
      `tensor codec: shuffle vs plain lz4, ${values.mib} MiB of float32 per data set, ` +
        `median of ${reps} alternating runs`,
    );
    console.log(`node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown cpu'}, ${os.cpus().length} cpus\n`);
    const header = ['data set', 'variant', 'size/raw', 'encode MB/s', 'decode MB/s'];
    const rows: string[][] = [];
    const verdicts = new Map<
      string,
      { sizeRatio: number; encodeVsWrite: number; plainEncodeVsWrite: number; decodeRatio: number }
    >();
    for (const [label, tensors] of datasets) {
      const rawBytes = Object.values(tensors).reduce((sum, t) => sum + t.data.byteLength, 0);
      for (const variant of VARIANTS) checkRoundTrip(variant, tensors);
      const samples = new Map<string, { size: number; encodeMs: number[]; decodeMs: number[] }>();
      const writeMs: number[] = [];
      for (let rep = 0; rep < reps; rep++) {
        for (const variant of VARIANTS) {
          let start = performance.now();
          const encoded = variant.encode(tensors);
          const encodeMs = performance.now() - start;
          start = performance.now();
          variant.decode(encoded);
          const decodeMs = performance.now() - start;
          const entry = samples.get(variant.name) ?? { size: encoded.bytes.length, encodeMs: [], decodeMs: [] };
          entry.encodeMs.push(encodeMs);
          entry.decodeMs.push(decodeMs);
          samples.set(variant.name, entry);
        }
        writeMs.push(writeAndFsync(path.join(dir, 'raw.bin'), tensors));
      }
      const mbPerS = (ms: number[]) => (rawBytes / 1e6 / (median(ms) / 1e3)).toFixed(0);
      for (const [name, { size, encodeMs, decodeMs }] of samples) {
        rows.push([label, name, (size / rawBytes).toFixed(3), mbPerS(encodeMs), mbPerS(decodeMs)]);
      }
      rows.push([label, 'raw write+fsync', '', mbPerS(writeMs), '']);
      const plain = samples.get('lz4 (shipped)')!;
      const shuffled = samples.get('shuffle4+lz4')!;
      verdicts.set(label, {
        sizeRatio: shuffled.size / plain.size,
        encodeVsWrite: median(shuffled.encodeMs) / median(writeMs),
        plainEncodeVsWrite: median(plain.encodeMs) / median(writeMs),
        decodeRatio: median(shuffled.decodeMs) / median(plain.decodeMs),
      });
      rows.push([
        label,
        'shuffle vs lz4',
        `${(shuffled.size / plain.size).toFixed(3)}x size`,
        `${(median(shuffled.encodeMs) / median(plain.encodeMs)).toFixed(2)}x time`,
        `${(median(shuffled.decodeMs) / median(plain.decodeMs)).toFixed(2)}x time`,
      ]);
    }
    printTable(header, rows);
    const model = verdicts.get(MODEL_MIX)!;
    console.log(
      `\non the model mix, shuffle makes the payload ${((1 - model.sizeRatio) * 100).toFixed(1)}% smaller ` +
        `but encoding takes ${model.encodeVsWrite.toFixed(2)}x a raw write+fsync of the same bytes ` +
        `(plain lz4: ${model.plainEncodeVsWrite.toFixed(2)}x) ` +
        `and decoding ${model.decodeRatio.toFixed(2)}x plain lz4's time`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const MODEL_MIX = 'model: 97% dense, 3% gains';

/** Data sets shaped like trained float32 parameters, from a seeded generator. */
function makeDatasets(elements: number): [string, TensorSet][] {
  const random = mulberry32(0x5eed);
  const normal = () => Math.sqrt(-2 * Math.log(random())) * Math.cos(2 * Math.PI * random());
  const fill = (f: (i: number) => number) => Float32Array.from({ length: elements }, (_, i) => f(i));
  const tensor = (data: Float32Array) => ({ dtype: 'float32' as const, shape: [data.length], data });

  const weights = fill(() => 0.02 * normal());
  const nearOne = fill(() => 1 + 0.01 * normal());
  let walk = 0;
  const smooth = fill(() => (walk += 1e-4 * normal()));
  const nextRound = weights.map((w) => w + 1e-4 * normal());
  const bits = new Uint32Array(elements).map(() => (random() * 2 ** 32) >>> 0);
  const noise = new Float32Array(bits.buffer);
  const split = Math.floor(elements * 0.97) & ~3;
  return [
    ['dense weights N(0,0.02)', { w: tensor(weights) }],
    ['same after a round +N(0,1e-4)', { w: tensor(nextRound) }],
    ['norm gains 1+N(0,0.01)', { g: tensor(nearOne) }],
    ['random walk, steps N(0,1e-4)', { w: tensor(smooth) }],
    [MODEL_MIX, { w: tensor(weights.slice(0, split)), g: tensor(nearOne.slice(split)) }],
    ['random bits (control)', { w: tensor(noise) }],
  ];
}

const headerPackr = new Packr({ useRecords: false });

/** The shipped layout with each float32 chunk byte-shuffled before lz4 (kept raw when lz4 does not shrink it). */
function encodeShuffled(tensors: TensorSet): { encoding: string; bytes: Buffer } {
  const entries = [];
  const chunks: Buffer[] = [];
  for (const [name, { dtype, shape, data }] of Object.entries(tensors)) {
    const raw = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const planes = Buffer.allocUnsafeSlow(raw.length);
    shuffle4(raw, planes);
    const chunk = lz4Compress(planes) ?? raw;
    chunks.push(chunk);
    entries.push({ name, dtype, shape, size: chunk.length });
  }
  const header = headerPackr.pack({ v: 1, tensors: entries });
  const bytes = Buffer.allocUnsafeSlow(4 + header.length + chunks.reduce((sum, c) => sum + c.length, 0));
  bytes.writeUInt32LE(header.length, 0);
  let offset = 4 + header.copy(bytes, 4);
  for (const chunk of chunks) offset += chunk.copy(bytes, offset);
  return { encoding: 'tensors/msgpack+shuffle4+lz4', bytes };
}

function decodeShuffled({ bytes }: { encoding: string; bytes: Buffer }): TensorSet {
  const headerLength = bytes.readUInt32LE(0);
  const header = headerPackr.unpack(bytes.subarray(4, 4 + headerLength)) as {
    tensors: { name: string; shape: number[]; size: number }[];
  };
  let offset = 4 + headerLength;
  const out: TensorSet = {};
  for (const { name, shape, size } of header.tensors) {
    const rawBytes = shape.reduce((p, d) => p * d, 4);
    const chunk = bytes.subarray(offset, offset + size);
    offset += size;
    const target = Buffer.allocUnsafeSlow(rawBytes);
    if (size === rawBytes) {
      chunk.copy(target);
    } else {
      const planes = Buffer.allocUnsafeSlow(rawBytes);
      if (lz4DecompressInto(chunk, planes) !== rawBytes) throw new Error(`bad lz4 block for ${name}`);
      unshuffle4(planes, target);
    }
    Object.assign(out, { [name]: { dtype: 'float32', shape, data: new Float32Array(target.buffer, 0, rawBytes / 4) } });
  }
  return out;
}

/**
 * Byte planes of 4-byte elements: byte k of element i goes to `k * n + i`. Works a word at a
 * time (4 elements in, one word per plane out), which runs about 5x faster than a byte loop.
 */
function shuffle4(src: Buffer, dst: Buffer): void {
  const n = src.length / 4;
  if (n % 4 !== 0 || src.byteOffset % 4 !== 0 || dst.byteOffset % 4 !== 0) {
    throw new Error('shuffle4 in this bench needs a multiple of 4 aligned elements');
  }
  const words = new Uint32Array(src.buffer, src.byteOffset, n);
  const out = new Uint32Array(dst.buffer, dst.byteOffset, n);
  const plane = n / 4;
  for (let i = 0; i < plane; i++) {
    const a = words[4 * i]!,
      b = words[4 * i + 1]!,
      c = words[4 * i + 2]!,
      d = words[4 * i + 3]!;
    out[i] = (a & 0xff) | ((b & 0xff) << 8) | ((c & 0xff) << 16) | ((d & 0xff) << 24);
    out[plane + i] = ((a >>> 8) & 0xff) | (b & 0xff00) | ((c & 0xff00) << 8) | ((d & 0xff00) << 16);
    out[2 * plane + i] = ((a >>> 16) & 0xff) | ((b >>> 8) & 0xff00) | (c & 0xff0000) | ((d & 0xff0000) << 8);
    out[3 * plane + i] = (a >>> 24) | ((b >>> 16) & 0xff00) | ((c >>> 8) & 0xff0000) | (d & 0xff000000);
  }
}

function unshuffle4(src: Buffer, dst: Buffer): void {
  const n = src.length / 4;
  const planes = new Uint32Array(src.buffer, src.byteOffset, n);
  const out = new Uint32Array(dst.buffer, dst.byteOffset, n);
  const plane = n / 4;
  for (let i = 0; i < plane; i++) {
    const a = planes[i]!,
      b = planes[plane + i]!,
      c = planes[2 * plane + i]!,
      d = planes[3 * plane + i]!;
    out[4 * i] = (a & 0xff) | ((b & 0xff) << 8) | ((c & 0xff) << 16) | ((d & 0xff) << 24);
    out[4 * i + 1] = ((a >>> 8) & 0xff) | (b & 0xff00) | ((c & 0xff00) << 8) | ((d & 0xff00) << 16);
    out[4 * i + 2] = ((a >>> 16) & 0xff) | ((b >>> 8) & 0xff00) | (c & 0xff0000) | ((d & 0xff0000) << 8);
    out[4 * i + 3] = (a >>> 24) | ((b >>> 16) & 0xff00) | ((c >>> 8) & 0xff0000) | (d & 0xff000000);
  }
}

function checkRoundTrip(variant: Variant, tensors: TensorSet): void {
  const decoded = variant.decode(variant.encode(tensors));
  for (const [name, { data }] of Object.entries(tensors)) {
    const back = decoded[name]?.data;
    const same =
      back !== undefined &&
      Buffer.compare(
        Buffer.from(data.buffer, data.byteOffset, data.byteLength),
        Buffer.from(back.buffer, back.byteOffset, back.byteLength),
      ) === 0;
    if (!same) throw new Error(`${variant.name} did not round-trip tensor ${name}`);
  }
}

function writeAndFsync(file: string, tensors: TensorSet): number {
  const start = performance.now();
  const fd = openSync(file, 'w');
  for (const { data } of Object.values(tensors)) {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    for (let offset = 0; offset < bytes.length;)
      offset += writeSync(fd, bytes, offset, Math.min(8 << 20, bytes.length - offset));
  }
  fsyncSync(fd);
  closeSync(fd);
  return performance.now() - start;
}

function mulberry32(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 2 ** 32;
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]?.length ?? 0)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
