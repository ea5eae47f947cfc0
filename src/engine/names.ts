/**
 * The one resolver of experiment names: what every command (and `RoundLog.openExperiment`) takes
 * as "an experiment". A name is, in this order:
 *
 * 1. an experiment id or stream name;
 * 2. a folder name as `roundlog ls` lists it: the experiment's folder now (a folder renamed and
 *    resumed from, recorded by `Resumed.folder`), then the folder it was registered with;
 * 3. a path (absolute, or relative to `cwd`) to an experiment folder or a breakpoint folder: under
 *    `<root>/experiments` its first name below that folder is taken as a folder name (2.);
 *    anywhere, and for a folder moved under `<root>/experiments` that the log has not seen yet,
 *    the experiment its breakpoint manifests name (asked of the projections);
 * 4. a bare word naming no experiment but a folder `<root>/experiments/<word>` or `<cwd>/<word>`:
 *    as the path to that folder (3.).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { RoundlogError } from '../errors.ts';
import type { EventLog } from '../log/types.ts';
import type { ExperimentRegistered } from '../model/events.ts';
import { replay } from '../model/state.ts';
import type { Projection } from './projection.ts';
import { hasHistory, readRegistryStream } from './registry.ts';

export type NameContext = Readonly<{
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

/** The folder an experiment has now: the last folder a resume recorded, else the one it was created with. */
export async function currentFolder(log: EventLog, entry: ExperimentRegistered): Promise<string> {
  const { events } = await log.readStream(entry.stream);
  return replay(events).folder;
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
      for (const entry of live) folders.set(entry, await currentFolder(log, entry));
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
  const byPath = async (target: string): Promise<ExperimentRegistered | null> => {
    const below = await nameBelow(ctx.experimentsDir, target);
    if (below !== null) {
      const entry = await byFolder(below);
      if (entry !== null) return entry;
    }
    return (await isDirectory(target)) ? byManifest(target) : null;
  };

  if (isPathLike(name) || path.isAbsolute(name)) return byPath(path.resolve(ctx.cwd, name));
  const named = await byFolder(name);
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

/**
 * A command that writes to an experiment's folder was given a folder moved under
 * `<root>/experiments` that its log does not record yet (no resume from it): writing would
 * recreate the folder the log records and leave the moved one behind.
 */
export class UnrecordedMoveError extends RoundlogError {
  readonly code = 'EXPERIMENT_MOVED' as const;
  constructor(
    readonly experiment: string,
    readonly recorded: string,
    readonly moved: string,
  ) {
    super(
      `experiment ${experiment} is in the folder ${moved}, but its log records the folder ${recorded} ` +
        `(moved without a resume since): run 'roundlog resume ${moved}' to record the move ` +
        `(or move the folder back), then try again`,
    );
  }
}

/**
 * Refuses (`UnrecordedMoveError`) a name that reaches an experiment through a folder under
 * `experimentsDir` other than `recorded`, the folder its log records, when `recorded` is gone:
 * a move no resume has recorded. Reads follow such a move; writers call this first.
 */
export async function refuseUnrecordedMove(
  ctx: Pick<NameContext, 'experimentsDir' | 'cwd'>,
  name: string,
  experiment: { id: string; folder: string },
): Promise<void> {
  let moved: string | null = null;
  if (isPathLike(name) || path.isAbsolute(name))
    moved = await nameBelow(ctx.experimentsDir, path.resolve(ctx.cwd, name));
  else if (await isDirectory(path.join(ctx.experimentsDir, name))) moved = name;
  if (moved === null || moved === experiment.folder) return;
  if (!(await isDirectory(path.join(ctx.experimentsDir, moved)))) return;
  if (await isDirectory(path.join(ctx.experimentsDir, experiment.folder))) return;
  throw new UnrecordedMoveError(experiment.id, experiment.folder, moved);
}
