/**
 * `roundlog verify`: checks a whole root against its log, which is the truth.
 *
 * - the log: every record of every segment (frame checksums, positions, revisions);
 * - the blob store: every blob re-hashed;
 * - the histories: every experiment's stream read in full and folded (a damaged record, or an
 *   event this release cannot read, is named with its experiment);
 * - references: every blob a kept round or the experiment itself references (initial parameters,
 *   training plan sources, aggregated and node parameters of rounds not pruned) is in the store;
 * - breakpoint folders, on the branch and in `superseded/`: the manifest parses; every file it
 *   lists is there with its SHA-256 and no other file is; no path in it is absolute (its own path
 *   fields, and the root's path anywhere); its log position is the `RoundCompleted` of a round of
 *   the experiment (current branch, or superseded for a folder in `superseded/`), not pruned; and
 *   every field equals what the projection writes for that round from the log. The manifest has
 *   no hash of its own: a hand edit shows as a field that differs from the log (e.g. `roundLimit
 *   is 99, the log records 10`), a swapped parameters file as a hash that differs from the round's.
 *
 * Rounds that asked for a breakpoint and have no folder are projection lag, reported but not a
 * problem (the folders are a projection: `roundlog project` writes them).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { VerifyResult as BlobVerifyResult } from '../blobs/types.ts';
import { StreamNotFoundError } from '../log/errors.ts';
import type { EventLog } from '../log/types.ts';
import { openStore, type StoreOptions } from './store.ts';
import type { VerifyResult as LogVerifyResult } from '../log/types.ts';
import { resolveRoot, rootLayout } from '../root.ts';
import { REGISTRY_STREAM, type ExperimentRegistered } from '../model/events.ts';
import type { ExperimentState, RoundRecord } from '../model/state.ts';
import {
  BREAKPOINT_FORMAT,
  BREAKPOINT_FORMAT_VERSION,
  MANIFEST_FILE,
  PARAMS_FILE,
  SUPERSEDED_DIR,
  breakpointManifest,
  missingBreakpoints,
  roundOfFolder,
} from '../projections/breakpoints.ts';
import { RootIndex } from './retention.ts';

export type HistoryProblem = Readonly<{ experiment: string; stream: string; reason: string }>;

export type ReferenceProblem = Readonly<{
  experiment: string;
  sha256: string;
  /** The round whose parameters it is, or null for data of the experiment itself. */
  round: number | null;
  what: string;
  reason: string;
}>;

export type BreakpointProblem = Readonly<{
  experiment: string;
  /** The breakpoint folder (absolute). */
  folder: string;
  /** The file inside it the problem is about (`breakpoint.json`, the parameters file, ...), or `.` for the folder. */
  file: string;
  /** The round the folder is for, when known (its manifest, else its name). */
  round: number | null;
  reason: string;
}>;

export type VerifyReport = Readonly<{
  ok: boolean;
  root: string;
  log: LogVerifyResult;
  blobs: BlobVerifyResult;
  history: Readonly<{ experimentsChecked: number; eventsRead: number; problems: readonly HistoryProblem[] }>;
  references: Readonly<{ blobsChecked: number; problems: readonly ReferenceProblem[] }>;
  breakpoints: Readonly<{ foldersChecked: number; problems: readonly BreakpointProblem[] }>;
  /** Rounds that asked for a breakpoint and have no folder yet, per experiment (not a problem). */
  lag: ReadonlyArray<Readonly<{ experiment: string; rounds: readonly number[] }>>;
  /** Things worth knowing that are not damage. */
  notes: readonly string[];
}>;

export type VerifyOptions = Pick<StoreOptions, 'store' | 'blobs' | 'namespace'> & { root?: string; env?: NodeJS.ProcessEnv };

export async function verifyRoot(options: VerifyOptions = {}): Promise<VerifyReport> {
  const root = resolveRoot(options.root, options.env);
  const layout = rootLayout(root);
  const notes: string[] = [];
  const historyProblems: HistoryProblem[] = [];
  const referenceProblems: ReferenceProblem[] = [];
  const folderProblems: BreakpointProblem[] = [];
  const lag: Array<{ experiment: string; rounds: number[] }> = [];
  let experimentsChecked = 0;
  let eventsRead = 0;
  let foldersChecked = 0;
  let blobsChecked = 0;

  const store = await openStore(root, options);
  let log: EventLog | null = null;
  let logResult: LogVerifyResult;
  try {
    log = await store.log.openFollower();
    logResult = await log.verify();
  } catch (error) {
    const where = store.log.kind === 'file' ? layout.log : store.log.description;
    logResult = { ok: false, eventsChecked: 0, bytesChecked: 0, problems: [{ file: where, offset: 0, reason: `the log cannot be opened: ${(error as Error).message}` }] };
  }
  const blobs = store.blobs;
  try {
    const blobResult = await blobs.verify();
    const index = new RootIndex();
    const experiments: Array<{ entry: ExperimentRegistered; state: ExperimentState | null }> = [];
    if (log !== null) {
      let registry: ExperimentRegistered[] = [];
      try {
        registry = (await log.readStream(REGISTRY_STREAM)).events.map((e) => e.data as ExperimentRegistered);
      } catch (error) {
        if (!(error instanceof StreamNotFoundError)) historyProblems.push({ experiment: '(registry)', stream: REGISTRY_STREAM, reason: (error as Error).message });
      }
      const known = new Set((await log.listStreams()).streams.map((s) => s.stream));
      for (const entry of registry) {
        if (!known.has(entry.stream)) {
          notes.push(`${entry.folder} is registered but has no history; nothing lists it`);
          continue;
        }
        try {
          const { events } = await log.readStream(entry.stream);
          index.fold(events);
          eventsRead += events.length;
          experimentsChecked++;
          experiments.push({ entry, state: index.state(entry.stream) });
        } catch (error) {
          historyProblems.push({ experiment: entry.folder, stream: entry.stream, reason: `its history cannot be read: ${(error as Error).message}` });
          experiments.push({ entry, state: null });
        }
      }
    }

    for (const { entry, state } of experiments) {
      if (state === null) continue;
      for (const ref of index.retainedReferences(entry.stream)) {
        blobsChecked++;
        if (await blobs.has(ref.sha256)) continue;
        referenceProblems.push({
          experiment: state.folder,
          sha256: ref.sha256,
          round: ref.round,
          what: ref.round === null ? `data of its ${ref.what}` : `parameters of ${ref.branch === 'superseded' ? 'superseded ' : ''}round ${ref.round}`,
          reason: `blob ${ref.sha256} (${ref.round === null ? `referenced by its ${ref.what}` : `parameters of round ${ref.round}`}) is missing from the blob store at ${store.blobsDescription}`,
        });
      }
    }

    // Breakpoint folders.
    const folders = new Set<string>();
    for (const { entry, state } of experiments) {
      const name = state?.folder ?? entry.folder;
      folders.add(name);
      const dir = path.join(layout.experiments, name);
      for (const child of await listNames(dir)) {
        if (roundOfFolder(child) !== null) {
          foldersChecked++;
          folderProblems.push(...(await checkFolder(path.join(dir, child), name, state, 'current', root)));
        } else if (child.startsWith('.tmp-')) notes.push(`${path.join(dir, child)}: a temp folder (a write in progress, or left by a crash: resume or project removes it)`);
      }
      for (const child of await listNames(path.join(dir, SUPERSEDED_DIR))) {
        if (!/^breakpoint_\d{4,}\.\d+$/.test(child)) continue;
        foldersChecked++;
        folderProblems.push(...(await checkFolder(path.join(dir, SUPERSEDED_DIR, child), name, state, 'superseded', root)));
      }
      if (state !== null) {
        const missing = await missingBreakpoints({ experimentsDir: layout.experiments, blobs }, state);
        if (missing.length > 0) lag.push({ experiment: name, rounds: missing });
      }
    }
    for (const name of await listNames(layout.experiments)) {
      if (!folders.has(name)) notes.push(`${path.join(layout.experiments, name)} is not the folder of any experiment in the log; not checked`);
    }

    const ok = logResult.ok && blobResult.ok && historyProblems.length === 0 && referenceProblems.length === 0 && folderProblems.length === 0;
    return {
      ok,
      root,
      log: logResult,
      blobs: blobResult,
      history: { experimentsChecked, eventsRead, problems: historyProblems },
      references: { blobsChecked, problems: referenceProblems },
      breakpoints: { foldersChecked, problems: folderProblems },
      lag,
      notes,
    };
  } finally {
    await blobs.close();
    await (log as EventLog | null)?.close();
    await store.log.close();
  }
}

/** Every problem of one breakpoint folder; `state` null when the experiment's history could not be read. */
async function checkFolder(
  folder: string,
  experiment: string,
  state: ExperimentState | null,
  where: 'current' | 'superseded',
  root: string,
): Promise<BreakpointProblem[]> {
  const problems: BreakpointProblem[] = [];
  const nameRound = roundOfFolder(path.basename(folder).replace(/\.\d+$/, ''));
  let round: number | null = nameRound;
  const problem = (file: string, reason: string) => problems.push({ experiment, folder, file, round, reason });

  let text: string;
  try {
    text = await fs.readFile(path.join(folder, MANIFEST_FILE), 'utf8');
  } catch (error) {
    problem(MANIFEST_FILE, `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
    return problems;
  }
  let manifest: Record<string, unknown>;
  try {
    manifest = JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    problem(MANIFEST_FILE, `is not valid JSON: ${(error as Error).message}`);
    return problems;
  }
  if (manifest === null || typeof manifest !== 'object' || manifest.format !== BREAKPOINT_FORMAT || typeof manifest.formatVersion !== 'number') {
    problem(MANIFEST_FILE, 'is not a roundlog breakpoint manifest');
    return problems;
  }
  if (manifest.formatVersion > BREAKPOINT_FORMAT_VERSION) {
    problem(MANIFEST_FILE, `has format version ${manifest.formatVersion}; this release reads up to ${BREAKPOINT_FORMAT_VERSION}: upgrade roundlog`);
    return problems;
  }
  if (typeof manifest.round === 'number') round = manifest.round;
  if (nameRound !== null && manifest.round !== nameRound) problem(MANIFEST_FILE, `says round ${show(manifest.round)}, the folder's name says round ${nameRound}`);

  // Files: each listed one present with its hash, no other one.
  const listed = manifest.files !== null && typeof manifest.files === 'object' ? (manifest.files as Record<string, unknown>) : null;
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
        bytes = await fs.readFile(path.join(folder, file));
      } catch (error) {
        problem(file, `is listed in the manifest but cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
        continue;
      }
      const actual = createHash('sha256').update(bytes).digest('hex');
      actualHashes.set(file, actual);
      if (actual !== expected) problem(file, `has SHA-256 ${actual}, the manifest records ${show(expected)}`);
    }
    for (const file of await listNames(folder)) {
      if (file !== MANIFEST_FILE && !(file in listed)) problem(file, 'is not listed in the manifest (a breakpoint folder holds only the files its manifest lists)');
    }
  }
  const params = manifest.params as { file?: unknown; sha256?: unknown } | undefined;
  if (params?.file !== PARAMS_FILE || listed?.[PARAMS_FILE] !== params?.sha256) {
    problem(MANIFEST_FILE, `does not list the parameters file ${PARAMS_FILE} with the parameters' hash`);
  }

  // No absolute path: the folder must stay relocatable.
  const pathFields: Array<[string, unknown]> = [
    ['experimentFolder', manifest.experimentFolder],
    ['params.file', params?.file],
    ['trainingPlan.file', (manifest.trainingPlan as { file?: unknown } | null)?.file],
    ['trainingPlan.module', (manifest.trainingPlan as { module?: unknown } | null)?.module],
    ['settings.trainingPlan.module', (manifest.settings as { trainingPlan?: { module?: unknown } | null } | null)?.trainingPlan?.module],
    ['experiment.folder', (manifest.experiment as { folder?: unknown } | null)?.folder],
    ['experiment.federated.trainingPlan.module', (manifest.experiment as { federated?: { trainingPlan?: { module?: unknown } } | null } | null)?.federated?.trainingPlan?.module],
  ];
  for (const [field, value] of pathFields) {
    if (typeof value === 'string' && (path.isAbsolute(value) || /^[A-Za-z]:[\\/]/.test(value))) problem(MANIFEST_FILE, `${field} is the absolute path ${JSON.stringify(value)}; breakpoint folders hold only relative paths`);
  }
  if (text.includes(JSON.stringify(root).slice(1, -1))) problem(MANIFEST_FILE, `holds the absolute path of the root (${root}); breakpoint folders hold only relative paths`);

  if (state === null) return problems;

  // Against the log.
  const created = state.created!;
  if (manifest.experimentId !== created.experimentId) {
    problem(MANIFEST_FILE, `belongs to experiment ${show(manifest.experimentId)}, not to ${experiment} (${created.experimentId})`);
    return problems;
  }
  const position = typeof manifest.logPosition === 'string' ? manifest.logPosition : null;
  const onBranch = state.rounds.find((r) => r !== undefined && r !== null && String(r.position) === position);
  const aside = state.superseded.find((r) => String(r.position) === position);
  const record: RoundRecord | undefined = onBranch ?? aside;
  if (record === undefined) {
    problem(MANIFEST_FILE, `logPosition ${show(manifest.logPosition)} is not the RoundCompleted of any round of ${experiment} (current branch or superseded)`);
    return problems;
  }
  round = record.round;
  const pruned = state.pruned[position!];
  if (pruned !== undefined) {
    problem('.', `round ${record.round} was pruned by retention on ${pruned.timestamp.toISOString()}; its folder should be gone: run roundlog gc`);
    return problems;
  }
  if (where === 'current' && onBranch === undefined) {
    problem('.', `holds round ${record.round} of a superseded branch (a rewind took it off): run roundlog project to move it aside`);
  }
  const expected = breakpointManifest(created, record).manifest as unknown as Record<string, unknown>;
  for (const key of new Set([...Object.keys(expected), ...Object.keys(manifest)])) {
    const difference = firstDifference(manifest[key], expected[key], key);
    if (difference !== null) problem(MANIFEST_FILE, difference);
  }
  const paramsHash = actualHashes.get(PARAMS_FILE);
  if (paramsHash !== undefined && paramsHash === listed?.[PARAMS_FILE] && paramsHash !== record.params.sha256) {
    problem(PARAMS_FILE, `has SHA-256 ${paramsHash}; the log records ${record.params.sha256} for round ${record.round}`);
  }
  return problems;
}

/** `path is X, the log records Y` for the first place two JSON values differ, or null when equal. */
function firstDifference(actual: unknown, expected: unknown, at: string): string | null {
  const normal = (v: unknown) => JSON.parse(JSON.stringify(v ?? null, (_k, x: unknown) => (typeof x === 'bigint' ? String(x) : x))) as unknown;
  const a = normal(actual);
  const e = normal(expected);
  if (canonical(a) === canonical(e)) return null;
  if (actual === undefined) return `${at} is missing, the log records ${show(e)}`;
  if (expected === undefined) return `${at} is ${show(a)}, which the projection never writes`;
  if (a !== null && e !== null && typeof a === 'object' && typeof e === 'object' && Array.isArray(a) === Array.isArray(e)) {
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

async function listNames(dir: string): Promise<string[]> {
  return (await fs.readdir(dir).catch(() => [] as string[])).sort();
}
