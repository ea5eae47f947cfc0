/**
 * A segment index is a cache of the record offsets: a writer opened with `rebuildIndexes` writes
 * every one again from its segment's records, whatever it held, and changes no record.
 */
import test from 'ava';
import { closeSync, openSync, readFileSync, readdirSync, writeSync } from 'node:fs';
import path from 'node:path';
import { openFileEventLog } from '../../src/log/file/index.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

function segmentsOf(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.seg'))
    .sort()
    .map((name) => path.join(dir, name));
}

function flipByte(file: string, offset: number): void {
  const bytes = readFileSync(file);
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.from([bytes[offset]! ^ 0xff]), 0, 1, offset);
  closeSync(fd);
}

async function verifyOf(dir: string) {
  const log = await openFileEventLog({ dir, readOnly: true });
  try {
    return await log.verify();
  } finally {
    await log.close();
  }
}

async function everything(dir: string) {
  const log = await openFileEventLog({ dir, readOnly: true });
  try {
    return (await log.readAll()).events.map((e) => [e.stream, e.revision, e.position, e.id, e.type, e.data]);
  } finally {
    await log.close();
  }
}

for (const which of ['sealed', 'active'] as const) {
  test(`rebuildIndexes writes a ${which} segment's damaged index again from its records`, async (t) => {
    const dir = tempDir();
    const writer = await openFileEventLog({ dir, segmentBytes: 4096 });
    for (let i = 0; i < 100; i++)
      await writer.append(`s${i % 3}`, [{ type: 'Filled', data: { i, text: 'x'.repeat(100) } }]);
    await writer.close();
    const segments = segmentsOf(dir);
    t.true(segments.length >= 3, 'several sealed segments and an active one');
    const index = `${which === 'sealed' ? segments[0]! : segments.at(-1)!}.idx`;
    const before = { events: await everything(dir), segments: segments.map((s) => readFileSync(s)) };
    const good = readFileSync(index);
    flipByte(index, Math.floor(good.length / 2));
    t.true(
      (await verifyOf(dir)).problems.some((p) => p.file === index),
      'verify names the damaged index',
    );

    const log = await openFileEventLog({ dir, rebuildIndexes: true });
    await log.close();
    t.deepEqual((await verifyOf(dir)).problems, []);
    t.true(readFileSync(index).equals(good), 'the index is what the writer wrote');
    t.deepEqual(await everything(dir), before.events);
    t.deepEqual(
      segmentsOf(dir).map((s) => readFileSync(s)),
      before.segments,
      'no segment byte changed',
    );
  });
}
