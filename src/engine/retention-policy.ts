/**
 * The retention policy as pure functions: checking a policy, planning which rounds of an
 * experiment it keeps and prunes, and formatting round lists. No I/O; `gc.ts` applies the plan.
 *
 * Policy (`Retention { keepLast, keepEvery }`), per experiment:
 * - on the current branch, the last `keepLast` rounds (`keepLast >= 1`, so the parameters the next
 *   round starts from are always kept) and every round whose index is a multiple of `keepEvery`
 *   (rounds 0, K, 2K, ...: `breakpoint_0000`, `breakpoint_000K`, ...);
 * - superseded rounds (taken off the branch by a rewind) are kept only by the `keepEvery` rule:
 *   "the last N" means the last N of the branch the experiment continues;
 * - a round some fork started from is always kept, so lineage stays loadable.
 */
import { InvalidArgumentError } from '../errors.ts';
import type { Retention } from '../model/events.ts';
import type { ExperimentState, RoundRecord } from '../model/state.ts';

export type { Retention };

/** Checks a retention policy: `keepLast` an integer >= 1, `keepEvery` an integer >= 1 or null. */
export function checkRetention(value: unknown, argument = 'retention'): Retention {
  if (value === null || typeof value !== 'object') {
    throw new InvalidArgumentError(argument, 'must be an object { keepLast, keepEvery? }', value);
  }
  const { keepLast, keepEvery } = value as { keepLast?: unknown; keepEvery?: unknown };
  if (typeof keepLast !== 'number' || !Number.isSafeInteger(keepLast) || keepLast < 1) {
    throw new InvalidArgumentError(
      `${argument}.keepLast`,
      'must be an integer of at least 1 (the last round is what the next one starts from)',
      keepLast,
    );
  }
  const everyValid = typeof keepEvery === 'number' && Number.isSafeInteger(keepEvery) && keepEvery >= 1;
  if (keepEvery !== undefined && keepEvery !== null && !everyValid) {
    throw new InvalidArgumentError(`${argument}.keepEvery`, 'must be an integer of at least 1, or null', keepEvery);
  }
  return { keepLast, keepEvery: (keepEvery as number | null | undefined) ?? null };
}

/** A round named by its index, the log position of its `RoundCompleted`, and its branch. */
export type RoundRef = Readonly<{ round: number; position: string; branch: 'current' | 'superseded' }>;

export type RetentionPlan = Readonly<{
  /** Rounds outside the policy, not pruned yet. */
  prune: readonly RoundRef[];
  /** Rounds the policy keeps. */
  keep: readonly RoundRef[];
  /** Rounds pruned before. */
  alreadyPruned: readonly RoundRef[];
}>;

/**
 * Which rounds of an experiment the policy keeps and which it prunes (pure). `protectedPositions`
 * are `RoundCompleted` positions kept whatever the policy says (rounds forks started from).
 */
export function planRetention(
  state: ExperimentState,
  retention: Retention,
  protectedPositions: ReadonlySet<string> = new Set(),
): RetentionPlan {
  const policy = checkRetention(retention);
  const prune: RoundRef[] = [];
  const keep: RoundRef[] = [];
  const alreadyPruned: RoundRef[] = [];
  const n = state.rounds.length;
  const every = (round: number) => policy.keepEvery !== null && round % policy.keepEvery === 0;
  const sort = (record: RoundRecord | undefined, branch: RoundRef['branch'], kept: boolean) => {
    if (record === undefined || record === null) return;
    const ref: RoundRef = { round: record.round, position: String(record.position), branch };
    if (state.pruned[ref.position] !== undefined) alreadyPruned.push(ref);
    else if (kept || protectedPositions.has(ref.position)) keep.push(ref);
    else prune.push(ref);
  };
  for (const [index, record] of state.rounds.entries()) {
    sort(record, 'current', index >= n - policy.keepLast || every(index));
  }
  for (const record of state.superseded) sort(record, 'superseded', every(record.round));
  return { prune, keep, alreadyPruned };
}

/** Round indices, sorted and deduplicated, runs of three or more as ranges: `0-3, 5, 7, 8`. */
export function formatRounds(rounds: readonly number[]): string {
  const sorted = [...new Set(rounds)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j === i ? String(sorted[i]) : j === i + 1 ? `${sorted[i]}, ${sorted[j]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}
