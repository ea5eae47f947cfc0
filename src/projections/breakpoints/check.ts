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
import {
  BREAKPOINT_FORMAT,
  BREAKPOINT_FORMAT_VERSION,
  MANIFEST_FILE,
  PARAMS_FILE,
  breakpointManifest,
  type BreakpointManifest,
} from '../../model/manifest.ts';
import type { ExperimentState, RoundRecord } from '../../model/state.ts';
import { MANIFEST_MAX_BYTES, roundOfAnyFolder } from './folder.ts';

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

  let text: string;
  try {
    text = (await readConfinedFile(folder, MANIFEST_FILE, MANIFEST_FILE, { maxBytes: MANIFEST_MAX_BYTES })).toString(
      'utf8',
    );
  } catch (error) {
    unreadable(MANIFEST_FILE, error, 'cannot be read');
    return done(null);
  }
  let manifest: Record<string, unknown>;
  try {
    manifest = JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    problem(MANIFEST_FILE, `is not valid JSON: ${(error as Error).message}`);
    return done(null);
  }
  if (
    manifest === null ||
    typeof manifest !== 'object' ||
    manifest.format !== BREAKPOINT_FORMAT ||
    typeof manifest.formatVersion !== 'number'
  ) {
    problem(MANIFEST_FILE, 'is not a roundlog breakpoint manifest');
    return done(null);
  }
  if (manifest.formatVersion > BREAKPOINT_FORMAT_VERSION) {
    problem(
      MANIFEST_FILE,
      `has format version ${manifest.formatVersion}; ` +
        `this release reads up to ${BREAKPOINT_FORMAT_VERSION}: upgrade roundlog`,
    );
    return done(null);
  }
  const parsed = manifest as unknown as BreakpointManifest;
  if (typeof manifest.round === 'number') round = manifest.round;
  if (nameRound !== null && manifest.round !== nameRound) {
    problem(MANIFEST_FILE, `says round ${show(manifest.round)}, the folder's name says round ${nameRound}`);
  }

  const params = manifest.params as { file?: unknown; sha256?: unknown; bytes?: unknown } | undefined;
  const plan = manifest.trainingPlan as { file?: unknown; module?: unknown } | null | undefined;
  const listed =
    manifest.files !== null && typeof manifest.files === 'object' ? (manifest.files as Record<string, unknown>) : null;
  // The files the manifest names are plain names of files it lists: never a path out of the folder.
  const named: Array<[string, unknown]> = [['params.file', params?.file]];
  if (plan !== null && plan !== undefined) named.push(['trainingPlan.file', plan.file]);
  for (const [field, value] of named) {
    try {
      checkPlainName(value, field, folder);
    } catch (error) {
      problem(MANIFEST_FILE, (error as PathOutsideError).message, error as PathOutsideError);
      continue;
    }
    if (listed !== null && !Object.hasOwn(listed, value as string)) {
      problem(MANIFEST_FILE, `${field} names ${JSON.stringify(value)}, which its list of files does not hold`);
    }
  }
  if (params?.file !== PARAMS_FILE || listed?.[PARAMS_FILE] !== params?.sha256) {
    problem(MANIFEST_FILE, `does not list the parameters file ${PARAMS_FILE} with the parameters' hash`);
  }

  // Files: each listed one present with its hash, no other one.
  const actualHashes = new Map<string, string>();
  if (listed === null) problem(MANIFEST_FILE, 'has no list of files with their SHA-256');
  else {
    for (const [file, expected] of Object.entries(listed)) {
      if (file !== path.basename(file) || path.isAbsolute(file) || file === '..' || file === '.') {
        problem(MANIFEST_FILE, `lists a file outside the folder: ${JSON.stringify(file)}`);
        continue;
      }
      let bytes: Buffer;
      try {
        const stated = file === PARAMS_FILE && Number.isSafeInteger(params?.bytes) ? (params!.bytes as number) : null;
        // A regular file inside the folder, never through a symlink out of it, at most its stated size.
        bytes = await readConfinedFile(folder, file, file, {
          plainName: true,
          ...(stated === null ? {} : { maxBytes: stated }),
        });
      } catch (error) {
        unreadable(file, error, 'is listed in the manifest but cannot be read');
        continue;
      }
      const actual = createHash('sha256').update(bytes).digest('hex');
      actualHashes.set(file, actual);
      if (actual !== expected) problem(file, `has SHA-256 ${actual}, the manifest records ${show(expected)}`);
    }
    for (const file of (await fs.readdir(folder).catch(() => [] as string[])).sort(compareNames)) {
      if (file !== MANIFEST_FILE && !(file in listed)) {
        problem(file, 'is not listed in the manifest (a breakpoint folder holds only the files its manifest lists)');
      }
    }
  }

  // No absolute path: the folder must stay relocatable.
  const settings = manifest.settings as { trainingPlan?: { module?: unknown } | null } | null | undefined;
  const experimentCreated = manifest.experiment as
    { folder?: unknown; federated?: { trainingPlan?: { module?: unknown } } | null } | null | undefined;
  const pathFields: Array<[string, unknown]> = [
    ['experimentFolder', manifest.experimentFolder],
    ['params.file', params?.file],
    ['trainingPlan.file', plan?.file],
    ['trainingPlan.module', plan?.module],
    ['settings.trainingPlan.module', settings?.trainingPlan?.module],
    ['experiment.folder', experimentCreated?.folder],
    ['experiment.federated.trainingPlan.module', experimentCreated?.federated?.trainingPlan?.module],
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

  const state = options.state;
  if (state === undefined || state === null) return done(parsed);

  // Against the log.
  const created = state.created!;
  const experiment = options.experiment ?? state.folder;
  if (manifest.experimentId !== created.experimentId) {
    problem(
      MANIFEST_FILE,
      `belongs to experiment ${show(manifest.experimentId)}, not to ${experiment} (${created.experimentId})`,
    );
    return done(parsed);
  }
  const position = typeof manifest.logPosition === 'string' ? manifest.logPosition : null;
  const onBranch = state.rounds.find((r) => r !== undefined && r !== null && String(r.position) === position);
  const aside = state.superseded.find((r) => String(r.position) === position);
  const record: RoundRecord | undefined = onBranch ?? aside;
  if (record === undefined) {
    problem(
      MANIFEST_FILE,
      `logPosition ${show(manifest.logPosition)} is not the RoundCompleted of any round of ${experiment} ` +
        '(current branch or superseded)',
    );
    return done(parsed);
  }
  round = record.round;
  const pruned = state.pruned[position!];
  if (pruned !== undefined) {
    problem(
      '.',
      `round ${record.round} was pruned by retention on ${pruned.timestamp.toISOString()}; ` +
        'its folder should be gone: run roundlog gc',
    );
    return done(parsed);
  }
  if ((options.where ?? 'current') === 'current' && onBranch === undefined) {
    problem(
      '.',
      `holds round ${record.round} of a superseded branch (a rewind took it off): ` +
        'run roundlog project to move it aside',
    );
  }
  const expected = breakpointManifest(created, record).manifest as unknown as Record<string, unknown>;
  for (const key of new Set([...Object.keys(expected), ...Object.keys(manifest)])) {
    const difference = firstDifference(manifest[key], expected[key], key);
    if (difference !== null) problem(MANIFEST_FILE, difference);
  }
  const paramsHash = actualHashes.get(PARAMS_FILE);
  if (paramsHash !== undefined && paramsHash === listed?.[PARAMS_FILE] && paramsHash !== record.params.sha256) {
    problem(
      PARAMS_FILE,
      `has SHA-256 ${paramsHash}; the log records ${record.params.sha256} for round ${record.round}`,
    );
  }
  return done(parsed);
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
 * or a file that is not a regular file, else a `BreakpointCorruptError` naming the file.
 */
export function throwFirstProblem(folder: string, problems: readonly FolderProblem[]): void {
  const first = problems[0];
  if (first === undefined) return;
  throw first.error ?? new BreakpointCorruptError(folder, first.file, first.reason);
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
  if (canonical(a) === canonical(e)) return null;
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

/** JSON with object keys sorted: equal for equal content, whatever the key order. */
function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  return `{${Object.keys(value)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
    .join(',')}}`;
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
