/**
 * An export killed with SIGKILL leaves its temporary file (`.<name>.tmp-<pid>-<uuid>`) beside the
 * file it was writing; the next export into that folder removes it, since its pid is dead, and
 * keeps the temporary files of writers still running (and anything that is not a regular file).
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, watch, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openRoundLog } from '../../src/projections/index.ts';
import { roundlog, startRoundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { killSpawned } from '../support/child.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const TEMP = /^\.(.+)\.tmp-(\d+)-[0-9a-f-]{36}$/;

/** A root whose round 0 has 96 MiB of parameters: long enough to write that a kill lands mid-export. */
async function bigRound(): Promise<{ root: string; folder: string }> {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const handle = await rl.createExperiment({ saveBreakpoints: false, roundLimit: 10, initialParams: {} });
  const params: Record<string, { dtype: 'float32'; shape: number[]; data: Float32Array }> = {};
  for (let i = 0; i < 3; i++) {
    const data = new Float32Array(8 * 1024 * 1024).fill(i + 0.5);
    params[`layer${i}`] = { dtype: 'float32', shape: [data.length], data };
  }
  await handle.recordRound({ params, replies: [], nodes: [{ node: 'n1', sampleSize: 3, metrics: {} }] });
  const folder = handle.state.folder;
  await rl.close();
  return { root, folder };
}

/**
 * Runs `roundlog export` as a process and SIGKILLs it as soon as its temporary file appears in
 * `dir` (told by the folder's watcher, no timer); resolves with the temp's name, or null when the
 * export finished before the kill landed.
 */
async function killedExport(root: string, folder: string, dir: string, name: string): Promise<string | null> {
  const watcher = watch(dir);
  try {
    const child = startRoundlog(['export', folder, '--round', '0', '--out', path.join(dir, name), '--root', root]);
    const seen = (file: string | null) => file !== null && TEMP.test(file) && file.startsWith(`.${name}.`);
    const onChange = (_: string, file: string | Buffer | null) => {
      if (seen(file === null ? null : file.toString())) child.process.kill('SIGKILL');
    };
    watcher.on('change', onChange);
    // The temp may have appeared before the watcher reported anything: look once too.
    if (readdirSync(dir).some(seen)) child.process.kill('SIGKILL');
    const { signal } = await child.exited;
    if (signal !== 'SIGKILL') return null;
    return readdirSync(dir).find(seen) ?? null;
  } finally {
    watcher.close();
  }
}

test('the temp of a SIGKILLed export is removed by the next export; a live writer’s is kept', async (t) => {
  const { root, folder } = await bigRound();
  const dir = tempDir();
  let left: string | null = null;
  // The kill almost always lands while the 96 MiB are written; an export that wins the race is run again.
  let attempts = 0;
  while (attempts < 5 && left === null) left = await killedExport(root, folder, dir, `killed${attempts++}.safetensors`);
  t.log(`killed mid-export on attempt ${attempts}`);
  if (left === null) return t.fail('every export finished before its SIGKILL landed');
  const killedPid = Number(TEMP.exec(left)![2]);
  t.true(existsSync(path.join(dir, left)), 'SIGKILL left the temporary file');

  // A temp of a writer that is still running (another process), and a folder with a temp's name.
  const live = spawn(process.execPath, ['-e', 'process.stdin.resume()'], { stdio: ['pipe', 'ignore', 'ignore'] });
  t.teardown(() => live.kill('SIGKILL'));
  const liveTemp = `.other.npz.tmp-${live.pid}-${randomUUID()}`;
  writeFileSync(path.join(dir, liveTemp), 'being written');
  const notAFile = `.folder.npz.tmp-${killedPid}-${randomUUID()}`;
  mkdirSync(path.join(dir, notAFile));
  const mine = `.mine.npz.tmp-${process.pid}-${randomUUID()}`;
  writeFileSync(path.join(dir, mine), 'this process writes it');

  const run = await roundlog(['export', folder, '--round', '0', '--out', path.join(dir, 'next.npz'), '--root', root]);
  t.is(run.code, 0, run.stderr);
  const names = readdirSync(dir);
  t.false(names.includes(left), 'the dead export’s temp is gone');
  t.true(names.includes(liveTemp), 'a running writer’s temp is kept');
  t.true(names.includes(mine), 'a temp of this (running) process is kept');
  t.true(names.includes(notAFile), 'only regular files are removed');
  t.true(names.includes('next.npz'));
  live.stdin!.end();
  await once(live, 'exit');
});
