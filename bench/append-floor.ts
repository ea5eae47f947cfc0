/**
 * Durable sequential append vs the physical floor.
 *
 * Candidate: the file log, one ~200-byte round event per append, each append awaited before
 * the next (every append resolves only after fsync, so this is one fsync per event).
 * Floors, the same framed bytes per event on a plain file with nothing else done (and, as the
 * strict floor for the log's zero-filled segments, the same on a file zero-filled beforehand):
 *   - sync:  fs.writeSync + fs.fdatasyncSync per event;
 *   - async: FileHandle.write + FileHandle.datasync per event (the log uses async I/O, so this
 *            is the floor it can reach).
 * Reports events/s of each (medians of interleaved repetitions) and the slowdown of the log
 * against each floor: floor events/s ÷ log events/s = log time per event ÷ floor time per event.
 * Target: within 1.5x.
 *
 *   npx tsx bench/append-floor.ts [--quick] [--reps=N]
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { encodeRecord, SEGMENT_HEADER_BYTES, SEGMENT_SUFFIX, INDEX_SUFFIX } from '../src/log/file/format.ts';
import type { ExpectedRevision } from '../src/log/types.ts';
import {
  describeMode,
  dirBytes,
  formatNumber,
  heading,
  interleave,
  isQuick,
  loadFileLog,
  makeTempDir,
  medianOf,
  msSince,
  now,
  pairedRatio,
  perSecond,
  ratioTable,
  removeTempDir,
  repsOr,
  roundEvents,
  samplesTable,
  type OpenFileEventLog,
} from './lib.ts';

const STREAM = 'experiment-cifar10-fedavg-s42';
const LOG = 'file log: append + await, 1 event each';
const FLOOR_SYNC = 'floor: writeSync + fdatasyncSync';
const FLOOR_ASYNC = 'floor: FileHandle write + datasync';
const FLOOR_PREALLOC = 'floor: writeSync + fdatasyncSync, zero-filled file';

/** Frames the log would write for these events, one per event: the floor writes these bytes. */
function framesOf(events: ReturnType<typeof roundEvents>): Buffer[] {
  return events.map((event, i) =>
    encodeRecord(
      {
        position: i,
        stream: STREAM,
        revision: i,
        id: randomUUID(),
        timestampMs: Date.now(),
        type: event.type,
        data: event.data,
      },
      4096,
    ),
  );
}

async function runLog(
  openLog: OpenFileEventLog,
  events: ReturnType<typeof roundEvents>,
  onBytes?: (b: { seg: number; idx: number; all: number }) => void,
): Promise<number> {
  const dir = await makeTempDir('append-floor-log');
  try {
    const log = await openLog({ dir });
    let expected: ExpectedRevision = 'no_stream';
    const start = now();
    for (const event of events) {
      const result = await log.append(STREAM, [event], { expectedRevision: expected });
      expected = result.nextExpectedRevision;
    }
    const ms = msSince(start);
    await log.close();
    if (onBytes) onBytes(await logBytes(dir));
    return perSecond(events.length, ms);
  } finally {
    await removeTempDir(dir);
  }
}

/** Bytes the log left on disk: record bytes of its segments, its index files, everything. */
async function logBytes(dir: string): Promise<{ seg: number; idx: number; all: number }> {
  let seg = 0;
  let idx = 0;
  const walk = async (d: string): Promise<void> => {
    for (const entry of await fsp.readdir(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.name.endsWith(SEGMENT_SUFFIX)) seg += (await fsp.stat(full)).size - SEGMENT_HEADER_BYTES;
      else if (entry.name.endsWith(INDEX_SUFFIX)) idx += (await fsp.stat(full)).size;
    }
  };
  await walk(dir);
  return { seg, idx, all: await dirBytes(dir) };
}

async function runFloorSync(frames: readonly Buffer[]): Promise<number> {
  const dir = await makeTempDir('append-floor-sync');
  try {
    const fd = fs.openSync(path.join(dir, 'floor.bin'), 'w');
    try {
      const start = now();
      for (const frame of frames) {
        fs.writeSync(fd, frame);
        fs.fdatasyncSync(fd);
      }
      return perSecond(frames.length, msSince(start));
    } finally {
      fs.closeSync(fd);
    }
  } finally {
    await removeTempDir(dir);
  }
}

/**
 * The floor for the log's own technique: the log zero-fills its segment ahead of the data, so a
 * durable write overwrites blocks the file already has instead of growing it.
 */
async function runFloorPreallocated(frames: readonly Buffer[]): Promise<number> {
  const dir = await makeTempDir('append-floor-prealloc');
  try {
    const fd = fs.openSync(path.join(dir, 'floor.bin'), 'w');
    try {
      const total = frames.reduce((sum, f) => sum + f.length, 0);
      fs.writeSync(fd, Buffer.alloc(total));
      fs.fsyncSync(fd);
      let at = 0;
      const start = now();
      for (const frame of frames) {
        fs.writeSync(fd, frame, 0, frame.length, at);
        fs.fdatasyncSync(fd);
        at += frame.length;
      }
      return perSecond(frames.length, msSince(start));
    } finally {
      fs.closeSync(fd);
    }
  } finally {
    await removeTempDir(dir);
  }
}

async function runFloorAsync(frames: readonly Buffer[]): Promise<number> {
  const dir = await makeTempDir('append-floor-async');
  try {
    const fh = await fsp.open(path.join(dir, 'floor.bin'), 'w');
    try {
      const start = now();
      for (const frame of frames) {
        await fh.write(frame);
        await fh.datasync();
      }
      return perSecond(frames.length, msSince(start));
    } finally {
      await fh.close();
    }
  } finally {
    await removeTempDir(dir);
  }
}

export async function main(): Promise<void> {
  const quick = isQuick();
  const count = quick ? 400 : 2000;
  const reps = repsOr(quick ? 3 : 7);
  heading('append-floor: durable sequential append vs write+fdatasync floor');
  console.log(`${describeMode()}; ${count} events of ~200 B per run, ${reps} interleaved repetitions (+1 warm-up)`);

  const openLog = await loadFileLog();
  const events = roundEvents(0, count);
  const frames = framesOf(events);
  const frameBytes = frames.reduce((sum, f) => sum + f.length, 0) / frames.length;
  let onDisk: { seg: number; idx: number; all: number } | undefined;

  const samples = await interleave(
    [
      { name: LOG, run: () => runLog(openLog, events, (b) => (onDisk = b)) },
      { name: FLOOR_SYNC, run: () => runFloorSync(frames) },
      { name: FLOOR_ASYNC, run: () => runFloorAsync(frames) },
      { name: FLOOR_PREALLOC, run: () => runFloorPreallocated(frames) },
    ],
    { reps, warmup: 1 },
  );

  console.log(`floor writes ${formatNumber(frameBytes)} B per event (the log's record frame for the same event)`);
  if (onDisk) {
    console.log(
      `the log left ${formatNumber(onDisk.seg / count)} B/event of segment file ` +
        '(records, plus the zero-filled space ahead of them), ' +
        `${formatNumber(onDisk.idx / count)} B/event of index, ${onDisk.all} B in all for ${count} events`,
    );
  }
  console.log();
  console.log(samplesTable(samples, 'events/s', [LOG, FLOOR_SYNC, FLOOR_ASYNC, FLOOR_PREALLOC]));
  console.log();
  const log = medianOf(samples, LOG);
  const within = { text: '<= 1.5x', met: (r: number) => r <= 1.5 };
  console.log(
    ratioTable([
      {
        label: 'log time/event ÷ sync floor',
        ratio: medianOf(samples, FLOOR_SYNC) / log,
        paired: pairedRatio(samples, FLOOR_SYNC, LOG),
        target: within,
      },
      {
        label: 'log time/event ÷ async floor',
        ratio: medianOf(samples, FLOOR_ASYNC) / log,
        paired: pairedRatio(samples, FLOOR_ASYNC, LOG),
        target: within,
      },
      {
        label: 'log time/event ÷ zero-filled-file floor',
        ratio: medianOf(samples, FLOOR_PREALLOC) / log,
        paired: pairedRatio(samples, FLOOR_PREALLOC, LOG),
        target: within,
      },
      {
        label: 'async floor ÷ sync floor (time/event)',
        ratio: medianOf(samples, FLOOR_SYNC) / medianOf(samples, FLOOR_ASYNC),
        paired: pairedRatio(samples, FLOOR_SYNC, FLOOR_ASYNC),
      },
    ]),
  );
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) await main();
