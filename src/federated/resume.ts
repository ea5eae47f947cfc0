/**
 * Resuming an experiment from a breakpoint (`Experiment.loadBreakpoint`): finding the breakpoint
 * (the last one of the root, a breakpoint folder, or an experiment folder's latest), importing a
 * folder carried from another root, checking the folder against the log, checking the training
 * plan, and recording the resume: the settings it brings back, the rounds after it superseded
 * (their folders moved aside), then `Resumed`.
 */
import { canResumeFromStart, decideResume, decideStartRun } from '../model/decide/index.ts';
import { runLiveness } from '../engine/lease.ts';
import { checkRegistryWritable } from '../engine/registry.ts';
import type { RunOwner } from '../model/events.ts';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readConfinedFile, resolvedPath, samePath } from '../confine.ts';
import { InvalidArgumentError } from '../errors.ts';
import { decodeTensors } from '../codec/tensors.ts';
import { checkRoot } from '../root.ts';
import {
  BreakpointCorruptError,
  ExperimentNotFoundError,
  NoBreakpointError,
  RoundPrunedError,
} from '../model/errors.ts';
import { breakpointFolderName, recordedWorkspace, type Rewound } from '../model/events.ts';
import { hasBreakpoint, type ExperimentState } from '../model/state.ts';
import type { ExperimentHandle, RoundLog } from '../projections/index.ts';
import {
  listBreakpointFolders,
  MANIFEST_FILE,
  MANIFEST_MAX_BYTES,
  checkBreakpointFolder,
  readBreakpoint,
  readManifestFile,
  removeStaleTemps,
  roundOfFolder,
  supersedeBreakpoints,
  throwFirstProblem,
  writeBreakpoint,
  type BreakpointManifest,
} from '../projections/breakpoints/index.ts';
import {
  componentsOf,
  stateBeforeRound,
  type ComponentRegistry,
  type Components,
  type RegistrySource,
} from './components.ts';
import { ImportedNotResumedError } from './errors.ts';
import { RemoteNodesRequiredError } from './remote/errors.ts';
import { checkFederation } from './options-schema.ts';
import { loadPlan, storePlan, type LoadedPlan } from './resolve-plan.ts';
import { requireMatchingNodes, type Federation, type TrainingPlan } from './training-plan.ts';

/** The nodes; or a function of the experiment's recorded `config` (and of the workspace in use) that builds them. */
export type FederationSource =
  Federation | ((config: unknown, context: { workspace: string }) => Federation | Promise<Federation>);

export type ResumeOptions = Readonly<{
  /**
   * Absolute: the training plan's module is resolved against it. Null: the workspace the
   * experiment recorded, else (experiments recorded before workspaces were) the current directory.
   */
  workspace: string | null;
  /** Absolute: the current directory, where no workspace is given or recorded. */
  cwd: string;
  federation: FederationSource;
  /** The custom aggregators and strategies, by the name the experiment records. */
  registry: RegistrySource;
  /** Continue even if the training plan's source changed; the change is recorded. */
  acceptPlanChange: boolean;
  /** The run this process starts (its lease, appended with the resume); `takeOver` a run that looks alive. */
  run: Readonly<{ runId: string; owner: RunOwner; heartbeatMs: number; takeOver: boolean }>;
  /** Go back to an older breakpoint, superseding the rounds after it; without it that is refused. */
  rewind?: boolean;
}>;

/** What an `Experiment` resumed from a breakpoint is made of. */
export type Resumed = Readonly<{
  handle: ExperimentHandle;
  plan: TrainingPlan;
  /** The digest of the plan's local module closure now: what requests to node processes name. */
  planDigest: string;
  federation: Federation;
  /** The experiment's aggregator and strategy, built from what it records and the registry. */
  components: Components;
  /** The rounds this resume superseded (asked for with `rewind`); empty when it continued the last round. */
  superseded: readonly number[];
}>;

/**
 * Resumes from a breakpoint: with no path, the last breakpoint of the last experiment; else a
 * breakpoint folder, or an experiment folder (its latest breakpoint), absolute or relative to
 * the current directory. State is rebuilt from the log and checked against the folder; the
 * resume is appended before any folder is touched. The caller owns `rl` (and closes it on error).
 */
export async function resumeFromBreakpoint(
  rl: RoundLog,
  breakpointPath: string | undefined,
  options: ResumeOptions,
): Promise<Resumed> {
  const located = await locateBreakpoint(rl, breakpointPath);
  let handle: ExperimentHandle;
  // A carried folder: what it needs, checked before its import; the experiment the import created.
  let early: Prepared | null = null;
  let imported: ExperimentHandle | null = null;
  // Where the resume continues from: a breakpoint folder, or (no round completed) the initial parameters.
  let from: Readonly<{ round: number | null; breakpoint: string | null; folder: string | null }>;
  // Folders code is never imported from: the one being resumed and the one named to find it.
  const carried = breakpointPath === undefined ? [] : [await resolvedPath(breakpointPath)];
  if (located.kind === 'start') {
    handle = located.handle;
    from = { round: null, breakpoint: null, folder: movedFolder(handle) };
    carried.push(path.join(rl.layout.experiments, handle.state.folder));
  } else {
    const { folder, manifest, renamed } = located;
    const known = located.handle;
    const pruned = known?.state.pruned[manifest.logPosition];
    if (known !== null && pruned !== undefined && known.state.created?.experimentId === manifest.experimentId) {
      throw new RoundPrunedError(known.state.folder, manifest.round, pruned.timestamp);
    }
    // Every file is hashed once: against the log when the log knows the experiment, else on its own.
    if (known === null) {
      const checked = await readBreakpoint(folder);
      // Everything the import can be refused for is checked before it: nothing is imported for nothing.
      early = await prepareCarried(rl, folder, checked, options, [...carried, folder]);
      handle = await importBreakpoint(rl, folder, checked, options.workspace ?? options.cwd);
      imported = handle;
      // The imported round's folder, written from the log: a carried folder left where it lands is moved aside.
      await writeBreakpoint(handle, manifest.round).catch((error: unknown) => {
        throw importedThenFailed(rl, handle, options, error);
      });
    } else {
      await checkAgainstLog(rl, folder, known.state);
      handle = known;
    }
    // From here the round is the log's (the folder agreed with it, or the import recorded it).
    from = { round: logRound(handle.state, manifest), breakpoint: path.basename(folder), folder: renamed };
    carried.push(folder);
  }
  try {
    return await resumeLocated(rl, breakpointPath, options, handle, from, carried, early);
  } catch (error) {
    // A failure after an import leaves the imported experiment: said, with the command that continues it.
    throw imported === null ? error : importedThenFailed(rl, imported, options, error);
  }
}

/** What a resume needs from the workspace: the nodes, the training plan (its source not stored yet), the registry. */
type Prepared = Readonly<{ federation: Federation; loaded: LoadedPlan; registry: ComponentRegistry }>;

/** The nodes a resume's `federation` gives, checked (a caller's code gave them). */
async function federationFor(options: ResumeOptions, config: unknown, workspace: string): Promise<Federation> {
  const federation =
    typeof options.federation === 'function' ? await options.federation(config, { workspace }) : options.federation;
  checkFederation(federation, 'options.federation');
  return federation;
}

async function registryFor(options: ResumeOptions, config: unknown, workspace: string): Promise<ComponentRegistry> {
  return typeof options.registry === 'function' ? await options.registry(config, { workspace }) : options.registry;
}

/**
 * A carried folder's experiment, checked before it is imported: a federated experiment, its
 * federation (the definition module confined to the workspace, existing, its export checked), its
 * components, and its training plan (confined, existing, of the recorded source unless a change is
 * accepted). Nothing is written.
 */
async function prepareCarried(
  rl: RoundLog,
  folder: string,
  manifest: BreakpointManifest,
  options: ResumeOptions,
  forbidden: readonly string[],
): Promise<Prepared> {
  const federated = manifest.experiment.federated;
  const planRef = manifest.settings.trainingPlan ?? federated?.trainingPlan ?? null;
  if (federated === null || manifest.trainingPlan === null || planRef === null) throw ownLoop(folder, folder);
  const workspace = options.workspace ?? options.cwd;
  const config = manifest.experiment.config;
  const federation = await federationFor(options, config, workspace);
  const location = { ...federated.trainingPlan, ...planRef };
  const loaded = await loadPlan(rl.layout, workspace, location, options.acceptPlanChange, forbidden);
  const registry = await registryFor(options, config, workspace);
  componentsOf(federated, registry);
  return { federation, loaded, registry };
}

/** A breakpoint of an experiment recorded by a training loop of its own: not resumed as a federated one. */
function ownLoop(folder: string, at: string): InvalidArgumentError {
  const name = JSON.stringify(folder);
  return new InvalidArgumentError(
    'path',
    `must be a breakpoint of a federated experiment; ${folder} was recorded by a training loop ` +
      `of its own: open it with openRoundLog().openExperiment(${name}) and loadRound()`,
    at,
  );
}

/**
 * A failure after a carried folder was imported: the imported experiment stays (it is the log's
 * now), so the error says so and names the command that continues it.
 */
function importedThenFailed(
  rl: RoundLog,
  handle: ExperimentHandle,
  options: ResumeOptions,
  error: unknown,
): ImportedNotResumedError {
  const folder = path.join(rl.layout.experiments, handle.state.folder);
  return new ImportedNotResumedError(folder, handle.id, options.workspace ?? options.cwd, error);
}

async function resumeLocated(
  rl: RoundLog,
  breakpointPath: string | undefined,
  options: ResumeOptions,
  handle: ExperimentHandle,
  from: Readonly<{ round: number | null; breakpoint: string | null; folder: string | null }>,
  carried: readonly string[],
  early: Prepared | null,
): Promise<Resumed> {
  // A run a live process holds is refused now, before the definition and the plan are imported
  // (and again, atomically, by the append below).
  const { runId, owner, heartbeatMs, takeOver } = options.run;
  decideStartRun(handle.state, {
    runId,
    owner,
    heartbeatMs,
    takeOver,
    liveness: runLiveness(handle.state),
    now: new Date(),
  });
  const recordedPlan = handle.state.settings.trainingPlan;
  if (recordedPlan === null) {
    throw ownLoop(handle.state.folder, breakpointPath ?? path.join(rl.layout.experiments, handle.state.folder));
  }
  const workspace = options.workspace ?? recordedWorkspace(handle.created) ?? options.cwd;
  // What the caller's code gives is checked before anything is recorded (a carried folder's before its import).
  const federation = early?.federation ?? (await federationFor(options, handle.created.config, workspace));
  // A run on node processes goes on on node processes: never on in-process nodes without a word.
  const lastRemote = handle.state.remote;
  if (lastRemote !== null && federation.remote === undefined) {
    throw new RemoteNodesRequiredError(handle.state.folder, lastRemote);
  }
  const setup = handle.state.created!.federated!;
  requireMatchingNodes(federation, setup.tags, setup.nodes);
  const loaded =
    early?.loaded ?? (await loadPlan(rl.layout, workspace, recordedPlan, options.acceptPlanChange, carried));
  const { plan, ref, digest: planDigest } = await storePlan(rl, loaded);
  // Before anything is recorded: the components must be registered, and able to read the state
  // the next round starts from (the breakpoint's round).
  const registry = early?.registry ?? (await registryFor(options, handle.created.config, workspace));
  const components = componentsOf(handle.state.created!.federated!, registry);
  stateBeforeRound(components, handle.state, from.round === null ? 0 : from.round + 1);
  const events = decideResume(
    handle.state,
    { ...from, trainingPlan: ref, rewind: options.rewind ?? false },
    { actor: rl.actor },
  );
  // The run lease, in the same append: refused (naming the owner) while a live process runs it.
  const liveness = runLiveness(handle.state);
  const lease = decideStartRun(handle.state, {
    runId,
    owner,
    heartbeatMs,
    takeOver,
    liveness,
    now: new Date(),
    remote: federation.remote?.describe?.() ?? null,
  });
  const rewound = events.find((e) => e.type === 'Rewound')?.data as Rewound | undefined;
  const superseded = rewound !== undefined;
  // Appending first makes a concurrent resume of the same experiment fail before it touches any folder.
  await handle.append([...events, ...lease]);
  const experimentsDir = rl.layout.experiments;
  if (superseded && from.round !== null) {
    await supersedeBreakpoints({ experimentsDir, blobs: rl.blobs }, handle.state.folder, from.round + 1);
  }
  await removeStaleTemps(path.join(experimentsDir, handle.state.folder));
  return { handle, plan, planDigest, federation, components, superseded: rewound?.supersededRounds ?? [] };
}

/**
 * Where a resume starts: a breakpoint found (its folder and manifest, the experiment the log knows
 * it by, null: none), or the start of an experiment that completed no round (its initial parameters).
 */
type Located =
  | Readonly<{
      kind: 'breakpoint';
      folder: string;
      manifest: BreakpointManifest;
      handle: ExperimentHandle | null;
      /** The experiment folder's new name, when it was renamed since the log last recorded it. */
      renamed: string | null;
    }>
  | Readonly<{ kind: 'start'; handle: ExperimentHandle }>;

/**
 * Finds the breakpoint a path names (or, with none, the root's last) and the experiment it belongs
 * to. Which folder is which is decided on resolved paths: a root or a folder reached through a
 * symlink is the same folder as its real path.
 */
async function locateBreakpoint(rl: RoundLog, breakpointPath: string | undefined): Promise<Located> {
  if (breakpointPath === undefined) return lastBreakpoint(rl);
  const target = await resolvedPath(breakpointPath);
  await refusePrunedPath(rl, target);
  // An experiment folder the log knows means its latest breakpoint, which the log knows better than
  // the folder (a crash may have come between a round's commit and its folder, even the first
  // round's); with no round completed, its start. Its folder may not even exist yet.
  const experiment = await loggedExperimentAt(rl, target);
  if (experiment !== null) {
    const latest = await latestOf(experiment);
    if (latest !== null) return latest;
    // Rounds completed, none saved a breakpoint (saveBreakpoints: false): nothing to resume from.
    throw new NoBreakpointError(experiment.state.folder, await newestBreakpoint(rl, experiment.id));
  }
  const folder = await breakpointFolderOf(target);
  const manifest = await peekManifest(folder);
  const handle = await rl.openExperiment(manifest.experimentId).catch((error: unknown) => {
    if (error instanceof ExperimentNotFoundError) return null;
    throw error;
  });
  // A carried folder this root imported already is that experiment's imported round: never a second copy.
  const imported = handle === null ? await importOf(rl, manifest) : null;
  if (imported !== null) {
    const round = imported.state.created!.importedFrom!.round;
    const local = await writeBreakpoint(imported, round);
    return { kind: 'breakpoint', folder: local, manifest: await peekManifest(local), handle: imported, renamed: null };
  }
  const experimentsDir = rl.layout.experiments;
  const experimentDir = path.dirname(folder);
  const renamed =
    handle !== null &&
    (await samePath(path.dirname(experimentDir), experimentsDir)) &&
    path.basename(experimentDir) !== handle.recordedFolder
      ? path.basename(experimentDir)
      : null;
  return { kind: 'breakpoint', folder, manifest, handle, renamed };
}

/**
 * The experiment of this root that imported the carried folder `manifest` describes (same
 * experiment id, round and parameters); null when none did. A fork (also `importedFrom`) is not one.
 */
async function importOf(rl: RoundLog, manifest: BreakpointManifest): Promise<ExperimentHandle | null> {
  for (const entry of await rl.listExperiments()) {
    const other = await rl.openExperiment(entry.experimentId).catch(() => null);
    const from = other?.state.created?.importedFrom;
    if (
      other !== null &&
      other !== undefined &&
      other.state.forkedFrom === null &&
      from?.experimentId === manifest.experimentId &&
      from.round === manifest.round &&
      from.params.sha256 === manifest.params.sha256
    ) {
      return other;
    }
  }
  return null;
}

/**
 * The experiment whose folder (under `<root>/experiments`, as the log names it) `target` is, by
 * resolved path; null when it is no experiment folder the log knows.
 */
async function loggedExperimentAt(rl: RoundLog, target: string): Promise<ExperimentHandle | null> {
  if (!(await samePath(path.dirname(target), rl.layout.experiments))) return null;
  const handle = await rl.openExperiment(target).catch((error: unknown) => {
    if (error instanceof ExperimentNotFoundError) return null;
    throw error;
  });
  if (handle === null || !(await samePath(target, path.join(rl.layout.experiments, handle.state.folder)))) return null;
  return handle;
}

/**
 * Where an experiment the log knows continues from: the last breakpoint of its branch (its folder
 * written now if a crash came between the round's commit and its folder), or its initial parameters
 * when it completed no round; null when neither (rounds completed, none kept a breakpoint).
 */
async function latestOf(handle: ExperimentHandle): Promise<Located | null> {
  const round = lastBreakpointRound(handle.state);
  if (round === null) return canResumeFromStart(handle.state) ? { kind: 'start', handle } : null;
  const pruned = handle.state.pruned[String(handle.state.rounds[round]!.position)];
  if (pruned !== undefined) throw new RoundPrunedError(handle.state.folder, round, pruned.timestamp);
  const folder = await writeBreakpoint(handle, round);
  return { kind: 'breakpoint', folder, manifest: await peekManifest(folder), handle, renamed: movedFolder(handle) };
}

/** The folder the experiment was moved to under `<root>/experiments`, when its log does not record it yet. */
function movedFolder(handle: ExperimentHandle): string | null {
  return handle.state.folder === handle.recordedFolder ? null : handle.state.folder;
}

/**
 * Before a resume opens its root: when `root` is no root yet (a resume of a carried folder may
 * start one), the folder `breakpointPath` names is checked on its own first, with the checks its
 * import applies (`readBreakpoint`: the manifest self-consistent, every file confined, regular and
 * of the listed hash), so a folder that would be refused creates no root; with no path, there is
 * nothing to resume (`NoBreakpointError`), and nothing is created. A root that exists checks the
 * folder against its log as before.
 */
export async function checkCarriedBeforeNewRoot(
  root: string,
  breakpointPath: string | undefined,
): Promise<NewRoot | null> {
  const isRoot = await checkRoot(root).then(
    () => true,
    () => false,
  );
  if (isRoot) return null;
  // No path: the last experiment of a root that is none yet, which has none.
  if (breakpointPath === undefined) throw new NoBreakpointError(`(none in ${root})`, null, 'no-experiment');
  await readBreakpoint(await breakpointFolderOf(await resolvedPath(breakpointPath)));
  return newRootOf(root);
}

/**
 * What opening a root that is none yet will create: the topmost folder of `root`'s path that does
 * not exist (all of it is new), or, when `root` is a folder already, the names in it now.
 */
export type NewRoot = Readonly<{ created: string } | { dir: string; before: ReadonlySet<string> }>;

async function newRootOf(root: string): Promise<NewRoot> {
  let created = path.resolve(root);
  for (;;) {
    const parent = path.dirname(created);
    if (parent === created || (await fs.lstat(parent).catch(() => null)) !== null) break;
    created = parent;
  }
  if ((await fs.lstat(created).catch(() => null)) === null) return { created };
  return { dir: created, before: new Set(await fs.readdir(created).catch(() => [] as string[])) };
}

/**
 * After a refused resume that started `newRoot` and committed nothing to its log (the
 * definition's modules refused, say): what opening it created is removed, so a refused input
 * leaves no root behind. A log holding any event is kept (an imported experiment stays).
 */
export async function removeUnusedRoot(newRoot: NewRoot): Promise<void> {
  if ('created' in newRoot) {
    await fs.rm(newRoot.created, { recursive: true, force: true });
    return;
  }
  for (const name of await fs.readdir(newRoot.dir).catch(() => [] as string[])) {
    if (!newRoot.before.has(name)) await fs.rm(path.join(newRoot.dir, name), { recursive: true, force: true });
  }
}

/** The breakpoint folder a path names: itself, or the latest breakpoint of an experiment folder. */
async function breakpointFolderOf(target: string): Promise<string> {
  const stat = await fs.stat(target).catch(() => null);
  if (stat === null) {
    const rule =
      'must be a breakpoint folder or an experiment folder; nothing exists at this path (check it, or run roundlog ls)';
    throw new InvalidArgumentError('path', rule, target);
  }
  if (!stat.isDirectory()) {
    throw new InvalidArgumentError('path', 'must be a breakpoint folder or an experiment folder, not a file', target);
  }
  if (await fs.stat(path.join(target, MANIFEST_FILE)).catch(() => null)) return target;
  const folders = await listBreakpointFolders(target);
  if (folders.length === 0) throw new NoBreakpointError(target, null, 'no-folder');
  return path.join(target, folders.at(-1)!);
}

/**
 * The last breakpoint of the last experiment, as Fed-BioMed's `load_breakpoint()` without
 * arguments, taken from the log: the last round of the current branch that asked for a
 * breakpoint. Its folder is written now if a crash came between the round's commit and its folder.
 * An experiment that completed no round (it crashed or failed before its first round committed)
 * starts again from its initial parameters.
 */
async function lastBreakpoint(rl: RoundLog): Promise<Located> {
  const experiments = await rl.listExperiments();
  const last = experiments.at(-1);
  if (last === undefined) throw new NoBreakpointError(`(none in ${rl.root})`, null, 'no-experiment');
  const handle = await rl.openExperiment(last.experimentId);
  const latest = await latestOf(handle);
  if (latest !== null) return latest;
  throw new NoBreakpointError(handle.state.folder, await newestBreakpoint(rl, handle.id));
}

/** The latest breakpoint folder of the newest other experiment of the root that has one, or null. */
async function newestBreakpoint(rl: RoundLog, except: string): Promise<string | null> {
  const experiments = await rl.listExperiments();
  for (const entry of [...experiments].reverse()) {
    if (entry.experimentId === except) continue;
    const other = await rl.openExperiment(entry.experimentId);
    const otherRound = lastBreakpointRound(other.state);
    if (otherRound !== null)
      return path.join(rl.layout.experiments, other.state.folder, breakpointFolderName(otherRound));
  }
  return null;
}

/**
 * A breakpoint path that no longer exists because retention pruned its round: a `RoundPrunedError`
 * saying when, rather than "no such folder".
 */
async function refusePrunedPath(rl: RoundLog, target: string): Promise<void> {
  const round = roundOfFolder(path.basename(target));
  if (round === null || (await fs.stat(target).catch(() => null)) !== null) return;
  const handle = await rl.openExperiment(path.dirname(target)).catch(() => null);
  const record = handle?.state.rounds[round];
  const pruned = record === undefined ? undefined : handle!.state.pruned[String(record.position)];
  if (pruned !== undefined) throw new RoundPrunedError(handle!.state.folder, round, pruned.timestamp);
}

/**
 * The last round of the current branch to continue from: one that asked for a breakpoint, or one
 * a rewind or a fork made the end of the branch (both write its folder, whatever its round asked).
 */
function lastBreakpointRound(state: ExperimentState): number | null {
  for (let i = state.rounds.length - 1; i >= 0; i--) if (hasBreakpoint(state, i)) return i;
  return null;
}

/**
 * The manifest of a breakpoint folder, to find its experiment: of the right shape (else the
 * folder's problem is thrown); its agreement with the log, or with itself, and its files are checked later.
 */
async function peekManifest(folder: string): Promise<BreakpointManifest> {
  const { manifest, problems, error } = await readManifestFile(path.join(folder, MANIFEST_FILE));
  if (manifest === null) throw error ?? new BreakpointCorruptError(folder, MANIFEST_FILE, problems[0]!);
  return manifest;
}

/**
 * The round a checked breakpoint holds, as the log records it: the round whose `RoundCompleted`
 * is at the manifest's log position, or the round an import stands for.
 */
function logRound(state: ExperimentState, manifest: BreakpointManifest): number {
  const record = state.rounds.find((r) => r !== undefined && r !== null && String(r.position) === manifest.logPosition);
  return record?.round ?? state.created?.importedFrom?.round ?? manifest.round;
}

/**
 * A breakpoint folder the log knows gets the checks `roundlog verify` makes, against the log: a
 * round of the current branch, every manifest field as the log says, the parameters the log
 * records. The first problem refuses it.
 */
async function checkAgainstLog(rl: RoundLog, folder: string, state: ExperimentState): Promise<void> {
  const { problems } = await checkBreakpointFolder(folder, { state, root: rl.root });
  throwFirstProblem(folder, problems, state.folder);
}

/**
 * A file a carried folder's manifest names (`field`): a plain name of a regular file in the folder,
 * listed in its `files`, read once and checked against the listed SHA-256 (the bytes returned are
 * the bytes hashed).
 */
async function readListedFile(
  folder: string,
  manifest: BreakpointManifest,
  file: unknown,
  field: string,
): Promise<Buffer> {
  const bytes = await readConfinedFile(folder, file, field, { plainName: true });
  const expected = Object.hasOwn(manifest.files, file as string) ? manifest.files[file as string] : undefined;
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== expected) {
    throw new BreakpointCorruptError(
      folder,
      file as string,
      `has SHA-256 ${actual}, the manifest lists ${expected === undefined ? 'no such file' : expected}`,
    );
  }
  return bytes;
}

/** A breakpoint folder carried to a root whose log does not know it: a new experiment that starts from it. */
async function importBreakpoint(
  rl: RoundLog,
  folder: string,
  manifest: BreakpointManifest,
  workspace: string,
): Promise<ExperimentHandle> {
  // A root whose registry cannot be read creates no experiment: refused before anything is stored.
  await checkRegistryWritable(rl);
  // Everything the folder's data names is confined to it and read as checked: the bytes stored are
  // the ones hashed, never a file outside the folder, a FIFO or a device.
  const manifestBytes = await readConfinedFile(folder, MANIFEST_FILE, MANIFEST_FILE, { maxBytes: MANIFEST_MAX_BYTES });
  const params = await readListedFile(folder, manifest, manifest.params.file, 'params.file');
  // Decoded once before anything is stored: a parameters file that does not parse under its
  // encoding (a hostile safetensors header, offsets that overlap...) refuses the import, naming it.
  decodeTensors(manifest.params.encoding, params, {
    source: path.join(folder, manifest.params.file),
    storedBytes: manifest.params.bytes,
  });
  const { ref } = await rl.blobs.put(params, { encoding: manifest.params.encoding });
  let federated = manifest.experiment.federated;
  if (federated !== null && manifest.trainingPlan !== null) {
    const source = await readListedFile(folder, manifest, manifest.trainingPlan.file, 'trainingPlan.file');
    const { ref: sourceRef } = await rl.blobs.put(source, { encoding: 'text/source' });
    const trainingPlan = { ...federated.trainingPlan, ...manifest.settings.trainingPlan, source: sourceRef };
    federated = { ...federated, trainingPlan };
  }
  // The workspace of this resume, never one the carried folder names (a path of another machine).
  if (federated !== null) federated = { ...federated, workspace };
  return rl.createExperiment({
    roundLimit: manifest.roundLimit,
    seed: manifest.experiment.seed,
    saveBreakpoints: manifest.settings.saveBreakpoints,
    initialParams: null,
    config: manifest.experiment.config,
    federated: federated === null ? null : { ...federated, trainingArgs: manifest.settings.trainingArgs },
    importedFrom: {
      experimentId: manifest.experimentId,
      folder: manifest.experimentFolder,
      round: manifest.round,
      logPosition: manifest.logPosition,
      breakpointSha256: createHash('sha256').update(manifestBytes).digest('hex'),
      params: ref,
      state: manifest.state,
    },
  });
}
