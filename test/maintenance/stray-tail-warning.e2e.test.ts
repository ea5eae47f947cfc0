/**
 * A warning about the log's files is said once per command: `ls` opens the log once for the list
 * and once per experiment, and each open finds the same stray byte after the data.
 */
import test from 'ava';
import { closeSync, openSync, readFileSync, readdirSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { TensorSet } from '../../src/codec/tensors.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { roundlogProcess } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const tensors = (...values: number[]): TensorSet => ({
  w: { dtype: 'float32', shape: [values.length], data: new Float32Array(values) },
});

const occurrences = (text: string, what: string) => text.split(what).length - 1;

test('ls, history and verify print the stray-tail warning once each, with two experiments in the root', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const folders: string[] = [];
  for (let e = 0; e < 2; e++) {
    const handle = await rl.createExperiment({ saveBreakpoints: true, roundLimit: 10, initialParams: tensors(e) });
    for (let r = 0; r < 2; r++) await handle.recordRound({ params: tensors(e, r) });
    folders.push(handle.state.folder);
  }
  await rl.close();
  const logDir = path.join(root, 'log');
  const segment = path.join(
    logDir,
    readdirSync(logDir).find((name) => name.endsWith('.seg'))!,
  );
  const data = readFileSync(segment);
  let end = 8;
  while (end + 12 <= data.length && !data.subarray(end, end + 12).equals(Buffer.alloc(12))) {
    end += 12 + data.readUInt32LE(end);
  }
  const fd = openSync(segment, 'r+');
  writeSync(fd, Buffer.from([0x01]), 0, 1, end + 700);
  closeSync(fd);

  for (const args of [['ls'], ['history', folders[1]!], ['verify']]) {
    const run = await roundlogProcess([...args, '--root', root]);
    t.is(run.code, args[0] === 'verify' ? 1 : 0, run.stderr);
    t.is(occurrences(run.stderr, 'ROUNDLOG_STRAY_TAIL_BYTES'), 1, `roundlog ${args[0]}: ${run.stderr}`);
    t.is(occurrences(run.stderr, `at byte offset ${end + 700} `), 1);
  }
});
