/**
 * Resuming an experiment from a breakpoint (`Experiment.loadBreakpoint`): finding the breakpoint
 * (the last one of the root, a breakpoint folder, or an experiment folder's latest), importing a
 * folder carried from another root, checking the folder against the log, checking the training
 * plan, and recording the resume: the settings it brings back, the rounds after it superseded
 * (their folders moved aside), then `Resumed`.
 */
import { decideResume } from '../model/decide/index.ts';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.ts';
import {
  BreakpointCorruptError,
  ExperimentNotFoundError,
  NoBreakpointError,
  RoundPrunedError,
} from '../model/errors.ts';
import { breakpointFolderName, type Rewound } from '../model/events.ts';
import { hasBreakpoint, type ExperimentState } from '../model/state.ts';
import type { ExperimentHandle, RoundLog } from '../projections/index.ts';
import {
  listBreakpointFolders,
  BREAKPOINT_FORMAT,
  MANIFEST_FILE,
  checkBreakpointFolder,
  readManifestIfAny,
  readBreakpoint,
  removeStaleTemps,
  roundOfFolder,
  supersedeBreakpoints,
  writeBreakpoint,
  type BreakpointManifest,
} from '../projections/breakpoints/index.ts';
import { componentsOf, stateBeforeRound, type Components, type RegistrySource } from './components.ts';
import { resolvePlan } from './resolve-plan.ts';
import type { Federation, TrainingPlan } from './training-plan.ts';

/** The nodes; or a function of the experiment's recorded `config` that builds them. */
export type FederationSource = Federation | ((config: unknown) => Federation | Promise<Federation>);

export type ResumeOptions = Readonly<{
  /** Absolute: the training plan's module is resolved against it. */
  workspace: string;
  federation: FederationSource;
  /** The custom aggregators and strategies, by the name the experiment records. */
  registry: RegistrySource;
  /** Continue even if the training plan's source changed; the change is recorded. */
  acceptPlanChange: boolean;
  /** Go back to an older breakpoint, superseding the rounds after it; without it that is refused. */
  rewind?: boolean;
}>;

/** What an `Experiment` resumed from a breakpoint is made of. */
export type Resumed = Readonly<{
  handle: ExperimentHandle;
  plan: TrainingPlan;
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
  const { folder, manifest, renamed } = located;
  let handle = located.handle;
  const pruned = handle?.state.pruned[manifest.logPosition];
  if (handle !== null && pruned !== undefined && handle.state.created?.experimentId === manifest.experimentId) {
    throw new RoundPrunedError(handle.state.folder, manifest.round, pruned.timestamp);
  }
  // Every file is hashed once: against the log when the log knows the experiment, else on its own.
  if (handle === null) handle = await importBreakpoint(rl, folder, await readBreakpoint(folder));
  else await checkAgainstLog(rl, folder, handle.state);
  const recordedPlan = handle.state.settings.trainingPlan;
  if (recordedPlan === null) {
    const name = JSON.stringify(handle.state.folder);
    throw new InvalidArgumentError(
      'path',
      `must be a breakpoint of a federated experiment; ${handle.state.folder} was recorded by a training loop ` +
        `of its own: open it with openRoundLog().openExperiment(${name}) and loadRound()`,
      folder,
    );
  }
  const federation =
    typeof options.federation === 'function' ? await options.federation(handle.created.config) : options.federation;

  const { plan, ref } = await resolvePlan(rl, options.workspace, recordedPlan, options.acceptPlanChange);
  // Before anything is recorded: the components must be registered, and able to read the state
  // the next round starts from (the breakpoint's round).
  const registry =
    typeof options.registry === 'function' ? await options.registry(handle.created.config) : options.registry;
  const components = componentsOf(handle.state.created!.federated!, registry);
  stateBeforeRound(components, handle.state, manifest.round + 1);
  const events = decideResume(
    handle.state,
    {
      round: manifest.round,
      breakpoint: path.basename(folder),
      folder: renamed,
      trainingPlan: ref,
      rewind: options.rewind ?? false,
    },
    { actor: rl.actor },
  );
  const keep = manifest.round + 1;
  const rewound = events.find((e) => e.type === 'Rewound')?.data as Rewound | undefined;
  const superseded = rewound !== undefined;
  // Appending first makes a concurrent resume of the same experiment fail before it touches any folder.
  await handle.append(events);
  const experimentsDir = rl.layout.experiments;
  if (superseded) {
    await supersedeBreakpoints({ experimentsDir, blobs: rl.blobs }, handle.state.folder, keep);
  }
  await removeStaleTemps(path.join(experimentsDir, handle.state.folder));
  return { handle, plan, federation, components, superseded: rewound?.supersededRounds ?? [] };
}

/** A breakpoint found: its folder and manifest, the experiment the log knows it by (null: none). */
type Located = Readonly<{
  folder: string;
  manifest: BreakpointManifest;
  handle: ExperimentHandle | null;
  /** The experiment folder's new name, when it was renamed since the log last recorded it. */
  renamed: string | null;
}>;

/** Finds the breakpoint a path names (or, with none, the root's last) and the experiment it belongs to. */
async function locateBreakpoint(rl: RoundLog, breakpointPath: string | undefined): Promise<Located> {
  const latest = breakpointPath === undefined ? await lastBreakpoint(rl) : null;
  if (latest === null) await refusePrunedPath(rl, path.resolve(breakpointPath!));
  let folder = latest?.folder ?? (await breakpointFolderOf(path.resolve(breakpointPath!)));
  let manifest = await peekManifest(folder);
  const handle =
    latest?.handle ??
    (await rl.openExperiment(manifest.experimentId).catch((error: unknown) => {
      if (error instanceof ExperimentNotFoundError) return null;
      throw error;
    }));
  const experimentsDir = rl.layout.experiments;
  // An experiment folder means its latest breakpoint, which the log knows better than the
  // folder: a crash may have come between the last round's commit and its folder.
  if (
    latest === null &&
    handle !== null &&
    path.resolve(breakpointPath!) === path.join(experimentsDir, handle.state.folder)
  ) {
    const round = lastBreakpointRound(handle.state);
    if (round !== null && round > manifest.round) {
      folder = await writeBreakpoint(handle, round);
      manifest = await peekManifest(folder);
    }
  }
  const experimentDir = path.dirname(folder);
  const renamed =
    handle !== null &&
    path.dirname(experimentDir) === experimentsDir &&
    path.basename(experimentDir) !== handle.state.folder
      ? path.basename(experimentDir)
      : null;
  return { folder, manifest, handle, renamed };
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
  if (folders.length === 0) throw new NoBreakpointError(target, null);
  return path.join(target, folders.at(-1)!);
}

/**
 * The last breakpoint of the last experiment, as Fed-BioMed's `load_breakpoint()` without
 * arguments, taken from the log: the last round of the current branch that asked for a
 * breakpoint. Its folder is written now if a crash came between the round's commit and its folder.
 */
async function lastBreakpoint(rl: RoundLog): Promise<{ folder: string; handle: ExperimentHandle }> {
  const experiments = await rl.listExperiments();
  const last = experiments.at(-1);
  if (last === undefined) throw new NoBreakpointError(`(none in ${rl.root})`, null);
  const handle = await rl.openExperiment(last.experimentId);
  const round = lastBreakpointRound(handle.state);
  const pruned = round === null ? undefined : handle.state.pruned[String(handle.state.rounds[round]!.position)];
  if (round !== null && pruned !== undefined) throw new RoundPrunedError(handle.state.folder, round, pruned.timestamp);
  if (round !== null) return { folder: await writeBreakpoint(handle, round), handle };
  let newest: string | null = null;
  for (const entry of experiments.slice(0, -1).reverse()) {
    const other = await rl.openExperiment(entry.experimentId);
    const otherRound = lastBreakpointRound(other.state);
    if (otherRound !== null) {
      newest = path.join(rl.layout.experiments, other.state.folder, breakpointFolderName(otherRound));
      break;
    }
  }
  throw new NoBreakpointError(handle.state.folder, newest);
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

/** The manifest of a breakpoint folder, to find its experiment; its files are checked later. */
async function peekManifest(folder: string): Promise<BreakpointManifest> {
  const manifest = await readManifestIfAny(folder);
  if (manifest?.format === BREAKPOINT_FORMAT && typeof manifest.experimentId === 'string') return manifest;
  return readBreakpoint(folder); // throws the folder's first problem
}

/**
 * A breakpoint folder the log knows gets the checks `roundlog verify` makes, against the log: a
 * round of the current branch, every manifest field as the log says, the parameters the log
 * records. The first problem refuses it.
 */
async function checkAgainstLog(rl: RoundLog, folder: string, state: ExperimentState): Promise<void> {
  const { problems } = await checkBreakpointFolder(folder, { state, root: rl.root });
  const first = problems[0];
  if (first !== undefined) throw new BreakpointCorruptError(folder, first.file, first.reason);
}

/** A breakpoint folder carried to a root whose log does not know it: a new experiment that starts from it. */
async function importBreakpoint(rl: RoundLog, folder: string, manifest: BreakpointManifest): Promise<ExperimentHandle> {
  const params = await fs.readFile(path.join(folder, manifest.params.file));
  const { ref } = await rl.blobs.put(params, { encoding: manifest.params.encoding });
  let federated = manifest.experiment.federated;
  if (federated !== null && manifest.trainingPlan !== null) {
    const source = await fs.readFile(path.join(folder, manifest.trainingPlan.file));
    const { ref: sourceRef } = await rl.blobs.put(source, { encoding: 'text/source' });
    const trainingPlan = { ...federated.trainingPlan, ...manifest.settings.trainingPlan, source: sourceRef };
    federated = { ...federated, trainingPlan };
  }
  const manifestBytes = await fs.readFile(path.join(folder, MANIFEST_FILE));
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
