/**
 * The caches beside the log on real roots: experiment snapshots and the checkpoint of
 * `project --follow`. A byte flip in either is named by `verifyRoot` with the file and what the
 * code does with it; a checkpoint past the end of the log is refused by the follower and reported
 * by verify; a copied root keeps its checkpoint.
 */
import test from 'ava';
import { cpSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { writeSnapshot } from '../../src/engine/snapshots.ts';
import {
  ProjectionCheckpointMismatchError,
  followProjection,
  openRoundLog,
  replayRound,
  verifyRoot,
  type ProjectionUpdate,
} from '../../src/projections/index.ts';
import { PROJECTION_CHECKPOINT_FILE } from '../../src/root.ts';
import { rootWithRounds } from '../support/rounds.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

/** A root with one experiment of `rounds` rounds, each with a breakpoint; a snapshot is written at the end. */
const root = (rounds: number) => rootWithRounds(rounds, { snapshot: true });

function flipByte(file: string, at: number): void {
  const bytes = readFileSync(file);
  bytes[at]! ^= 0x20;
  writeFileSync(file, bytes);
}

/** Runs `project --follow` until it has caught up, then stops it; returns its updates. */
async function followUntilCaughtUp(dir: string): Promise<ProjectionUpdate[]> {
  const updates: ProjectionUpdate[] = [];
  const stop = new AbortController();
  await followProjection({
    root: dir,
    signal: stop.signal,
    onUpdate: (update) => {
      updates.push(update);
      if (update.kind === 'caughtUp') stop.abort();
    },
  });
  return updates;
}

const checkpointFile = (dir: string) => path.join(dir, 'experiments', PROJECTION_CHECKPOINT_FILE);

test('a snapshot with a flipped byte: verify names it and says it is ignored; the experiment opens', async (t) => {
  const { root: dir, id } = await root(3);
  t.true((await verifyRoot({ root: dir })).ok, 'an undamaged root with a snapshot verifies');
  const snapshot = path.join(dir, 'snapshots', `${id}.snap`);
  flipByte(snapshot, readFileSync(snapshot).length - 5);

  const report = await verifyRoot({ root: dir });
  t.false(report.ok);
  t.is(report.caches.problems.length, 1, JSON.stringify(report.caches));
  t.is(report.caches.problems[0]!.file, snapshot);
  t.regex(report.caches.problems[0]!.reason, /fails its checksum; the experiment ignores it and replays/);

  const rl = await openRoundLog({ root: dir });
  const handle = await rl.openExperiment(id);
  t.is(handle.roundCurrent(), 3, 'the damaged snapshot is not used: the history is replayed');
  await rl.close();
});

test('a snapshot that checks out against the log but holds another state is a problem of verify', async (t) => {
  const { root: dir, id, stream } = await root(3);
  const rl = await openRoundLog({ root: dir });
  const { state } = await rl.openExperiment(id);
  await rl.close();
  // The right stream, revision and position, so opening would use it: a state one round short.
  const wrong = { ...state, rounds: state.rounds.slice(0, 2) };
  await writeSnapshot(dir, id, { stream, revision: state.revision, position: state.position, state: wrong });

  const report = await verifyRoot({ root: dir });
  t.false(report.ok);
  t.is(report.caches.problems[0]?.file, path.join(dir, 'snapshots', `${id}.snap`));
  t.regex(report.caches.problems[0]!.reason, /holds a state other than the one its events fold to/);
});

test('verify checks the projection checkpoint as a cache and notes nothing of it as a folder', async (t) => {
  const { root: dir } = await root(2);
  await followUntilCaughtUp(dir);
  const report = await verifyRoot({ root: dir });
  t.true(report.ok);
  t.is(report.caches.filesChecked, 2, 'the snapshot and the checkpoint');
  // It sits beside the experiment folders but is none: before, verify noted it as a folder of no experiment.
  t.deepEqual(report.notes, []);
});

test('a projection checkpoint with a flipped byte: verify names it; project --follow says it ignores it', async (t) => {
  const { root: dir } = await root(2);
  await followUntilCaughtUp(dir);
  const file = checkpointFile(dir);
  t.true((await verifyRoot({ root: dir })).ok, 'a checkpoint that checks out verifies');
  const text = readFileSync(file, 'utf8');
  writeFileSync(
    file,
    text.replace(/"position": "(\d+)"/, (_, p: string) => `"position": "${Number(p) - 1}"`),
  );

  const report = await verifyRoot({ root: dir });
  t.false(report.ok);
  t.deepEqual(
    report.caches.problems.map((p) => p.file),
    [file],
  );
  t.regex(report.caches.problems[0]!.reason, /fails its checksum; project --follow ignores it/);
  const [started] = await followUntilCaughtUp(dir);
  t.like(started, { kind: 'started', checkpoint: null });
  t.regex((started as { ignored: string }).ignored, /fails its checksum/);
});

test('a projection checkpoint past the end of the log: project --follow refuses it, verify reports it', async (t) => {
  const longer = await root(4);
  await followUntilCaughtUp(longer.root);
  const shorter = await root(1);
  // The folders were projected from a log that had more events than this one has.
  writeFileSync(checkpointFile(shorter.root), readFileSync(checkpointFile(longer.root)));

  const error = await t.throwsAsync(followUntilCaughtUp(shorter.root), {
    instanceOf: ProjectionCheckpointMismatchError,
  });
  t.is(error!.file, checkpointFile(shorter.root));
  t.regex(error!.message, /the log ends at position \d+/);
  t.regex(error!.message, /delete .*\.projection-checkpoint\.json/);

  const report = await verifyRoot({ root: shorter.root });
  t.false(report.ok);
  t.is(report.caches.problems[0]?.file, checkpointFile(shorter.root));
  t.regex(report.caches.problems[0]!.reason, /but the log ends at position \d+: project --follow refuses it/);
});

test('a projection checkpoint at an event other than the one it recorded is refused', async (t) => {
  const first = await root(3);
  await followUntilCaughtUp(first.root);
  const other = await root(3);
  writeFileSync(checkpointFile(other.root), readFileSync(checkpointFile(first.root)));
  const error = await t.throwsAsync(followUntilCaughtUp(other.root), {
    instanceOf: ProjectionCheckpointMismatchError,
  });
  t.regex(error!.message, /the log has event \S+ at that position where the checkpoint recorded event/);
  t.false((await verifyRoot({ root: other.root })).ok);
});

test('a copied root keeps its projection checkpoint: the checkpoint names no path', async (t) => {
  const { root: dir } = await root(2);
  const first = await followUntilCaughtUp(dir);
  const caughtUp = first.find((u) => u.kind === 'caughtUp') as { position: bigint };
  const stored = JSON.parse(readFileSync(checkpointFile(dir), 'utf8')) as Record<string, unknown>;
  t.is(stored.store, 'file log');
  t.false(JSON.stringify(stored).includes(dir), 'no path of the root in the checkpoint');

  const copy = path.join(tempDir(), 'copied-root');
  cpSync(dir, copy, { recursive: true });
  const [started] = await followUntilCaughtUp(copy);
  t.like(started, { kind: 'started', checkpoint: caughtUp.position, ignored: null, lagEvents: 0 });
  t.true((await verifyRoot({ root: copy })).ok);
  t.deepEqual(readdirSync(path.join(copy, 'experiments')).sort(), readdirSync(path.join(dir, 'experiments')).sort());
});

test('a folder roundlog replay wrote with a flipped byte in its parameters is a verify problem', async (t) => {
  const { root: dir, id } = await root(2);
  const rl = await openRoundLog({ root: dir });
  const replayed = await replayRound(rl, id, { round: 1 });
  await rl.close();
  t.true((await verifyRoot({ root: dir })).ok, 'an undamaged replay verifies');
  const params = path.join(
    replayed.path,
    readdirSync(replayed.path).find((n) => n !== 'breakpoint.json')!,
  );
  flipByte(params, readFileSync(params).length - 1);

  const report = await verifyRoot({ root: dir });
  t.false(report.ok);
  // The parameters file may be a hard link of the blob (then the blob and the experiment's folder
  // are named too): the replayed folder is named among them.
  const problem = report.breakpoints.problems.find((p) => p.folder === replayed.path);
  t.like(problem, { file: path.basename(params), round: 1 }, JSON.stringify(report.breakpoints.problems));
  t.regex(problem!.reason, /has SHA-256 \w+, the manifest records/);
});
