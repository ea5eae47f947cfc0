/**
 * Change settings mid-experiment: one `SettingsChanged` carrying the settings given (round limit,
 * retention policy, training args, saveBreakpoints), who changed them, and nothing else.
 */
import { checkRoundLimit } from './checks.ts';
import { InvalidArgumentError } from '../../errors.ts';
import type { ExperimentEvent, Retention, SettingsChanged } from '../events.ts';
import { checkRetention } from '../retention.ts';
import { roundCurrent, type ExperimentState } from '../state.ts';
import { recordable } from '../values.ts';
import { requireCreated, type DecideContext } from './context.ts';

/** The settings to change; at least one. An absent field is left as it is. */
export type ChangeSettings = {
  /** Rounds after which `run()` stops, or null for none. */
  roundLimit?: number | null;
  /** Keep the parameters of these rounds only (see `planRetention`), or null for no policy. */
  retention?: Retention | null;
  /** Replaces the training args as a whole. */
  trainingArgs?: Readonly<Record<string, unknown>>;
  saveBreakpoints?: boolean;
};

/**
 * Decides the `SettingsChanged`. The retention policy is recorded as `checkRetention` returns it
 * (`keepEvery` null when absent).
 *
 * Errors: `ExperimentNotCreatedError`; `InvalidArgumentError` when no setting is given, for a
 * `roundLimit` that is not a non-negative integer or null or is below `roundCurrent()`, a
 * `retention` that `checkRetention` refuses, `trainingArgs` that are not an object, a
 * `saveBreakpoints` that is not a boolean; `UnrecordableValueError` naming the path of a value in
 * `trainingArgs` that the log and the breakpoint's JSON cannot both hold.
 */
export function decideChangeSettings(
  state: ExperimentState,
  command: ChangeSettings,
  context: DecideContext,
): readonly ExperimentEvent[] {
  requireCreated(state, 'change settings');
  const { roundLimit, retention, trainingArgs, saveBreakpoints } = command;
  const given = [roundLimit, retention, trainingArgs, saveBreakpoints].some((value) => value !== undefined);
  if (!given) {
    throw new InvalidArgumentError(
      'settings',
      'must give at least one of roundLimit, retention, trainingArgs, saveBreakpoints',
      command,
    );
  }
  if (roundLimit !== undefined && roundLimit !== null) {
    checkRoundLimit(roundLimit);
    if (roundLimit < roundCurrent(state)) {
      throw new InvalidArgumentError(
        'roundLimit',
        `must not be below the ${roundCurrent(state)} rounds already completed`,
        roundLimit,
      );
    }
  }
  const notObject = trainingArgs === null || typeof trainingArgs !== 'object' || Array.isArray(trainingArgs);
  if (trainingArgs !== undefined && notObject) {
    throw new InvalidArgumentError('trainingArgs', 'must be an object of named arguments', trainingArgs);
  }
  if (saveBreakpoints !== undefined && typeof saveBreakpoints !== 'boolean') {
    throw new InvalidArgumentError('saveBreakpoints', 'must be true or false', saveBreakpoints);
  }
  const data: SettingsChanged = {
    v: 1,
    ...(roundLimit === undefined ? {} : { roundLimit }),
    ...(retention === undefined ? {} : { retention: retention === null ? null : checkRetention(retention) }),
    ...(trainingArgs === undefined ? {} : { trainingArgs: recordable(trainingArgs, 'trainingArgs') }),
    ...(saveBreakpoints === undefined ? {} : { saveBreakpoints }),
    by: context.actor,
  };
  return [{ type: 'SettingsChanged', data }];
}
