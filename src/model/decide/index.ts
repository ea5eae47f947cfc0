/**
 * The deciders: one pure function per command, `decideX(state, command, context) => events`,
 * throwing a typed error when the command is not allowed. `decide` dispatches a tagged command to
 * its decider, for handlers and tests that take any command.
 */
import { InvalidArgumentError } from '../../errors.ts';
import type { ExperimentEvent } from '../events.ts';
import type { ExperimentState } from '../state.ts';
import { decideChangeSettings, type ChangeSettings } from './change-settings.ts';
import { decideCompleteRound, type CompleteRound } from './complete-round.ts';
import type { DecideContext } from './context.ts';
import { decideCreate, type CreateExperiment } from './create.ts';
import { decideFail, type FailRun } from './fail.ts';
import { decideFinish, type FinishExperiment } from './finish.ts';
import { decideFork, decideForked, type ForkExperiment, type RecordFork } from './fork.ts';
import { decidePrune, type PruneRounds } from './prune.ts';
import { decideResume, type ResumeExperiment } from './resume.ts';
import { decideRewind, type RewindExperiment } from './rewind.ts';
import { decideEndRun, decideHeartbeat, decideStartRun, type RunCommand, type StartRun } from './run.ts';
import { decideStartRound, type StartRound } from './start-round.ts';

export { decideChangeSettings, type ChangeSettings } from './change-settings.ts';
export { decideCompleteRound, type CompleteRound } from './complete-round.ts';
export { requireCreated, requireUnderRoundLimit, type DecideContext } from './context.ts';
export { checkReason, checkRoundLimit, checkSeed } from './checks.ts';
export { checkFolderName, folderNameProblem, decideCreate, type CreateExperiment } from './create.ts';
export { decideFail, FAILURE_MESSAGE_MAX, type FailRun } from './fail.ts';
export { decideEndRun, decideHeartbeat, decideStartRun, type RunCommand, type StartRun } from './run.ts';
export { decideFinish, type FinishExperiment } from './finish.ts';
export {
  decideFork,
  decideForked,
  forkCreation,
  type ForkCreation,
  type ForkExperiment,
  type ForkSource,
  type RecordFork,
} from './fork.ts';
export { decidePrune, type PruneRounds } from './prune.ts';
export { canResumeFromStart, decideResume, type ResumeExperiment } from './resume.ts';
export { decideRewind, type RewindExperiment } from './rewind.ts';
export { decideStartRound, nextAttempt, type StartRound } from './start-round.ts';

/** Every command, tagged by `type`. */
export type ExperimentCommand =
  | ({ type: 'CreateExperiment' } & CreateExperiment)
  | ({ type: 'StartRound' } & StartRound)
  | ({ type: 'CompleteRound' } & CompleteRound)
  | ({ type: 'FailRun' } & FailRun)
  | ({ type: 'ChangeSettings' } & ChangeSettings)
  | ({ type: 'ResumeExperiment' } & ResumeExperiment)
  | ({ type: 'RewindExperiment' } & RewindExperiment)
  | ({ type: 'ForkExperiment' } & ForkExperiment)
  | ({ type: 'RecordFork' } & RecordFork)
  | ({ type: 'FinishExperiment' } & FinishExperiment)
  | ({ type: 'PruneRounds' } & PruneRounds)
  | ({ type: 'StartRun' } & StartRun)
  | ({ type: 'Heartbeat' } & RunCommand)
  | ({ type: 'EndRun' } & RunCommand & Readonly<{ signal?: string | null }>);

export type ExperimentCommandType = ExperimentCommand['type'];

/**
 * Decides the events of any command. For a `ForkExperiment`, `state` is the parent's and the
 * events are the child's first ones.
 *
 * Errors: those of the command's decider; `InvalidArgumentError` when a command that records who
 * acts comes without a `context`.
 */
export function decide(
  state: ExperimentState,
  command: ExperimentCommand,
  context?: DecideContext,
): readonly ExperimentEvent[] {
  const actor = (): DecideContext => {
    if (context === undefined) {
      throw new InvalidArgumentError('context', `must name the actor of a ${command.type} command`, context);
    }
    return context;
  };
  switch (command.type) {
    case 'CreateExperiment':
      return decideCreate(state, command, actor());
    case 'StartRound':
      return decideStartRound(state, command);
    case 'CompleteRound':
      return decideCompleteRound(state, command);
    case 'FailRun':
      return decideFail(state, command);
    case 'ChangeSettings':
      return decideChangeSettings(state, command, actor());
    case 'ResumeExperiment':
      return decideResume(state, command, actor());
    case 'RewindExperiment':
      return decideRewind(state, command, actor());
    case 'ForkExperiment':
      return decideFork(state, command, actor());
    case 'RecordFork':
      return decideForked(state, command, actor());
    case 'FinishExperiment':
      return decideFinish(state, command);
    case 'PruneRounds':
      return decidePrune(state, command, actor());
    case 'StartRun':
      return decideStartRun(state, command);
    case 'Heartbeat':
      return decideHeartbeat(state, command);
    case 'EndRun':
      return decideEndRun(state, command);
  }
}
