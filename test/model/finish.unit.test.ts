/** `decideFinish`: an `ExperimentFinished` once the round limit is reached, nothing before. */
import { ExperimentNotCreatedError } from '../../src/model/index.ts';
import { completed, created, domain, history, table, upTo } from './support.ts';

const finished = (roundCurrent: number) => ({ type: 'ExperimentFinished', data: { v: 1, roundCurrent } }) as const;

table([
  {
    title: 'the fixture reaches its limit of 6 and finishes, as recorded',
    given: upTo(43),
    when: { type: 'FinishExperiment' },
    then: [domain(44)],
  },
  {
    title: 'below the limit: nothing',
    given: upTo(38),
    when: { type: 'FinishExperiment' },
    then: [],
  },
  {
    title: 'no limit: nothing',
    given: [created({ roundLimit: null }), completed(0)],
    when: { type: 'FinishExperiment' },
    then: [],
  },
  {
    title: 'a limit of 0 is reached at once',
    given: [created({ roundLimit: 0 })],
    when: { type: 'FinishExperiment' },
    then: [finished(0)],
  },
  {
    title: 'a run ending at the limit of a finished experiment records it again, as runs always have',
    given: history,
    when: { type: 'FinishExperiment' },
    then: [finished(6)],
  },
  {
    title: 'no experiment: refused',
    given: [],
    when: { type: 'FinishExperiment' },
    throws: ExperimentNotCreatedError,
    fields: { command: 'finish the experiment' },
  },
]);
