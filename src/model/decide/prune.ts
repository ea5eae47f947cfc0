/**
 * Prune an experiment by its retention policy: one `RoundsPruned` naming the rounds outside the
 * policy (by index and the log position of their `RoundCompleted`), the policy and who. Deleting
 * their bytes is the engine's business, after the event is durable.
 */
import type { ExperimentEvent, Retention, RoundsPruned } from '../events.ts';
import { planRetention } from '../retention.ts';
import type { ExperimentState } from '../state.ts';
import { requireCreated, type DecideContext } from './context.ts';

export type PruneRounds = {
  /** The policy to apply; default the experiment's own (`SettingsChanged.retention`). */
  retention?: Retention;
  /** `RoundCompleted` positions kept whatever the policy says (`forkProtectedPositions`); default none. */
  protectedPositions?: ReadonlySet<string>;
};

/**
 * Decides `[RoundsPruned]`, or no event when there is no policy or nothing left to prune.
 *
 * Errors: `ExperimentNotCreatedError`; `InvalidArgumentError` for a policy `checkRetention` refuses.
 */
export function decidePrune(
  state: ExperimentState,
  command: PruneRounds,
  context: DecideContext,
): readonly ExperimentEvent[] {
  requireCreated(state, 'prune');
  const policy = command.retention ?? state.settings.retention;
  if (policy === null) return [];
  const plan = planRetention(state, policy, command.protectedPositions);
  if (plan.prune.length === 0) return [];
  const data: RoundsPruned = {
    v: 1,
    rounds: plan.prune.map(({ round, position }) => ({ round, position })),
    retention: policy,
    by: context.actor,
  };
  return [{ type: 'RoundsPruned', data }];
}
