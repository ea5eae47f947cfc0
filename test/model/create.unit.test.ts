/** `decideCreate`: the first events of an experiment's stream, and what a creation refuses. */
import { InvalidArgumentError } from '../../src/errors.ts';
import { ExperimentExistsError, type ExperimentCreated, type ExperimentEvent } from '../../src/model/index.ts';
import { ACTOR, FIXTURE_ACTOR, blob, created, dataAt, domain, table, upTo } from './support.ts';

const recorded = dataAt<ExperimentCreated>(0);
const fromFixture = {
  type: 'CreateExperiment',
  experimentId: recorded.experimentId,
  number: recorded.number,
  folder: recorded.folder,
  roundLimit: recorded.roundLimit,
  seed: recorded.seed,
  saveBreakpoints: recorded.saveBreakpoints,
  initialParams: recorded.initialParams,
  config: recorded.config,
  federated: recorded.federated,
  roundlogVersion: recorded.roundlogVersion,
} as const;
const minimal = {
  type: 'CreateExperiment',
  experimentId: 'e-1',
  number: 0,
  folder: 'Experiment_0000',
  seed: 1,
  roundlogVersion: '0.1.0',
} as const;
const retention = { keepLast: 2, keepEvery: null };
const forkedFrom = {
  v: 1,
  parentId: 'p-1',
  parentFolder: 'Experiment_0003',
  parentRound: 2,
  parentPosition: '17',
} as const;

const bare: ExperimentEvent = created({ initialParams: null });

table([
  {
    title: 'the recorded creation decides again to the very event of the fixture',
    given: [],
    when: fromFixture,
    context: { actor: FIXTURE_ACTOR },
    then: [domain(0)],
  },
  {
    title: 'defaults: no limit, no breakpoints, no initial parameters, null config and federated setup',
    given: [],
    when: minimal,
    then: [bare],
  },
  {
    title: 'a retention policy is recorded as a SettingsChanged right after the creation',
    given: [],
    when: { ...minimal, retention },
    then: [bare, { type: 'SettingsChanged', data: { v: 1, retention, by: ACTOR } }],
  },
  {
    title: 'a fork records its lineage last, after its retention',
    given: [],
    when: { ...minimal, retention, forkedFrom, initialParams: blob('9') },
    then: [
      created({ initialParams: blob('9') }),
      { type: 'SettingsChanged', data: { v: 1, retention, by: ACTOR } },
      { type: 'ForkedFrom', data: forkedFrom },
    ],
  },
  {
    title: 'a null retention or lineage records nothing more',
    given: [],
    when: { ...minimal, retention: null, forkedFrom: null },
    then: [bare],
  },
  {
    title: 'a stream that already holds an experiment is refused',
    given: upTo(5),
    when: { ...minimal, experimentId: 'other' },
    throws: ExperimentExistsError,
    fields: { code: 'EXPERIMENT_EXISTS', experimentId: recorded.experimentId, folder: 'Experiment_0000' },
  },
  {
    title: 'a negative round limit is refused',
    given: [],
    when: { ...minimal, roundLimit: -1 },
    throws: InvalidArgumentError,
    fields: { argument: 'roundLimit', received: -1 },
  },
  {
    title: 'a fractional round limit is refused',
    given: [],
    when: { ...minimal, roundLimit: 1.5 },
    throws: InvalidArgumentError,
    fields: { argument: 'roundLimit', received: 1.5 },
  },
  {
    title: 'a seed that is not a safe integer is refused',
    given: [],
    when: { ...minimal, seed: 2 ** 60 },
    throws: InvalidArgumentError,
    fields: { argument: 'seed' },
  },
  ...['', 'a/b', '.hidden', 'superseded', 'trailing/'].map((folder) => ({
    title: `the folder ${JSON.stringify(folder)} is refused: not a plain folder name`,
    given: [],
    when: { ...minimal, folder },
    throws: InvalidArgumentError,
    fields: { argument: 'folder', received: folder },
    message: /plain folder name/,
  })),
  {
    title: "another experiment's folder is refused",
    given: [],
    when: { ...minimal, folder: 'mine', foldersInUse: ['Experiment_0000', 'mine'] },
    throws: InvalidArgumentError,
    fields: { argument: 'folder', received: 'mine' },
    message: /another experiment of this root/,
  },
]);
