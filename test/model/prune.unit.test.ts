/**
 * `decidePrune`: one `RoundsPruned` naming the rounds outside the retention policy (current branch
 * first, then superseded rounds), or nothing.
 */
import { InvalidArgumentError } from '../../src/errors.ts';
import { ExperimentNotCreatedError, type ExperimentEvent, type Retention } from '../../src/model/index.ts';
import { ACTOR, completed, created, history, table } from './support.ts';

const pruned = (rounds: Array<[number, string]>, retention: Retention): ExperimentEvent => ({
  type: 'RoundsPruned',
  data: { v: 1, rounds: rounds.map(([round, position]) => ({ round, position })), retention, by: ACTOR },
});
const keepLast2 = { keepLast: 2, keepEvery: null };

table([
  {
    title: 'keep the last 2: rounds 0-3 of the branch, then the superseded 1 and 2',
    given: history,
    when: { type: 'PruneRounds', retention: keepLast2 },
    then: [
      pruned(
        [
          [0, '6'],
          [1, '24'],
          [2, '29'],
          [3, '34'],
          [1, '11'],
          [2, '16'],
        ],
        keepLast2,
      ),
    ],
  },
  {
    title: 'keep every 2nd too: rounds 0, 2, 4 stay on the branch, the superseded round 2 stays',
    given: history,
    when: { type: 'PruneRounds', retention: { keepLast: 1, keepEvery: 2 } },
    then: [
      pruned(
        [
          [1, '24'],
          [3, '34'],
          [1, '11'],
        ],
        { keepLast: 1, keepEvery: 2 },
      ),
    ],
  },
  {
    title: 'rounds forks started from are kept whatever the policy',
    given: history,
    when: { type: 'PruneRounds', retention: keepLast2, protectedPositions: new Set(['6', '16']) },
    then: [
      pruned(
        [
          [1, '24'],
          [2, '29'],
          [3, '34'],
          [1, '11'],
        ],
        keepLast2,
      ),
    ],
  },
  {
    title: "the experiment's own policy when none is given",
    given: [
      created(),
      { type: 'SettingsChanged', data: { v: 1, retention: { keepLast: 1, keepEvery: null }, by: ACTOR } },
      completed(0),
      completed(1),
    ],
    when: { type: 'PruneRounds' },
    then: [pruned([[0, '2']], { keepLast: 1, keepEvery: null })],
  },
  {
    title: 'rounds pruned before are not pruned again',
    given: [
      ...history,
      pruned(
        [
          [0, '6'],
          [1, '11'],
        ],
        keepLast2,
      ),
    ],
    when: { type: 'PruneRounds', retention: keepLast2 },
    then: [
      pruned(
        [
          [1, '24'],
          [2, '29'],
          [3, '34'],
          [2, '16'],
        ],
        keepLast2,
      ),
    ],
  },
  {
    title: 'nothing left to prune: nothing',
    given: [created(), completed(0), completed(1)],
    when: { type: 'PruneRounds', retention: keepLast2 },
    then: [],
  },
  {
    title: 'no policy, none given: nothing',
    given: history,
    when: { type: 'PruneRounds' },
    then: [],
  },
  {
    title: 'a policy keeping no round: refused',
    given: history,
    when: { type: 'PruneRounds', retention: { keepLast: 0, keepEvery: null } },
    throws: InvalidArgumentError,
    fields: { argument: 'retention.keepLast', received: 0 },
  },
  {
    title: 'a keepEvery of 0: refused',
    given: history,
    when: { type: 'PruneRounds', retention: { keepLast: 1, keepEvery: 0 } },
    throws: InvalidArgumentError,
    fields: { argument: 'retention.keepEvery', received: 0 },
  },
  {
    title: 'no experiment: refused',
    given: [],
    when: { type: 'PruneRounds', retention: keepLast2 },
    throws: ExperimentNotCreatedError,
    fields: { command: 'prune' },
  },
]);
