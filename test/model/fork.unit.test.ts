/**
 * Fork: `decideFork` gives the child's first events (creation from the parent's round, its
 * retention, its lineage); `decideForked` the parent's `Forked`.
 */
import test from 'ava';
import { InvalidArgumentError } from '../../src/errors.ts';
import {
  ExperimentNotCreatedError,
  RoundNotFoundError,
  RoundNotInHistoryError,
  RoundPrunedError,
  currentParams,
  decideFork,
  forkCreation,
  replay,
  roundCurrent,
  type ExperimentCreated,
  type ExperimentEvent,
  type RoundCompleted,
} from '../../src/model/index.ts';
import { given } from '../../src/testing/index.ts';
import { ACTOR, blob, completed, created, dataAt, history, table } from './support.ts';

const parent = dataAt<ExperimentCreated>(0);
const sha = 'b'.repeat(64);
const child = {
  childId: 'child-1',
  childNumber: 1,
  childFolder: 'Experiment_0001',
  roundlogVersion: '0.2.0',
  breakpointSha256: sha,
};

/** The child's events for a fork of the fixture from the round recorded at `revision`. */
function childOf(revision: number, roundLimit: number): ExperimentEvent[] {
  const round = dataAt<RoundCompleted>(revision);
  const position = String(history[revision]!.position);
  return [
    {
      type: 'ExperimentCreated',
      data: {
        v: 1,
        experimentId: 'child-1',
        number: 1,
        folder: 'Experiment_0001',
        roundLimit,
        seed: parent.seed,
        saveBreakpoints: true,
        initialParams: null,
        config: parent.config,
        federated: { ...parent.federated!, trainingPlan: parent.federated!.trainingPlan, trainingArgs: { epochs: 1 } },
        createdBy: ACTOR,
        roundlogVersion: '0.2.0',
        importedFrom: {
          experimentId: parent.experimentId,
          folder: 'Experiment_0000',
          round: round.round,
          logPosition: position,
          breakpointSha256: sha,
          params: round.params,
          state: round.state,
        },
      },
    },
    {
      type: 'ForkedFrom',
      data: {
        v: 1,
        parentId: parent.experimentId,
        parentFolder: 'Experiment_0000',
        parentRound: round.round,
        parentPosition: position,
      },
    },
  ];
}

const retention = { keepLast: 1, keepEvery: null };

table([
  {
    title: 'from round 2 of the current branch: the settings it ran under (limit 6), the seed and setup of the parent',
    given: history,
    when: { type: 'ForkExperiment', round: 2, ...child },
    then: childOf(28, 6),
  },
  {
    title: 'from the superseded round 1 (the limit was 4 then)',
    given: history,
    when: { type: 'ForkExperiment', round: 1, superseded: true, ...child },
    then: childOf(10, 4),
  },
  {
    title: 'from the round completed at a log position',
    given: history,
    when: { type: 'ForkExperiment', round: 1, position: 24n, ...child },
    then: childOf(23, 6),
  },
  {
    title: "the round's retention policy goes with the child, recorded between its creation and its lineage",
    given: [created(), { type: 'SettingsChanged', data: { v: 1, retention, by: ACTOR } }, completed(0), completed(1)],
    when: { type: 'ForkExperiment', round: 0, ...child },
    then: [
      {
        type: 'ExperimentCreated',
        data: {
          v: 1,
          experimentId: 'child-1',
          number: 1,
          folder: 'Experiment_0001',
          roundLimit: null,
          seed: 1,
          saveBreakpoints: false,
          initialParams: null,
          config: null,
          federated: null,
          createdBy: ACTOR,
          roundlogVersion: '0.2.0',
          importedFrom: {
            experimentId: 'e-1',
            folder: 'Experiment_0000',
            round: 0,
            logPosition: '2',
            breakpointSha256: sha,
            params: blob('1'),
            state: null,
          },
        },
      },
      { type: 'SettingsChanged', data: { v: 1, retention, by: ACTOR } },
      {
        type: 'ForkedFrom',
        data: { v: 1, parentId: 'e-1', parentFolder: 'Experiment_0000', parentRound: 0, parentPosition: '2' },
      },
    ],
  },
  {
    title: 'the parent records the fork',
    given: history,
    when: { type: 'RecordFork', childId: 'child-1', childFolder: 'Experiment_0001', round: 2 },
    then: [{ type: 'Forked', data: { v: 1, childId: 'child-1', childFolder: 'Experiment_0001', round: 2, by: ACTOR } }],
  },
  {
    title: 'a superseded round the history does not have: refused, listing those it has',
    given: history,
    when: { type: 'ForkExperiment', round: 3, superseded: true, ...child },
    throws: RoundNotInHistoryError,
    fields: {
      code: 'ROUND_NOT_IN_HISTORY',
      round: 3,
      position: null,
      superseded: [
        { round: 1, position: 11n },
        { round: 2, position: 16n },
      ],
    },
    message: /its superseded rounds are 1 \(position 11\), 2 \(position 16\)/,
  },
  {
    title: 'a position that holds another round: refused',
    given: history,
    when: { type: 'ForkExperiment', round: 2, position: 24n, ...child },
    throws: RoundNotInHistoryError,
    fields: { round: 2, position: 24n },
  },
  {
    title: 'a round not on the current branch: refused',
    given: history,
    when: { type: 'ForkExperiment', round: 7, ...child },
    throws: RoundNotFoundError,
    fields: { round: 7, roundCurrent: 6 },
  },
  {
    title: 'a pruned round: refused',
    given: [
      created(),
      completed(0),
      completed(1),
      { type: 'RoundsPruned', data: { v: 1, rounds: [{ round: 0, position: '1' }], retention, by: ACTOR } },
    ],
    when: { type: 'ForkExperiment', round: 0, ...child },
    throws: RoundPrunedError,
    fields: { round: 0 },
  },
  {
    title: "the child's folder taken by another experiment: refused",
    given: history,
    when: { type: 'ForkExperiment', round: 2, ...child, foldersInUse: ['Experiment_0000', 'Experiment_0001'] },
    throws: InvalidArgumentError,
    fields: { argument: 'folder', received: 'Experiment_0001' },
  },
  {
    title: 'no parent: refused',
    given: [],
    when: { type: 'ForkExperiment', round: 0, ...child },
    throws: ExperimentNotCreatedError,
    fields: { command: 'fork' },
  },
  {
    title: 'no parent to record a fork in: refused',
    given: [],
    when: { type: 'RecordFork', childId: 'c', childFolder: 'C', round: 0 },
    throws: ExperimentNotCreatedError,
    fields: { command: 'record a fork' },
  },
]);

test('forkCreation names the round found and its branch, and the child replays to that round', (t) => {
  const state = replay(history);
  const creation = forkCreation(state, { round: 1, superseded: true, breakpointSha256: sha });
  t.is(creation.branch, 'superseded');
  t.is(creation.record.position, 11n);
  t.is(creation.roundLimit, 4);
  const events = decideFork(state, { round: 1, superseded: true, ...child }, { actor: ACTOR });
  const childState = given(events).state;
  t.is(roundCurrent(childState), 2);
  t.deepEqual(currentParams(childState), creation.record.params);
  t.is(childState.forkedFrom?.parentPosition, '11');
  t.is(childState.settings.roundLimit, 4);
});
