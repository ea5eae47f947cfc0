/**
 * The embedded file log: what only a real file system shows. Damaged files, the writer lock
 * across processes, readers in other processes, checkpoints that keep open cheap, group commit.
 */
import test from 'ava';
import {
  closeSync,
  openSync,
  readFileSync,
  readdirSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { filter, firstValueFrom, take, toArray } from 'rxjs';
import { CorruptLogError, LogLockedError, LogReadOnlyError } from '../../src/log/errors.ts';
import { openFileEventLog, type FileLogWarning } from '../../src/log/file/index.ts';
import type { RecordedEvent } from '../../src/log/types.ts';
import { killSpawned, spawnTs } from '../support/child.ts';
import {
  FRAME_HEADER,
  fillLog,
  flipByte,
  recordEnd,
  recordOffsets,
  segmentsOf,
  zeroBytes,
} from '../support/segments.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

test(
  'a log cut in the middle of its last record reopens without ' +
    'it, with a warning saying how many bytes were dropped',
  async (t) => {
    const dir = tempDir();
    await fillLog(dir, 20, { concurrently: 50 });
    const [segment] = segmentsOf(dir) as [string];
    const offsets = recordOffsets(segment);
    const lastStart = offsets.at(-1)!;
    const lastEnd = recordEnd(segment, lastStart);
    const cut = lastStart + Math.floor((lastEnd - lastStart) / 2);
    truncateSync(segment, cut);
    // As after a crash before the index caught up with the last write (an index listing the
    // record would prove it committed: see file.damage.int.test.ts).
    for (const file of readdirSync(dir))
      if (file.endsWith('.idx') || file === 'heads.ckpt') unlinkSync(path.join(dir, file));

    const warnings: FileLogWarning[] = [];
    const log = await openFileEventLog({ dir, onWarning: (w) => warnings.push(w) });
    const torn = warnings.filter((w) => w.code === 'TORN_TAIL_TRUNCATED');
    t.is(torn.length, 1);
    t.is(torn[0]!.bytesDropped, cut - lastStart);
    t.is(torn[0]!.file, segment);
    t.regex(torn[0]!.message, new RegExp(`${cut - lastStart} bytes`));
    t.is(statSync(segment).size, lastStart);
    const all = await log.readAll();
    t.is(all.events.length, 19);
    t.deepEqual(
      all.events.map((e) => (e.data as { i: number }).i),
      Array.from({ length: 19 }, (_, i) => i),
    );
    // Appends continue where the log now ends.
    const result = await log.append('s1', [{ type: 'After', data: null }], { expectedRevision: 5n });
    t.is(result.lastPosition, 19n);
    t.true((await log.verify()).ok);
    await log.close();
  },
);

test(
  'a byte flipped in the middle of a segment is a ' + 'CorruptLog error naming the file and offset, never a skip',
  async (t) => {
    const dir = tempDir();
    await fillLog(dir, 100, { concurrently: 50 });
    const [segment] = segmentsOf(dir) as [string];
    const offsets = recordOffsets(segment);
    const victim = offsets[50]!;
    flipByte(segment, victim + FRAME_HEADER + 20);

    const log = await openFileEventLog({ dir });
    const error = await t.throwsAsync(log.readAll(), { instanceOf: CorruptLogError });
    t.is(error!.code, 'CORRUPT_LOG');
    t.is(error!.file, segment);
    t.is(error!.offset, victim);
    t.regex(error!.message, new RegExp(`${path.basename(segment)} at byte offset ${victim}`));
    // Records before it still read; the one after it is not reached by a read that includes it.
    t.is((await log.readAll({ maxCount: 50 })).events.length, 50);
    await t.throwsAsync(log.readAll({ fromPosition: 49n, maxCount: 5 }), { instanceOf: CorruptLogError });
    t.is((await log.readAll({ fromPosition: 51n })).events.length, 49);
    const verified = await log.verify();
    t.false(verified.ok);
    t.is(verified.problems[0]!.file, segment);
    t.is(verified.problems[0]!.offset, victim);
    await log.close();
  },
);

test('a damaged record length in the middle is corruption, not a torn tail: nothing after it is cut off', async (t) => {
  const dir = tempDir();
  await fillLog(dir, 30, { concurrently: 50 });
  for (const file of readdirSync(dir))
    if (file.endsWith('.idx') || file === 'heads.ckpt') unlinkSync(path.join(dir, file));
  const [segment] = segmentsOf(dir) as [string];
  const sizeBefore = statSync(segment).size;
  const victim = recordOffsets(segment)[10]!;
  flipByte(segment, victim + 1);

  const error = await t.throwsAsync(openFileEventLog({ dir }), { instanceOf: CorruptLogError });
  t.is(error!.offset, victim);
  t.is(error!.file, segment);
  t.is(statSync(segment).size, sizeBefore, 'the segment must not have been truncated');
});

test(
  'a second writer process gets LogLocked naming the ' + 'holder; a reader in another process is not blocked',
  async (t) => {
    const dir = tempDir();
    const holder = spawnTs('file-log-child.ts', ['hold-lock', dir]);
    t.teardown(() => holder.process.kill('SIGKILL'));
    const line = await holder.waitFor((l) => l.startsWith('locked'));
    const pid = Number(line.split(' ')[1]);

    const error = await t.throwsAsync(openFileEventLog({ dir }), { instanceOf: LogLockedError });
    t.is(error!.code, 'LOG_LOCKED');
    t.is(error!.pid, pid);
    t.is(error!.host, os.hostname());
    t.regex(error!.message, new RegExp(`process ${pid}`));

    const reader = await openFileEventLog({ dir, readOnly: true });
    t.deepEqual((await reader.readAll()).events, []);
    await t.throwsAsync(reader.append('s', [{ type: 'T', data: 1 }]), { instanceOf: LogReadOnlyError });
    await reader.close();

    holder.process.stdin!.end();
    await holder.exited;
    const log = await openFileEventLog({ dir });
    await log.close();
    t.pass();
  },
);

test('the lock of a process killed with SIGKILL is reclaimed, with a warning', async (t) => {
  const dir = tempDir();
  const holder = spawnTs('file-log-child.ts', ['hold-lock', dir]);
  await holder.waitFor((l) => l.startsWith('locked'));
  holder.process.kill('SIGKILL');
  await holder.exited;

  const warnings: FileLogWarning[] = [];
  const log = await openFileEventLog({ dir, onWarning: (w) => warnings.push(w) });
  t.deepEqual(
    warnings.map((w) => w.code),
    ['STALE_LOCK_RECLAIMED'],
  );
  t.regex(warnings[0]!.message, new RegExp(`process ${holder.process.pid}`));
  await log.append('s', [{ type: 'T', data: 1 }]);
  await log.close();
});

test('a second open in the same process is refused while the first holds the lock', async (t) => {
  const dir = tempDir();
  const log = await openFileEventLog({ dir });
  const error = await t.throwsAsync(openFileEventLog({ dir }), { instanceOf: LogLockedError });
  t.is(error!.pid, process.pid);
  await log.close();
  const again = await openFileEventLog({ dir });
  await again.close();
});

test(
  'a reader in another process follows a writer live, ' + 'across segment boundaries, every event once and in order',
  async (t) => {
    const dir = tempDir();
    await fillLog(dir, 10, { segmentBytes: 4096, concurrently: 50 });
    const reader = await openFileEventLog({ dir, readOnly: true, pollIntervalMs: 5 });
    t.teardown(() => reader.close());
    const total = 10 + 400;
    const received = firstValueFrom(
      reader.subscribe().pipe(
        filter((item) => item.kind === 'event'),
        take(total),
        toArray(),
      ),
    );
    const writer = spawnTs('file-log-child.ts', ['append-n', dir, 'followed', '400', '4096']);
    const events = (await received).map((item) => (item as { event: RecordedEvent }).event);
    t.deepEqual(
      events.map((e) => e.position),
      Array.from({ length: total }, (_, i) => BigInt(i)),
    );
    t.deepEqual(
      events.slice(10).map((e) => (e.data as { i: number }).i),
      Array.from({ length: 400 }, (_, i) => i),
    );
    await writer.exited;
    t.true(segmentsOf(dir).length > 3, 'the writer should have rolled over several segments');
    t.is((await reader.readStream('followed')).events.length, 400);
  },
);

test(
  'opening a log reads neither its sealed segments ' + 'nor their records: damage there shows only on read',
  async (t) => {
    const dir = tempDir();
    await fillLog(dir, 600, { segmentBytes: 8192, concurrently: 50 });
    const segments = segmentsOf(dir);
    t.true(segments.length > 5);
    const early = segments[1]!;
    const victim = recordOffsets(early)[3]!;
    flipByte(early, victim + FRAME_HEADER + 5);

    const log = await openFileEventLog({ dir });
    const streams = (await log.listStreams()).streams;
    t.deepEqual(
      streams.map((s) => [s.stream, s.lastRevision]),
      [
        ['s0', 199n],
        ['s1', 199n],
        ['s2', 199n],
      ],
    );
    const error = await t.throwsAsync(log.readAll(), { instanceOf: CorruptLogError });
    t.is(error!.file, early);
    t.is(error!.offset, victim);
    await log.close();
  },
);

test('a damaged or missing checkpoint and index are rebuilt from the records, with the same content', async (t) => {
  const dir = tempDir();
  await fillLog(dir, 400, { segmentBytes: 8192, concurrently: 50 });
  const before = await openFileEventLog({ dir });
  const expected = (await before.readAll()).events;
  await before.close();

  writeFileSync(path.join(dir, 'heads.ckpt'), 'garbage');
  const warnings: FileLogWarning[] = [];
  const damaged = await openFileEventLog({ dir, onWarning: (w) => warnings.push(w) });
  t.true(warnings.some((w) => w.code === 'INDEX_REBUILT'));
  t.deepEqual((await damaged.readAll()).events, expected);
  await damaged.close();

  for (const file of readdirSync(dir))
    if (file.endsWith('.idx') || file === 'heads.ckpt') unlinkSync(path.join(dir, file));
  const rebuilt = await openFileEventLog({ dir });
  t.deepEqual((await rebuilt.readAll()).events, expected);
  t.deepEqual((await rebuilt.readStream('s2', { direction: 'backwards', maxCount: 3 })).events, [
    expected[398]!,
    expected[395]!,
    expected[392]!,
  ]);
  await rebuilt.append('s0', [{ type: 'After', data: null }], { expectedRevision: 133n });
  await rebuilt.close();
});

test('concurrent appends are group-committed: far fewer flushes (write + fdatasync) than appends', async (t) => {
  const dir = tempDir();
  const log = await openFileEventLog({ dir });
  await Promise.all(Array.from({ length: 200 }, (_, i) => log.append(`g${i % 10}`, [{ type: 'G', data: { i } }])));
  const stats = log.stats();
  t.is(stats.appends, 200);
  t.true(stats.flushes < 20, `200 concurrent appends took ${stats.flushes} flushes`);
  // Sequential appends cannot share a flush.
  for (let i = 0; i < 5; i++) await log.append('seq', [{ type: 'S', data: { i } }]);
  t.is(log.stats().flushes, stats.flushes + 5);
  await log.close();
});

test('large values are lz4-compressed on disk and read back exactly; small ones are not', async (t) => {
  const dir = tempDir();
  const log = await openFileEventLog({ dir });
  const big = { text: 'round '.repeat(20_000), weights: new Float64Array(2000).fill(0.5) };
  await log.append('c', [
    { type: 'Big', data: big },
    { type: 'Small', data: { a: 1 } },
  ]);
  await log.close();
  const [segment] = segmentsOf(dir) as [string];
  const [first, second] = recordOffsets(segment) as [number, number];
  const data = readFileSync(segment);
  t.is(data[first + FRAME_HEADER], 2, 'encoding byte of the big record: msgpack + lz4');
  t.is(data[second + FRAME_HEADER], 1, 'encoding byte of the small record: plain msgpack');
  t.true(second - first < 20_000, 'the big record is stored compressed');
  const reopened = await openFileEventLog({ dir });
  t.deepEqual(
    (await reopened.readStream('c')).events.map((e) => e.data),
    [big, { a: 1 }],
  );
  await reopened.close();
});

test(
  'a last record half written into the zero-filled space ' + 'ahead of the data is a torn tail, cut off with a warning',
  async (t) => {
    const dir = tempDir();
    await fillLog(dir, 20, { concurrently: 50 });
    const [segment] = segmentsOf(dir) as [string];
    const lastStart = recordOffsets(segment).at(-1)!;
    const lastEnd = recordEnd(segment, lastStart);
    t.true(statSync(segment).size > lastEnd, 'the writer zero-fills ahead of its data');
    zeroBytes(segment, lastStart + 40, lastEnd);
    // As after a crash before the index caught up with the last write.
    for (const file of readdirSync(dir))
      if (file.endsWith('.idx') || file === 'heads.ckpt') unlinkSync(path.join(dir, file));

    const warnings: FileLogWarning[] = [];
    const log = await openFileEventLog({ dir, onWarning: (w) => warnings.push(w) });
    t.teardown(() => log.close());
    const torn = warnings.filter((w) => w.code === 'TORN_TAIL_TRUNCATED');
    t.is(torn.length, 1);
    t.is(torn[0]!.bytesDropped, 40);
    t.is((await log.readAll()).events.length, 19);
    await log.append('s1', [{ type: 'After', data: null }]);
    t.true((await log.verify()).ok);
    await log.close();
  },
);

test('a zeroed record in the middle, with records after it, is corruption: nothing after it is dropped', async (t) => {
  const dir = tempDir();
  await fillLog(dir, 30, { concurrently: 50 });
  for (const file of readdirSync(dir))
    if (file.endsWith('.idx') || file === 'heads.ckpt') unlinkSync(path.join(dir, file));
  const [segment] = segmentsOf(dir) as [string];
  const offsets = recordOffsets(segment);
  zeroBytes(segment, offsets[12]!, offsets[13]!);
  const sizeBefore = statSync(segment).size;

  const error = await t.throwsAsync(openFileEventLog({ dir }), { instanceOf: CorruptLogError });
  t.is(error!.offset, offsets[12]!);
  t.is(statSync(segment).size, sizeBefore);
});

test('with lockWaitMs, a writer waits for the lock held by another process and gets it once released', async (t) => {
  const dir = tempDir();
  const holder = spawnTs('file-log-child.ts', ['hold-lock', dir]);
  t.teardown(() => holder.process.kill('SIGKILL'));
  await holder.waitFor((l) => l.startsWith('locked'));
  const opening = openFileEventLog({ dir, lockWaitMs: 30_000 });
  holder.process.stdin!.end();
  const log = await opening;
  t.is((await holder.exited).code, 0);
  await log.append('s', [{ type: 'T', data: 1 }]);
  await log.close();
});

test(
  'a log opened, appended to and closed many times ' + 'keeps its active index small: chunks are compacted',
  async (t) => {
    const { decodeIndexChunks } = await import('../../src/log/file/format.ts');
    const dir = tempDir();
    for (let i = 0; i < 80; i++) {
      const log = await openFileEventLog({ dir });
      await log.append('cycled', [{ type: 'T', data: { i } }]);
      await log.close();
    }
    const [segment] = segmentsOf(dir) as [string];
    const { chunks } = decodeIndexChunks(readFileSync(`${segment}.idx`));
    t.true(chunks.length <= 32, `${chunks.length} chunks`);
    t.is(
      chunks.reduce((sum, c) => sum + c.offsets.length, 0),
      80,
    );
    const log = await openFileEventLog({ dir });
    t.deepEqual(
      (await log.readStream('cycled')).events.map((e) => (e.data as { i: number }).i),
      Array.from({ length: 80 }, (_, i) => i),
    );
    await log.close();
  },
);

test(
  'a follower reports damage that stays: bytes that look like a broken ' +
    'record after the data end its subscription with CorruptLogError',
  async (t) => {
    const dir = tempDir();
    await fillLog(dir, 5, { concurrently: 50 });
    const [segment] = segmentsOf(dir) as [string];
    const offsets = recordOffsets(segment);
    const end = recordEnd(segment, offsets.at(-1)!);
    const reader = await openFileEventLog({ dir, readOnly: true, pollIntervalMs: 5 });
    t.teardown(() => reader.close());
    const items: string[] = [];
    const failed = new Promise<unknown>((resolve) => {
      reader.subscribe().subscribe({
        next: (item) => {
          items.push(item.kind);
          if (item.kind === 'caughtUp') {
            // A header whose checksum fails, then non-zero bytes: not a record being written.
            const fd = openSync(segment, 'r+');
            writeSync(fd, Buffer.alloc(64, 0x5a), 0, 64, end);
            closeSync(fd);
          }
        },
        error: resolve,
      });
    });
    const error = (await failed) as CorruptLogError;
    t.true(error instanceof CorruptLogError);
    t.is(error.file, segment);
    t.is(error.offset, end);
    t.deepEqual(items, ['event', 'event', 'event', 'event', 'event', 'caughtUp']);
  },
);
