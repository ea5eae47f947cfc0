/**
 * The log's own caches are repaired by `verify --repair`: a segment index with a flipped byte is
 * written again from its segment (and said so), a second verify is ok, and no record changed.
 */
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, lstatSync, openSync, readFileSync, readdirSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { TensorSet } from '../../src/codec/tensors.ts';
import { decodeIndexChunks } from '../../src/log/file/format.ts';
import { openFileEventLog } from '../../src/log/file/index.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { rootLayout } from '../../src/root.ts';

test.after.always(removeTempDirs);

const tensors = (...values: number[]): TensorSet => ({
  w: { dtype: 'float32', shape: [values.length], data: new Float32Array(values) },
});

function flipByte(file: string, offset: number): void {
  const bytes = readFileSync(file);
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.from([bytes[offset]! ^ 0xff]), 0, 1, offset);
  closeSync(fd);
}

/** The record offsets and stream numbers an index lists, over all its chunks. */
function listed(index: Buffer) {
  const { chunks, validBytes } = decodeIndexChunks(index);
  return {
    validBytes: validBytes === index.length,
    offsets: chunks.flatMap((c) => [...c.offsets]),
    streams: chunks.flatMap((c) => [...c.streams]),
  };
}

async function logContents(dir: string) {
  const log = await openFileEventLog({ dir, readOnly: true });
  try {
    return (await log.readAll()).events.map((e) => [e.stream, e.revision, e.position, e.id, e.type, e.data]);
  } finally {
    await log.close();
  }
}

/**
 * A root with an experiment of 2 rounds (and its snapshot when asked), and a log of small segments
 * (a stream of other code fills it), so that it has sealed segments with indexes and a heads checkpoint.
 */
async function rootWithSealedSegments(t: ExecutionContext, options: { snapshot: boolean }) {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const handle = await rl.createExperiment({ saveBreakpoints: true, roundLimit: 10, initialParams: tensors(0, 0) });
  for (let r = 0; r < 2; r++) await handle.recordRound({ params: tensors(r, 1) });
  if (options.snapshot) await handle.snapshot();
  await rl.close();
  const logDir = path.join(root, 'log');
  const writer = await openFileEventLog({ dir: logDir, segmentBytes: 4096 });
  for (let i = 0; i < 60; i++) await writer.append('filler', [{ type: 'Filled', data: { text: 'x'.repeat(100) } }]);
  await writer.close();
  const segments = readdirSync(logDir)
    .filter((n) => n.endsWith('.seg'))
    .sort();
  t.true(segments.length >= 3);
  return { root, logDir, segments };
}

test('verify --repair rebuilds a segment index with a flipped byte from its segment; verify is then ok', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const handle = await rl.createExperiment({ saveBreakpoints: true, roundLimit: 10, initialParams: tensors(0, 0) });
  for (let r = 0; r < 3; r++) await handle.recordRound({ params: tensors(r, 1) });
  await rl.close();
  const logDir = path.join(root, 'log');
  const segments = readdirSync(logDir).filter((n) => n.endsWith('.seg'));
  const index = path.join(logDir, `${segments.sort().at(-1)!}.idx`);
  const good = readFileSync(index);
  const before = {
    events: await logContents(logDir),
    segments: segments.map((s) => readFileSync(path.join(logDir, s))),
  };
  flipByte(index, Math.floor(good.length / 2));

  const found = await roundlog(['verify', '--root', root]);
  t.is(found.code, 1);
  t.true(found.stdout.includes(index), found.stdout);
  const line = found.stdout.split('\n').find((l) => l.includes(index))!;
  t.regex(line, /'roundlog verify --repair' \(or a writer opened with rebuildIndexes\) writes it again/);

  const repair = await roundlog(['verify', '--repair', '--root', root]);
  t.is(repair.code, 0, repair.stdout + repair.stderr);
  t.regex(repair.stdout, /rebuilt the segment index .*\.seg\.idx from its segment's records \(a cache of the log\)/);
  t.regex(repair.stdout, /ok: no problem found/);

  const again = await roundlog(['verify', '--root', root]);
  t.is(again.code, 0, again.stdout);
  t.regex(again.stdout, /ok: no problem found/);
  t.deepEqual(listed(readFileSync(index)), listed(good), 'the index lists the records the log wrote');
  t.deepEqual(await logContents(logDir), before.events, "the log's data is unchanged");
  t.deepEqual(
    segments.map((s) => readFileSync(path.join(logDir, s))),
    before.segments,
  );
});

test('verify --repair rebuilds a sealed segment index and removes a damaged heads checkpoint', async (t) => {
  const { root, logDir, segments } = await rootWithSealedSegments(t, { snapshot: false });
  const sealedIndex = path.join(logDir, `${segments[1]!}.idx`);
  const heads = path.join(logDir, 'heads.ckpt');
  const before = await logContents(logDir);
  flipByte(sealedIndex, Math.floor(readFileSync(sealedIndex).length / 2));
  flipByte(heads, readFileSync(heads).length - 1);
  const found = await roundlog(['verify', '--root', root]);
  t.is(found.code, 1);
  t.true(found.stdout.includes(sealedIndex) && found.stdout.includes(heads), found.stdout);

  const repair = await roundlog(['verify', '--repair', '--root', root]);
  t.is(repair.code, 0, repair.stdout + repair.stderr);
  t.true(repair.stdout.includes(`rebuilt the segment index ${sealedIndex} from its segment's records`), repair.stdout);
  t.true(repair.stdout.includes(`removed the damaged heads checkpoint ${heads}`), repair.stdout);
  const again = await roundlog(['verify', '--root', root]);
  t.is(again.code, 0, again.stdout);
  t.deepEqual(await logContents(logDir), before);
});

test('a FIFO as an index, heads.ckpt or snapshot: read past, reported, replaced by verify --repair', async (t) => {
  const { root, logDir, segments } = await rootWithSealedSegments(t, { snapshot: true });
  const snapshotsDir = path.join(root, 'snapshots');
  const snapshots = readdirSync(snapshotsDir).map((n) => path.join(snapshotsDir, n));
  t.is(snapshots.length, 1);
  const caches = [
    path.join(logDir, `${segments[1]!}.idx`),
    path.join(logDir, `${segments.at(-1)!}.idx`),
    path.join(logDir, 'heads.ckpt'),
    snapshots[0]!,
  ];
  const before = await logContents(logDir);
  for (const file of caches) {
    rmSync(file);
    execFileSync('mkfifo', [file]);
  }

  for (const args of [['ls'], ['history', 'Experiment_0000'], ['streams'], ['events', 'filler']]) {
    const read = await roundlog([...args, '--root', root]);
    t.is(read.code, 0, `${args.join(' ')}: ${read.stderr}`);
    t.notRegex(read.stderr, /replace it with the file it should be/);
  }
  t.true(
    caches.every((file) => lstatSync(file).isFIFO()),
    'a read replaces nothing',
  );
  const found = await roundlog(['verify', '--root', root]);
  t.is(found.code, 1, found.stderr);
  for (const file of caches) {
    const line = found.stdout.split('\n').find((l) => l.includes(file));
    t.regex(line ?? '', /FIFO, not a regular file \(never opened\)/, file);
  }

  const repair = await roundlog(['verify', '--repair', '--root', root]);
  t.is(repair.code, 0, repair.stdout + repair.stderr);
  t.regex(repair.stdout, /ok: no problem found/);
  t.false(
    caches.some((file) => existsSync(file) && !lstatSync(file).isFile()),
    'no FIFO is left',
  );
  const again = await roundlog(['verify', '--root', root]);
  t.is(again.code, 0, again.stdout);
  t.deepEqual(await logContents(logDir), before);

  // With a good heads checkpoint, a sealed segment's index is read when its records are first wanted.
  rmSync(caches[0]!);
  execFileSync('mkfifo', [caches[0]!]);
  const events = await roundlog(['events', 'filler', '--root', root]);
  t.is(events.code, 0, events.stderr);
  const healed = await roundlog(['verify', '--repair', '--root', root]);
  t.is(healed.code, 0, healed.stdout + healed.stderr);
  t.true(lstatSync(caches[0]!).isFile());
});

test('a FIFO as the projection checkpoint: never opened, reported, removed by verify --repair', async (t) => {
  const root = tempDir();
  t.is(
    (await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '1', '--root', root])).code,
    0,
  );
  const checkpoint = rootLayout(root).projectionCheckpoint;
  rmSync(checkpoint, { force: true });
  execFileSync('mkfifo', [checkpoint]);
  // Opening a FIFO for reading would block these commands until a writer came: none does.
  for (const args of [['ls'], ['project'], ['gc', '--dry-run']]) {
    const read = await roundlog([...args, '--root', root]);
    t.is(read.code, 0, `${args.join(' ')}: ${read.stderr}`);
  }
  const found = await roundlog(['verify', '--root', root]);
  t.is(found.code, 1, found.stderr);
  const line = found.stdout.split('\n').find((l) => l.includes(checkpoint));
  t.regex(line ?? '', /projection checkpoint: it is a FIFO, not a regular file \(never opened\)/);
  const repair = await roundlog(['verify', '--repair', '--root', root]);
  t.is(repair.code, 0, repair.stdout + repair.stderr);
  t.regex(repair.stdout, /removed the damaged projection checkpoint/);
  t.false(existsSync(checkpoint));
  t.is((await roundlog(['verify', '--root', root])).code, 0);
});
