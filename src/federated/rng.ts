/**
 * The seeded random number generator of experiments: xoshiro128** over four 32-bit words. Its whole
 * state is plain data (`state()` / `Rng.fromState`), so it can be recorded in an event and restored
 * exactly. Streams are derived from (experiment seed, round, node, purpose) by hashing, so every
 * draw of a round is reproducible on resume without replaying the draws of earlier rounds.
 *
 * Integer draws, floats, shuffles and samples are exact integer arithmetic, identical on every
 * host. `normal()` also uses Math.log, Math.cos and Math.sqrt, which V8 computes in software
 * (fdlibm), not with the host's libm: identical across hosts for a given Node.js release.
 */
import { checkSeed } from '../model/decide/checks.ts';
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../errors.ts';

export const RNG_ALGORITHM = 'xoshiro128**';

/**
 * Names the way `deriveRng` turns a seed and a path into a state. It is part of the log format:
 * changing the derivation changes every stream of every recorded experiment, so a new one gets a new name.
 */
export const RNG_DERIVATION = 'roundlog/rng-derive/v1';

export type RngState = Readonly<{ algorithm: typeof RNG_ALGORITHM; s: readonly number[] }>;

const TWO_POW_32 = 2 ** 32;
const TWO_POW_53 = 2 ** 53;

export class Rng {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;

  private constructor(s: readonly [number, number, number, number]) {
    [this.#s0, this.#s1, this.#s2, this.#s3] = s;
  }

  /** Throws `InvalidArgumentError` unless `state` is a state that `state()` could have returned. */
  static fromState(state: RngState): Rng {
    const { algorithm, s } = (typeof state === 'object' && state !== null ? state : {}) as Partial<RngState>;
    if (algorithm !== RNG_ALGORITHM) {
      throw new InvalidArgumentError('state.algorithm', `must be ${JSON.stringify(RNG_ALGORITHM)}`, algorithm);
    }
    if (
      !Array.isArray(s) ||
      s.length !== 4 ||
      !s.every((word) => Number.isInteger(word) && word >= 0 && word < TWO_POW_32)
    ) {
      throw new InvalidArgumentError('state.s', 'must be 4 unsigned 32-bit integers', s);
    }
    if (s.every((word) => word === 0)) {
      throw new InvalidArgumentError('state.s', 'must not be all zero (xoshiro never leaves that state)', s);
    }
    return new Rng(s as [number, number, number, number]);
  }

  /** The stream of `seed` alone; the same as `deriveRng(seed)`. */
  static fromSeed(seed: number): Rng {
    return deriveRng(seed);
  }

  state(): RngState {
    return { algorithm: RNG_ALGORITHM, s: [this.#s0, this.#s1, this.#s2, this.#s3] };
  }

  nextUint32(): number {
    const s1 = this.#s1;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= s1;
    this.#s1 = s1 ^ this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = rotl(this.#s3, 11);
    this.#s0 >>>= 0;
    this.#s1 >>>= 0;
    this.#s2 >>>= 0;
    this.#s3 >>>= 0;
    return result;
  }

  /** A float in [0, 1) with 53 random bits; consumes two words. */
  nextFloat(): number {
    const high = this.nextUint32() >>> 5;
    const low = this.nextUint32() >>> 6;
    return (high * 2 ** 26 + low) / TWO_POW_53;
  }

  /** An integer in [0, bound), uniform (by rejection); `bound` is an integer in [1, 2^32]. */
  nextInt(bound: number): number {
    if (!Number.isInteger(bound) || bound < 1 || bound > TWO_POW_32) {
      throw new InvalidArgumentError('bound', 'must be an integer from 1 to 2^32', bound);
    }
    const limit = TWO_POW_32 - (TWO_POW_32 % bound);
    for (;;) {
      const word = this.nextUint32();
      if (word < limit) return word % bound;
    }
  }

  /**
   * A draw from N(mean, sd²) by Box-Muller. Each call consumes two floats and returns one value:
   * the second value of the pair is not cached, so the state stays the four words.
   */
  normal(mean = 0, sd = 1): number {
    const u1 = 1 - this.nextFloat();
    const u2 = this.nextFloat();
    return mean + sd * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** A shuffled copy of `items` (Fisher-Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const copy = [...items];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    }
    return copy;
  }

  /** `k` distinct indices of [0, n), in the order drawn (a partial Fisher-Yates). */
  sampleIndices(n: number, k: number): number[] {
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('n', 'must be a non-negative integer', n);
    if (!Number.isSafeInteger(k) || k < 0 || k > n) {
      throw new InvalidArgumentError('k', `must be an integer from 0 to n (${n})`, k);
    }
    const pool = Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < k; i++) {
      const j = i + this.nextInt(n - i);
      [pool[i], pool[j]] = [pool[j]!, pool[i]!];
    }
    return pool.slice(0, k);
  }

  /** `k` distinct items of `items` (distinct by position), in the order drawn. */
  sample<T>(items: readonly T[], k: number): T[] {
    return this.sampleIndices(items.length, k).map((i) => items[i]!);
  }
}

/**
 * The stream for `seed` and a path such as `(round, node, 'train')`: the state is the first 16 bytes
 * of SHA-256 over the derivation name, the seed and the path. Paths differing in any element, or in
 * a number versus a string (`1` versus `'1'`), give unrelated streams.
 */
export function deriveRng(seed: number, ...path: readonly (string | number)[]): Rng {
  checkSeed(seed);
  path.forEach((part, i) => {
    if (typeof part !== 'string' && !(typeof part === 'number' && Number.isFinite(part))) {
      throw new InvalidArgumentError(`path[${i}]`, 'must be a string or a finite number', part);
    }
  });
  const digest = createHash('sha256')
    .update(JSON.stringify([RNG_DERIVATION, seed, ...path]))
    .digest();
  const s = [0, 4, 8, 12].map((offset) => digest.readUInt32LE(offset));
  if (!s.some((word) => word !== 0)) s[0] = 1;
  return Rng.fromState({ algorithm: RNG_ALGORITHM, s });
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
