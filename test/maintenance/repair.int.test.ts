/**
 * A store that heals: damage the storage did is repaired from good copies (a round done again, a
 * breakpoint folder that holds a copy, the log), and what cannot be repaired is named.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { promises as fs, chmodSync, statSync, truncateSync } from 'node:fs';
import path from 'node:path';
import { CorruptBlobError } from '../../src/blobs/errors.ts';
import { openRoundLog, type ExperimentHandle, type RoundLog } from '../../src/projections/index.ts';
import { repairRoot, verifyRoot } from '../../src/projections/index.ts';
import { readSnapshot, snapshotFile } from '../../src/engine/snapshots.ts';
import { roundlog } from '../support/cli.ts';
import { tensors } from '../support/rounds.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

async function root(rounds = 3): Promise<{ root: string; rl: RoundLog; handle: ExperimentHandle; exp: string }> {
  const dir = tempDir();
  const rl = await openRoundLog({ root: dir });
  const handle = await rl.createExperiment({ saveBreakpoints: true, roundLimit: 10, initialParams: tensors(0, 0) });
  for (let r = 0; r < rounds; r++) await handle.recordRound({ params: tensors(r, 1) });
  return { root: dir, rl, handle, exp: path.join(dir, 'experiments', handle.state.folder) };
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** What a crash of the storage does to a file: the end of it is gone. */
function cut(file: string): void {
  chmodSync(file, 0o644);
  truncateSync(file, statSync(file).size - 3);
  chmodSync(file, 0o444);
}

test('a round done again after its blob was cut short commits parameters that read back', async (t) => {
  const { rl, handle } = await root(2);
  const blob = rl.blobs.fileOf(handle.state.rounds[1]!.params.sha256)!;
  cut(blob);
  await t.throwsAsync(handle.loadRound(1), { instanceOf: CorruptBlobError });

  // The same bytes again (a deterministic round run again): the store must not trust the file's name.
  const again = await rl.putTensors(tensors(1, 1));
  t.is(again.sha256, handle.state.rounds[1]!.params.sha256);
  const loaded = await handle.loadRound(1);
  t.deepEqual([...(loaded.params.w!.data as Float32Array)], [1, 1]);
  await rl.close();
});

test('verify --repair heals a blob from a copy, links damaged folder files again, rewrites a snapshot', async (t) => {
  const { root: dir, rl, handle, exp } = await root(3);
  const params1 = handle.state.rounds[1]!.params.sha256;
  const params2 = handle.state.rounds[2]!.params.sha256;
  await handle.snapshot();
  await rl.close();

  // Round 1's folder holds a copy (a folder carried in from elsewhere), not a link; then the storage
  // cuts the blob. The copy is the good copy the store can heal from.
  const copy = path.join(exp, 'breakpoint_0001', 'params.safetensors');
  const good = await fs.readFile(copy);
  await fs.rm(copy);
  await fs.writeFile(copy, good, { mode: 0o444 });
  cut(path.join(dir, 'blobs', params1.slice(0, 2), params1.slice(2)));
  // Round 2's folder file is a hard link of its blob: cutting it cuts the blob too. The store's blob
  // is then put again (the round done again), which leaves the folder with the old, damaged file.
  const linked = path.join(exp, 'breakpoint_0002', 'params.safetensors');
  cut(linked);
  const rl2 = await openRoundLog({ root: dir });
  await rl2.putTensors(tensors(2, 1));
  await rl2.close();
  // The snapshot file is damaged: one flipped byte.
  const snap = snapshotFile(dir, handle.id);
  const bytes = await fs.readFile(snap);
  bytes[bytes.length - 2] = bytes[bytes.length - 2]! ^ 0xff;
  await fs.writeFile(snap, bytes);

  const before = await verifyRoot({ root: dir });
  t.false(before.ok);

  const run = await roundlog(['verify', '--repair', '--root', dir]);
  t.is(run.code, 0, run.stdout + run.stderr);
  t.regex(run.stdout, new RegExp(`healed blob ${params1} from .*breakpoint_0001/params.safetensors`));
  t.regex(
    run.stdout,
    new RegExp(`healed .*breakpoint_0002/params.safetensors: linked again to blob ${params2}`),
  );
  t.regex(run.stdout, /wrote snapshot .*\.snap again from the log/);
  t.regex(run.stdout, /ok: no problem found/);

  const after = await verifyRoot({ root: dir });
  t.true(after.ok, JSON.stringify(after, null, 2));
  t.is(sha256(await fs.readFile(path.join(dir, 'blobs', params1.slice(0, 2), params1.slice(2)))), params1);
  t.is(sha256(await fs.readFile(linked)), params2);
  const snapshot = await readSnapshot(dir, handle.id, `experiment-${handle.id}`);
  t.not(snapshot, null);
  t.is(snapshot!.state.rounds.length, 3);

  // Nothing left to do: a second repair heals nothing.
  const again = await repairRoot({ root: dir });
  t.deepEqual([again.blobsHealed, again.filesRelinked, again.snapshotsRewritten, again.unhealable], [[], [], [], []]);
});

test('verify --repair names a blob it cannot heal and the rounds that reference it, and exits 1', async (t) => {
  const { root: dir, rl, handle } = await root(3);
  const params1 = handle.state.rounds[1]!.params.sha256;
  await rl.close();
  // The folder file is a hard link of the blob: the same damage, so there is no good copy.
  cut(path.join(dir, 'blobs', params1.slice(0, 2), params1.slice(2)));

  const run = await roundlog(['verify', '--repair', '--root', dir]);
  t.is(run.code, 1);
  t.regex(
    run.stdout,
    new RegExp(
      `cannot heal blob ${params1} \\(damaged\\): no good copy in this root; referenced by ` +
        `${handle.state.folder} round 1\\.`,
    ),
  );
  const report = await repairRoot({ root: dir });
  t.false(report.ok);
  t.deepEqual(report.unhealable, [
    {
      sha256: params1,
      state: 'damaged',
      referencedBy: [{ experiment: handle.state.folder, round: 1, branch: 'current', what: 'round parameters' }],
    },
  ]);
  // Nothing was made worse: the other rounds' folders and blobs are intact.
  t.deepEqual(
    report.after.blobs.problems.map((p) => ('sha256' in p ? p.sha256 : null)),
    [params1],
  );
});

test('verify names every experiment and round that references a damaged blob, as verify --repair does', async (t) => {
  const { root: dir, rl, handle } = await root(3);
  // A second experiment whose round 1 has the same parameters: one blob, two users.
  const other = await rl.createExperiment({ saveBreakpoints: true, roundLimit: 10, initialParams: tensors(9, 9) });
  for (let r = 0; r < 2; r++) await other.recordRound({ params: tensors(r, 1) });
  const params1 = handle.state.rounds[1]!.params.sha256;
  t.is(other.state.rounds[1]!.params.sha256, params1);
  await rl.close();
  cut(path.join(dir, 'blobs', params1.slice(0, 2), params1.slice(2)));
  const users = `${handle.state.folder} round 1, ${other.state.folder} round 1`;

  const run = await roundlog(['verify', '--root', dir]);
  t.is(run.code, 1);
  t.regex(run.stdout, new RegExp(`: blob ${params1} now hashes to [0-9a-f]{64}; referenced by ${users}\n`));
  const report = await verifyRoot({ root: dir });
  t.deepEqual(
    report.blobs.problems.map((p) => p.referencedBy),
    [
      [
        { experiment: handle.state.folder, round: 1, branch: 'current', what: 'round parameters' },
        { experiment: other.state.folder, round: 1, branch: 'current', what: 'round parameters' },
      ],
    ],
  );

  const repair = await roundlog(['verify', '--repair', '--root', dir]);
  t.regex(repair.stdout, new RegExp(`cannot heal blob ${params1} \\(damaged\\): .*referenced by ${users}\\.`));
});

test('projecting again links a damaged folder file again once the store holds the blob intact', async (t) => {
  const { root: dir, rl, handle, exp } = await root(2);
  const params0 = handle.state.rounds[0]!.params.sha256;
  const file = path.join(exp, 'breakpoint_0000', 'params.safetensors');
  cut(file); // cuts the blob too (same inode)
  await rl.putTensors(tensors(0, 1)); // the round done again heals the blob: a new file
  t.is(sha256(await fs.readFile(file)), sha256(await fs.readFile(file)), 'the folder still holds the old file');
  t.not(sha256(await fs.readFile(file)), params0);

  const run = await roundlog(['project', '--root', dir]);
  t.is(run.code, 0, run.stdout + run.stderr);
  t.is(sha256(await fs.readFile(file)), params0);
  t.is(statSync(file).ino, statSync(rl.blobs.fileOf(params0)!).ino, 'a hard link of the healed blob');
  await rl.close();
});
