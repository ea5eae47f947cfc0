/**
 * What a rewind or a resume restores: the settings the round it continues from ran under. One
 * comparison for both, over every setting a `SettingsChanged` can carry, with a deep equality
 * that does not depend on key order (two equal training-args objects built in different orders
 * are equal).
 */
import type { SettingsChanged } from './events.ts';
import type { Settings } from './state.ts';

/** The fields of a `SettingsChanged` that restore settings (no `v`, no `by`). */
export type SettingsRestore = Omit<SettingsChanged, 'v' | 'by'> &
  Readonly<{ roundLimit: number | null; saveBreakpoints: boolean; trainingArgs: Settings['trainingArgs'] }>;

/**
 * The `SettingsChanged` fields that bring `now` back to `then`, or null when nothing differs.
 *
 * Compared: `roundLimit`, `saveBreakpoints`, `trainingArgs`, `retention`, `trainingPlan` (every
 * setting a `SettingsChanged` can carry). A restore always carries `roundLimit`, `saveBreakpoints`
 * and `trainingArgs` (as every restore recorded so far did), plus `retention` and `trainingPlan`
 * when they differ. A `then` with no training plan cannot be restored over one (`SettingsChanged`
 * cannot clear a plan), so a plan is compared only when `then` has one.
 */
export function settingsToRestore(now: Settings, then: Settings): SettingsRestore | null {
  const retention = !sameValue(now.retention, then.retention);
  const plan = then.trainingPlan !== null && !sameValue(now.trainingPlan, then.trainingPlan);
  const base =
    now.roundLimit !== then.roundLimit ||
    now.saveBreakpoints !== then.saveBreakpoints ||
    !sameValue(now.trainingArgs, then.trainingArgs);
  if (!base && !retention && !plan) return null;
  return {
    roundLimit: then.roundLimit,
    saveBreakpoints: then.saveBreakpoints,
    trainingArgs: then.trainingArgs,
    ...(retention ? { retention: then.retention } : {}),
    ...(plan && then.trainingPlan !== null ? { trainingPlan: then.trainingPlan } : {}),
  };
}

/**
 * Deep equality of serializable values, independent of key order: primitives by value (NaN
 * equals NaN, bigints by value), arrays and typed arrays element by element, `Date`s by time,
 * plain objects by their keys, a key holding `undefined` counting as absent (as after a JSON or
 * msgpack round trip).
 */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === 'number' && typeof b === 'number') return Number.isNaN(a) && Number.isNaN(b);
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((value, i) => sameValue(value, b[i]));
  }
  if (a instanceof Date || b instanceof Date) {
    return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
  }
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b)) {
    if (!ArrayBuffer.isView(a) || !ArrayBuffer.isView(b) || a.constructor !== b.constructor) return false;
    const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    return x.length === y.length && x.every((byte, i) => byte === y[i]);
  }
  const keys = (o: object) => Object.keys(o).filter((k) => (o as Record<string, unknown>)[k] !== undefined);
  const ka = keys(a);
  const kb = new Set(keys(b));
  if (ka.length !== kb.size) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  return ka.every((k) => kb.has(k) && sameValue(ra[k], rb[k]));
}
