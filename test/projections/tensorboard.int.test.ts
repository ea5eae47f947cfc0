/**
 * The TensorBoard projection's writes against what is on disk: a round commits even when its event
 * file cannot be written (the file is lag, then written by `project`); a file ahead of the state
 * being projected is never cut back by `project`, is named by `verify`, and `verify --repair`
 * writes it as the log gives it.
 */
import test from 'ava';
import { appendFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openRoundLog, projectRoot, repairRoot, verifyRoot } from '../../src/projections/index.ts';
import { frameRecord, scalarsEvent, tensorboardRuns } from '../../src/projections/tensorboard/index.ts';
import { tensors } from '../support/rounds.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

/** A root with one experiment of `rounds` rounds with metrics; its folder and the current event file. */
async function rootWithMetrics(rounds: number, before?: (tensorboard: string) => void) {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const handle = await rl.createExperiment({ roundLimit: 10 });
  const tensorboard = path.join(root, 'experiments', handle.state.folder, 'tensorboard');
  before?.(tensorboard);
  for (let r = 0; r < rounds; r++) {
    await handle.recordRound({
      params: tensors(r),
      metrics: { loss: 1 / (r + 1) },
      nodes: [{ node: 'n1', sampleSize: 3, metrics: { loss: 0 } }],
    });
  }
  const state = handle.state;
  await rl.close();
  const [current] = tensorboardRuns(state);
  return { root, tensorboard, state, file: path.join(tensorboard, current!.file), bytes: current!.bytes };
}

test('a round commits even when its event file cannot be written; project names why, then writes it', async (t) => {
  let blocker = '';
  const { root, tensorboard, state, file, bytes } = await rootWithMetrics(2, (dir) => {
    // A regular file where the run's folder goes: no event file can be written.
    mkdirSync(path.dirname(dir), { recursive: true });
    writeFileSync(dir, 'not a folder');
    blocker = dir;
  });
  t.is(state.rounds.length, 2, 'both rounds committed');
  const blocked = await projectRoot({ root });
  t.false(blocked.ok);
  t.regex(blocked.experiments[0]!.problems.join('\n'), new RegExp(tensorboard.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  t.deepEqual(blocked.experiments[0]!.views!.find((v) => v.name === 'tensorboard')!.lagAfter, [0, 1]);
  const verified = await verifyRoot({ root });
  t.deepEqual(verified.lag, [{ experiment: state.folder, view: 'tensorboard', rounds: [0, 1] }], 'lag');
  t.false(verified.ok, 'and a problem: a file where the folder goes');

  rmSync(blocker);
  const projected = await projectRoot({ root });
  t.true(projected.ok);
  t.deepEqual(projected.experiments[0]!.written, [file]);
  t.deepEqual(readFileSync(file), bytes);
});

test('a file ahead of the state is left by project, named by verify, rewritten by verify --repair', async (t) => {
  const { root, state, file, bytes } = await rootWithMetrics(2);
  t.deepEqual(readFileSync(file), bytes, 'written after each round');
  // What another process would have written for a round this log does not hold (yet).
  appendFileSync(file, frameRecord(scalarsEvent(1e9, 2, [{ tag: 'loss', value: 0.25 }])));
  const ahead = readFileSync(file);

  const projected = await projectRoot({ root });
  t.true(projected.ok);
  t.deepEqual(projected.experiments[0]!.written, []);
  t.deepEqual(readFileSync(file), ahead, 'left as it is');

  const verified = await verifyRoot({ root });
  t.false(verified.ok);
  const tensorboard = verified.views.find((v) => v.name === 'tensorboard')!;
  t.is(tensorboard.problems.length, 1);
  t.like(tensorboard.problems[0], { experiment: state.folder, file: path.basename(file), round: null });
  t.regex(tensorboard.problems[0]!.reason, /not what the log gives/);
  t.deepEqual(verified.breakpoints.problems, [], 'the breakpoint folders are fine');

  const repaired = await repairRoot({ root });
  t.true(repaired.ok);
  t.deepEqual(readFileSync(file), bytes);
  t.deepEqual(readdirSync(path.dirname(file)), [path.basename(file)], 'no temp file left');
});
