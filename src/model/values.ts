/**
 * The caller's values, taken when they are handed over: an operation that awaits before it
 * records what it was given works on its own copy, so a caller that goes on changing its objects
 * (the next round of a training loop) records the values it passed.
 */

/** A deep copy of `value`, owned by the operation that took it. */
export function ownValue<T>(value: T): T {
  return structuredClone(value);
}
