/**
 * A breakpoint folder is never written from a blob the store holds damaged: `project --rebuild`
 * around a blob the storage cut short fails naming the experiment, the round, the blob and the
 * command that heals it, and leaves no folder (whole or half) behind.
 */
import test from 'ava';
import { promises as fs, chmodSync, statSync, truncateSync } from 'node:fs';
import path from 'node:path';
import type { TensorSet } from '../../src/codec/tensors.ts';
import { BreakpointBlobDamagedError } from '../../src/model/errors.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { writeBreakpoint } from '../../src/projections/breakpoints/write.ts';
import { roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const tensors = (...values: number[]): TensorSet => ({
  w: { dtype: 'float32', shape: [values.length], data: new Float32Array(values) },
});

/** What a crash of the storage does to a file: the end of it is gone. */
function cut(file: string): void {
  chmodSync(file, 0o644);
  truncateSync(file, statSync(file).size - 3);
  chmodSync(file, 0o444);
}

async function rootWithDamagedRound1() {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const handle = await rl.createExperiment({ saveBreakpoints: true, roundLimit: 10, initialParams: tensors(0, 0) });
  for (let r = 0; r < 3; r++) await handle.recordRound({ params: tensors(r, 1) });
  const sha256 = handle.state.rounds[1]!.params.sha256;
  const folder = handle.state.folder;
  await rl.close();
  // The folder's parameters are a hard link of the blob: cutting the blob cuts both.
  cut(path.join(root, 'blobs', sha256.slice(0, 2), sha256.slice(2)));
  return { root, sha256, folder, exp: path.join(root, 'experiments', folder) };
}

test('project --rebuild around a damaged blob fails naming it and verify --repair, and leaves no folder', async (t) => {
  const { root, sha256, folder, exp } = await rootWithDamagedRound1();

  const run = await roundlog(['project', folder, '--rebuild', '--root', root]);
  t.is(run.code, 1, run.stdout + run.stderr);
  t.regex(
    run.stdout,
    new RegExp(
      `problem: breakpoint folder of round 1 of experiment ${folder} not written: its params.safetensors ` +
        `is blob ${sha256}, which is damaged in the blob store .*Run 'roundlog verify --repair' .*` +
        `then run the command again \\(the experiment's breakpoint folders: 'roundlog project ${folder}'\\)`,
    ),
  );
  const names = await fs.readdir(exp);
  t.false(names.includes('breakpoint_0001'), 'no folder written with the damaged parameters');
  t.deepEqual(
    names.filter((n) => n.startsWith('.tmp-')),
    [],
    'no half-written folder',
  );
  t.true(names.includes('breakpoint_0002'), 'the other rounds are written');
  t.regex(run.stdout, /still missing: round 1\b/);
  t.notRegex(run.stdout, /wrote .*breakpoint_0001/, 'the folder not written is not reported as written');
  t.regex(run.stdout, /wrote .*breakpoint_0002/);
});

test('writing a breakpoint folder from a damaged blob is BreakpointBlobDamagedError, with its fields', async (t) => {
  const { root, sha256, folder, exp } = await rootWithDamagedRound1();
  await fs.rm(path.join(exp, 'breakpoint_0001'), { recursive: true });
  const rl = await openRoundLog({ root });
  t.teardown(() => rl.close());
  const handle = await rl.openExperiment(folder);
  const error = await t.throwsAsync(writeBreakpoint(handle, 1), { instanceOf: BreakpointBlobDamagedError });
  t.is(error?.code, 'BREAKPOINT_BLOB_DAMAGED');
  t.is(error?.experiment, folder);
  t.is(error?.round, 1);
  t.is(error?.sha256, sha256);
  t.is(error?.file, 'params.safetensors');
  t.is(error?.stored, path.join(root, 'blobs', sha256.slice(0, 2), sha256.slice(2)));
  t.deepEqual((await fs.readdir(exp)).sort(), ['breakpoint_0000', 'breakpoint_0002']);
});

test('replay of a round whose blob is damaged fails the same way and writes no folder', async (t) => {
  const { root, sha256, folder } = await rootWithDamagedRound1();
  const out = path.join(tempDir(), 'round1');
  const run = await roundlog(['replay', folder, '--round', '1', '--out', out, '--root', root]);
  t.is(run.code, 1, run.stdout + run.stderr);
  t.regex(run.stderr, new RegExp(`BREAKPOINT_BLOB_DAMAGED|round 1 of experiment ${folder} not written`));
  t.regex(run.stderr, new RegExp(`blob ${sha256}.*'roundlog verify --root ${root} --repair'`));
  const left = await fs.readdir(out).catch(() => [] as string[]);
  t.false(
    left.some((name) => name.startsWith('breakpoint_')),
    `no breakpoint folder is left: ${left.join(', ')}`,
  );
});

test('project --rebuild over manifests listing files by names that are no blob: rewritten from the log', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const handle = await rl.createExperiment({ saveBreakpoints: true, roundLimit: 10, initialParams: tensors(0, 0) });
  for (let r = 0; r < 3; r++) await handle.recordRound({ params: tensors(r, 1) });
  const folder = handle.state.folder;
  await rl.close();
  const exp = path.join(root, 'experiments', folder);
  // What the folders list is data: a path, a short name, a list, a string; none may be taken for a blob.
  const lists: unknown[] = [{ 'params.safetensors': '../../../../etc/passwd' }, { x: 'abc' }, ['a']];
  for (const [round, files] of [
    [0, lists[0]],
    [1, lists[1]],
    [2, lists[2]],
  ] as const) {
    const file = path.join(exp, `breakpoint_000${round}`, 'breakpoint.json');
    const manifest = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
    chmodSync(file, 0o644);
    await fs.writeFile(file, JSON.stringify({ ...manifest, files }));
  }

  const run = await roundlog(['project', folder, '--rebuild', '--root', root]);
  t.is(run.code, 0, run.stdout + run.stderr);
  t.notRegex(run.stderr, /unexpected error/);
  const verify = await roundlog(['verify', '--root', root]);
  t.is(verify.code, 0, verify.stdout + verify.stderr);
  for (const round of [0, 1, 2]) {
    const file = path.join(exp, `breakpoint_000${round}`, 'breakpoint.json');
    const manifest = JSON.parse(await fs.readFile(file, 'utf8')) as { files: Record<string, string> };
    t.regex(Object.values(manifest.files)[0]!, /^[0-9a-f]{64}$/, `round ${round} written again from the log`);
  }
});
