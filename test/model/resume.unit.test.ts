/**
 * `decideResume`: an accepted plan change, a `Rewound` when the breakpoint is older than the last
 * round, the breakpoint round's settings restored, then the `Resumed`. With no round completed
 * (`round: null`), the `Resumed` at round 0 from the initial parameters.
 */
import { InvalidArgumentError } from '../../src/errors.ts';
import {
  ExperimentNotCreatedError,
  RoundNotFoundError,
  RewindNotRequestedError,
  RoundPrunedError,
  type ExperimentCreated,
  type ExperimentEvent,
} from '../../src/model/index.ts';
import { GIVEN_TIMESTAMP } from '../../src/testing/index.ts';
import { ACTOR, FIXTURE_ACTOR, completed, created, dataAt, domain, history, plan, table, upTo } from './support.ts';

const recordedPlan = dataAt<ExperimentCreated>(0).federated!.trainingPlan;
const resumed = (roundCurrent: number, breakpoint: string | null, folder: string | null = null) =>
  ({ type: 'Resumed', data: { v: 1, roundCurrent, breakpoint, folder, by: ACTOR } }) as const;
const rewound = (roundCurrent: number, breakpoint: string, supersededRounds: number[]) =>
  ({
    type: 'Rewound',
    data: { v: 1, roundCurrent, reason: `loaded the older breakpoint ${breakpoint}`, supersededRounds, by: ACTOR },
  }) as const;
const changed = (data: Record<string, unknown>): ExperimentEvent =>
  ({ type: 'SettingsChanged', data: { v: 1, ...data, by: ACTOR } }) as ExperimentEvent;

table([
  {
    title: 'the fixture resumed from breakpoint_0000 after round 2: Rewound and Resumed, as recorded',
    given: upTo(15),
    when: {
      type: 'ResumeExperiment',
      round: 0,
      breakpoint: 'breakpoint_0000',
      trainingPlan: recordedPlan,
      rewind: true,
    },
    context: { actor: FIXTURE_ACTOR },
    then: [domain(16), domain(17)],
  },
  {
    title: 'from the last breakpoint: only the Resumed',
    given: upTo(15),
    when: { type: 'ResumeExperiment', round: 2, breakpoint: 'breakpoint_0002' },
    then: [resumed(3, 'breakpoint_0002')],
  },
  {
    title: 'from a folder renamed under experiments: the Resumed names the new folder',
    given: upTo(15),
    when: { type: 'ResumeExperiment', round: 2, breakpoint: 'breakpoint_0002', folder: 'renamed' },
    then: [resumed(3, 'breakpoint_0002', 'renamed')],
  },
  {
    title: 'a changed training plan, accepted: its SettingsChanged comes first',
    given: upTo(15),
    when: { type: 'ResumeExperiment', round: 2, breakpoint: 'breakpoint_0002', trainingPlan: plan('f') },
    then: [changed({ trainingPlan: plan('f') }), resumed(3, 'breakpoint_0002')],
  },
  {
    title: 'from round 0 of the finished fixture, asked to rewind: Rewound, the first limit restored, Resumed',
    given: history,
    when: { type: 'ResumeExperiment', round: 0, breakpoint: 'breakpoint_0000', rewind: true },
    then: [
      rewound(1, 'breakpoint_0000', [1, 2, 3, 4, 5]),
      changed({ roundLimit: 4, saveBreakpoints: true, trainingArgs: { epochs: 1 } }),
      resumed(1, 'breakpoint_0000'),
    ],
  },
  {
    title: 'settings changed after the last breakpoint are undone, on the record, even with nothing superseded',
    given: [created(), completed(0), changed({ roundLimit: 5, retention: { keepLast: 1, keepEvery: null } })],
    when: { type: 'ResumeExperiment', round: 0, breakpoint: 'breakpoint_0000' },
    then: [
      changed({ roundLimit: null, saveBreakpoints: false, trainingArgs: {}, retention: null }),
      resumed(1, 'breakpoint_0000'),
    ],
  },
  {
    title: "the plan is never restored from the round: the workspace's plan runs",
    given: [
      created(),
      changed({ trainingPlan: plan('1') }),
      completed(0),
      changed({ trainingPlan: plan('2') }),
      completed(1),
    ],
    when: { type: 'ResumeExperiment', round: 0, breakpoint: 'breakpoint_0000', trainingPlan: plan('2'), rewind: true },
    then: [rewound(1, 'breakpoint_0000', [1]), resumed(1, 'breakpoint_0000')],
  },
  {
    title: "the round's own plan back in the workspace is recorded as a plan change",
    given: [
      created(),
      changed({ trainingPlan: plan('1') }),
      completed(0),
      changed({ trainingPlan: plan('2') }),
      completed(1),
    ],
    when: { type: 'ResumeExperiment', round: 0, breakpoint: 'breakpoint_0000', trainingPlan: plan('1'), rewind: true },
    then: [changed({ trainingPlan: plan('1') }), rewound(1, 'breakpoint_0000', [1]), resumed(1, 'breakpoint_0000')],
  },
  {
    title: 'from round 0 of the finished fixture, not asked to rewind: refused, naming the rounds it would supersede',
    given: history,
    when: { type: 'ResumeExperiment', round: 0, breakpoint: 'breakpoint_0000' },
    throws: RewindNotRequestedError,
    fields: {
      code: 'REWIND_NOT_REQUESTED',
      round: 0,
      breakpoint: 'breakpoint_0000',
      supersededRounds: [1, 2, 3, 4, 5],
    },
  },
  {
    title: 'from an older breakpoint with rewind false: refused, the message says how to ask for it',
    given: upTo(15),
    when: { type: 'ResumeExperiment', round: 1, breakpoint: 'breakpoint_0001', rewind: false },
    throws: RewindNotRequestedError,
    fields: { round: 1, roundCurrent: 3, supersededRounds: [2] },
    message: /would supersede 1 round \(round 2;.*--rewind.*rewind: true/s,
  },
  {
    title: 'from the last breakpoint, asked to rewind: nothing to supersede, only the Resumed',
    given: upTo(15),
    when: { type: 'ResumeExperiment', round: 2, breakpoint: 'breakpoint_0002', rewind: true },
    then: [resumed(3, 'breakpoint_0002')],
  },
  {
    title: 'a round not on the current branch: refused',
    given: upTo(15),
    when: { type: 'ResumeExperiment', round: 3, breakpoint: 'breakpoint_0003' },
    throws: RoundNotFoundError,
    fields: { round: 3, roundCurrent: 3 },
  },
  {
    title: 'a pruned round: refused, saying when',
    given: [
      created(),
      completed(0),
      completed(1),
      {
        type: 'RoundsPruned',
        data: { v: 1, rounds: [{ round: 0, position: '1' }], retention: { keepLast: 1, keepEvery: null }, by: ACTOR },
      },
    ],
    when: { type: 'ResumeExperiment', round: 0, breakpoint: 'breakpoint_0000' },
    throws: RoundPrunedError,
    fields: { round: 0, prunedAt: GIVEN_TIMESTAMP },
  },
  {
    title: 'no round completed (a crash before the first round): round null resumes at 0, no breakpoint',
    given: [created()],
    when: { type: 'ResumeExperiment', round: null, breakpoint: null },
    then: [resumed(0, null)],
  },
  {
    title: 'no round completed, a changed plan accepted: its SettingsChanged, then the Resumed at 0',
    given: [created({ federated: dataAt<ExperimentCreated>(0).federated })],
    when: { type: 'ResumeExperiment', round: null, breakpoint: null, trainingPlan: plan('f') },
    then: [changed({ trainingPlan: plan('f') }), resumed(0, null)],
  },
  {
    title: 'round null once a round was completed: refused, starting again would drop it',
    given: [created(), completed(0)],
    when: { type: 'ResumeExperiment', round: null, breakpoint: null },
    throws: InvalidArgumentError,
    fields: { argument: 'round' },
    message: /Experiment_0000 has completed 1 round/,
  },
  {
    title: 'round null with no initial parameters recorded: refused',
    given: [created({ initialParams: null })],
    when: { type: 'ResumeExperiment', round: null, breakpoint: null },
    throws: InvalidArgumentError,
    fields: { argument: 'round' },
    message: /recorded no initial parameters/,
  },
  {
    title: 'no experiment: refused',
    given: [],
    when: { type: 'ResumeExperiment', round: 0, breakpoint: 'breakpoint_0000' },
    throws: ExperimentNotCreatedError,
    fields: { command: 'resume' },
  },
]);
