/**
 * `recordable`: what a round, a creation or a settings change may record is exactly what the log's
 * codec and the breakpoint's JSON both give back unchanged; anything else is an
 * `UnrecordableValueError` naming its path.
 */
import test from 'ava';
import fc from 'fast-check';
import { decodeValue, encodeValue } from '../../src/codec/values.ts';
import { MAX_RECORDABLE_DEPTH, MAX_RECORDABLE_KEYS, UnrecordableValueError } from '../../src/model/errors.ts';
import { recordable } from '../../src/model/values.ts';

const refused = (value: unknown, at = 'state') => {
  try {
    recordable(value, at);
  } catch (error) {
    if (error instanceof UnrecordableValueError) return { path: error.path, kind: error.kind };
    throw error;
  }
  return null;
};

const cycle: Record<string, unknown> = { a: 1 };
cycle.self = { back: cycle };
let deep: unknown = 1;
for (let i = 0; i < MAX_RECORDABLE_DEPTH + 1; i++) deep = { d: deep };
const withSymbolKey = { [Symbol('k')]: 1 };
const protoKey = JSON.parse('{"__proto__": 1}') as unknown;
class Optimizer {
  step = 1;
}

const cases: readonly [string, unknown, string, RegExp][] = [
  ['a bigint', { optimizer: { step: 1n } }, 'state.optimizer.step', /bigint/],
  ['NaN', { loss: Number.NaN }, 'state.loss', /NaN/],
  ['Infinity', { loss: Number.POSITIVE_INFINITY }, 'state.loss', /Infinity/],
  ['-Infinity', [Number.NEGATIVE_INFINITY], 'state[0]', /-Infinity/],
  ['a function', { lr: () => 0.1 }, 'state.lr', /function/],
  ['a symbol', { tag: Symbol('x') }, 'state.tag', /symbol/],
  ['undefined in an array', [1, undefined], 'state[1]', /undefined/],
  ['a hole in an array', [1, , 3], 'state[1]', /hole/],
  ['undefined as the value', undefined, 'state', /undefined/],
  ['a Date', { at: new Date(0) }, 'state.at', /Date/],
  ['a Map', { m: new Map([[1, 2]]) }, 'state.m', /Map/],
  ['a Set', { s: new Set([1]) }, 'state.s', /Set/],
  ['a typed array', { v: new Float32Array(2) }, 'state.v', /Float32Array/],
  ['a Buffer', { b: Buffer.from('x') }, 'state.b', /Buffer/],
  ['a class instance', { o: new Optimizer() }, 'state.o', /Optimizer/],
  ['a RegExp', { r: /x/ }, 'state.r', /RegExp/],
  ['a cycle', cycle, 'state.self.back', /cycle/],
  ['a lone surrogate', { s: 'a\ud800b' }, 'state.s', /surrogate/],
  ['a key with a lone surrogate', { ['\udc00']: 1 }, 'state["\\udc00"]', /surrogate/],
  ['the key __proto__', protoKey, 'state.__proto__', /__proto__/],
  ['a symbol key', withSymbolKey, 'state[Symbol(k)]', /symbol key/],
  ['too deep', deep, `state${'.d'.repeat(MAX_RECORDABLE_DEPTH)}`, /deeper/],
];

for (const [name, value, path, kind] of cases) {
  test(`${name} is refused, naming ${path}`, (t) => {
    const error = refused(value);
    t.not(error, null);
    t.is(error!.path, path);
    t.regex(error!.kind, kind);
  });
}

const manyKeys = (count: number) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, i]));

test('an object with more than 65,535 keys is refused, naming its path; 65,535 keys record and read back', (t) => {
  t.is(MAX_RECORDABLE_KEYS, 65_535);
  const error = refused({ model: { weights: manyKeys(MAX_RECORDABLE_KEYS + 1) } });
  t.is(error?.path, 'state.model.weights');
  t.regex(error!.kind, /65536 keys, more than the 65535/);
  t.is(refused({ metrics: manyKeys(70_000) }, '')?.path, 'metrics');
  const most = recordable(manyKeys(MAX_RECORDABLE_KEYS), 'state');
  const { encoding, bytes } = encodeValue(most);
  t.deepEqual(decodeValue(encoding, bytes), most);
});

test('with no name, top-level keys are the path: config.started, metrics["top-1"]', (t) => {
  t.is(refused({ config: { started: new Date() } }, '')!.path, 'config.started');
  t.is(refused({ metrics: { 'top-1': Number.NaN } }, '')!.path, 'metrics["top-1"]');
});

test('plain data is copied: changing the original afterwards leaves the copy alone', (t) => {
  const value = { optimizer: { step: 1, momentum: [0.1, 0.2] }, tags: ['a'], none: null, ok: true };
  const copy = recordable(value, 'state');
  value.optimizer.momentum[0] = 9;
  value.tags.push('b');
  t.deepEqual(copy, { optimizer: { step: 1, momentum: [0.1, 0.2] }, tags: ['a'], none: null, ok: true });
  t.not(copy.optimizer, value.optimizer);
});

test('undefined properties are left out and -0 is 0, as both encodings give them back', (t) => {
  const copy = recordable({ a: undefined, b: -0, c: Object.assign(Object.create(null) as object, { d: 1 }) }, 'state');
  t.deepEqual(Object.keys(copy), ['b', 'c']);
  t.true(Object.is(copy.b, 0));
  t.deepEqual(copy.c, { d: 1 });
});

const roundTripsJson = (value: unknown) => JSON.parse(JSON.stringify(value)) as unknown;
const roundTripsLog = (value: unknown) => {
  const { encoding, bytes } = encodeValue(value);
  return decodeValue(encoding, bytes);
};

test('property: whatever is accepted comes back the same from the log codec and from JSON', (t) => {
  fc.assert(
    fc.property(
      fc.anything({
        withBigInt: true,
        withDate: true,
        withMap: true,
        withSet: true,
        withTypedArray: true,
        withSparseArray: true,
        withNullPrototype: true,
        withObjectString: true,
        withBoxedValues: true,
        maxDepth: 4,
      }),
      (value) => {
        let copy: unknown;
        try {
          copy = recordable(value, 'state');
        } catch (error) {
          return error instanceof UnrecordableValueError;
        }
        t.deepEqual(roundTripsJson(copy), copy);
        t.deepEqual(roundTripsLog(copy), copy);
        return true;
      },
    ),
    { numRuns: 2000 },
  );
  t.pass();
});
