/** The seeded RNG: reference outputs, exact save/restore, derived streams, and the shape of its draws. */
import test from 'ava';
import { InvalidArgumentError } from '../../src/errors.ts';
import { RNG_ALGORITHM, Rng, deriveRng, type RngState } from '../../src/federated/rng.ts';

const draws = (rng: Rng, count: number) => Array.from({ length: count }, () => rng.nextUint32());

test('matches the xoshiro128** reference implementation (state 1, 2, 3, 4)', (t) => {
  // Outputs of the authors' C code (prng.di.unimi.it/xoshiro128starstar.c) from s = {1, 2, 3, 4}.
  const rng = Rng.fromState({ algorithm: RNG_ALGORITHM, s: [1, 2, 3, 4] });
  t.deepEqual(draws(rng, 8), [11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849]);
  draws(rng, 992);
  t.deepEqual(rng.state().s, [2954884481, 294556968, 2598411021, 550772539]);
});

test('the derivation is pinned: the same seed and path give the same stream in every release', (t) => {
  // SHA-256 of '["roundlog/rng-derive/v1",42,0,"hospital-a","train"]', first 16 bytes as little-endian words.
  const rng = deriveRng(42, 0, 'hospital-a', 'train');
  t.deepEqual(rng.state(), { algorithm: 'xoshiro128**', s: [463375801, 3892684982, 2990859344, 894794127] });
  t.deepEqual(draws(rng, 3), [2136211812, 712956612, 375439950]);
});

test('the same seed gives the same sequence of every kind of draw; another seed another one', (t) => {
  const run = (seed: number) => {
    const rng = Rng.fromSeed(seed);
    return [
      ...draws(rng, 5),
      rng.nextFloat(),
      rng.normal(),
      rng.nextInt(7),
      ...rng.shuffle([1, 2, 3, 4, 5]),
      ...rng.sample(['a', 'b', 'c'], 2),
    ];
  };
  t.deepEqual(run(7), run(7));
  t.notDeepEqual(run(7), run(8));
  t.deepEqual(Rng.fromSeed(7).state(), deriveRng(7).state());
});

test('a saved state, restored after a JSON round trip, continues exactly where the original was', (t) => {
  const rng = deriveRng(1234, 'resume');
  rng.normal();
  rng.shuffle([...'abcdefgh']);
  draws(rng, 3);
  const saved: RngState = JSON.parse(JSON.stringify(rng.state()));
  const restored = Rng.fromState(saved);
  const next = (r: Rng) => [r.nextUint32(), r.nextFloat(), r.normal(), r.nextInt(1000), r.sampleIndices(50, 5)];
  for (let i = 0; i < 50; i++) t.deepEqual(next(restored), next(rng));
});

test('state() is a copy: changing it does not change the generator', (t) => {
  const rng = Rng.fromSeed(5);
  const state = rng.state();
  (state.s as number[])[0] = 99;
  t.notDeepEqual(rng.state().s, state.s);
  t.deepEqual(draws(rng, 4), draws(Rng.fromSeed(5), 4));
});

test('derived streams differ per round, node, purpose and seed, and numbers differ from strings', (t) => {
  const first = (...args: Parameters<typeof deriveRng>) => draws(deriveRng(...args), 4).join(',');
  const streams = [
    first(1, 0, 'node-a', 'train'),
    first(1, 1, 'node-a', 'train'),
    first(1, 0, 'node-b', 'train'),
    first(1, 0, 'node-a', 'select'),
    first(2, 0, 'node-a', 'train'),
    first(1, '0', 'node-a', 'train'),
    first(1, 0, 'node-a'),
    first(1),
  ];
  t.is(new Set(streams).size, streams.length);
  t.is(first(1, 0, 'node-a', 'train'), streams[0]!);
});

test('nextFloat is in [0, 1), nextInt in [0, bound), and both look uniform', (t) => {
  const rng = Rng.fromSeed(99);
  const n = 20_000;
  let sum = 0;
  const counts = new Array<number>(10).fill(0);
  for (let i = 0; i < n; i++) {
    const f = rng.nextFloat();
    t.true(f >= 0 && f < 1);
    sum += f;
    const k = rng.nextInt(10);
    t.true(Number.isInteger(k) && k >= 0 && k < 10);
    counts[k]!++;
  }
  t.true(Math.abs(sum / n - 0.5) < 0.01, `mean ${sum / n}`);
  // Chi-square with 9 degrees of freedom: 27.9 is its 0.999 quantile.
  const chi2 = counts.reduce((acc, c) => acc + (c - n / 10) ** 2 / (n / 10), 0);
  t.true(chi2 < 27.9, `chi2 ${chi2}`);
  t.is(Rng.fromSeed(1).nextInt(1), 0);
  const big = Rng.fromSeed(1).nextInt(2 ** 32);
  t.true(big >= 0 && big < 2 ** 32);
});

test('normal() has the requested mean and standard deviation', (t) => {
  const rng = Rng.fromSeed(3);
  const n = 20_000;
  const values = Array.from({ length: n }, () => rng.normal(10, 2));
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1));
  t.true(Math.abs(mean - 10) < 0.05, `mean ${mean}`);
  t.true(Math.abs(sd - 2) < 0.05, `sd ${sd}`);
  t.true(values.every(Number.isFinite));
});

test('shuffle returns a permutation and leaves its input alone; sample draws distinct items', (t) => {
  const rng = Rng.fromSeed(11);
  const items = Object.freeze(Array.from({ length: 20 }, (_, i) => i));
  const shuffled = rng.shuffle(items);
  t.deepEqual(
    [...shuffled].sort((a, b) => a - b),
    items,
  );
  t.notDeepEqual(shuffled, items);
  const sample = rng.sample(items, 7);
  t.is(sample.length, 7);
  t.is(new Set(sample).size, 7);
  t.true(sample.every((item) => items.includes(item)));
  t.deepEqual(rng.sample(items, 0), []);
  t.deepEqual(
    [...rng.sample(items, 20)].sort((a, b) => a - b),
    items,
  );
  t.deepEqual(rng.shuffle([]), []);
});

test('every item is equally likely to be sampled', (t) => {
  const rng = Rng.fromSeed(21);
  const counts = new Array<number>(5).fill(0);
  for (let i = 0; i < 5000; i++) for (const index of rng.sampleIndices(5, 2)) counts[index]!++;
  // Each index is expected 2000 times; 5 standard deviations is about 170.
  for (const count of counts) t.true(Math.abs(count - 2000) < 170, `counts ${counts}`);
});

test('invalid states, seeds, paths and bounds are rejected with the rule and the value', (t) => {
  const invalid = (fn: () => unknown, argument: string) => {
    const error = t.throws(fn, { instanceOf: InvalidArgumentError });
    t.is(error?.code, 'INVALID_ARGUMENT');
    t.is(error?.argument, argument);
  };
  invalid(() => Rng.fromState({ algorithm: 'mt19937' as never, s: [1, 2, 3, 4] }), 'state.algorithm');
  invalid(() => Rng.fromState({ algorithm: RNG_ALGORITHM, s: [1, 2, 3] }), 'state.s');
  invalid(() => Rng.fromState({ algorithm: RNG_ALGORITHM, s: [1, 2, 3, 2 ** 32] }), 'state.s');
  invalid(() => Rng.fromState({ algorithm: RNG_ALGORITHM, s: [1, 2, 3, -1] }), 'state.s');
  invalid(() => Rng.fromState({ algorithm: RNG_ALGORITHM, s: [0, 0, 0, 0] }), 'state.s');
  invalid(() => deriveRng(1.5), 'seed');
  invalid(() => deriveRng(Number.NaN), 'seed');
  invalid(() => deriveRng(1, 0, Number.POSITIVE_INFINITY), 'path[1]');
  invalid(() => Rng.fromSeed(1).nextInt(0), 'bound');
  invalid(() => Rng.fromSeed(1).sampleIndices(3, 4), 'k');
  const error = t.throws(() => deriveRng(0.5), { instanceOf: InvalidArgumentError });
  t.regex(error!.message, /seed must be a safe integer\. Value received: 0\.5/);
});
