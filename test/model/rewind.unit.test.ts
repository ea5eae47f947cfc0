/**
 * `decideRewind`: a `Rewound` superseding the rounds after R, and a `SettingsChanged` restoring
 * the settings R ran under when any differs (every setting, compared independently of key order).
 */
import { InvalidArgumentError } from '../../src/errors.ts';
import {
  ExperimentNotCreatedError,
  RoundNotFoundError,
  RoundPrunedError,
  type ExperimentEvent,
} from '../../src/model/index.ts';
import { GIVEN_TIMESTAMP } from '../../src/testing/index.ts';
import { ACTOR, completed, created, history, plan, table } from './support.ts';

const reason = 'hospital-b sent a corrupted extract';
const rewound = (roundCurrent: number, supersededRounds: number[]) =>
  ({ type: 'Rewound', data: { v: 1, roundCurrent, reason, supersededRounds, by: ACTOR } }) as const;
const changed = (data: Record<string, unknown>): ExperimentEvent =>
  ({ type: 'SettingsChanged', data: { v: 1, ...data, by: ACTOR } }) as ExperimentEvent;

table([
  {
    title: 'to a round that ran under the settings in force: only the Rewound',
    given: history,
    when: { type: 'RewindExperiment', round: 2, reason },
    then: [rewound(3, [3, 4, 5])],
  },
  {
    title: 'to round 0, which ran under the first limit: the Rewound, then its settings restored',
    given: history,
    when: { type: 'RewindExperiment', round: 0, reason },
    then: [rewound(1, [1, 2, 3, 4, 5]), changed({ roundLimit: 4, saveBreakpoints: true, trainingArgs: { epochs: 1 } })],
  },
  {
    title: 'training args equal but built in another key order are the same settings: nothing restored',
    given: [
      created(),
      changed({ trainingArgs: { lr: 0.1, epochs: 2 } }),
      completed(0),
      changed({ trainingArgs: { epochs: 2, lr: 0.1 } }),
      completed(1),
    ],
    when: { type: 'RewindExperiment', round: 0, reason },
    then: [rewound(1, [1])],
  },
  {
    title: 'a retention policy set after the round is restored with the rest',
    given: [
      created(),
      completed(0),
      changed({ retention: { keepLast: 2, keepEvery: null } }),
      completed(1),
      completed(2),
    ],
    when: { type: 'RewindExperiment', round: 0, reason },
    then: [
      rewound(1, [1, 2]),
      changed({ roundLimit: null, saveBreakpoints: false, trainingArgs: {}, retention: null }),
    ],
  },
  {
    title: 'a training plan accepted after the round is restored with the rest',
    given: [
      created(),
      changed({ trainingPlan: plan('1') }),
      completed(0),
      changed({ trainingPlan: plan('2') }),
      completed(1),
    ],
    when: { type: 'RewindExperiment', round: 0, reason },
    then: [
      rewound(1, [1]),
      changed({ roundLimit: null, saveBreakpoints: false, trainingArgs: {}, trainingPlan: plan('1') }),
    ],
  },
  {
    title: 'the last completed round: refused, it would supersede nothing',
    given: history,
    when: { type: 'RewindExperiment', round: 5, reason },
    throws: InvalidArgumentError,
    fields: { argument: 'round', received: 5 },
    message:
      /round must be before the last completed round of Experiment_0000 \(5\): rewinding to it would supersede nothing/,
  },
  {
    title: 'a round not completed on the current branch: refused',
    given: history,
    when: { type: 'RewindExperiment', round: 6, reason },
    throws: RoundNotFoundError,
    fields: { code: 'ROUND_NOT_FOUND', experiment: 'Experiment_0000', round: 6, roundCurrent: 6 },
  },
  {
    title: 'a negative round: refused',
    given: history,
    when: { type: 'RewindExperiment', round: -1, reason },
    throws: InvalidArgumentError,
    fields: { argument: 'round', received: -1 },
  },
  {
    title: 'a round whose parameters retention deleted: refused, saying when',
    given: [
      created(),
      completed(0),
      completed(1),
      completed(2),
      {
        type: 'RoundsPruned',
        data: { v: 1, rounds: [{ round: 0, position: '1' }], retention: { keepLast: 2, keepEvery: null }, by: ACTOR },
      },
    ],
    when: { type: 'RewindExperiment', round: 0, reason },
    throws: RoundPrunedError,
    fields: { code: 'ROUND_PRUNED', round: 0, prunedAt: GIVEN_TIMESTAMP },
  },
  {
    title: 'no reason: refused',
    given: history,
    when: { type: 'RewindExperiment', round: 0, reason: '  ' },
    throws: InvalidArgumentError,
    fields: { argument: 'reason' },
    message: /non-empty text saying why/,
  },
  {
    title: 'no experiment: refused',
    given: [],
    when: { type: 'RewindExperiment', round: 0, reason },
    throws: ExperimentNotCreatedError,
    fields: { command: 'rewind' },
  },
]);
