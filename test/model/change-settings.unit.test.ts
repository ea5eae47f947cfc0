/** `decideChangeSettings`: one `SettingsChanged` with the settings given and who changed them. */
import { InvalidArgumentError } from '../../src/errors.ts';
import { ExperimentNotCreatedError } from '../../src/model/index.ts';
import { ACTOR, FIXTURE_ACTOR, completed, created, domain, table, upTo } from './support.ts';

const changed = (data: Record<string, unknown>) =>
  ({ type: 'SettingsChanged', data: { v: 1, ...data, by: ACTOR } }) as const;

table([
  {
    title: 'the limit raised to 6 after the resume, as recorded',
    given: upTo(17),
    when: { type: 'ChangeSettings', roundLimit: 6 },
    context: { actor: FIXTURE_ACTOR },
    then: [domain(18)],
  },
  {
    title: 'no limit',
    given: upTo(17),
    when: { type: 'ChangeSettings', roundLimit: null },
    then: [changed({ roundLimit: null })],
  },
  {
    title: 'a limit equal to the rounds completed',
    given: [created(), completed(0), completed(1)],
    when: { type: 'ChangeSettings', roundLimit: 2 },
    then: [changed({ roundLimit: 2 })],
  },
  {
    title: 'saveBreakpoints',
    given: upTo(0),
    when: { type: 'ChangeSettings', saveBreakpoints: false },
    then: [changed({ saveBreakpoints: false })],
  },
  {
    title: 'training args, replaced as a whole',
    given: upTo(0),
    when: { type: 'ChangeSettings', trainingArgs: { epochs: 3, lr: 0.1 } },
    then: [changed({ trainingArgs: { epochs: 3, lr: 0.1 } })],
  },
  {
    title: 'a retention policy is recorded as checked (keepEvery null when absent)',
    given: upTo(0),
    when: { type: 'ChangeSettings', retention: { keepLast: 2 } as never },
    then: [changed({ retention: { keepLast: 2, keepEvery: null } })],
  },
  {
    title: 'no retention policy',
    given: upTo(0),
    when: { type: 'ChangeSettings', retention: null },
    then: [changed({ retention: null })],
  },
  {
    title: 'several settings at once, in the order of the event type',
    given: upTo(0),
    when: {
      type: 'ChangeSettings',
      saveBreakpoints: true,
      trainingArgs: {},
      roundLimit: 9,
      retention: { keepLast: 1, keepEvery: 5 },
    },
    then: [
      changed({ roundLimit: 9, retention: { keepLast: 1, keepEvery: 5 }, trainingArgs: {}, saveBreakpoints: true }),
    ],
  },
  {
    title: 'no setting given: refused',
    given: upTo(0),
    when: { type: 'ChangeSettings' },
    throws: InvalidArgumentError,
    fields: { argument: 'settings' },
  },
  {
    title: 'a negative limit: refused',
    given: upTo(0),
    when: { type: 'ChangeSettings', roundLimit: -2 },
    throws: InvalidArgumentError,
    fields: { argument: 'roundLimit', received: -2 },
    message: /non-negative integer or null/,
  },
  {
    title: 'a limit below the rounds completed: refused',
    given: upTo(43),
    when: { type: 'ChangeSettings', roundLimit: 5 },
    throws: InvalidArgumentError,
    fields: { argument: 'roundLimit', received: 5 },
    message: /must not be below the 6 rounds already completed/,
  },
  {
    title: 'a retention policy keeping no round: refused',
    given: upTo(0),
    when: { type: 'ChangeSettings', retention: { keepLast: 0, keepEvery: null } },
    throws: InvalidArgumentError,
    fields: { argument: 'retention.keepLast', received: 0 },
  },
  {
    title: 'training args that are not an object: refused',
    given: upTo(0),
    when: { type: 'ChangeSettings', trainingArgs: [1, 2] as never },
    throws: InvalidArgumentError,
    fields: { argument: 'trainingArgs' },
  },
  {
    title: 'saveBreakpoints that is not a boolean: refused',
    given: upTo(0),
    when: { type: 'ChangeSettings', saveBreakpoints: 'yes' as never },
    throws: InvalidArgumentError,
    fields: { argument: 'saveBreakpoints', received: 'yes' },
  },
  {
    title: 'no experiment: refused',
    given: [],
    when: { type: 'ChangeSettings', roundLimit: 1 },
    throws: ExperimentNotCreatedError,
    fields: { command: 'change settings' },
  },
]);
