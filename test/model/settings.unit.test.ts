/** `settingsToRestore` and the deep equality it compares settings with. */
import test from 'ava';
import { sameValue, settingsToRestore, type Settings } from '../../src/model/index.ts';
import { plan } from './support.ts';

const base: Settings = {
  roundLimit: 4,
  retention: null,
  saveBreakpoints: true,
  trainingArgs: { epochs: 1 },
  trainingPlan: plan('1'),
};

test('equal settings restore nothing', (t) => {
  t.is(settingsToRestore(base, { ...base, trainingArgs: { epochs: 1 } }), null);
});

test('a restore always carries the limit, breakpoints and training args, as recorded restores do', (t) => {
  t.deepEqual(settingsToRestore({ ...base, roundLimit: 6 }, base), {
    roundLimit: 4,
    saveBreakpoints: true,
    trainingArgs: { epochs: 1 },
  });
  t.deepEqual(settingsToRestore({ ...base, saveBreakpoints: false }, base), {
    roundLimit: 4,
    saveBreakpoints: true,
    trainingArgs: { epochs: 1 },
  });
});

test('retention and training plan are restored when they differ, and only then', (t) => {
  const retention = { keepLast: 2, keepEvery: null };
  t.deepEqual(settingsToRestore({ ...base, retention }, base), {
    roundLimit: 4,
    saveBreakpoints: true,
    trainingArgs: { epochs: 1 },
    retention: null,
  });
  t.deepEqual(settingsToRestore(base, { ...base, retention }), {
    roundLimit: 4,
    saveBreakpoints: true,
    trainingArgs: { epochs: 1 },
    retention,
  });
  t.deepEqual(settingsToRestore({ ...base, trainingPlan: plan('2') }, base), {
    roundLimit: 4,
    saveBreakpoints: true,
    trainingArgs: { epochs: 1 },
    trainingPlan: plan('1'),
  });
});

test('a plan cannot be cleared by a SettingsChanged: a round without one restores none', (t) => {
  t.is(settingsToRestore(base, { ...base, trainingPlan: null }), null);
});

test('training args compare by value whatever the key order; JSON would call these different', (t) => {
  const a = { lr: 0.1, schedule: { warmup: 2, decay: [1, 0.5] }, epochs: 2 };
  const b = { epochs: 2, schedule: { decay: [1, 0.5], warmup: 2 }, lr: 0.1 };
  t.not(JSON.stringify(a), JSON.stringify(b));
  t.is(settingsToRestore({ ...base, trainingArgs: a }, { ...base, trainingArgs: b }), null);
});

test('sameValue: primitives, NaN, bigints, dates, typed arrays, arrays, objects with undefined keys', (t) => {
  t.true(sameValue(Number.NaN, Number.NaN));
  t.true(sameValue(10n, 10n));
  t.false(sameValue(10n, 10));
  t.true(sameValue(new Date(5), new Date(5)));
  t.false(sameValue(new Date(5), 5));
  t.true(sameValue(new Uint8Array([1, 2]), new Uint8Array([1, 2])));
  t.false(sameValue(new Uint8Array([1, 2]), new Float32Array([1, 2])));
  t.false(sameValue(new Uint8Array([1, 2]), [1, 2]));
  t.true(sameValue([1, [2, { a: 3 }]], [1, [2, { a: 3 }]]));
  t.false(sameValue([1, 2], [2, 1]));
  t.true(sameValue({ a: 1, b: undefined }, { a: 1 }));
  t.false(sameValue({ a: 1 }, { a: 1, b: null }));
  t.false(sameValue(null, {}));
  t.false(sameValue({}, []));
  t.false(sameValue('1', 1));
});
