/**
 * Export reads a round stored as safetensors from its blob file as it writes, never whole: the
 * peak memory of an export of a 192 MiB round grows by far less than the round (reading it whole
 * would add at least its 192 MiB), as safetensors and as npz. The bytes are checked against the
 * blob's SHA-256 as they are read: a damaged blob file is `CorruptBlobError`, and nothing is put in
 * place.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CorruptBlobError } from '../../src/blobs/errors.ts';
import { exportRound, openRoundLog } from '../../src/projections/index.ts';
import { flipByte } from '../support/segments.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const EXPORT_RSS = fileURLToPath(new URL('../support/export-rss.ts', import.meta.url));
const MiB = 1024 * 1024;
const node = { node: 'n1', sampleSize: 3, metrics: {} };

/** A root whose round 0 holds `tensors` float32 tensors of `mib` MiB each. */
async function rootWith(tensors: number, mib: number): Promise<{ root: string; folder: string; blob: string }> {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const handle = await rl.createExperiment({ saveBreakpoints: false, roundLimit: 10, initialParams: {} });
  const params: Record<string, { dtype: 'float32'; shape: number[]; data: Float32Array }> = {};
  for (let i = 0; i < tensors; i++) {
    const data = new Float32Array((mib * MiB) / 4).fill(i + 0.25);
    params[`layer${i}.weight`] = { dtype: 'float32', shape: [data.length / 1024, 1024], data };
  }
  await handle.recordRound({ params, replies: [], nodes: [node] });
  const folder = handle.state.folder;
  const blob = rl.blobs.fileOf(handle.state.rounds[0]!.params.sha256)!;
  await rl.close();
  return { root, folder, blob };
}

test('exporting a 192 MiB round grows peak memory by far less than the round (safetensors and npz)', async (t) => {
  const { root, folder } = await rootWith(4, 48);
  const out = tempDir();
  for (const format of ['safetensors', 'npz'] as const) {
    const file = path.join(out, `round0.${format}`);
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', EXPORT_RSS, root, folder, '0', file, format],
      { cwd: REPO },
    );
    const { before, after, bytes } = JSON.parse(stdout) as { before: number; after: number; bytes: number };
    const grownMiB = (after - before) / 1024;
    t.log(`${format}: peak RSS ${Math.round(before / 1024)} MiB before, ${Math.round(after / 1024)} MiB after`);
    t.true(bytes > 192 * MiB);
    // GC leaves some read chunks behind (tens of MiB at most); reading the blob whole adds all 192.
    t.true(grownMiB < 120, `${format}: peak RSS grew by ${grownMiB.toFixed(0)} MiB`);
    rmSync(file);
  }
});

test('a damaged blob file is CorruptBlobError as it is read: nothing put in place, no temp left', async (t) => {
  const { root, folder, blob } = await rootWith(2, 2);
  // A byte of the second tensor: past the first entry of an npz, so the damage is found mid-write.
  flipByte(blob, statSync(blob).size - 10);
  const out = tempDir();
  const rl = await openRoundLog({ root });
  t.teardown(() => rl.close());
  for (const name of ['p.safetensors', 'p.npz']) {
    const error = await t.throwsAsync(exportRound(rl, folder, { round: 0, out: path.join(out, name) }), {
      instanceOf: CorruptBlobError,
    });
    t.is(error?.file, blob);
  }
  t.deepEqual(readdirSync(out), []);
});
