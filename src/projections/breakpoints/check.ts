/**
 * The checks of a breakpoint folder, written once: the manifest's format, every file against the
 * SHA-256 the manifest lists (and no file it does not list), relative paths only, and, given the
 * experiment's state, agreement with the log field by field. `roundlog verify` reports every
 * problem (`checkBreakpointFolder`); resume refuses the folder on the first (`readBreakpoint`).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  FileTooLargeError,
  NotARegularFileError,
  PathOutsideError,
  checkPlainName,
  readConfinedFile,
  resolvedPath,
} from '../../confine.ts';
import type { RoundlogError } from '../../errors.ts';
import { compareNames } from '../../model/events.ts';
import { BreakpointCorruptError } from '../../model/errors.ts';
import { MANIFEST_FILE, type BreakpointManifest } from '../../model/manifest.ts';
import type { ExperimentState, RoundRecord } from '../../model/state.ts';
import { roundOfAnyFolder } from './folder.ts';
import { canonicalJson, manifestOfRound, readManifestFile } from './schema.ts';

/**
 * One problem of a breakpoint folder: the file it is about (relative to the folder) and why; for a
 * path that leads out of the folder or a file that is not a regular file, the typed error too.
 */
export type FolderProblem = Readonly<{ file: string; round: number | null; reason: string; error?: RoundlogError }>;

/** Whether an error is a confinement refusal (a path leading out, not a regular file, larger than stated). */
function isConfinement(error: unknown): error is PathOutsideError | NotARegularFileError | FileTooLargeError {
  return (
    error instanceof PathOutsideError || error instanceof NotARegularFileError || error instanceof FileTooLargeError
  );
}

export type CheckFolderOptions = Readonly<{
  /** The experiment's state: compare the folder with the log. Without it, the folder alone is checked. */
  state?: ExperimentState | null;
  /** How the experiment is named in problems (default: its folder name in the state). */
  experiment?: string;
  /** Where the folder is: on the branch, or in `superseded/` (default 'current'). */
  where?: 'current' | 'superseded';
  /** The root, whose absolute path must not appear in the manifest. */
  root?: string;
  /**
   * SHA-256 of the manifests experiments of the log were imported from (`importedFrom.breakpointSha256`)
   * and the folder of the experiment that imported each: such a folder left under this root's
   * `experiments/` is the origin of an import, not a foreign folder.
   */
  origins?: ReadonlyMap<string, string>;
}>;

export type FolderCheck = Readonly<{
  /** The manifest, when it could be parsed as one. */
  manifest: BreakpointManifest | null;
  /** The round the folder holds (from the log, else the manifest, else its name). */
  round: number | null;
  problems: readonly FolderProblem[];
}>;

/** Every problem of one breakpoint folder, in the order a reader meets them. */
export async function checkBreakpointFolder(folder: string, options: CheckFolderOptions = {}): Promise<FolderCheck> {
  const problems: FolderProblem[] = [];
  const nameRound = roundOfAnyFolder(path.basename(folder));
  let round: number | null = nameRound;
  const problem = (file: string, reason: string, error?: RoundlogError) =>
    problems.push(error === undefined ? { file, round, reason } : { file, round, reason, error });
  const done = (manifest: BreakpointManifest | null): FolderCheck => ({ manifest, round, problems });
  /** A read refused by confinement is a problem carrying its typed error; any other failure, its code. */
  const unreadable = (file: string, error: unknown, what: string) => {
    if (isConfinement(error)) problem(file, error.message, error);
    else problem(file, `${what} (${errorCode(error)})`);
  };

  // A regular file inside the folder, never through a symlink out of it, never a FIFO, bounded;
  // a refused read carries its typed error.
  const read = await readManifestFile(path.join(folder, MANIFEST_FILE));
  const manifest = read.manifest;
  if (manifest === null) {
    problem(MANIFEST_FILE, read.problems[0]!, read.error);
    return done(null);
  }
  const text = read.text!;
  const state = options.state;
  const withLog = state !== undefined && state !== null;
  // On its own, the manifest's fields must agree with each other and with its checksum. Against
  // the log, the comparison below names the field that differs; these come after it.
  if (!withLog) for (const reason of read.problems) problem(MANIFEST_FILE, reason);
  round = manifest.round;
  if (nameRound !== null && manifest.round !== nameRound) {
    problem(MANIFEST_FILE, `says round ${manifest.round}, the folder's name says round ${nameRound}`);
  }
  const listed = manifest.files;
  // The files the manifest names are plain names of files it lists: never a path out of the folder.
  const named: Array<[string, unknown]> = [['params.file', manifest.params.file]];
  if (manifest.trainingPlan !== null) named.push(['trainingPlan.file', manifest.trainingPlan.file]);
  for (const [field, value] of named) {
    try {
      checkPlainName(value, field, folder);
    } catch (error) {
      problem(MANIFEST_FILE, (error as PathOutsideError).message, error as PathOutsideError);
    }
  }

  // The parameters file's name follows the round's encoding (schema.ts checks that it does).
  const paramsFile = manifest.params.file;
  // Files: each listed one present with its hash, no other one.
  const actualHashes = new Map<string, string>();
  for (const [file, expected] of Object.entries(listed)) {
    if (file !== path.basename(file) || path.isAbsolute(file) || file === '..' || file === '.') {
      problem(MANIFEST_FILE, `lists a file outside the folder: ${JSON.stringify(file)}`);
      continue;
    }
    let bytes: Buffer;
    try {
      const stated = file === paramsFile ? manifest.params.bytes : null;
      // A regular file inside the folder, never through a symlink out of it, at most its stated size.
      bytes = await readConfinedFile(folder, file, file, {
        plainName: true,
        ...(stated === null || !Number.isSafeInteger(stated) ? {} : { maxBytes: stated }),
      });
    } catch (error) {
      unreadable(file, error, 'is listed in the manifest but cannot be read');
      continue;
    }
    const actual = createHash('sha256').update(bytes).digest('hex');
    actualHashes.set(file, actual);
    if (actual !== expected) problem(file, `has SHA-256 ${actual}, the manifest records ${show(expected)}`);
    else if (file === paramsFile && manifest.params.bytes !== bytes.length) {
      problem(MANIFEST_FILE, `params.bytes is ${manifest.params.bytes}, but ${paramsFile} holds ${bytes.length} bytes`);
    }
  }
  for (const file of (await fs.readdir(folder).catch(() => [] as string[])).sort(compareNames)) {
    if (file !== MANIFEST_FILE && !(file in listed)) {
      problem(file, 'is not listed in the manifest (a breakpoint folder holds only the files its manifest lists)');
    }
  }

  // No absolute path: the folder must stay relocatable (file and folder names are plain names by
  // the schema; module paths are relative to the workspace).
  const plan = manifest.trainingPlan;
  const pathFields: Array<[string, unknown]> = [
    ['trainingPlan.module', plan?.module],
    ['settings.trainingPlan.module', manifest.settings.trainingPlan?.module],
    ['experiment.federated.trainingPlan.module', manifest.experiment.federated?.trainingPlan.module],
  ];
  for (const [field, value] of pathFields) {
    if (typeof value === 'string' && (path.isAbsolute(value) || /^[A-Za-z]:[\\/]/.test(value))) {
      problem(
        MANIFEST_FILE,
        `${field} is the absolute path ${JSON.stringify(value)}; breakpoint folders hold only relative paths`,
      );
    }
  }
  // The root as typed and as it resolves (a root reached through a symlink has two absolute paths).
  const roots = options.root === undefined ? [] : [...new Set([options.root, await resolvedPath(options.root)])];
  if (roots.some((root) => text.includes(JSON.stringify(root).slice(1, -1)))) {
    problem(
      MANIFEST_FILE,
      `holds the absolute path of the root (${options.root}); breakpoint folders hold only relative paths`,
    );
  }

  if (!withLog) return done(manifest);

  // Against the log.
  const created = state.created!;
  const experiment = options.experiment ?? state.folder;
  if (manifest.experimentId !== created.experimentId) {
    if (options.origins?.has(createHash('sha256').update(text, 'utf8').digest('hex'))) return done(manifest);
    problem(
      MANIFEST_FILE,
      `belongs to experiment ${show(manifest.experimentId)}, not to ${experiment} (${created.experimentId})`,
    );
    return done(manifest);
  }
  const position = manifest.logPosition;
  const onBranch = state.rounds.find((r) => r !== undefined && r !== null && String(r.position) === position);
  const aside = state.superseded.find((r) => String(r.position) === position);
  const record: RoundRecord | undefined = onBranch ?? aside;
  if (record === undefined) {
    problem(
      MANIFEST_FILE,
      `logPosition ${show(manifest.logPosition)} is not the RoundCompleted of any round of ${experiment} ` +
        '(current branch or superseded)',
    );
    return done(manifest);
  }
  round = record.round;
  const pruned = state.pruned[position];
  if (pruned !== undefined) {
    problem(
      '.',
      `round ${record.round} was pruned by retention on ${pruned.timestamp.toISOString()}; ` +
        'its folder should be gone: run roundlog gc',
    );
    return done(manifest);
  }
  if ((options.where ?? 'current') === 'current' && onBranch === undefined) {
    problem(
      '.',
      `holds round ${record.round} of a superseded branch (a rewind took it off): ` +
        'run roundlog project to move it aside',
    );
  }
  // The log's manifest of this round, in the folder's format version (an older folder is not
  // wrong for being older); the checksum is compared last, as the manifest's own problem.
  const expected = manifestOfRound(created, record, manifest.formatVersion).manifest as Record<string, unknown>;
  const actual = manifest as Record<string, unknown>;
  const before = problems.length;
  for (const key of new Set([...Object.keys(expected), ...Object.keys(actual)])) {
    if (key === 'manifestSha256') continue;
    const difference = firstDifference(actual[key], expected[key], key);
    if (difference !== null) problem(MANIFEST_FILE, difference);
  }
  if (problems.length === before) for (const reason of read.problems) problem(MANIFEST_FILE, reason);
  const paramsHash = actualHashes.get(paramsFile);
  if (paramsHash !== undefined && paramsHash === listed[paramsFile] && paramsHash !== record.params.sha256) {
    problem(paramsFile, `has SHA-256 ${paramsHash}; the log records ${record.params.sha256} for round ${record.round}`);
  }
  return done(manifest);
}

/**
 * Reads a breakpoint folder, checked on its own (format, every file against its SHA-256, no
 * unlisted file, relative paths only). Throws `BreakpointCorruptError` naming the first problem.
 */
export async function readBreakpoint(folder: string): Promise<BreakpointManifest> {
  const { manifest, problems } = await checkBreakpointFolder(folder);
  throwFirstProblem(folder, problems);
  return manifest!;
}

/**
 * Throws the first problem of a folder: its own typed error for a path leading out of the folder
 * or a file that is not a regular file, else a `BreakpointCorruptError` naming the file (and the
 * experiment whose log knows the folder, when there is one: its message names the rebuild).
 */
export function throwFirstProblem(
  folder: string,
  problems: readonly FolderProblem[],
  experiment: string | null = null,
): void {
  const first = problems[0];
  if (first === undefined) return;
  throw first.error ?? new BreakpointCorruptError(folder, first.file, first.reason, experiment);
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? String(error);
}

/** `path is X, the log records Y` for the first place two JSON values differ, or null when equal. */
function firstDifference(actual: unknown, expected: unknown, at: string): string | null {
  const normal = (v: unknown) =>
    JSON.parse(JSON.stringify(v ?? null, (_k, x: unknown) => (typeof x === 'bigint' ? String(x) : x))) as unknown;
  const a = normal(actual);
  const e = normal(expected);
  if (canonicalJson(a) === canonicalJson(e)) return null;
  if (actual === undefined) return `${at} is missing, the log records ${show(e)}`;
  if (expected === undefined) return `${at} is ${show(a)}, which the projection never writes`;
  if (
    a !== null &&
    e !== null &&
    typeof a === 'object' &&
    typeof e === 'object' &&
    Array.isArray(a) === Array.isArray(e)
  ) {
    const ao = a as Record<string, unknown>;
    const eo = e as Record<string, unknown>;
    for (const key of new Set([...Object.keys(eo), ...Object.keys(ao)])) {
      const inner = firstDifference(ao[key], eo[key], Array.isArray(a) ? `${at}[${key}]` : `${at}.${key}`);
      if (inner !== null) return inner;
    }
  }
  return `${at} is ${show(a)}, the log records ${show(e)}`;
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
