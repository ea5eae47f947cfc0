/**
 * A node's dataset: one file, read by a loader named by `--format` or, without it, chosen by the
 * file's name. The node reports the loader's shape (rows, columns), the SHA-256 of the file's
 * bytes, the format and the loader's options (`LoadedData.options`: everything besides the file
 * that changes the rows trained on, such as the heart-disease split seed) in its Hello: the
 * dataset's fingerprint, compared before each round. It trains on the loader's `data` (what the
 * training plan's `train` receives).
 * Whatever a loader computes from the data (a split, standardisation statistics) is computed on the
 * node from its own file: only trained parameters and metrics leave it.
 *
 * - `numeric-csv` (`*.csv`) reads the binary-classification data of the logistic regression plan
 *   (`BinaryDataset`): a header row of column names, then one row of numbers per sample, the last
 *   column the label (0 or 1); `x` is the other columns, row-major, as float64.
 * - `heart-disease` (`processed.<hospital>.data`) reads one hospital's UCI Heart Disease file as
 *   the heart-disease plan takes it (`heart-disease.ts`): missing values imputed, standardised with
 *   the statistics of the node's own training patients, target `num > 0`, the held-out split of
 *   the example (seeded with `splitSeed`, default `HEART_DISEASE_SPLIT_SEED`, and the hospital).
 *
 * Other loaders (another format, another plan's data) are added to `DATASET_LOADERS`.
 */
import path from 'node:path';
import { NotARegularFileError, readRegularFile } from '../../confine.ts';
import { InvalidArgumentError } from '../../errors.ts';
import { sha256Hex } from './approvals.ts';
import { NodeDatasetError, loaderOptionFlag, nodeFileError } from './errors.ts';
import {
  HEART_DISEASE_FEATURES,
  HEART_DISEASE_SPLIT_SEED,
  hospitalOfFile,
  parseHeartDiseaseFile,
  prepareHospital,
} from './heart-disease.ts';

export type LoadedData = Readonly<{
  data: unknown;
  rows: number;
  columns: number;
  /**
   * The options the loader applied, defaults included, as decimal text by name (`DatasetLoadOptions`
   * names): part of the fingerprint, so a node restarted with another one is seen. Absent or empty
   * for a loader that takes none.
   */
  options?: Readonly<Record<string, string>>;
}>;

/** What a loader may take besides the file (`roundlog node start --split-seed`). */
export type DatasetLoadOptions = Readonly<{
  /** Seeds a loader's held-out split (`heart-disease`). */
  splitSeed?: number;
}>;

export interface NodeDatasetLoader {
  /** Reported in the Hello (`DatasetInfo.format`). */
  readonly format: string;
  /** Whether this loader reads `file` (by its name). */
  matches(file: string): boolean;
  /** The `DatasetLoadOptions` it takes (another one given is refused, never ignored). */
  readonly options?: readonly (keyof DatasetLoadOptions)[];
  /** The data of the file's bytes; throws `NodeDatasetError` naming the file and line. */
  load(file: string, bytes: Buffer, options: DatasetLoadOptions): LoadedData;
}

export type NodeDataset = LoadedData &
  Readonly<{ file: string; sha256: string; format: string; options: Readonly<Record<string, string>> }>;

/** Largest dataset file a node reads, in bytes. */
export const MAX_DATASET_BYTES = 2 ** 31 - 1;

export const NUMERIC_CSV: NodeDatasetLoader = {
  format: 'numeric-csv',
  matches: (file) => file.toLowerCase().endsWith('.csv'),
  load(file, bytes) {
    const lines = bytes.toString('utf8').split(/\r?\n/);
    while (lines.length > 0 && lines.at(-1) === '') lines.pop();
    const header = lines[0]?.split(',') ?? [];
    if (header.length < 2) throw new NodeDatasetError(file, 1, 'the header must name at least 2 columns');
    const columns = header.length - 1;
    const rows = lines.length - 1;
    if (rows < 1) throw new NodeDatasetError(file, null, 'holds no rows after the header');
    const x = new Float64Array(rows * columns);
    const y = new Uint8Array(rows);
    for (let i = 0; i < rows; i++) {
      const cells = lines[i + 1]!.split(',');
      if (cells.length !== header.length) {
        throw new NodeDatasetError(file, i + 2, `has ${cells.length} values, the header ${header.length}`);
      }
      cells.forEach((cell, j) => {
        const value = cell.trim() === '' ? NaN : Number(cell);
        if (!Number.isFinite(value)) {
          throw new NodeDatasetError(file, i + 2, `column ${JSON.stringify(header[j])} is not a finite number`);
        }
        if (j < columns) x[i * columns + j] = value;
        else if (value === 0 || value === 1) y[i] = value;
        else throw new NodeDatasetError(file, i + 2, `the label ${JSON.stringify(header[j])} must be 0 or 1`);
      });
    }
    return { data: { rows, columns, x, y }, rows, columns };
  },
};

/**
 * One hospital of the UCI Heart Disease data (`heart-disease.ts`); `data` is a
 * `HeartDiseaseNodeData` (`train`, `test`, `preprocessing`); rows counts every patient of the file.
 */
export const HEART_DISEASE_LOADER: NodeDatasetLoader = {
  format: 'heart-disease',
  options: ['splitSeed'],
  matches: (file) => /^processed\.[^.]+\.data$/i.test(path.basename(file)),
  load(file, bytes, { splitSeed = HEART_DISEASE_SPLIT_SEED }) {
    const parsed = parseHeartDiseaseFile(bytes.toString('utf8'), file);
    const data = prepareHospital(parsed, { seed: splitSeed, hospital: hospitalOfFile(file) });
    return {
      data,
      rows: parsed.rows,
      columns: HEART_DISEASE_FEATURES.length,
      options: { splitSeed: String(splitSeed) },
    };
  },
};

export const DATASET_LOADERS: readonly NodeDatasetLoader[] = [NUMERIC_CSV, HEART_DISEASE_LOADER];

export type LoadNodeDatasetOptions = DatasetLoadOptions & {
  /** The loader's `format`; absent, the first of `loaders` whose `matches` takes the file's name. */
  format?: string;
  loaders?: readonly NodeDatasetLoader[];
};

/** The loader of `format`, or the first of `loaders` that matches the file's name. */
export function datasetLoader(
  file: string,
  format: string | undefined,
  loaders: readonly NodeDatasetLoader[] = DATASET_LOADERS,
): NodeDatasetLoader {
  const absolute = path.resolve(file);
  const formats = loaders.map((l) => l.format).join(', ');
  const loader =
    format === undefined ? loaders.find((l) => l.matches(absolute)) : loaders.find((l) => l.format === format);
  if (loader === undefined) {
    if (format !== undefined) throw new InvalidArgumentError('--format', `must be one of ${formats}`, format);
    throw new NodeDatasetError(absolute, null, `no loader reads this file by its name: name its --format (${formats})`);
  }
  return loader;
}

/**
 * Reads `file` with the loader of `options.format`, or the first of the loaders that matches its
 * name. A file that cannot be read is a `NodeFileError` naming it; a loader option the loader does
 * not take is an `InvalidArgumentError`.
 */
export async function loadNodeDataset(file: string, options: LoadNodeDatasetOptions = {}): Promise<NodeDataset> {
  const { format, loaders = DATASET_LOADERS, ...loadOptions } = options;
  const absolute = path.resolve(file);
  // Read first: a path that is not a readable file (a folder, a missing file) is said as such,
  // before its name is asked to match a loader.
  let bytes: Buffer;
  try {
    bytes = await readRegularFile(absolute, '--data', MAX_DATASET_BYTES);
  } catch (error) {
    if (error instanceof NotARegularFileError && error.kind === 'directory') {
      throw new NodeDatasetError(
        absolute,
        null,
        'is a folder: --data names one dataset file (a node holds one dataset, e.g. processed.cleveland.data)',
      );
    }
    throw nodeFileError(
      error,
      absolute,
      'the dataset file (--data)',
      `check --data (a relative path is taken from the folder the node is started in)`,
    );
  }
  const loader = datasetLoader(absolute, format, loaders);
  for (const [name, value] of Object.entries(loadOptions)) {
    if (value !== undefined && !(loader.options ?? []).includes(name as keyof DatasetLoadOptions)) {
      const takers = loaders.filter((l) => l.options?.includes(name as keyof DatasetLoadOptions)).map((l) => l.format);
      throw new InvalidArgumentError(
        loaderOptionFlag(name),
        `applies to the ${takers.join(', ')} format only; ${absolute} is read as ${loader.format}`,
        value,
      );
    }
  }
  const loaded = loader.load(absolute, bytes, loadOptions);
  return { ...loaded, file: absolute, sha256: sha256Hex(bytes), format: loader.format, options: loaded.options ?? {} };
}

/** The numeric CSV of a binary dataset (what `NUMERIC_CSV` reads back exactly: numbers as JavaScript prints them). */
export function numericCsv(
  names: readonly string[],
  data: Readonly<{ rows: number; columns: number; x: Float64Array; y: Uint8Array }>,
): string {
  const lines = [[...names, 'label'].join(',')];
  for (let i = 0; i < data.rows; i++) {
    const row = Array.from(data.x.subarray(i * data.columns, (i + 1) * data.columns), String);
    lines.push([...row, String(data.y[i])].join(','));
  }
  return `${lines.join('\n')}\n`;
}
