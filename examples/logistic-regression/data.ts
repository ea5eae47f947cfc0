/**
 * A seeded synthetic clinical federation: hospitals holding patient records (age, BMI, systolic
 * blood pressure, cholesterol, smoker) and a binary cardiac outcome drawn from a known logistic
 * model with noise. The split is deliberately not identically distributed: hospitals differ in
 * size, case mix (age and risk-factor distributions) and outcome prevalence.
 *
 * Features are standardized with fixed population constants, not per-hospital statistics (which no
 * hospital could compute without sharing data). All draws come from `deriveRng(seed, 'data', node)`.
 */
import { InvalidArgumentError } from '../../src/errors.ts';
import { deriveRng, type Rng } from '../../src/federated/rng.ts';
import type { Federation } from '../../src/federated/training-plan.ts';
import type { BinaryDataset } from './plan.ts';

export const CLINICAL_FEATURES = ['age', 'bmi', 'systolicBp', 'cholesterol', 'smoker'] as const;

export type ClinicalData = BinaryDataset & Readonly<{ features: typeof CLINICAL_FEATURES }>;

/** The model the outcomes are drawn from, on standardized features (in `CLINICAL_FEATURES` order). */
export const TRUE_MODEL = {
  weights: [1.2, 0.5, 0.9, 0.6, 0.8],
  bias: -0.5,
  /** Standard deviation of the per-patient noise added to the logit. */
  noise: 0.4,
} as const;

/** The population mean and standard deviation each feature is standardized with. */
export const STANDARDIZATION = {
  age: [55, 12],
  bmi: [28, 5],
  systolicBp: [130, 18],
  cholesterol: [205, 38],
  smoker: [0.3, 0.46],
} as const satisfies Record<(typeof CLINICAL_FEATURES)[number], readonly [number, number]>;

export type HospitalProfile = Readonly<{
  rows: number;
  age: readonly [mean: number, sd: number];
  bmi: readonly [mean: number, sd: number];
  /** Systolic pressure at the mean age; it rises 0.6 mmHg per year of age above it. */
  systolicBp: readonly [mean: number, sd: number];
  cholesterol: readonly [mean: number, sd: number];
  smokerRate: number;
  /** Added to the true logit: what the features do not explain (referral pattern, coding practice). */
  siteEffect: number;
}>;

/** Node i gets profile i mod 3, its patients 4 years older for every full cycle of 3. */
export const HOSPITAL_PROFILES: readonly HospitalProfile[] = [
  // A large tertiary cardiology centre: older, hypertensive patients.
  {
    rows: 600,
    age: [64, 9],
    bmi: [28.5, 4.5],
    systolicBp: [141, 16],
    cholesterol: [220, 36],
    smokerRate: 0.28,
    siteEffect: 0.2,
  },
  // A small young-population clinic.
  {
    rows: 150,
    age: [41, 10],
    bmi: [25, 4],
    systolicBp: [121, 13],
    cholesterol: [186, 30],
    smokerRate: 0.18,
    siteEffect: -0.3,
  },
  // A mid-size community hospital: obese, smoking population.
  {
    rows: 350,
    age: [53, 12],
    bmi: [32, 5.5],
    systolicBp: [133, 17],
    cholesterol: [207, 40],
    smokerRate: 0.46,
    siteEffect: 0,
  },
];

export type ClinicalFederationOptions = {
  seed: number;
  /** Number of hospitals. Default 3. */
  nodes?: number;
  /** Patients per hospital; default each profile's `rows`. */
  rows?: readonly number[];
  /** Tags of every hospital's dataset. Default `['#clinical', '#heart']`. */
  tags?: readonly string[];
};

export function syntheticClinicalFederation(options: ClinicalFederationOptions): Federation<ClinicalData> {
  const { seed, nodes = 3, rows, tags = ['#clinical', '#heart'] } = options;
  if (!Number.isSafeInteger(nodes) || nodes < 1)
    throw new InvalidArgumentError('nodes', 'must be a positive integer', nodes);
  if (rows !== undefined && (rows.length !== nodes || !rows.every((n) => Number.isSafeInteger(n) && n >= 1))) {
    throw new InvalidArgumentError('rows', `must hold one positive integer per node (${nodes})`, rows);
  }
  return {
    nodes: Array.from({ length: nodes }, (_, i) => {
      const id = `hospital-${i < 26 ? String.fromCharCode(97 + i) : i}`;
      const base = HOSPITAL_PROFILES[i % HOSPITAL_PROFILES.length]!;
      const shift = 4 * Math.floor(i / HOSPITAL_PROFILES.length);
      const profile = { ...base, rows: rows?.[i] ?? base.rows, age: [base.age[0] + shift, base.age[1]] as const };
      return {
        id,
        datasets: [
          { id: `${id}/cardiac-outcomes`, tags: [...tags], data: hospitalData(profile, deriveRng(seed, 'data', id)) },
        ],
      };
    }),
  };
}

function hospitalData(profile: HospitalProfile, rng: Rng): ClinicalData {
  const columns = CLINICAL_FEATURES.length;
  const x = new Float64Array(profile.rows * columns);
  const y = new Uint8Array(profile.rows);
  for (let i = 0; i < profile.rows; i++) {
    const age = clamp(rng.normal(...profile.age), 25, 95);
    const raw = {
      age,
      bmi: clamp(rng.normal(...profile.bmi), 16, 55),
      systolicBp: clamp(
        rng.normal(profile.systolicBp[0] + 0.6 * (age - profile.age[0]), profile.systolicBp[1]),
        90,
        220,
      ),
      cholesterol: clamp(rng.normal(...profile.cholesterol), 110, 350),
      smoker: rng.nextFloat() < profile.smokerRate ? 1 : 0,
    };
    let z = TRUE_MODEL.bias + profile.siteEffect + rng.normal(0, TRUE_MODEL.noise);
    CLINICAL_FEATURES.forEach((feature, j) => {
      const [mean, sd] = STANDARDIZATION[feature];
      const value = (raw[feature] - mean) / sd;
      x[i * columns + j] = value;
      z += TRUE_MODEL.weights[j]! * value;
    });
    y[i] = rng.nextFloat() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
  }
  return { rows: profile.rows, columns, x, y, features: CLINICAL_FEATURES };
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
