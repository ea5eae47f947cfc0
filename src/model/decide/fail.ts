/**
 * A run failed (a node failed or timed out, training threw, anything the run could not go on
 * after): a `RunFailed` records the error's code and message and where the run stood, and ends the
 * run's lease. A round attempt open then stays without its `RoundCompleted` (an aborted attempt,
 * which replay ignores and audit shows with this cause); the next start of the round gets the next
 * attempt number.
 */
import { InvalidArgumentError } from '../../errors.ts';
import type { ExperimentEvent } from '../events.ts';
import { roundCurrent, type ExperimentState } from '../state.ts';
import { requireCreated } from './context.ts';

export type FailRun = {
  /** The error's `code` (a roundlog error's), else its name (`TypeError`). */
  code: string;
  message: string;
};

/** Longest message recorded (characters); a longer one is cut, marked with `…`. */
export const FAILURE_MESSAGE_MAX = 4000;

/**
 * Decides `[RunFailed]` for the open run (or, with none open, for a loop that holds no lease:
 * `runId` null), at `roundCurrent()` and the attempt open for it (null when none is).
 *
 * Errors: `ExperimentNotCreatedError`; `InvalidArgumentError` when `code` is not a non-empty
 * string of at most 200 characters or `message` is not a string.
 */
export function decideFail(state: ExperimentState, command: FailRun): readonly ExperimentEvent[] {
  requireCreated(state, 'record a failure');
  if (typeof command.code !== 'string' || command.code.length === 0 || command.code.length > 200) {
    throw new InvalidArgumentError('code', 'must be a non-empty string of at most 200 characters', command.code);
  }
  if (typeof command.message !== 'string') {
    throw new InvalidArgumentError('message', 'must be a string', command.message);
  }
  const round = roundCurrent(state);
  const open = state.openAttempt;
  const message =
    command.message.length > FAILURE_MESSAGE_MAX
      ? `${command.message.slice(0, FAILURE_MESSAGE_MAX - 1)}…`
      : command.message;
  return [
    {
      type: 'RunFailed',
      data: {
        v: 1,
        runId: state.run?.runId ?? null,
        round,
        attempt: open !== null && open.round === round ? open.attempt : null,
        code: command.code,
        message,
      },
    },
  ];
}
