/**
 * The names roundlog gives to numbered folders, and their order. `Experiment_NNNN` (the
 * experiment's number in its root's registry) and `breakpoint_RRRR` (the 0-based index of a
 * round) are padded to 4 digits and widen past them (`breakpoint_9999`, then `breakpoint_10000`):
 * text order would put `breakpoint_10000` first, so every ordering of these names is by number,
 * never by text. `compareNames` is that order for any name (digit runs compared as numbers).
 */

const PADDING = 4;

/** The default folder of the experiment numbered `number` in its root: `Experiment_0003`, `Experiment_10000`. */
export function experimentFolderName(number: number): string {
  return `Experiment_${String(number).padStart(PADDING, '0')}`;
}

/**
 * Whether a name has the `Experiment_<digits>` form (`Experiment_0003`, `Experiment_3`,
 * `Experiment_00003`): names the numbering keeps for itself, never chosen for a folder.
 */
export function isReservedFolderName(name: string): boolean {
  return /^Experiment_\d+$/.test(name);
}

/**
 * The number of a new experiment and its folder: the first number from `from` (the count of
 * registered experiments) whose `Experiment_NNNN` name is in `taken` by no experiment (registered
 * or recorded folders, folders on disk). A name taken once is passed over, so allocation never
 * fails for good on a taken name. `from` past every number in use keeps numbers unique.
 */
export function allocateExperimentFolder(from: number, taken: ReadonlySet<string>): { number: number; folder: string } {
  let number = from;
  while (taken.has(experimentFolderName(number))) number++;
  return { number, folder: experimentFolderName(number) };
}

/** The folder of round `round` (0-based): `breakpoint_0003`, `breakpoint_10000`. */
export function breakpointFolderName(round: number): string {
  return `breakpoint_${String(round).padStart(PADDING, '0')}`;
}

/** The number an `Experiment_NNNN` name stands for, or null for any other name (including `Experiment_00003`). */
export function experimentNumberOfFolderName(name: string): number | null {
  return numberOf(name, /^Experiment_(\d+)$/, experimentFolderName);
}

/**
 * The round a `breakpoint_RRRR` name stands for, or null for any other name. Only the name
 * `breakpointFolderName` gives counts (`breakpoint_00012` is not round 12), so a round has one
 * folder name and two names never tie.
 */
export function roundOfBreakpointFolderName(name: string): number | null {
  return numberOf(name, /^breakpoint_(\d+)$/, breakpointFolderName);
}

function numberOf(name: string, pattern: RegExp, format: (n: number) => string): number | null {
  const match = pattern.exec(name);
  if (match === null) return null;
  const n = Number(match[1]);
  return Number.isSafeInteger(n) && format(n) === name ? n : null;
}

/**
 * The order of folder and file names: runs of digits compare as numbers (`breakpoint_9999` <
 * `breakpoint_10000`, `breakpoint_0004.2` < `breakpoint_0004.10`, `Experiment_9999` <
 * `Experiment_10000`), the rest by UTF-16 code units; names equal that way (`a01`, `a1`) by
 * code units, so the order is total and the same on every machine and locale.
 */
export function compareNames(a: string, b: string): number {
  if (a === b) return 0;
  const x = a.split(/(\d+)/);
  const y = b.split(/(\d+)/);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const p = x[i]!;
    const q = y[i]!;
    if (p === q) continue;
    // `split` with a capturing group puts the digit runs at the odd indices.
    if (i % 2 === 1) {
      const byNumber = compareDigits(p, q);
      if (byNumber !== 0) return byNumber;
      continue;
    }
    return p < q ? -1 : 1;
  }
  if (x.length !== y.length) return x.length - y.length;
  return a < b ? -1 : 1;
}

/** Two runs of digits by the numbers they write, of any length. */
function compareDigits(p: string, q: string): number {
  const m = p.replace(/^0+/, '');
  const n = q.replace(/^0+/, '');
  if (m.length !== n.length) return m.length - n.length;
  return m < n ? -1 : m > n ? 1 : 0;
}
