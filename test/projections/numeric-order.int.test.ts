/**
 * Rounds and experiments past 9,999: `breakpoint_10000` after `breakpoint_9999`, `Experiment_10000`
 * after `Experiment_9999`, in every listing and every choice of "the latest". Histories are
 * built by appending events (one round's parameters shared by every round), not by running
 * 10,000 rounds.
 */
import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { roundsTable } from '../../src/audit/index.ts';
import { folderTree, listExperiments } from '../../src/cli/experiments.ts';
import type { ExperimentHandle } from '../../src/engine/round-log.ts';
import {
  REGISTRY_STREAM,
  breakpointFolderName,
  experimentFolderName,
  type ExperimentEvent,
} from '../../src/model/index.ts';
import {
  listBreakpointFolders,
  SUPERSEDED_DIR,
  listSupersededFolders,
  moveAside,
  roundOfFolder,
} from '../../src/projections/breakpoints/index.ts';
import { rewindExperiment } from '../../src/projections/history-ops.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

test('an experiment folder with rounds 9,998 to 10,001: folders listed and moved aside by number', async (t) => {
  const dir = tempDir();
  const rounds = [10001, 9999, 10000, 9998, 2];
  for (const round of rounds) mkdirSync(path.join(dir, breakpointFolderName(round)));
  mkdirSync(path.join(dir, 'breakpoint_09999')); // not a name roundlog gives: not a breakpoint folder
  t.deepEqual(await listBreakpointFolders(dir), [
    'breakpoint_0002',
    'breakpoint_9998',
    'breakpoint_9999',
    'breakpoint_10000',
    'breakpoint_10001',
  ]);
  t.is(roundOfFolder((await listBreakpointFolders(dir)).at(-1)!), 10001, 'the latest is round 10,001');

  // Moved aside in an order that text sorting would scramble: 10,000 before 9,999, .10 after .9.
  for (const round of [10001, 10000]) await moveAside(dir, path.join(dir, breakpointFolderName(round)));
  for (let n = 1; n <= 10; n++) {
    if (n > 1) mkdirSync(path.join(dir, breakpointFolderName(9999)));
    await moveAside(dir, path.join(dir, breakpointFolderName(9999)));
  }
  t.deepEqual(await listSupersededFolders(dir), [
    ...Array.from({ length: 10 }, (_, i) => `breakpoint_9999.${i + 1}`),
    'breakpoint_10000.1',
    'breakpoint_10001.1',
  ]);
  t.deepEqual(await listBreakpointFolders(dir), ['breakpoint_0002', 'breakpoint_9998']);

  writeFileSync(path.join(dir, SUPERSEDED_DIR, 'breakpoint_10000.1', 'breakpoint.json'), '{}');
  const tree = await folderTree(dir);
  const names = tree.map((line) => line.replace(/^[│├└─\s]+/, ''));
  t.deepEqual(names.slice(0, 4), ['breakpoint_0002/', 'breakpoint_9998/', 'breakpoint_09999/', 'superseded/']);
  t.true(names.indexOf('breakpoint_9999.10/') < names.indexOf('breakpoint_10000.1/'), tree.join('\n'));
  t.true(names.indexOf('breakpoint_9999.2/') < names.indexOf('breakpoint_9999.10/'), tree.join('\n'));
});

const CHUNK = 2500;

/** Appends rounds `from`..`to` (inclusive) completed with `params`, a breakpoint for those in `breakpoints`. */
async function appendRounds(
  handle: ExperimentHandle,
  from: number,
  to: number,
  breakpoints: ReadonlySet<number>,
): Promise<void> {
  const params = handle.state.rounds[0]!.params;
  for (let start = from; start <= to; start += CHUNK) {
    const events: ExperimentEvent[] = [];
    for (let round = start; round <= Math.min(to, start + CHUNK - 1); round++) {
      events.push({
        type: 'RoundCompleted',
        data: {
          v: 1,
          round,
          attempt: 1,
          params,
          state: null,
          nodes: [],
          metrics: { loss: 1 / (round + 1) },
          breakpoint: breakpoints.has(round),
          durationMs: 0,
        },
      });
    }
    await handle.append(events);
  }
}

test('an experiment crossing round 9,999 → 10,000: ls, rewind and audit take round 10,000 as the latest', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const handle = await rl.createExperiment({ seed: 1 });
  const weights = { dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) } as const;
  await handle.recordRound({ params: { weights }, metrics: {}, breakpoint: false });
  await appendRounds(handle, 1, 10000, new Set([9998, 9999, 10000]));
  t.is(handle.roundCurrent(), 10001);
  const dir = path.join(rl.layout.experiments, handle.state.folder);
  t.deepEqual(await listBreakpointFolders(dir), ['breakpoint_9998', 'breakpoint_9999', 'breakpoint_10000']);

  // Rewound to 9,999, round 10,000 run again, rewound to 9,998: superseded 10,000 (twice) and 9,999.
  let rewound = await rewindExperiment(rl, handle.id, { round: 9999, reason: 'retry the last round' });
  t.deepEqual(rewound.moved, [path.join(dir, SUPERSEDED_DIR, 'breakpoint_10000.1')]);
  const again = await rl.openExperiment(handle.id);
  await appendRounds(again, 10000, 10000, new Set([10000]));
  rewound = await rewindExperiment(rl, handle.id, { round: 9998, reason: 'further back' });
  t.deepEqual(
    rewound.moved.map((p) => path.basename(p)),
    ['breakpoint_9999.1', 'breakpoint_10000.2'],
  );
  t.deepEqual(await listSupersededFolders(dir), ['breakpoint_9999.1', 'breakpoint_10000.1', 'breakpoint_10000.2']);
  t.deepEqual(await listBreakpointFolders(dir), ['breakpoint_9998']);

  const table = await roundsTable(rl, { experiment: handle.id });
  const superseded = table.rounds.filter((r) => r.status === 'superseded').map((r) => [r.round, r.breakpoint.folder]);
  t.deepEqual(superseded, [
    [9999, 'superseded/breakpoint_9999.1'],
    [10000, 'superseded/breakpoint_10000.1'],
    [10000, 'superseded/breakpoint_10000.2'],
  ]);
  await rl.close();

  const [listed] = await listExperiments(root);
  t.deepEqual(
    listed!.breakpoints.map((b) => b.round),
    [9998],
  );
  t.is(listed!.roundCurrent, 9999);
});

test('the 10,000th experiment is Experiment_10000, listed after Experiment_9999 and taken as the last', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  await rl.createExperiment({ seed: 1 });
  // Registrations 1..9998 without a history (as a crash between the two appends of a creation
  // would leave them): they take their numbers, and listings skip them.
  await rl.withWriter(async (log) => {
    const events = Array.from({ length: 9998 }, (_, i) => ({
      type: 'ExperimentRegistered',
      data: {
        v: 1,
        number: i + 1,
        experimentId: `gone-${i + 1}`,
        folder: experimentFolderName(i + 1),
        stream: `experiment-gone-${i + 1}`,
      },
    }));
    for (let start = 0; start < events.length; start += CHUNK) {
      await log.append(REGISTRY_STREAM, events.slice(start, start + CHUNK));
    }
  });
  const a = await rl.createExperiment({ seed: 2 });
  const b = await rl.createExperiment({ seed: 3 });
  t.is(a.created.folder, 'Experiment_9999');
  t.is(a.created.number, 9999);
  t.is(b.created.folder, 'Experiment_10000');
  t.is(b.created.number, 10000);
  const listedByLog = await rl.listExperiments();
  t.deepEqual(
    listedByLog.map((e) => e.folder),
    ['Experiment_0000', 'Experiment_9999', 'Experiment_10000'],
  );
  t.is(listedByLog.at(-1)!.experimentId, b.id, 'the last experiment (resume with no path) is Experiment_10000');
  t.is((await rl.openExperiment('Experiment_10000')).id, b.id);
  await rl.close();
  t.deepEqual(
    (await listExperiments(root)).map((e) => e.folder),
    ['Experiment_0000', 'Experiment_9999', 'Experiment_10000'],
  );
});
