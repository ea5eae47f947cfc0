/**
 * The UCI Heart Disease data of four hospitals (`data/README.md`, CC BY 4.0) as a federation: one
 * in-process node per hospital, each holding only its own file. How a file is parsed, split and
 * standardised (with its own training patients' statistics only) is the `heart-disease` dataset
 * format of `src/federated/remote/heart-disease.ts`, which a node process (`roundlog node start
 * --data data/processed.<hospital>.data`) uses as well: an in-process node and a node process of
 * the same hospital hold the same bits.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError } from '../../src/errors.ts';
import {
  parseHeartDiseaseFile,
  prepareHospital,
  type HeartDiseaseNodeData,
} from '../../src/federated/remote/heart-disease.ts';
import type { Federation } from '../../src/federated/training-plan.ts';

export {
  DEFAULT_TEST_FRACTION,
  HEART_DISEASE_COLUMNS,
  HEART_DISEASE_FEATURES,
  HeartDiseaseFormatError,
  applyPreprocessing,
  fitPreprocessing,
  parseHeartDiseaseFile,
  prepareHospital,
  type BinarySplit,
  type HeartDiseaseNodeData,
  type ParsedHospitalFile,
  type PrepareOptions,
  type Preprocessing,
} from '../../src/federated/remote/heart-disease.ts';

export const HEART_DISEASE_HOSPITALS = ['cleveland', 'hungarian', 'switzerland', 'va'] as const;
export type Hospital = (typeof HEART_DISEASE_HOSPITALS)[number];

/** The tags of every hospital's dataset. */
export const HEART_DISEASE_TAGS = ['heart-disease'] as const;

/**
 * The folder holding the four files: `data/` beside this module, or, for the compiled copy in an
 * installed package (`dist/examples/heart-disease/`, where no data is compiled), the one shipped in
 * `examples/heart-disease/data/`.
 */
export const HEART_DISEASE_DATA_DIR = defaultDataDir();

function defaultDataDir(): string {
  const beside = fileURLToPath(new URL('./data/', import.meta.url));
  const shipped = fileURLToPath(new URL('../../../examples/heart-disease/data/', import.meta.url));
  return existsSync(beside) || !existsSync(shipped) ? beside : shipped;
}

export type LoadOptions = {
  seed: number;
  /** The folder of the `processed.<hospital>.data` files. Default `HEART_DISEASE_DATA_DIR`. */
  dataDir?: string;
  testFraction?: number;
};

/** Reads and prepares `processed.<hospital>.data`. */
export function loadHeartDiseaseHospital(hospital: Hospital, options: LoadOptions): HeartDiseaseNodeData {
  if (!HEART_DISEASE_HOSPITALS.includes(hospital)) {
    throw new InvalidArgumentError('hospital', `must be one of ${HEART_DISEASE_HOSPITALS.join(', ')}`, hospital);
  }
  const file = path.join(options.dataDir ?? HEART_DISEASE_DATA_DIR, `processed.${hospital}.data`);
  const parsed = parseHeartDiseaseFile(readFileSync(file, 'utf8'), file);
  return prepareHospital(parsed, { seed: options.seed, hospital, testFraction: options.testFraction });
}

export type HeartDiseaseFederationOptions = LoadOptions & {
  /** Default all four, each a node named after its hospital. */
  hospitals?: readonly Hospital[];
  /** Default `HEART_DISEASE_TAGS`. */
  tags?: readonly string[];
};

/** One node per hospital (node id = hospital name), each with one dataset `<hospital>/heart-disease`. */
export function heartDiseaseFederation(options: HeartDiseaseFederationOptions): Federation<HeartDiseaseNodeData> {
  const { hospitals = HEART_DISEASE_HOSPITALS, tags = HEART_DISEASE_TAGS, ...load } = options;
  return {
    nodes: hospitals.map((hospital) => ({
      id: hospital,
      datasets: [{ id: `${hospital}/heart-disease`, tags: [...tags], data: loadHeartDiseaseHospital(hospital, load) }],
    })),
  };
}
