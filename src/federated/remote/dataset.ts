/**
 * A node's dataset: one file, read by a loader chosen by the file's name. The node reports the
 * loader's shape (rows, columns) and the SHA-256 of the file's bytes in its Hello, and trains on
 * the loader's `data` (what the training plan's `train` receives).
 *
 * The one loader here, `numeric-csv`, reads the binary-classification data of the logistic
 * regression plan (`BinaryDataset`): a header row of column names, then one row of numbers per
 * sample, the last column the label (0 or 1); `x` is the other columns, row-major, as float64.
 * Other loaders (another format, another plan's data) are added to `DATASET_LOADERS`.
 */
import path from 'node:path';
import { readRegularFile } from '../../confine.ts';
import { sha256Hex } from './approvals.ts';
import { NodeDatasetError } from './errors.ts';

export type LoadedData = Readonly<{ data: unknown; rows: number; columns: number }>;

export interface NodeDatasetLoader {
  /** Reported in the Hello (`DatasetInfo.format`). */
  readonly format: string;
  /** Whether this loader reads `file` (by its name). */
  matches(file: string): boolean;
  /** The data of the file's bytes; throws `NodeDatasetError` naming the file and line. */
  load(file: string, bytes: Buffer): LoadedData;
}

export type NodeDataset = LoadedData & Readonly<{ file: string; sha256: string; format: string }>;

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

export const DATASET_LOADERS: readonly NodeDatasetLoader[] = [NUMERIC_CSV];

/** Reads `file` with the first of `loaders` that matches its name. */
export async function loadNodeDataset(
  file: string,
  loaders: readonly NodeDatasetLoader[] = DATASET_LOADERS,
): Promise<NodeDataset> {
  const absolute = path.resolve(file);
  const loader = loaders.find((l) => l.matches(absolute));
  if (loader === undefined) {
    const formats = loaders.map((l) => l.format).join(', ');
    throw new NodeDatasetError(absolute, null, `no loader reads this file (formats: ${formats})`);
  }
  const bytes = await readRegularFile(absolute, '--data', MAX_DATASET_BYTES);
  const loaded = loader.load(absolute, bytes);
  return { ...loaded, file: absolute, sha256: sha256Hex(bytes), format: loader.format };
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
