/**
 * Argument checks a command shares with the handler that calls its decider before any I/O (so a
 * refused creation stores no blob, and an empty reason is refused before the experiment is read).
 */
import { InvalidArgumentError } from '../../errors.ts';

/** A round limit: a non-negative integer, or null for none. */
export function checkRoundLimit(roundLimit: unknown): number | null {
  if (roundLimit !== null && (!Number.isInteger(roundLimit) || (roundLimit as number) < 0)) {
    throw new InvalidArgumentError('roundLimit', 'must be a non-negative integer or null', roundLimit);
  }
  return roundLimit as number | null;
}

/** A seed: a safe integer. */
export function checkSeed(seed: unknown): number {
  if (!Number.isSafeInteger(seed)) throw new InvalidArgumentError('seed', 'must be a safe integer', seed);
  return seed as number;
}

/** Why a history is changed: a non-empty text. */
export function checkReason(reason: unknown): string {
  if (typeof reason !== 'string' || reason.trim() === '') {
    throw new InvalidArgumentError('reason', 'must be a non-empty text saying why', reason);
  }
  return reason;
}
