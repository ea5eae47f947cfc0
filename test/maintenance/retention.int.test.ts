/**
 * Retention on a real root: set on the experiment, applied as rounds complete; gc across experiments, branches, forks
 * and crashes.
 */
import test from 'ava';
import { cpSync, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { RoundPrunedError } from '../../src/model/errors.ts';
import { ReferencedBlobMissingError, assertBlobsPresent } from '../../src/engine/blob-refs.ts';
import { getInMemoryBlobStore } from '../../src/blobs/memory.ts';
import { applyRetention, gc } from '../../src/projections/index.ts';
import { openRoundLog, type ExperimentHandle, type RoundLog } from '../../src/projections/index.ts';
import { Experiment, type ExperimentOptions } from '../../src/federated/experiment.ts';
import type { NodeReplied, RoundsPruned } from '../../src/model/events.ts';
import { InvalidArgumentError } from '../../src/errors.ts';
import { WORKSPACE, exampleOptions, federation } from '../support/example-experiment.ts';
import { tensors } from '../support/rounds.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const options = (root: string, overrides: Partial<ExperimentOptions> = {}): ExperimentOptions =>
  exampleOptions(root, { roundLimit: 8, ...overrides });

async function readStream(rl: RoundLog, handle: ExperimentHandle) {
  return rl.withReader(async (log) => (await log.readStream(handle.stream)).events);
}

function breakpointRounds(dir: string): number[] {
  return readdirSync(dir)
    .filter((n) => /^breakpoint_\d{4}$/.test(n))
    .map((n) => Number(n.slice('breakpoint_'.length)));
}

test(
  'Experiment.create({ retention }) prunes after each ' +
    'committed round: parameter blobs and folders go, events stay',
  async (t) => {
    const root = tempDir();
    const seen: Array<{ roundCurrent: number; pruned: number[]; folders: number[] }> = [];
    const exp: Experiment = await Experiment.create(
      options(root, {
        retention: { keepLast: 2, keepEvery: 3 },
        onRound: (p) => {
          const state = exp.state;
          seen.push({
            roundCurrent: p.roundCurrent,
            pruned: Object.values(state.pruned)
              .map((x) => x.round)
              .sort((a, b) => a - b),
            folders: breakpointRounds(exp.experimentationPath()),
          });
        },
      }),
    );
    t.deepEqual(exp.retention(), { keepLast: 2, keepEvery: 3 });
    await exp.run();
    // Kept after n rounds: the last 2, and rounds 0, 3, 6.
    const expected = (n: number) => Array.from({ length: n }, (_, r) => r).filter((r) => !(r >= n - 2 || r % 3 === 0));
    t.deepEqual(
      seen.map((s) => s.pruned),
      [1, 2, 3, 4, 5, 6, 7, 8].map(expected),
    );
    for (const s of seen) {
      t.deepEqual(
        s.folders,
        Array.from({ length: s.roundCurrent }, (_, r) => r).filter((r) => !s.pruned.includes(r)),
        `folders after ${s.roundCurrent} rounds`,
      );
    }

    const rl = await openRoundLog({ root });
    const handle = await rl.openExperiment(exp.id);
    const events = await readStream(rl, handle);
    // The policy is recorded with the creation, in the same atomic append.
    t.deepEqual(
      events.slice(0, 2).map((e) => e.type),
      ['ExperimentCreated', 'SettingsChanged'],
    );
    t.deepEqual((events[1]!.data as { retention: unknown }).retention, { keepLast: 2, keepEvery: 3 });
    t.is(events[1]!.position, events[0]!.position + 1n);
    // Every RoundCompleted and NodeReplied is still there; RoundsPruned name what went.
    t.is(events.filter((e) => e.type === 'RoundCompleted').length, 8);
    t.is(events.filter((e) => e.type === 'NodeReplied').length, 8 * 3);
    const prunedEvents = events.filter((e) => e.type === 'RoundsPruned').map((e) => e.data as RoundsPruned);
    t.deepEqual(prunedEvents.flatMap((e) => e.rounds.map((r) => r.round)).sort(), [1, 2, 4, 5]);
    t.true(prunedEvents.every((e) => e.retention.keepLast === 2 && e.retention.keepEvery === 3));

    // The blobs of pruned rounds (aggregated and every node's reply) are gone; those of kept rounds are there.
    const replies = events.filter((e) => e.type === 'NodeReplied').map((e) => e.data as NodeReplied);
    for (const record of handle.state.rounds) {
      const pruned = [1, 2, 4, 5].includes(record.round);
      t.is(await rl.blobs.has(record.params.sha256), !pruned, `aggregated params of round ${record.round}`);
      for (const reply of replies.filter((r) => r.round === record.round))
        t.is(await rl.blobs.has(reply.params.sha256), !pruned);
    }
    // Initial parameters and the training plan source are never pruned.
    t.true(await rl.blobs.has(handle.created.initialParams!.sha256));
    t.true(await rl.blobs.has(handle.created.federated!.trainingPlan.source.sha256));

    const error = await t.throwsAsync(handle.loadRound(4), { instanceOf: RoundPrunedError });
    t.is(error.code, 'ROUND_PRUNED');
    t.is(error.round, 4);
    t.regex(error.message, /round 4 of experiment Experiment_0000 was pruned by retention on \d{4}-\d\d-\d\dT[\d:.]+Z/);
    t.is((await handle.loadRound(6)).round, 6);
    t.deepEqual((await handle.loadRound('last')).params, await exp.parameters());
    await exp.close();
    await rl.close();
  },
);

test(
  'setRetention applies from the next committed round; null ' +
    'stops it; a bad policy is refused before anything is written',
  async (t) => {
    const root = tempDir();
    const exp = await Experiment.create(options(root, { roundLimit: null }));
    await exp.run({ rounds: 4 });
    t.is(exp.retention(), null);
    const revision = exp.state.revision;
    await t.throwsAsync(exp.setRetention({ keepLast: 0, keepEvery: null }), {
      instanceOf: InvalidArgumentError,
      message: /keepLast must be an integer of at least 1/,
    });
    t.is(exp.state.revision, revision);
    await exp.setRetention({ keepLast: 1, keepEvery: null });
    t.deepEqual(exp.state.pruned, {}, 'nothing is pruned until a round completes');
    t.is(breakpointRounds(exp.experimentationPath()).length, 4);
    await exp.runOnce();
    t.deepEqual(
      Object.values(exp.state.pruned)
        .map((p) => p.round)
        .sort(),
      [0, 1, 2, 3],
    );
    t.deepEqual(breakpointRounds(exp.experimentationPath()), [4]);
    await exp.setRetention(null);
    await exp.run({ rounds: 2 });
    t.deepEqual(breakpointRounds(exp.experimentationPath()), [4, 5, 6]);
    // applyRetention with a policy of its own, at once.
    const report = await exp.applyRetention({ keepLast: 2, keepEvery: null });
    t.deepEqual(
      report.experiments[0]!.pruned.map((r) => r.round),
      [4],
    );
    t.deepEqual(breakpointRounds(exp.experimentationPath()), [5, 6]);
    await exp.close();
  },
);

test(
  'a blob stored by a writer and deleted by gc before the ' +
    'writer commits: the append is refused, nothing is committed',
  async (t) => {
    const root = tempDir();
    const rl = await openRoundLog({ root });
    const a = await rl.createExperiment({ saveBreakpoints: false });
    await a.recordRound({ params: tensors(1, 1) });
    await a.recordRound({ params: tensors(2, 2) });
    const b = await rl.createExperiment();
    // B stores bytes equal to A's round 0 (the put finds them stored), then gc prunes that round.
    const shared = await rl.putTensors(tensors(1, 1));
    t.is(shared.sha256, a.state.rounds[0]!.params.sha256);
    const report = await gc({ root, retention: { keepLast: 1, keepEvery: null } });
    t.deepEqual(
      report.blobsDeleted.map((x) => x.sha256),
      [shared.sha256],
    );
    const revision = b.state.revision;
    const error = await t.throwsAsync(
      b.append([
        {
          type: 'RoundCompleted',
          data: {
            v: 1,
            round: 0,
            attempt: 1,
            params: shared,
            state: null,
            nodes: [],
            metrics: {},
            breakpoint: false,
            durationMs: 0,
          },
        },
      ]),
      { instanceOf: ReferencedBlobMissingError },
    );
    t.is(error.code, 'REFERENCED_BLOB_MISSING');
    t.is(error.sha256, shared.sha256);
    t.regex(error.message, /run it again \('roundlog resume Experiment_\d+' for a round of a run/);
    t.is((await b.refresh()).revision, revision, 'nothing appended');
    // recordRound stores the bytes anew, so doing the round again commits it.
    await b.recordRound({ params: tensors(1, 1) });
    t.deepEqual((await b.loadRound(0)).params, tensors(1, 1));
    await rl.close();
  },
);

test("a referenced blob missing from the store: the command to run again names the run's node processes", async (t) => {
  const blobs = getInMemoryBlobStore();
  const ref = { sha256: 'a'.repeat(64), bytes: 1, encoding: 'tensors/safetensors' };
  const events = [{ type: 'RoundCompleted', data: { params: ref } }];
  const remote = { listen: '127.0.0.1:50051', nodes: ['a', 'b'] };
  const error = await t.throwsAsync(assertBlobsPresent(blobs, 'Experiment_0004', events, remote), {
    instanceOf: ReferencedBlobMissingError,
  });
  t.like(error, { experiment: 'Experiment_0004', sha256: ref.sha256, eventType: 'RoundCompleted', remote });
  t.true(
    error!.message.includes(`'roundlog resume Experiment_0004 --listen 127.0.0.1:50051 --nodes a,b' for a round`),
    error!.message,
  );
});

test(
  'gc: superseded rounds go unless keep-every keeps them; rounds ' +
    'forks started from are kept; blobs shared with kept data stay',
  async (t) => {
    const root = tempDir();
    const rl = await openRoundLog({ root });
    const parent = await rl.createExperiment({ saveBreakpoints: true });
    for (let r = 0; r < 6; r++) await parent.recordRound({ params: tensors(r, 0) });
    await parent.append([
      { type: 'Rewound', data: { v: 1, roundCurrent: 3, reason: 'test', supersededRounds: [3, 4, 5], by: rl.actor } },
    ]);
    // Round 3 done again with round 1's bytes (one blob for two rounds, both pruned below), then round 4.
    await parent.recordRound({ params: tensors(1, 0) });
    await parent.recordRound({ params: tensors(40, 0) });
    // A fork started from round 0, as recorded in the child; its initial parameters are superseded round 4's bytes.
    const child = await rl.createExperiment({ initialParams: tensors(4, 0) });
    await child.append([
      {
        type: 'ForkedFrom',
        data: {
          v: 1,
          parentId: parent.id,
          parentFolder: parent.state.folder,
          parentRound: 0,
          parentPosition: String(parent.state.rounds[0]!.position),
        },
      },
    ]);
    // Another fork, from round 2, as recorded in the parent.
    await parent.append([
      {
        type: 'Forked',
        data: {
          v: 1,
          childId: '00000000-0000-0000-0000-00000000000f',
          childFolder: 'elsewhere',
          round: 2,
          by: rl.actor,
        },
      },
    ]);
    const current = parent.state.rounds.map((r) => r.params.sha256);
    const superseded = parent.state.superseded.map((r) => r.params.sha256);
    const dir = path.join(root, 'experiments', parent.state.folder);
    t.deepEqual(breakpointRounds(dir), [0, 1, 2, 3, 4, 5]);
    t.deepEqual(readdirSync(path.join(dir, 'superseded')).sort(), ['breakpoint_0003.1', 'breakpoint_0004.1']);

    const dry = await gc({
      root,
      experiment: parent.state.folder,
      retention: { keepLast: 1, keepEvery: null },
      dryRun: true,
    });
    t.true(dry.dryRun);
    t.deepEqual((await parent.refresh()).pruned, {}, 'a dry run changes nothing');
    for (const b of dry.blobsDeleted) t.true(await rl.blobs.has(b.sha256));
    t.deepEqual(breakpointRounds(dir), [0, 1, 2, 3, 4, 5]);

    const report = await gc({ root, experiment: parent.state.folder, retention: { keepLast: 1, keepEvery: null } });
    t.deepEqual(
      report.experiments.map((e) => e.folder),
      [parent.state.folder],
      'only the experiment named',
    );
    const e = report.experiments[0]!;
    t.deepEqual(
      e.kept.map((r) => `${r.branch} ${r.round}`),
      ['current 0', 'current 2', 'current 4'],
    );
    t.deepEqual(
      e.pruned.map((r) => `${r.branch} ${r.round}`),
      ['current 1', 'current 3', 'superseded 3', 'superseded 4', 'superseded 5'],
    );
    t.deepEqual(report.blobsDeleted.map((b) => b.sha256).sort(), [current[1]!, superseded[0]!, superseded[2]!].sort());
    t.is(current[3], current[1]);
    t.is(report.blobsStillReferenced, 1, "superseded round 4's bytes are the child's initial parameters");
    t.true(await rl.blobs.has(superseded[1]!));
    // Dry run and real run agree.
    t.deepEqual(dry.blobsDeleted, report.blobsDeleted);
    t.deepEqual(dry.foldersRemoved, report.foldersRemoved);
    t.is(dry.bytesFreed, report.bytesFreed);
    await parent.refresh();
    for (const r of [0, 2, 4]) t.is((await parent.loadRound(r)).round, r);
    for (const r of [1, 3]) await t.throwsAsync(parent.loadRound(r), { instanceOf: RoundPrunedError });
    // The stale top-level folder of superseded round 5 and the superseded/ folders of pruned rounds go too.
    t.deepEqual(breakpointRounds(dir), [0, 2, 4]);
    t.deepEqual(readdirSync(path.join(dir, 'superseded')), []);
    t.is(report.foldersRemoved.length, 5);
    await rl.close();
  },
);

test(
  'gc sweeps what a crash left after RoundsPruned (blobs and ' +
    'folders of pruned rounds), even for experiments with no policy',
  async (t) => {
    const root = tempDir();
    const rl = await openRoundLog({ root });
    const handle = await rl.createExperiment({ saveBreakpoints: true });
    for (let r = 0; r < 3; r++) await handle.recordRound({ params: tensors(r, 7) });
    const dir = path.join(root, 'experiments', handle.state.folder);
    const copy = path.join(tempDir(), 'breakpoint_0000-copy');
    cpSync(path.join(dir, 'breakpoint_0000'), copy, { recursive: true });
    const victim = handle.state.rounds[0]!;
    // As if retention crashed right after recording its event.
    await handle.append([
      {
        type: 'RoundsPruned',
        data: {
          v: 1,
          rounds: [{ round: 0, position: String(victim.position) }],
          retention: { keepLast: 2, keepEvery: null },
          by: rl.actor,
        },
      },
    ]);
    t.true(existsSync(path.join(dir, 'breakpoint_0000')));
    t.true(await rl.blobs.has(victim.params.sha256));

    // Loading the pruned round is refused: its folder left by the crash, a copy of it, or the round itself.
    const load = (target: string) => Experiment.loadBreakpoint(target, { root, federation, workspace: WORKSPACE });
    await t.throwsAsync(load(path.join(dir, 'breakpoint_0000')), {
      instanceOf: RoundPrunedError,
      message: /round 0 of experiment Experiment_0000 was pruned by retention/,
    });
    await t.throwsAsync(load(copy), { instanceOf: RoundPrunedError });
    await t.throwsAsync(handle.loadRound(0), { instanceOf: RoundPrunedError });

    const report = await gc({ root });
    t.is(report.experiments[0]!.policyFrom, 'none');
    t.deepEqual(
      report.blobsDeleted.map((b) => b.sha256),
      [victim.params.sha256],
    );
    t.deepEqual(report.foldersRemoved, [path.join(dir, 'breakpoint_0000')]);
    t.false(await rl.blobs.has(victim.params.sha256));
    t.deepEqual(breakpointRounds(dir), [1, 2]);
    t.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith('.tmp-')),
      [],
      'no temp folder left',
    );
    // The removed path now names a pruned round.
    await t.throwsAsync(load(path.join(dir, 'breakpoint_0000')), { instanceOf: RoundPrunedError });
    // Nothing left to do the second time.
    const again = await gc({ root });
    t.deepEqual([again.blobsDeleted.length, again.foldersRemoved.length, again.bytesFreed], [0, 0, 0]);
    await rl.close();
  },
);

test(
  "gc from another process between an experiment's writes: " + 'its next round and its own retention go on',
  async (t) => {
    const root = tempDir();
    const rl = await openRoundLog({ root });
    const handle = await rl.createExperiment({ saveBreakpoints: true });
    for (let r = 0; r < 3; r++) await handle.recordRound({ params: tensors(r, 1) });
    const report = await gc({ root, retention: { keepLast: 1, keepEvery: null } });
    t.deepEqual(
      report.experiments[0]!.pruned.map((r) => r.round),
      [0, 1],
    );
    // The handle has not seen the RoundsPruned: its retention and its next round fold it and go on.
    const own = await applyRetention(handle, { retention: { keepLast: 1, keepEvery: null } });
    t.deepEqual(
      own.experiments[0]!.alreadyPruned.map((r) => r.round),
      [0, 1],
    );
    await handle.recordRound({ params: tensors(3, 1) });
    t.is(handle.roundCurrent(), 4);
    await t.throwsAsync(handle.loadRound(0), { instanceOf: RoundPrunedError });
    await rl.close();
  },
);
