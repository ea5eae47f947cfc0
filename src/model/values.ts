/**
 * Values the caller hands over to be recorded (a round's state, metrics and nodes, an experiment's
 * config and federated setup, training arguments, events): checked and copied in one place, used
 * by the deciders and by every entry that awaits before deciding (`recordRound`, `createExperiment`,
 * `ExperimentHandle.append`, `Experiment.create`).
 *
 * Recordable is what the log's codec (msgpack) and the breakpoint's JSON both give back as it was:
 * null, booleans, finite numbers, well-formed strings, arrays without holes or `undefined`
 * elements, and plain objects (prototype `Object.prototype` or null) with string keys, at most
 * `MAX_RECORDABLE_KEYS` (65,535) keys in one object (the codec writes every object as a msgpack
 * map16, whose count is 16 bits), at most `MAX_RECORDABLE_DEPTH` levels deep and without cycles.
 * Everything else is refused with an `UnrecordableValueError` naming its path: bigint (JSON cannot
 * write it), NaN and ±Infinity (JSON writes null), functions and symbols (neither keeps them),
 * `undefined` in an array (JSON writes null), typed arrays, Buffers, Dates, Maps, Sets and other
 * class instances (each comes back as something else), strings with a lone surrogate (msgpack
 * writes U+FFFD), the key `__proto__` (msgpack renames it), symbol keys (dropped by both).
 *
 * Two normalizations, since both encodings agree on them: an object property whose value is
 * `undefined` is left out (JSON drops it; it reads back as absent either way), and `-0` is recorded
 * as `0` (msgpack writes it so).
 *
 * The copy is taken at once, so the caller may change its objects as soon as the call returns.
 */
import { MAX_RECORDABLE_DEPTH, MAX_RECORDABLE_KEYS, UnrecordableValueError } from './errors.ts';

/**
 * A checked deep copy of `value`, owned by the operation that took it. `at` names the value in
 * errors (`state`, `metrics`); with `''`, an object's keys are the top-level names (`config.x`).
 * Throws `UnrecordableValueError` naming the first value that cannot be recorded.
 */
export function recordable<T>(value: T, at: string): T {
  return copy(value, at, 0, []) as T;
}

function copy(value: unknown, at: string, depth: number, ancestors: object[]): unknown {
  const where = at === '' ? '(the value)' : at;
  switch (typeof value) {
    case 'string':
      if (LONE_SURROGATE.test(value))
        refuse(where, 'a string with a lone surrogate', 'msgpack would write it as U+FFFD');
      return value;
    case 'boolean':
      return value;
    case 'number':
      if (Number.isNaN(value)) refuse(where, 'NaN', 'record it as null or a string, or skip the value');
      if (!Number.isFinite(value)) refuse(where, String(value), 'record it as null or a string, or a large number');
      return value === 0 ? 0 : value;
    case 'bigint':
      refuse(where, 'a bigint', 'record it as a number (if it is a safe integer) or a decimal string');
      break;
    case 'undefined':
      refuse(where, 'undefined', 'use null');
      break;
    case 'function':
      refuse(where, 'a function', 'record the data it computes from, and rebuild it from that data');
      break;
    case 'symbol':
      refuse(where, 'a symbol', 'record a string');
      break;
  }
  if (value === null) return null;
  const object = value as object;
  if (ancestors.includes(object)) {
    refuse(where, 'a reference to one of its enclosing values (a cycle)', 'record a tree, naming shared parts by key');
  }
  if (depth >= MAX_RECORDABLE_DEPTH) refuse(where, `nested deeper than ${MAX_RECORDABLE_DEPTH} levels`, 'flatten it');
  ancestors.push(object);
  try {
    if (Array.isArray(object)) {
      if (Object.getPrototypeOf(object) !== Array.prototype) refuse(where, kindOf(object), 'record a plain array');
      const out = new Array<unknown>(object.length);
      for (let i = 0; i < object.length; i++) {
        const item = `${where}[${i}]`;
        if (!(i in object)) refuse(item, 'a hole in an array', 'fill it (null)');
        if (object[i] === undefined) refuse(item, 'undefined in an array', 'use null (JSON would write null)');
        out[i] = copy(object[i], item, depth + 1, ancestors);
      }
      return out;
    }
    const prototype = Object.getPrototypeOf(object);
    if (prototype !== Object.prototype && prototype !== null) {
      refuse(where, kindOf(object), hintFor(object));
    }
    const symbols = Object.getOwnPropertySymbols(object).filter((s) =>
      Object.prototype.propertyIsEnumerable.call(object, s),
    );
    if (symbols.length > 0) refuse(`${where}[${String(symbols[0])}]`, 'a symbol key', 'use a string key');
    const keys = Object.keys(object);
    if (keys.length > MAX_RECORDABLE_KEYS) {
      refuse(
        where,
        `an object with ${keys.length} keys, more than the ${MAX_RECORDABLE_KEYS} one object may have ` +
          "(msgpack's 16-bit map size)",
        'split it into nested objects, or record the entries as an array of [key, value] pairs',
      );
    }
    const out: Record<string, unknown> = {};
    for (const key of keys) {
      const inner = at === '' && depth === 0 ? pathKey('', key) : `${where}${pathKey('.', key)}`;
      if (key === '__proto__') refuse(inner, 'the key __proto__', 'msgpack renames it; use another key');
      if (LONE_SURROGATE.test(key)) refuse(inner, 'a key with a lone surrogate', 'msgpack would write it as U+FFFD');
      const item = (object as Record<string, unknown>)[key];
      if (item === undefined) continue;
      out[key] = copy(item, inner, depth + 1, ancestors);
    }
    return out;
  } finally {
    ancestors.pop();
  }
}

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function refuse(at: string, kind: string, hint: string): never {
  throw new UnrecordableValueError(at, kind, hint);
}

/** `.name` for an identifier-like key, else `["a key"]` (`name` alone at the top with no prefix). */
function pathKey(dot: string, key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${dot}${key}` : `[${JSON.stringify(key)}]`;
}

function kindOf(object: object): string {
  if (ArrayBuffer.isView(object)) return `a ${object.constructor.name}`;
  const name = (object as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' && name !== '' ? `a ${name}` : 'an object with a prototype of its own';
}

function hintFor(object: object): string {
  if (object instanceof Date) return 'record it as an ISO string (toISOString()) or a number of milliseconds';
  if (object instanceof Map) return 'record it as a plain object or an array of [key, value] pairs';
  if (object instanceof Set) return 'record it as an array';
  if (ArrayBuffer.isView(object)) return 'record tensors as parameters, or small arrays as plain arrays (Array.from)';
  return 'record its data as a plain object';
}
