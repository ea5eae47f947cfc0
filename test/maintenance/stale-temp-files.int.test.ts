/**
 * A writer killed mid-upload leaves `<root>/blobs/tmp/<pid>-<uuid>.tmp`: verify notes it (not a
 * problem) with its size, and verify --repair removes it, as the next upload does; a temp file of a
 * live writer is left alone.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { openRoundLog, repairRoot, verifyRoot } from '../../src/projections/index.ts';
import { roundlog } from '../support/cli.ts';
import { tensors } from '../support/rounds.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

/** The pid of a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

test('verify notes a dead writer’s blob temp file and its size; --repair removes it, a live one stays', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const run = await rl.createExperiment({ seed: 1 });
  await run.recordRound({ params: tensors(1) });
  await rl.close();

  const tmp = path.join(root, 'blobs', 'tmp');
  const stale = path.join(tmp, `${deadPid()}-${randomUUID()}.tmp`);
  const live = path.join(tmp, `${process.ppid}-${randomUUID()}.tmp`);
  await fs.writeFile(stale, Buffer.alloc(1234, 7));
  await fs.writeFile(live, Buffer.alloc(10, 7));

  const report = await verifyRoot({ root });
  t.true(report.ok);
  const notes = report.notes.filter((n) => n.includes(`${path.sep}blobs${path.sep}tmp${path.sep}`));
  t.is(notes.length, 1, notes.join('\n'));
  t.true(notes[0]!.startsWith(`${stale}: a temp file of an upload that did not finish`));
  t.regex(notes[0]!, /1234 bytes; not a problem: verify --repair removes it/);

  const cli = await roundlog(['verify', '--repair'], { ROUNDLOG_DIR: root });
  t.is(cli.code, 0, cli.stderr);
  t.regex(cli.stdout, /removed .*\.tmp \(1234 bytes\), a temp file of an upload whose writer is gone/);
  t.false(existsSync(stale));
  t.true(existsSync(live));
  const repaired = await repairRoot({ root });
  t.deepEqual(repaired.tempFilesRemoved, []);
  t.deepEqual(
    (await verifyRoot({ root })).notes.filter((n) => n.includes('temp file')),
    [],
  );
});
