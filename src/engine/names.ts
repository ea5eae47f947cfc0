/**
 * The one resolver of experiment names: what every command (and `RoundLog.openExperiment`) takes
 * as "an experiment". A name is, in this order:
 *
 * 1. an experiment id or stream name;
 * 2. a folder name as `roundlog ls` lists it: a folder under `<root>/experiments` whose breakpoints
 *    name an experiment is that experiment's (folders swapped or moved); else the experiment's
 *    folder its log records (a folder renamed and resumed from, recorded by `Resumed.folder`),
 *    then the folder it was registered with;
 * 3. a path (absolute, or relative to `cwd`) to an experiment folder or a breakpoint folder: under
 *    `<root>/experiments` its first name below that folder is taken as a folder name (2.);
 *    anywhere, and for a folder moved under `<root>/experiments` that the log has not seen yet,
 *    the experiment its breakpoint manifests name (asked of the projections);
 * 4. a bare word naming no experiment but a folder `<root>/experiments/<word>` or `<cwd>/<word>`:
 *    as the path to that folder (3.).
 *
 * Where an experiment's folder is now (`folderLocator`) is decided apart from its name: a folder
 * moved under `<root>/experiments` is the experiment's folder for every command, reads and
 * writes, before any resume records the move.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { RoundlogError } from '../errors.ts';
import type { EventLog } from '../log/types.ts';
import type { ExperimentRegistered } from '../model/events.ts';
import type { ExperimentState } from '../model/state.ts';
import { isUnreadableHistory } from '../model/errors.ts';
import { compareNames } from '../model/names.ts';
import { replay } from '../model/state.ts';
import type { Projection } from './projection.ts';
import { hasHistory, historyDamaged, readHistory, readRegistryStream } from './registry.ts';
import { readSnapshot } from './snapshots.ts';

export type NameContext = Readonly<{
  /** The root (where the experiments' snapshots are). */
  root: string;
  /** `<root>/experiments`. */
  experimentsDir: string;
  /** Where relative paths are resolved. */
  cwd: string;
  projections: readonly Projection[];
}>;

/** Whether a name is written as a path (it has a separator, or is `.`/`..`), not as a bare word. */
export function isPathLike(name: string): boolean {
  return name.includes('/') || name.includes(path.sep) || name === '.' || name === '..';
}

/**
 * The folder an experiment's log records now: the last folder a resume recorded, else the one it
 * was created with. From the experiment's snapshot in `root` when it checks out against the log
 * (its revision at its position): only the events after it are read, so naming an experiment by
 * folder, or creating one, does not replay every history of the root. A history that cannot be
 * read is an `UnreadableHistoryError` naming the experiment.
 */
export async function currentFolder(log: EventLog, entry: ExperimentRegistered, root: string): Promise<string> {
  try {
    const snapshot = await readSnapshot(root, entry.experimentId, entry.stream);
    if (snapshot !== null) {
      const tail = await readHistory(log, entry, { fromRevision: snapshot.revision }).catch(() => null);
      const at = tail?.events[0];
      if (at !== undefined && at.revision === snapshot.revision && at.position === snapshot.position) {
        return replay(tail!.events.slice(1), snapshot.state).folder;
      }
    }
    return replay((await readHistory(log, entry)).events).folder;
  } catch (error) {
    throw historyDamaged(error, entry);
  }
}

/** The registration a name means (see the module comment), or null when nothing answers to it. */
export async function resolveExperimentName(
  log: EventLog,
  ctx: NameContext,
  name: string,
): Promise<ExperimentRegistered | null> {
  const { entries } = await readRegistryStream(log);
  const live: ExperimentRegistered[] = [];
  for (const entry of entries) if (await hasHistory(log, entry.stream)) live.push(entry);

  const byId = live.find((e) => e.experimentId === name || e.stream === name);
  if (byId !== undefined) return byId;

  let folders: Map<ExperimentRegistered, string> | null = null;
  const byFolder = async (folder: string): Promise<ExperimentRegistered | null> => {
    if (folders === null) {
      folders = new Map();
      for (const entry of live) {
        // A damaged history is still named by the folder it was registered with (opening it then
        // says it is damaged), and never keeps the other experiments from being named.
        const now = await currentFolder(log, entry, ctx.root).catch((error: unknown) => {
          if (isUnreadableHistory(error)) return entry.folder;
          throw error;
        });
        folders.set(entry, now);
      }
    }
    for (const [entry, now] of folders) if (now === folder) return entry;
    return live.find((e) => e.folder === folder) ?? null;
  };
  const byManifest = async (dir: string): Promise<ExperimentRegistered | null> => {
    for (const projection of ctx.projections) {
      const id = (await projection.experimentAt?.(dir)) ?? null;
      const entry = id === null ? undefined : live.find((e) => e.experimentId === id);
      if (entry !== undefined) return entry;
    }
    return null;
  };
  // A folder under `<root>/experiments` is taken by the experiment its breakpoints name (folders
  // swapped, `mv Experiment_0001 Experiment_0000`), before any experiment whose log records the name.
  const byFolderNow = async (folder: string): Promise<ExperimentRegistered | null> => {
    const dir = path.join(ctx.experimentsDir, folder);
    const held = (await isDirectory(dir)) ? await byManifest(dir) : null;
    return held ?? byFolder(folder);
  };
  const byPath = async (target: string): Promise<ExperimentRegistered | null> => {
    const below = await nameBelow(ctx.experimentsDir, target);
    if (below !== null) {
      const entry = await byFolderNow(below);
      if (entry !== null) return entry;
    }
    return (await isDirectory(target)) ? byManifest(target) : null;
  };

  if (isPathLike(name) || path.isAbsolute(name)) return byPath(path.resolve(ctx.cwd, name));
  const named = await byFolderNow(name);
  if (named !== null) return named;
  for (const dir of [path.join(ctx.experimentsDir, name), path.resolve(ctx.cwd, name)]) {
    const entry = (await isDirectory(dir)) ? await byManifest(dir) : null;
    if (entry !== null) return entry;
  }
  return null;
}

/** The first name below `dir` on the way to `target` (`dir/<name>/...`), on the path as given or resolved. */
async function nameBelow(dir: string, target: string): Promise<string | null> {
  const pairs: Array<[string, string]> = [[path.resolve(dir), target]];
  const realDir = await fs.realpath(dir).catch(() => null);
  const realTarget = await fs.realpath(target).catch(() => null);
  if (realDir !== null && realTarget !== null) pairs.push([realDir, realTarget]);
  for (const [base, to] of pairs) {
    const relative = path.relative(base, to);
    if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) continue;
    return relative.split(path.sep)[0]!;
  }
  return null;
}

async function isDirectory(target: string): Promise<boolean> {
  return (await fs.stat(target).catch(() => null))?.isDirectory() ?? false;
}

/** Two or more folders under `<root>/experiments` claim an experiment whose recorded folder is gone. */
export class ExperimentFolderAmbiguousError extends RoundlogError {
  readonly code = 'EXPERIMENT_FOLDER_AMBIGUOUS' as const;
  constructor(
    readonly experiment: string,
    /** The folder the log records, which is gone. */
    readonly recorded: string,
    /** The folders whose breakpoints name the experiment (names under `experimentsDir`). */
    readonly folders: readonly string[],
    readonly experimentsDir: string,
  ) {
    super(
      `experiment ${experiment} was moved out of its folder ${recorded}, and ${folders.length} folders of ` +
        `${experimentsDir} hold its breakpoints: ${folders.join(', ')}; roundlog cannot tell which one is ` +
        `the experiment's: remove all but one of them, or rename them to move them out of ${experimentsDir} ` +
        `(roundlog project writes no folder while they are ${folders.length}), and try again`,
    );
  }
}

/**
 * The folder an experiment's log records holds the breakpoints of another experiment (folders
 * swapped: `mv Experiment_0001 Experiment_0000`), and no other folder under `<root>/experiments`
 * holds this one's: roundlog will not write this experiment into the other's folder.
 */
export class ExperimentFolderTakenError extends RoundlogError {
  readonly code = 'EXPERIMENT_FOLDER_TAKEN' as const;
  constructor(
    readonly experiment: string,
    /** The folder the log records. */
    readonly recorded: string,
    /** The experiment whose breakpoints that folder holds. */
    readonly holder: string,
    readonly experimentsDir: string,
  ) {
    super(
      `experiment ${experiment} is recorded in folder ${recorded} of ${experimentsDir}, but that folder holds the ` +
        `breakpoints of experiment ${holder}, and no folder there holds ${experiment}'s: move the folder of ` +
        `${experiment} back under ${experimentsDir} (any name), or rename ${recorded} to a name of its own and ` +
        `run roundlog project to write ${experiment}'s folder again`,
    );
  }
}

/**
 * Where an experiment's folder is now, as a name under `<root>/experiments`. A folder is taken by
 * the experiment its breakpoints (its latest manifest's `experimentId`) name. `recorded` (the
 * folder its log records) is used while it exists and holds no breakpoints of another experiment
 * (none yet, or this one's); else, when it was moved (`mv Experiment_0000 mydir`) or swapped with
 * another's (`mv Experiment_0001 Experiment_0000`), the one folder there whose breakpoint
 * manifests name the experiment; else `recorded` when it is gone (a folder not written yet, or
 * deleted: the projection writes it again). Two folders or more claiming it is
 * `ExperimentFolderAmbiguousError`; `recorded` holding another's and no folder holding this one's
 * is `ExperimentFolderTakenError`. `experimentsDir` is listed once per locator (only when a
 * recorded folder is missing or taken), its real folders only (a symlink is not followed), and
 * each folder's latest breakpoint manifest read bounded and confined (`Projection.experimentAt`).
 */
export type FolderLocator = (experimentId: string, recorded: string) => Promise<string>;

export function folderLocator(experimentsDir: string, projections: readonly Projection[]): FolderLocator {
  const experimentAt = async (dir: string): Promise<string | null> => {
    for (const projection of projections) {
      const id = (await projection.experimentAt?.(dir)) ?? null;
      if (id !== null) return id;
    }
    return null;
  };
  let claims: Promise<Map<string, string[]>> | null = null;
  const scan = async (): Promise<Map<string, string[]>> => {
    const found = new Map<string, string[]>();
    const names = (await fs.readdir(experimentsDir).catch(() => [] as string[])).sort(compareNames);
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const dir = path.join(experimentsDir, name);
      if (!(await fs.lstat(dir).catch(() => null))?.isDirectory()) continue;
      const id = await experimentAt(dir);
      if (id !== null) found.set(id, [...(found.get(id) ?? []), name]);
    }
    return found;
  };
  return async (experimentId, recorded) => {
    const dir = path.join(experimentsDir, recorded);
    let holder: string | null = null;
    if ((await fs.lstat(dir).catch(() => null)) !== null) {
      holder = await experimentAt(dir);
      if (holder === null || holder === experimentId) return recorded;
    }
    claims ??= scan();
    const folders = (await claims).get(experimentId) ?? [];
    if (folders.length > 1) throw new ExperimentFolderAmbiguousError(experimentId, recorded, folders, experimentsDir);
    if (folders[0] !== undefined) return folders[0];
    if (holder !== null) throw new ExperimentFolderTakenError(experimentId, recorded, holder, experimentsDir);
    return recorded;
  };
}

/** The state with its `folder` where the folder is now (`FolderLocator`). */
export async function locatedState(locate: FolderLocator, state: ExperimentState): Promise<ExperimentState> {
  const folder = await locate(state.created!.experimentId, state.folder);
  return folder === state.folder ? state : { ...state, folder };
}
