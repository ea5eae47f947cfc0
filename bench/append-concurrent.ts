/**
 * Concurrent appends (group commit) vs sequential appends, and vs the strongest embedded peer.
 *
 * File log, one ~200-byte round event per append, every append durable when it resolves:
 *   - sequential: one writer, each append awaited before the next;
 *   - 8 and 64 concurrent writers: Promise-based, each appending to its own stream with the
 *     expected revision of its previous append; the log group-commits (one fsync for many).
 * Peer: better-sqlite3, append-only events table (stream, revision, position INTEGER PRIMARY
 * KEY, id, created, type, data BLOB, UNIQUE(stream, revision)), journal_mode=WAL,
 * synchronous=FULL, one IMMEDIATE transaction per append that checks the expected revision
 * (optimistic concurrency, as an event store does), the same msgpack payloads.
 * better-sqlite3 is synchronous: N "concurrent" writers in one process run one after another,
 * so its concurrent throughput is its sequential throughput, measured once.
 * A second SQLite variant commits 64 appends per transaction: that is BATCHING (an append is
 * not durable when it returns), shown for reference only, not the per-append comparison.
 *
 *   npx tsx bench/append-concurrent.ts [--quick] [--reps=N]
 */
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { encodeValue } from '../src/codec/values.ts';
import type { EventData, ExpectedRevision } from '../src/log/types.ts';
import {
  describeMode,
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
  type Contender,
  type OpenFileEventLog,
  type RatioLine,
} from './lib.ts';

const SQLITE_BATCH = 64;

/** `writers` concurrent writers, each appending `perWriter` events one by one to its own stream. */
async function runLog(
  openLog: OpenFileEventLog,
  writers: number,
  perWriter: number,
  events: readonly EventData[],
): Promise<number> {
  const dir = await makeTempDir(`append-concurrent-log${writers}`);
  try {
    const log = await openLog({ dir });
    const writer = async (w: number): Promise<void> => {
      const stream = `client-${w}`;
      let expected: ExpectedRevision = 'no_stream';
      for (let k = 0; k < perWriter; k++) {
        const result = await log.append(stream, [events[(w * perWriter + k) % events.length]!], {
          expectedRevision: expected,
        });
        expected = result.nextExpectedRevision;
      }
    };
    const start = now();
    await Promise.all(Array.from({ length: writers }, (_, w) => writer(w)));
    const ms = msSince(start);
    await log.close();
    return perSecond(writers * perWriter, ms);
  } finally {
    await removeTempDir(dir);
  }
}

class WrongExpectedRevision extends Error {}

type SqliteStore = {
  /** One append: checks the expected revision, inserts, returns the stream's new last revision. */
  append(stream: string, expected: number | 'no_stream', events: readonly EventData[]): number;
  /** Several appends in one transaction (BATCHING: none is durable before the commit). */
  appendBatch(appends: ReadonlyArray<readonly [string, number | 'no_stream', readonly EventData[]]>): number[];
  close(): void;
};

function openSqlite(file: string): SqliteStore {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(`
    CREATE TABLE events (
      position INTEGER PRIMARY KEY,
      stream   TEXT NOT NULL,
      revision INTEGER NOT NULL,
      id       TEXT NOT NULL,
      created  INTEGER NOT NULL,
      type     TEXT NOT NULL,
      data     BLOB NOT NULL,
      UNIQUE (stream, revision)
    )`);
  const head = db.prepare('SELECT revision FROM events WHERE stream = ? ORDER BY revision DESC LIMIT 1').pluck();
  const insert = db.prepare('INSERT INTO events (stream, revision, id, created, type, data) VALUES (?, ?, ?, ?, ?, ?)');
  const appendOne = (stream: string, expected: number | 'no_stream', events: readonly EventData[]): number => {
    const current = (head.get(stream) as number | undefined) ?? -1;
    if ((expected === 'no_stream' && current !== -1) || (expected !== 'no_stream' && expected !== current)) {
      throw new WrongExpectedRevision(`${stream}: expected ${expected}, at ${current}`);
    }
    let revision = current;
    const created = Date.now();
    for (const event of events) {
      revision++;
      insert.run(stream, revision, event.id ?? randomUUID(), created, event.type, encodeValue(event.data).bytes);
    }
    return revision;
  };
  const appendTx = db.transaction(appendOne);
  const batchTx = db.transaction(
    (appends: ReadonlyArray<readonly [string, number | 'no_stream', readonly EventData[]]>) =>
      appends.map(([stream, expected, events]) => appendOne(stream, expected, events)),
  );
  return {
    append: (stream, expected, events) => appendTx.immediate(stream, expected, events),
    appendBatch: (appends) => batchTx.immediate(appends),
    close: () => db.close(),
  };
}

/** Sequential appends, one transaction (one WAL fsync) each, round-robin over `streams` streams. */
async function runSqlite(count: number, streams: number, events: readonly EventData[]): Promise<number> {
  const dir = await makeTempDir('append-concurrent-sqlite');
  try {
    const store = openSqlite(path.join(dir, 'events.db'));
    const expected: Array<number | 'no_stream'> = Array.from({ length: streams }, () => 'no_stream');
    const start = now();
    for (let i = 0; i < count; i++) {
      const s = i % streams;
      expected[s] = store.append(`client-${s}`, expected[s]!, [events[i % events.length]!]);
    }
    const ms = msSince(start);
    store.close();
    return perSecond(count, ms);
  } finally {
    await removeTempDir(dir);
  }
}

/** BATCHING: `SQLITE_BATCH` single-event appends (one per stream) per transaction. */
async function runSqliteBatched(count: number, events: readonly EventData[]): Promise<number> {
  const dir = await makeTempDir('append-concurrent-sqlite-batch');
  try {
    const store = openSqlite(path.join(dir, 'events.db'));
    const expected: Array<number | 'no_stream'> = Array.from({ length: SQLITE_BATCH }, () => 'no_stream');
    const start = now();
    for (let i = 0; i < count; i += SQLITE_BATCH) {
      const appends = expected.map((e, s) => [`client-${s}`, e, [events[(i + s) % events.length]!]] as const);
      store.appendBatch(appends).forEach((revision, s) => (expected[s] = revision));
    }
    const ms = msSince(start);
    store.close();
    return perSecond(Math.ceil(count / SQLITE_BATCH) * SQLITE_BATCH, ms);
  } finally {
    await removeTempDir(dir);
  }
}

/**
 * A contender whose work size is calibrated by the warm-up repetition, so that each timed run
 * takes about `targetMs` whatever the speed of the disk: `units` work units (an event per
 * writer, or a batch) per run, between `minUnits` and `maxUnits`.
 */
function calibrated(
  name: string,
  initialUnits: number,
  bounds: { min: number; max: number; targetMs: number; eventsPerUnit: number },
  run: (units: number) => Promise<number>,
): Contender & { units: () => number } {
  let units = initialUnits;
  return {
    name,
    units: () => units,
    run: async (rep) => {
      const eventsPerSecond = await run(units);
      if (rep < 0) {
        const wanted = (eventsPerSecond * bounds.targetMs) / 1000 / bounds.eventsPerUnit;
        units = Math.max(bounds.min, Math.min(bounds.max, Math.round(wanted)));
      }
      return eventsPerSecond;
    },
  };
}

export async function main(): Promise<void> {
  const quick = isQuick();
  const reps = repsOr(quick ? 3 : 7);
  const targetMs = quick ? 200 : 700;

  heading('append-concurrent: group commit vs sequential, vs better-sqlite3');
  console.log(
    `${describeMode()}; ${reps} interleaved repetitions after 1 warm-up that sizes each run to ~${targetMs} ms; ` +
      '~200 B msgpack events, one event per append',
  );

  const openLog = await loadFileLog();
  const events = roundEvents(0, 4096);

  const bounds = (eventsPerUnit: number) => ({ min: 20, max: 1_000_000, targetMs, eventsPerUnit });
  const seq = calibrated('file log, sequential (1 writer)', 200, bounds(1), (n) => runLog(openLog, 1, n, events));
  const c8 = calibrated('file log, 8 concurrent writers', 50, bounds(8), (n) => runLog(openLog, 8, n, events));
  const c64 = calibrated('file log, 64 concurrent writers', 20, bounds(64), (n) => runLog(openLog, 64, n, events));
  const sql = calibrated('sqlite WAL+FULL, 1 txn per append', 200, bounds(1), (n) => runSqlite(n, 64, events));
  const sqlb = calibrated(`sqlite BATCHING ${SQLITE_BATCH} appends/txn`, 20, bounds(SQLITE_BATCH), (n) =>
    runSqliteBatched(n * SQLITE_BATCH, events),
  );
  const contenders = [seq, c8, c64, sql, sqlb];
  const samples = await interleave(contenders, { reps, warmup: 1 });

  console.log();
  console.log(
    samplesTable(
      samples,
      'events/s (every append durable on return, except BATCHING)',
      contenders.map((c) => c.name),
    ),
  );
  console.log(
    `events per run: sequential ${seq.units()}, 8 writers 8 x ${c8.units()}, 64 writers 64 x ${c64.units()}, ` +
      `sqlite ${sql.units()}, sqlite batching ${sqlb.units()} txns x ${SQLITE_BATCH}`,
  );
  console.log(
    '\nbetter-sqlite3 is synchronous: 8 or 64 "concurrent" writers in one process run one after another,\n' +
      'so its concurrent throughput is its sequential one ' +
      '(row "1 txn per append", appends round-robin over 64 streams).\n' +
      `The BATCHING row commits ${SQLITE_BATCH} appends per transaction: appends are not durable one by one;\n` +
      'it is a reference point, not the per-append durability comparison.',
  );
  console.log();
  const m = (c: Contender) => medianOf(samples, c.name);
  const p = (a: Contender, b: Contender) => pairedRatio(samples, a.name, b.name);
  const more = { text: '> 1x', met: (r: number) => r > 1 };
  const lines: RatioLine[] = [
    { label: 'group commit 64 writers ÷ sequential', ratio: m(c64) / m(seq), paired: p(c64, seq) },
    { label: 'group commit 8 writers ÷ sequential', ratio: m(c8) / m(seq), paired: p(c8, seq) },
    { label: 'file log 64 writers ÷ sqlite per-append', ratio: m(c64) / m(sql), paired: p(c64, sql), target: more },
    { label: 'file log 8 writers ÷ sqlite per-append', ratio: m(c8) / m(sql), paired: p(c8, sql), target: more },
    { label: 'file log sequential ÷ sqlite per-append', ratio: m(seq) / m(sql), paired: p(seq, sql), target: more },
    { label: 'file log 64 writers ÷ sqlite BATCHING (ref.)', ratio: m(c64) / m(sqlb), paired: p(c64, sqlb) },
  ];
  console.log(ratioTable(lines));
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) await main();
