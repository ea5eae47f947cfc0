/**
 * Resume an experiment from the breakpoint of round R of its current branch (the last one, or an
 * older one, only when asked to rewind): in this order, a `SettingsChanged` recording an accepted
 * change of the training plan, a `Rewound` superseding the rounds after R (when there are any), a `SettingsChanged`
 * restoring the settings R ran under (`settingsToRestore`), and the `Resumed`.
 *
 * An experiment that completed no round (it crashed or failed before its first round committed)
 * resumes from its initial parameters: `round: null`, `Resumed` at round 0 with no breakpoint.
 */
import { RewindNotRequestedError } from '../errors.ts';
import { breakpointFolderName, type ExperimentEvent, type TrainingPlanRef } from '../events.ts';
import { InvalidArgumentError } from '../../errors.ts';
import { chooseRound } from '../rounds.ts';
import { settingsToRestore } from '../settings.ts';
import { currentParams, roundCurrent, type ExperimentState } from '../state.ts';
import { requireCreated, type DecideContext } from './context.ts';

export type ResumeExperiment = {
  /**
   * Index of the round whose breakpoint is loaded: `roundCurrent()` becomes `round + 1`. Null: no
   * round, the experiment starts again from its initial parameters (`roundCurrent()` stays 0).
   */
  round: number | null;
  /** The breakpoint folder loaded, its name in the experiment folder (`breakpoint_RRRR`); null with `round: null`. */
  breakpoint: string | null;
  /** The experiment's folder from now on when it was renamed (a name under `<root>/experiments`); default null. */
  folder?: string | null;
  /**
   * The training plan found in the workspace (its source hash checked, or the change accepted, by
   * the caller). When its SHA-256 differs from the plan in force, the change is recorded. Default:
   * the plan in force.
   */
  trainingPlan?: TrainingPlanRef | null;
  /**
   * The caller asks to go back: a breakpoint older than the last round supersedes the rounds after
   * it (a `Rewound`). Without it, such a resume is refused (`RewindNotRequestedError`). Default false.
   */
  rewind?: boolean;
};

/**
 * Decides the resume's events. The training plan is never restored from the round: the plan that
 * runs is the workspace's, recorded by the plan change when it differs.
 *
 * Errors: `ExperimentNotCreatedError`; `InvalidArgumentError` (`round` not a non-negative
 * integer, or null while the experiment has completed rounds or has no initial parameters),
 * `RoundNotFoundError` (not a round of the current branch), `RoundPrunedError` (its parameters
 * were deleted by retention), `RewindNotRequestedError` (an older breakpoint than the last round,
 * without `rewind`: it names the rounds it would supersede and how to ask for it).
 */
export function decideResume(
  state: ExperimentState,
  command: ResumeExperiment,
  context: DecideContext,
): readonly ExperimentEvent[] {
  requireCreated(state, 'resume');
  const by = context.actor;
  const events: ExperimentEvent[] = [];
  const inForce = state.settings.trainingPlan;
  const plan = command.trainingPlan ?? inForce;
  if (command.trainingPlan && inForce !== null && command.trainingPlan.sha256 !== inForce.sha256) {
    events.push({ type: 'SettingsChanged', data: { v: 1, trainingPlan: command.trainingPlan, by } });
  }
  if (command.round === null) {
    // From the initial parameters: only while no round of the branch was completed, so nothing is superseded.
    if (!canResumeFromStart(state)) {
      const rule =
        roundCurrent(state) > 0
          ? `must be a round of the branch: ${state.folder} has completed ${roundCurrent(state)} round(s), ` +
            'so it cannot start again from its initial parameters'
          : `must be a round: ${state.folder} recorded no initial parameters to start again from`;
      throw new InvalidArgumentError('round', rule, null);
    }
    events.push({
      type: 'Resumed',
      data: { v: 1, roundCurrent: 0, breakpoint: null, folder: command.folder ?? null, by },
    });
    return events;
  }
  const { record } = chooseRound(state, { round: command.round });
  const keep = record.round + 1;
  const supersededRounds = state.rounds
    .slice(keep)
    .filter((r) => r !== undefined && r !== null)
    .map((r) => r.round);
  if (supersededRounds.length > 0 && command.rewind !== true) {
    throw new RewindNotRequestedError(
      state.folder,
      record.round,
      command.breakpoint ?? breakpointFolderName(record.round),
      roundCurrent(state),
      supersededRounds,
    );
  }
  if (supersededRounds.length > 0) {
    const reason = `loaded the older breakpoint ${command.breakpoint}`;
    events.push({ type: 'Rewound', data: { v: 1, roundCurrent: keep, reason, supersededRounds, by } });
  }
  // The breakpoint's settings come back with it (settings changed after it are undone, on the record).
  const restore = settingsToRestore(
    { ...state.settings, trainingPlan: plan },
    { ...record.settings, trainingPlan: plan },
  );
  if (restore !== null) events.push({ type: 'SettingsChanged', data: { v: 1, ...restore, by } });
  events.push({
    type: 'Resumed',
    data: { v: 1, roundCurrent: keep, breakpoint: command.breakpoint, folder: command.folder ?? null, by },
  });
  return events;
}

/**
 * Whether the experiment can be resumed from its initial parameters: it completed no round of its
 * current branch (it crashed or failed before the first round committed) and it has them.
 */
export function canResumeFromStart(state: ExperimentState): boolean {
  return state.created !== null && roundCurrent(state) === 0 && currentParams(state) !== null;
}
