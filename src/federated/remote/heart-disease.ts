/**
 * The `heart-disease` dataset format: one hospital's file of the UCI Heart Disease data
 * (`examples/heart-disease/data/README.md`), read and prepared as its node holds it. Everything
 * computed from data uses that hospital's own patients, never another's, as a hospital would
 * without sharing; no raw value leaves the node:
 *
 * - parsing: 14 columns (`HEART_DISEASE_COLUMNS`); `?` and `NaN` are missing, and so is
 *   `chol` = 0 (a recording quirk of the Swiss and Long Beach files); the target is `num > 0`;
 * - the held-out split: stratified by the target and seeded per hospital
 *   (`deriveRng(seed, 'heart-disease', 'split', hospital)`): for each class (0, then 1), the
 *   hospital's patients of that class in file order are shuffled and the first
 *   `round(count × testFraction)` are held out (default 20%); both sides are kept in file order;
 * - imputation: a missing value becomes the mean of that column over the node's training patients;
 * - standardisation: `(value − mean) / std` with the mean and the population standard deviation of
 *   the imputed column over the node's training patients (so an imputed value is exactly 0). A
 *   column constant over the training patients is centred only (std taken as 1); a column no
 *   training patient has (Swiss `chol`) is 0 for every patient of that node.
 *
 * The example's in-process federation (`examples/heart-disease/data.ts`) and a node process
 * (`roundlog node start --data processed.<hospital>.data`, the `HEART_DISEASE_LOADER` of
 * `dataset.ts`) both prepare a hospital with `prepareHospital`, so they hold the same bits.
 * A malformed file is a `HeartDiseaseFormatError` naming the file, line and column.
 */
import path from 'node:path';
import { InvalidArgumentError, RoundlogError } from '../../errors.ts';
import { deriveRng } from '../rng.ts';

/** The 13 features, in file order. */
export const HEART_DISEASE_FEATURES = [
  'age',
  'sex',
  'cp',
  'trestbps',
  'chol',
  'fbs',
  'restecg',
  'thalach',
  'exang',
  'oldpeak',
  'slope',
  'ca',
  'thal',
] as const;

/** The 14 columns of a file: the features, then `num` (0 = no disease, 1–4 = disease). */
export const HEART_DISEASE_COLUMNS = [...HEART_DISEASE_FEATURES, 'num'] as const;

export const DEFAULT_TEST_FRACTION = 0.2;

const FEATURES = HEART_DISEASE_FEATURES.length;
const CHOL = HEART_DISEASE_FEATURES.indexOf('chol');
const MISSING_MARKERS = new Set(['?', 'NaN']);
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A file of the data set that does not hold what `examples/heart-disease/data/README.md` describes. */
export class HeartDiseaseFormatError extends RoundlogError {
  readonly code = 'HEART_DISEASE_MALFORMED' as const;
  constructor(
    readonly file: string,
    /** 1-based; null when the fault is the file as a whole (no record). */
    readonly line: number | null,
    /** 1-based; null when the fault is the line as a whole. */
    readonly column: number | null,
    /** The column's name (`HEART_DISEASE_COLUMNS`), null past the 14th or for the line as a whole. */
    readonly columnName: string | null,
    /** The cell as written, null when there is none. */
    readonly value: string | null,
    readonly reason: string,
  ) {
    const name = columnName === null ? '' : ` (${columnName})`;
    const where = line === null ? '' : ` line ${line}` + (column === null ? '' : `, column ${column}${name}`);
    super(
      `${file}${where}: ${reason}` +
        (value === null ? '' : `. Value: ${JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value)}`) +
        `. Each line holds 14 comma-separated numbers (${HEART_DISEASE_COLUMNS.join(', ')}), ? or NaN for a ` +
        'missing feature: fix that line, or restore the file from the source named in ' +
        'examples/heart-disease/data/README.md',
    );
  }
}

/** One hospital's file as read: features with NaN where missing (row-major, rows × 13), and `num`. */
export type ParsedHospitalFile = Readonly<{ file: string; rows: number; x: Float64Array; num: Uint8Array }>;

/**
 * Parses a file's text. Lines holding only white space are skipped (still counted for line
 * numbers); cells may be padded with white space; line ends are LF or CRLF.
 */
export function parseHeartDiseaseFile(text: string, file: string): ParsedHospitalFile {
  const values: number[] = [];
  const num: number[] = [];
  text.split(/\r?\n/).forEach((content, index) => {
    const line = index + 1;
    if (content.trim() === '') return;
    const cells = content.split(',');
    if (cells.length !== HEART_DISEASE_COLUMNS.length) {
      const short = cells.length < HEART_DISEASE_COLUMNS.length;
      throw new HeartDiseaseFormatError(
        file,
        line,
        short ? cells.length + 1 : HEART_DISEASE_COLUMNS.length + 1,
        short ? HEART_DISEASE_COLUMNS[cells.length]! : null,
        null,
        `has ${cells.length} columns, not ${HEART_DISEASE_COLUMNS.length}` +
          (short ? `: column ${HEART_DISEASE_COLUMNS[cells.length]} and after are missing` : ''),
      );
    }
    cells.forEach((raw, j) => {
      const cell = raw.trim();
      const column = HEART_DISEASE_COLUMNS[j]!;
      const fail = (reason: string) => new HeartDiseaseFormatError(file, line, j + 1, column, raw, reason);
      if (j === FEATURES) {
        const value = Number(cell);
        if (!DECIMAL.test(cell) || !Number.isInteger(value) || value < 0 || value > 4) {
          throw fail(
            MISSING_MARKERS.has(cell)
              ? 'the diagnosis is missing; a patient without one cannot be used'
              : 'is not a diagnosis (an integer from 0 to 4)',
          );
        }
        num.push(value);
        return;
      }
      if (MISSING_MARKERS.has(cell)) {
        values.push(NaN);
        return;
      }
      if (cell === '') throw fail('is empty; write ? or NaN for a missing value');
      if (!DECIMAL.test(cell)) throw fail('is not a decimal number');
      const value = Number(cell);
      if (!Number.isFinite(value)) throw fail('is not a finite number');
      values.push(j === CHOL && value === 0 ? NaN : value);
    });
  });
  if (num.length === 0) throw new HeartDiseaseFormatError(file, null, null, null, null, 'holds no patient record');
  return { file, rows: num.length, x: Float64Array.from(values), num: Uint8Array.from(num) };
}

/** Rows of standardised features (row-major, rows × columns) and 0/1 labels (`num > 0`). */
export type BinarySplit = Readonly<{ rows: number; columns: number; x: Float64Array; y: Uint8Array }>;

/** What a node fitted on its own training patients, per feature (`HEART_DISEASE_FEATURES` order). */
export type Preprocessing = Readonly<{
  /** The value a missing cell becomes: the mean of the observed training values (0 if none). */
  imputed: readonly number[];
  /** Subtracted after imputation: the mean of the imputed training column. */
  mean: readonly number[];
  /** Divided by after centring: the population std of the imputed training column, 1 when it is 0. */
  std: readonly number[];
  /** How many training patients had the feature. A feature with 0 is 0 for every patient. */
  observed: readonly number[];
}>;

/** One hospital as its node holds it: the training and held-out patients, ready for a model. */
export type HeartDiseaseNodeData = Readonly<{
  hospital: string;
  file: string;
  train: BinarySplit;
  test: BinarySplit;
  /** Row indices (0-based, among the file's records) of each side, ascending. */
  split: Readonly<{ train: readonly number[]; test: readonly number[] }>;
  preprocessing: Preprocessing;
}>;

export type PrepareOptions = {
  seed: number;
  /** Names the split's random stream; a hospital's split depends on nothing else but the seed. */
  hospital: string;
  /** The fraction of each class held out, in (0, 1). Default 0.2. */
  testFraction?: number;
};

/** The split, imputation and standardisation of one parsed file (pure: the module header says how). */
export function prepareHospital(parsed: ParsedHospitalFile, options: PrepareOptions): HeartDiseaseNodeData {
  const { seed, hospital, testFraction = DEFAULT_TEST_FRACTION } = options;
  if (!(testFraction > 0 && testFraction < 1)) {
    throw new InvalidArgumentError('testFraction', 'must be a number between 0 and 1, both excluded', testFraction);
  }
  const y = Uint8Array.from(parsed.num, (num) => (num > 0 ? 1 : 0));
  const split = stratifiedSplit(y, testFraction, seed, hospital);
  if (split.train.length === 0 || split.test.length === 0) {
    throw new InvalidArgumentError(
      'testFraction',
      `must leave patients on both sides of the split of ${parsed.file} (${parsed.rows} patients; ` +
        `${split.train.length} for training, ${split.test.length} held out)`,
      testFraction,
    );
  }
  const preprocessing = fitPreprocessing(parsed, split.train);
  return {
    hospital,
    file: parsed.file,
    train: applyPreprocessing(parsed, split.train, preprocessing),
    test: applyPreprocessing(parsed, split.test, preprocessing),
    split,
    preprocessing,
  };
}

function stratifiedSplit(
  y: Uint8Array,
  testFraction: number,
  seed: number,
  hospital: string,
): { train: number[]; test: number[] } {
  const rng = deriveRng(seed, 'heart-disease', 'split', hospital);
  const train: number[] = [];
  const test: number[] = [];
  for (const label of [0, 1]) {
    const rows = rng.shuffle([...y.keys()].filter((i) => y[i] === label));
    const held = Math.round(rows.length * testFraction);
    test.push(...rows.slice(0, held));
    train.push(...rows.slice(held));
  }
  const ascending = (a: number, b: number) => a - b;
  return { train: train.sort(ascending), test: test.sort(ascending) };
}

/** The imputation and standardisation statistics of `rows` (row indices of `parsed`) alone. */
export function fitPreprocessing({ x }: ParsedHospitalFile, rows: readonly number[]): Preprocessing {
  const imputed: number[] = [];
  const mean: number[] = [];
  const std: number[] = [];
  const observed: number[] = [];
  for (let j = 0; j < FEATURES; j++) {
    let sum = 0;
    let count = 0;
    for (const i of rows) {
      const value = x[i * FEATURES + j]!;
      if (!Number.isNaN(value)) {
        sum += value;
        count++;
      }
    }
    const fill = count === 0 ? 0 : sum / count;
    const column = rows.map((i) => {
      const value = x[i * FEATURES + j]!;
      return Number.isNaN(value) ? fill : value;
    });
    const constant = column.every((value) => value === column[0]);
    const m = constant ? column[0]! : column.reduce((a, b) => a + b, 0) / column.length;
    const variance = column.reduce((a, value) => a + (value - m) ** 2, 0) / column.length;
    imputed.push(fill);
    mean.push(m);
    std.push(constant || variance === 0 ? 1 : Math.sqrt(variance));
    observed.push(count);
  }
  return { imputed, mean, std, observed };
}

/** `rows` of `parsed` imputed and standardised with `preprocessing`, and their labels `num > 0`. */
export function applyPreprocessing(
  { x, num }: ParsedHospitalFile,
  rows: readonly number[],
  { imputed, mean, std, observed }: Preprocessing,
): BinarySplit {
  const out = new Float64Array(rows.length * FEATURES);
  rows.forEach((i, r) => {
    for (let j = 0; j < FEATURES; j++) {
      if (observed[j] === 0) continue;
      const value = x[i * FEATURES + j]!;
      out[r * FEATURES + j] = ((Number.isNaN(value) ? imputed[j]! : value) - mean[j]!) / std[j]!;
    }
  });
  return { rows: rows.length, columns: FEATURES, x: out, y: Uint8Array.from(rows, (i) => (num[i]! > 0 ? 1 : 0)) };
}

/** The seed a node splits its hospital's patients with unless told otherwise (the example's seed). */
export const HEART_DISEASE_SPLIT_SEED = 20_261_205;

/**
 * The hospital a file holds, which names its split's random stream: `<hospital>` of
 * `processed.<hospital>.data` (how the UCI files are named), else the file's name without extension.
 */
export function hospitalOfFile(file: string): string {
  const name = path.basename(file);
  const match = /^processed\.([^.]+)\.data$/i.exec(name);
  return match === null ? path.basename(name, path.extname(name)) : match[1]!.toLowerCase();
}
