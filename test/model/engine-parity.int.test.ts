/**
 * The engine appends what the deciders decide, nothing else: it runs on a real root, and the events
 * it appended must be exactly (fields and key order) what the decider gives for the same state and
 * inputs, so no operation builds an event of its own beside its decider.
 */
import test from 'ava';
import type { TensorSet } from '../../src/codec/tensors.ts';
import { forkExperiment, rewindExperiment } from '../../src/projections/index.ts';
import { applyRetention } from '../../src/projections/index.ts';
import { openRoundLog, type ExperimentHandle, type RoundLog } from '../../src/projections/index.ts';
import type { RecordedEvent } from '../../src/log/types.ts';
import {
  decideCompleteRound,
  decideCreate,
  decideFork,
  decideForked,
  decidePrune,
  decideRewind,
  forkProtectedPositions,
  initialState,
  type ExperimentCreated,
  type ExperimentEvent,
  type ExperimentState,
  type ForkedFrom,
  type RoundCompleted,
} from '../../src/model/index.ts';
import { given } from '../../src/testing/index.ts';
import { VERSION } from '../../src/version.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { ACTOR } from './support.ts';

test.after.always(removeTempDirs);

const ctx = { actor: ACTOR };
const retention = { keepLast: 2, keepEvery: null };

function params(round: number): TensorSet {
  return { w: { dtype: 'float32', shape: [4], data: new Float32Array([round, round + 1, round + 2, round + 3]) } };
}

async function read(rl: RoundLog, stream: string, from = 0n): Promise<ExperimentEvent[]> {
  const { events } = await rl.withReader((log) => log.readStream(stream, { fromRevision: from }));
  return events.map((e: RecordedEvent) => ({ type: e.type, data: e.data }) as ExperimentEvent);
}

/** The events `stream` got after `before`'s revision. */
async function appendedSince(rl: RoundLog, stream: string, before: ExperimentState): Promise<ExperimentEvent[]> {
  return read(rl, stream, before.revision + 1n);
}

/** Asserts, through the decider helper (key order included), that deciding on `state` gives `expected`. */
function same(
  state: ExperimentState,
  decided: (state: ExperimentState) => readonly ExperimentEvent[],
  expected: ExperimentEvent[],
) {
  given([])
    .when(() => decided(state))
    .then(expected);
}

test('create, complete rounds, rewind, fork, prune: the engine appends exactly what the deciders decide', async (t) => {
  const rl = await openRoundLog({ root: tempDir(), actor: ACTOR });
  t.teardown(() => rl.close());

  // Create, with a retention policy recorded in the same append.
  const handle: ExperimentHandle = await rl.createExperiment({
    seed: 7,
    roundLimit: 5,
    config: { lr: 0.1 },
    initialParams: params(0),
    retention,
  });
  const createdEvents = await read(rl, handle.stream);
  const created = createdEvents[0]!.data as ExperimentCreated;
  same(
    initialState,
    (s) =>
      decideCreate(
        s,
        {
          experimentId: handle.id,
          number: 0,
          folder: 'Experiment_0000',
          roundLimit: 5,
          seed: 7,
          initialParams: created.initialParams,
          config: { lr: 0.1 },
          retention,
          roundlogVersion: VERSION,
          foldersInUse: [],
        },
        ctx,
      ),
    createdEvents,
  );

  // A round with a node's reply, then rounds without.
  const reply = await rl.putTensors(params(10));
  for (let round = 0; round < 4; round++) {
    const before = handle.state;
    const replies =
      round === 0
        ? [{ round, attempt: 1, node: 'n1', sampleSize: 3, params: reply, metrics: { loss: 1 }, durationMs: 2 }]
        : [];
    await handle.recordRound({
      params: params(round + 1),
      state: { step: round },
      metrics: { loss: 1 / (round + 1) },
      replies,
      durationMs: 4,
    });
    const appended = await appendedSince(rl, handle.stream, before);
    const { params: ref } = appended.at(-1)!.data as RoundCompleted;
    same(
      before,
      (s) =>
        decideCompleteRound(s, {
          params: ref,
          state: { step: round },
          metrics: { loss: 1 / (round + 1) },
          replies,
          durationMs: 4,
        }),
      appended,
    );
  }

  // Settings changed after round 1, then a rewind to round 1: Rewound and the settings restored.
  await handle.append([{ type: 'SettingsChanged', data: { v: 1, roundLimit: 8, by: ACTOR } }]);
  const beforeRewind = handle.state;
  const rewind = await rewindExperiment(rl, handle.stream, { round: 1, reason: 'bad data in round 2' });
  t.true(rewind.settingsRestored);
  same(
    beforeRewind,
    (s) => decideRewind(s, { round: 1, reason: 'bad data in round 2' }, ctx),
    await appendedSince(rl, handle.stream, beforeRewind),
  );
  await handle.refresh();

  // A fork from round 1: the child's first events, and the parent's Forked.
  const beforeFork = handle.state;
  const fork = await forkExperiment(rl, handle.stream, { round: 1 });
  const childEvents = await read(rl, `experiment-${fork.childId}`);
  same(
    beforeFork,
    (s) =>
      decideFork(
        s,
        {
          round: 1,
          childId: fork.childId,
          childNumber: fork.childNumber,
          childFolder: fork.childFolder,
          breakpointSha256: fork.breakpointSha256,
          roundlogVersion: VERSION,
          foldersInUse: ['Experiment_0000'],
        },
        ctx,
      ),
    childEvents,
  );
  same(
    beforeFork,
    (s) => decideForked(s, { childId: fork.childId, childFolder: fork.childFolder, round: 1 }, ctx),
    await appendedSince(rl, handle.stream, beforeFork),
  );
  await handle.refresh();

  // Retention: rounds outside the policy, the fork's round kept.
  const beforePrune = handle.state;
  const forkedFrom = childEvents.find((e) => e.type === 'ForkedFrom')!.data as ForkedFrom;
  const report = await applyRetention(handle);
  t.true(report.experiments[0]!.pruned.length > 0);
  same(
    beforePrune,
    (s) => decidePrune(s, { protectedPositions: forkProtectedPositions(s, [forkedFrom]) }, ctx),
    await appendedSince(rl, handle.stream, beforePrune),
  );
});
