/**
 * `roundlog serve` under load, against the in-process library doing the same work, in the same
 * invocation (this machine is noisy: the ratios are the result, the absolute figures context).
 *
 * The service is a real `roundlog serve --port 0` child process on its own root; clients are HTTP
 * requests from this process (node:http, keep-alive), sending parameters as safetensors bodies
 * streamed from the tensors' own memory (`encodeSafetensorsChunks`, no copy). The library is
 * `openRoundLog` of the package on another root, in this process. Both commit the same rounds: the
 * parameters (stored, hashed, fsynced), the `RoundCompleted` event (fsynced), a breakpoint folder
 * and the TensorBoard scalars.
 *
 * 1. Large rounds: one client records rounds of `--mb` (100) MB of float32 parameters, new bytes each
 *    round (perturbed untimed before each run, as an SGD step would). Service = POST /v1/params (the
 *    body streamed) + POST /v1/experiments/E/rounds; library = `handle.recordRound`. Interleaved
 *    repetitions; the ratio service ÷ library of the medians. Target: at most 1.3x.
 * 2. Small rounds: `--clients` (8) concurrent clients, each with its own experiment and run, record
 *    `--rounds` (40) rounds of 4 KB parameters each (two requests per round). Service: requests/s,
 *    rounds/s and the p50/p99 latency of a round; library: the same number of handles recording
 *    concurrently in this process; the ratio of rounds/s (library ÷ service: how much slower the
 *    service is).
 * 3. Memory: a fresh server, then `--uploads` (16) concurrent uploads of `--mb` MB each (distinct
 *    bytes, generated while sending), each recorded as a round of its own experiment. The server's
 *    peak resident memory (VmHWM of /proc/PID/status) before and after, and the peak ÷ one upload.
 *
 *   npx tsx bench/serve-load.ts [--quick] [--reps=N] [--mb=100] [--clients=8] [--rounds=40] [--uploads=16]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { encodeSafetensorsChunks } from '../src/codec/safetensors.ts';
import type { TensorSet } from '../src/codec/tensors.ts';
import { openRoundLog, type ExperimentHandle } from '../src/projections/index.ts';
import {
  argValue,
  describeMode,
  formatNumber,
  formatTable,
  heading,
  interleave,
  isQuick,
  makeTempDir,
  medianOf,
  msSince,
  now,
  pairedRatio,
  ratioTable,
  removeTempDir,
  repsOr,
  samplesTable,
} from './lib.ts';
import { gcFunction, modelParams, mulberry32, perturb, rawBytesOf, roundMetrics, roundState } from './round-commit.ts';

const TARGET_RATIO = 1.3;
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SERVICE = 'service: POST /v1/params (streamed) + POST rounds';
const LIBRARY = 'library: handle.recordRound (in process)';

// ---------------------------------------------------------------------------------------------
// The server child and HTTP

type Server = { child: ChildProcess; url: URL; pid: number };

/** Starts `roundlog serve --port 0` on `root`; resolves with the URL it prints as its first line. */
async function startServer(root: string): Promise<Server> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--root', root, '--port', '0'],
    {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const url = await new Promise<URL>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8');
    const onData = (text: string) => {
      out += text;
      const newline = out.indexOf('\n');
      if (newline < 0) return;
      child.stdout!.off('data', onData);
      child.stdout!.resume();
      try {
        resolve(new URL(out.slice(0, newline).trim()));
      } catch (error) {
        reject(error);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code, signal) => reject(new Error(`roundlog serve exited (${code ?? signal}) before its URL`)));
  });
  return { child, url, pid: child.pid! };
}

async function stopServer(server: Server): Promise<void> {
  if (server.child.exitCode !== null) return;
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGTERM');
  await exited;
}

/** Resident and peak resident memory of a process, in bytes (Linux /proc). */
async function memoryOf(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await fsp.readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

type Reply = { status: number; body: unknown };

/** One request; `body` is JSON (an object) or chunks sent as they come (an iterable of buffers). */
function request(
  base: URL,
  method: string,
  pathname: string,
  body?: unknown,
  chunks?: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  length?: number,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const json = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const headers: http.OutgoingHttpHeaders =
      json !== null
        ? { 'content-type': 'application/json', 'content-length': json.length }
        : chunks !== undefined
          ? { 'content-type': 'application/octet-stream', 'content-length': length }
          : {};
    const req = http.request(new URL(pathname, base), { method, agent, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (part: Buffer) => parts.push(part));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = text.length > 0 ? JSON.parse(text) : null;
        } catch {
          // not JSON: kept as text
        }
        if (res.statusCode! >= 300) {
          reject(new Error(`${method} ${pathname}: HTTP ${res.statusCode} ${text.slice(0, 300)}`));
        } else resolve({ status: res.statusCode!, body: parsed });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (json !== null) req.end(json);
    else if (chunks !== undefined) {
      void (async () => {
        try {
          for await (const chunk of chunks) {
            if (!req.write(chunk)) await new Promise((drained) => req.once('drain', drained));
          }
          req.end();
        } catch (error) {
          req.destroy(error as Error);
        }
      })();
    } else req.end();
  });
}

/** A client's experiment and run on the service. */
type RemoteRun = { experiment: string; runId: string; round: number };

async function remoteRun(base: URL, folder: string): Promise<RemoteRun> {
  const created = (await request(base, 'POST', '/v1/experiments', { folder })).body as {
    experiment: { folder: string };
  };
  const experiment = created.experiment.folder;
  const started = (
    await request(base, 'POST', `/v1/experiments/${experiment}/runs`, {
      owner: { host: os.hostname(), pid: process.pid, name: 'bench' },
    })
  ).body as { runId: string; roundCurrent: number };
  return { experiment, runId: started.runId, round: started.roundCurrent };
}

/**
 * A round through the service: the parameters streamed, then the round. Returns the two requests'
 * times in ms (the upload, then the round's record).
 */
async function remoteRound(
  base: URL,
  run: RemoteRun,
  chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  length: number,
): Promise<{ uploadMs: number; recordMs: number }> {
  const t0 = now();
  const uploaded = (await request(base, 'POST', '/v1/params', undefined, chunks, length)).body as { sha256: string };
  const uploadMs = msSince(t0);
  const t1 = now();
  const round = run.round;
  await request(base, 'POST', `/v1/experiments/${run.experiment}/rounds`, {
    round,
    params: { sha256: uploaded.sha256 },
    metrics: roundMetrics(round),
    state: roundState(round),
    runId: run.runId,
    breakpoint: true,
  });
  run.round++;
  return { uploadMs, recordMs: msSince(t1) };
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

// ---------------------------------------------------------------------------------------------

export async function main(): Promise<void> {
  const quick = isQuick();
  const reps = repsOr(quick ? 3 : 9);
  const mb = Number(argValue('mb') ?? 100);
  const clients = Number(argValue('clients') ?? 8);
  const smallRounds = Number(argValue('rounds') ?? (quick ? 10 : 40));
  const uploads = Number(argValue('uploads') ?? 16);
  const collectGarbage = gcFunction();
  heading(`serve-load: roundlog serve against the in-process library`);
  console.log(`${describeMode()}; ${reps} interleaved repetitions (+1 warm-up)`);
  console.log(`node ${process.version}, ${os.cpus()[0]?.model.split(' ')[0] ?? 'cpu'}, ${os.cpus().length} cpus`);

  const dir = await makeTempDir('serve-load');
  let server: Server | null = null;
  try {
    const serviceRoot = path.join(dir, 'service');
    const libraryRoot = path.join(dir, 'library');
    server = await startServer(serviceRoot);
    const base = server.url;
    const rl = await openRoundLog({ root: libraryRoot });
    try {
      // ---- 1. large rounds ----------------------------------------------------------------------
      const params = modelParams(Math.floor((mb * 1e6) / 4));
      const bytes = rawBytesOf(params);
      const random = mulberry32(0xbeef);
      const big = await remoteRun(base, 'large');
      const handle = await rl.createExperiment({ folder: 'large' });
      const prepare = () => {
        perturb(params, random);
        collectGarbage();
      };
      const samples = await interleave(
        [
          {
            name: SERVICE,
            run: async () => {
              prepare();
              const t0 = now();
              const encoded = encodeSafetensorsChunks(params);
              await remoteRound(base, big, encoded.chunks, encoded.byteLength);
              return msSince(t0);
            },
          },
          {
            name: LIBRARY,
            run: async () => {
              prepare();
              const round = handle.roundCurrent();
              const t0 = now();
              await handle.recordRound({
                round,
                params,
                state: roundState(round),
                metrics: roundMetrics(round),
                breakpoint: true,
              });
              return msSince(t0);
            },
          },
        ],
        { reps, warmup: 1 },
      );
      console.log();
      console.log(`1. one client, rounds of ${formatNumber(bytes / 1e6)} MB float32 (new bytes every round)`);
      console.log(samplesTable(samples, 'ms per round', [SERVICE, LIBRARY]));
      const largeRatio = medianOf(samples, SERVICE) / medianOf(samples, LIBRARY);
      console.log(
        `throughput: service ${formatNumber(bytes / 1e6 / (medianOf(samples, SERVICE) / 1000))} MB/s, ` +
          `library ${formatNumber(bytes / 1e6 / (medianOf(samples, LIBRARY) / 1000))} MB/s`,
      );

      // ---- 2. small rounds, concurrent clients ---------------------------------------------------
      const smallRandom = mulberry32(0x5a11);
      const freshSmall = (): TensorSet => {
        const data = new Float32Array(1024);
        for (let i = 0; i < data.length; i++) data[i] = smallRandom();
        return { w: { dtype: 'float32', shape: [1024], data } };
      };
      const remotes = await Promise.all(Array.from({ length: clients }, (_, i) => remoteRun(base, `small-${i}`)));
      const locals: ExperimentHandle[] = [];
      for (let i = 0; i < clients; i++) locals.push(await rl.createExperiment({ folder: `small-${i}` }));
      const roundLatencies: number[] = [];
      const requestLatencies: number[] = [];
      const smallSamples = await interleave(
        [
          {
            name: SERVICE,
            run: async (rep) => {
              const t0 = now();
              await Promise.all(
                remotes.map(async (run) => {
                  for (let k = 0; k < smallRounds; k++) {
                    const encoded = encodeSafetensorsChunks(freshSmall());
                    const { uploadMs, recordMs } = await remoteRound(base, run, encoded.chunks, encoded.byteLength);
                    if (rep >= 0) {
                      requestLatencies.push(uploadMs, recordMs);
                      roundLatencies.push(uploadMs + recordMs);
                    }
                  }
                }),
              );
              return msSince(t0);
            },
          },
          {
            name: LIBRARY,
            run: async () => {
              const t0 = now();
              await Promise.all(
                locals.map(async (local) => {
                  for (let k = 0; k < smallRounds; k++) {
                    const round = local.roundCurrent();
                    await local.recordRound({
                      round,
                      params: freshSmall(),
                      state: roundState(round),
                      metrics: roundMetrics(round),
                      breakpoint: true,
                    });
                  }
                }),
              );
              return msSince(t0);
            },
          },
        ],
        { reps, warmup: 1 },
      );
      const roundsPerRep = clients * smallRounds;
      const serviceRoundsPerSecond = roundsPerRep / (medianOf(smallSamples, SERVICE) / 1000);
      const libraryRoundsPerSecond = roundsPerRep / (medianOf(smallSamples, LIBRARY) / 1000);
      console.log();
      console.log(`2. ${clients} concurrent clients, ${smallRounds} rounds of 4 KB parameters each per repetition`);
      console.log(samplesTable(smallSamples, `ms per ${roundsPerRep} rounds`, [SERVICE, LIBRARY]));
      console.log(
        formatTable(
          ['service, small rounds', 'value'],
          [
            ['requests/s (2 per round)', formatNumber(2 * serviceRoundsPerSecond)],
            ['rounds/s', formatNumber(serviceRoundsPerSecond)],
            ['round latency p50, ms', formatNumber(percentile(roundLatencies, 50))],
            ['round latency p99, ms', formatNumber(percentile(roundLatencies, 99))],
            ['request latency p50, ms', formatNumber(percentile(requestLatencies, 50))],
            ['request latency p99, ms', formatNumber(percentile(requestLatencies, 99))],
            ['library rounds/s (same rounds, in process)', formatNumber(libraryRoundsPerSecond)],
          ],
        ),
      );

      console.log();
      console.log(
        ratioTable([
          {
            label: `service ÷ library, ${formatNumber(bytes / 1e6)} MB rounds (time per round)`,
            ratio: largeRatio,
            paired: pairedRatio(samples, SERVICE, LIBRARY),
            target: { text: `<= ${TARGET_RATIO}x`, met: (r) => r <= TARGET_RATIO },
          },
          {
            label: `service ÷ library, ${clients} clients of 4 KB rounds (time for all)`,
            ratio: medianOf(smallSamples, SERVICE) / medianOf(smallSamples, LIBRARY),
            paired: pairedRatio(smallSamples, SERVICE, LIBRARY),
          },
        ]),
      );
    } finally {
      await rl.close();
      await stopServer(server);
      server = null;
    }

    // ---- 3. memory under concurrent uploads ---------------------------------------------------------
    const memoryRoot = path.join(dir, 'memory');
    server = await startServer(memoryRoot);
    const memBase = server.url;
    const runs = await Promise.all(Array.from({ length: uploads }, (_, i) => remoteRun(memBase, `upload-${i}`)));
    const idle = await memoryOf(server.pid);
    const elements = Math.floor((mb * 1e6) / 4);
    const header = (() => {
      const json = Buffer.from(
        JSON.stringify({ w: { dtype: 'F32', shape: [elements], data_offsets: [0, elements * 4] } }),
      );
      const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
      const head = Buffer.alloc(8 + padded, 0x20);
      head.writeBigUInt64LE(BigInt(padded), 0);
      json.copy(head, 8);
      return head;
    })();
    const uploadBytes = header.length + elements * 4;
    // Distinct bytes per upload, generated 1 MiB at a time while sending: never all in memory here.
    async function* generated(): AsyncGenerator<Uint8Array> {
      yield header;
      let left = elements * 4;
      while (left > 0) {
        const piece = Buffer.allocUnsafe(Math.min(left, 1 << 20));
        randomFillSync(piece);
        left -= piece.length;
        yield piece;
      }
    }
    const t0 = now();
    await Promise.all(runs.map((run) => remoteRound(memBase, run, generated(), uploadBytes)));
    const elapsed = msSince(t0);
    const after = await memoryOf(server.pid);
    console.log();
    console.log(`3. ${uploads} concurrent uploads of ${formatNumber(uploadBytes / 1e6)} MB, each recorded as a round`);
    console.log(
      formatTable(
        ['server memory', 'MB', 'x one upload'],
        [
          ['resident after start (VmRSS)', formatNumber(idle.rss / 1e6), (idle.rss / uploadBytes).toFixed(2)],
          ['peak resident (VmHWM), all uploads', formatNumber(after.peak / 1e6), (after.peak / uploadBytes).toFixed(2)],
          [
            'all uploads together',
            formatNumber((uploads * uploadBytes) / 1e6),
            ((uploads * uploadBytes) / uploadBytes).toFixed(2),
          ],
        ],
      ),
    );
    console.log(
      `(${formatNumber((uploads * uploadBytes) / 1e6 / (elapsed / 1000))} MB/s over the ${uploads} uploads together)`,
    );
  } finally {
    if (server !== null) await stopServer(server);
    agent.destroy();
    await removeTempDir(dir);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
