/**
 * The two LZ4 block backends of src/codec/lz4.ts side by side, in one process, on the same data:
 * `lz4` (C, built by node-gyp; the optional fast path) and `lz4-napi` (Rust lz4_flex, prebuilt;
 * the fallback every install has). Prints compress and decompress throughput of each, alternating
 * repetitions, and the ratio lz4-napi ÷ lz4 (above 1 = the prebuilt one is faster).
 *
 *     npx tsx bench/lz4-backends.ts [--quick] [--reps=N]
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import { Packr } from 'msgpackr';
import { formatTable, isQuick, repsOr } from './lib.ts';

type Codec = { compress(input: Buffer): Buffer; decompress(block: Buffer, length: number): Buffer };

const require = createRequire(import.meta.url);

function cCodec(): Codec | null {
  let lz4: {
    encodeBound(n: number): number;
    encodeBlock(i: Buffer, o: Buffer): number;
    decodeBlock(i: Buffer, o: Buffer): number;
  };
  try {
    lz4 = require('lz4');
  } catch {
    return null;
  }
  return {
    compress(input) {
      const output = Buffer.allocUnsafe(lz4.encodeBound(input.length));
      return output.subarray(0, lz4.encodeBlock(input, output));
    },
    decompress(block, length) {
      const output = Buffer.allocUnsafe(length);
      lz4.decodeBlock(block, output);
      return output;
    },
  };
}

function napiCodec(): Codec {
  const lz4 = require('lz4-napi') as { compressSync(d: Buffer): Buffer; uncompressSync(d: Buffer): Buffer };
  return {
    compress: (input) => lz4.compressSync(input).subarray(4),
    decompress(block, length) {
      const prefixed = Buffer.allocUnsafe(4 + block.length);
      prefixed.writeUInt32LE(length, 0);
      block.copy(prefixed, 4);
      return lz4.uncompressSync(prefixed);
    },
  };
}

function datasets(quick: boolean): Record<string, Buffer> {
  let s = 7;
  const random = () => ((s ^= s << 13), (s ^= s >>> 17), (s ^= s << 5), (s >>> 0) / 4294967296);
  const events = Array.from({ length: 60 }, (_, i) => ({
    node: `hospital-${i % 7}`,
    round: i,
    metrics: { loss: random(), accuracy: random(), samples: Math.floor(random() * 1000) },
    tags: ['#clinical', '#heart'],
  }));
  const floats = quick ? 1 << 18 : 1 << 20;
  return {
    'msgpack value, 6 KB': new Packr({ useRecords: false }).pack({ events }),
    [`float32 noise, ${(floats * 4) >> 20 || 1} MiB`]: Buffer.from(
      new Float32Array(floats).map(() => (random() - 0.5) * 0.1).buffer,
    ),
    [`float32 80% zeros, ${(floats * 4) >> 20 || 1} MiB`]: Buffer.from(
      new Float32Array(floats).map(() => (random() < 0.8 ? 0 : random() - 0.5)).buffer,
    ),
  };
}

function mbPerSecond(bytes: number, fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return bytes / (Number(process.hrtime.bigint() - start) / 1e9) / 1e6;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

export async function main(): Promise<void> {
  const quick = isQuick();
  const reps = repsOr(quick ? 3 : 7);
  const c = cCodec();
  const napi = napiCodec();
  console.log(`lz4-backends: raw LZ4 blocks, C lz4 vs prebuilt lz4-napi, median of ${reps} alternating runs`);
  console.log(`node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown cpu'}, ${os.cpus().length} cpus\n`);
  if (c === null) {
    console.log(
      'the C `lz4` package is not installed here (cd bench && npm install): lz4-napi alone, against a plain copy\n',
    );
  }
  const baseline: Codec = c ?? { compress: (input) => Buffer.from(input), decompress: (block) => Buffer.from(block) };
  const baselineName = c === null ? 'copy' : 'lz4';
  const rows: string[][] = [];
  for (const [name, data] of Object.entries(datasets(quick))) {
    const iterations = Math.max(3, Math.floor((quick ? 16e6 : 64e6) / data.length));
    const results = {
      [baselineName]: { c: [] as number[], d: [] as number[], size: 0 },
      'lz4-napi': { c: [] as number[], d: [] as number[], size: 0 },
    };
    for (let rep = 0; rep < reps; rep++) {
      for (const [label, codec] of [
        [baselineName, baseline],
        ['lz4-napi', napi],
      ] as const) {
        let block = codec.compress(data);
        results[label]!.c.push(
          mbPerSecond(data.length * iterations, () => {
            for (let i = 0; i < iterations; i++) block = codec.compress(data);
          }),
        );
        let out = codec.decompress(block, data.length);
        results[label]!.d.push(
          mbPerSecond(data.length * iterations, () => {
            for (let i = 0; i < iterations; i++) out = codec.decompress(block, data.length);
          }),
        );
        if (!out.equals(data)) throw new Error(`${label} did not round-trip ${name}`);
        results[label]!.size = block.length;
      }
    }
    const base = results[baselineName]!;
    const other = results['lz4-napi'];
    for (const [label, r] of Object.entries(results)) {
      rows.push([name, label, (r.size / data.length).toFixed(3), median(r.c).toFixed(0), median(r.d).toFixed(0)]);
    }
    rows.push([
      name,
      `lz4-napi ÷ ${baselineName}`,
      '',
      `${(median(other.c) / median(base.c)).toFixed(2)}x`,
      `${(median(other.d) / median(base.d)).toFixed(2)}x`,
    ]);
  }
  console.log(formatTable(['data', 'backend', 'size/raw', 'compress MB/s', 'decompress MB/s'], rows, [0, 1]));
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) await main();
