/** What the experiment commands (run, resume, ls, demo) share: definitions, progress lines, listings, trees. */
import path from 'node:path';
import { promises as fs } from 'node:fs';
import {
  checkBreakpointFolder,
  listBreakpointFolders,
  missingBreakpoints,
  roundOfFolder,
} from '../projections/breakpoints/index.ts';
import { openRoundLog, type OpenRoundLogOptions } from '../projections/index.ts';
import type { ExperimentDefinition } from '../federated/definition.ts';
import { checkDefinition, checkDefinitionFederation } from '../federated/options-schema.ts';
import { InvalidDefinitionError } from '../federated/errors.ts';
import { RoundlogError } from '../errors.ts';
import type { RoundProgress } from '../federated/experiment.ts';
import { isCountMetric } from '../federated/aggregators.ts';
import { ModuleLoadError, confinedModule, importModule } from '../federated/load-module.ts';
import { replay, roundCurrent, upcast } from '../model/state.ts';
import { ExperimentFolderAmbiguousError, ExperimentFolderTakenError } from '../engine/names.ts';
import { readHistory } from '../engine/registry.ts';
import type { RunOwner } from '../model/events.ts';
import type { ExperimentStatus } from '../model/status.ts';
import { statusOf, type StatusOptions } from '../engine/lease.ts';
import { compareNames } from '../model/events.ts';
import { ExperimentHistoryDamagedError, InvalidEventDataError, isUnreadableHistory } from '../model/errors.ts';
import type { RecordedEvent } from '../log/types.ts';
import { table } from './args.ts';
import { describeEvent } from '../audit/describe.ts';

export type DefinitionRef = { module: string; export: string };

/** A path relative to the current directory when it is inside it, else as it is. */
export function displayPath(target: string, cwd: string = process.cwd()): string {
  const relative = path.relative(cwd, target);
  return relative === '' || relative.startsWith('..') || path.isAbsolute(relative) ? target : relative;
}

/**
 * Imports an experiment definition module (path relative to the workspace, confined to it: never
 * from a root's data areas, from `forbidden` (the folder being resumed) or from a breakpoint folder).
 */
export async function importDefinition(
  workspace: string,
  ref: DefinitionRef,
  forbidden: readonly string[] = [],
): Promise<ExperimentDefinition> {
  const file = await confinedModule(workspace, ref.module, 'definition.module', forbidden);
  // A module that is missing or does not load is no usage error: the file is named, with what to do.
  const module = (await importModule(file).catch((error: unknown) => {
    const reason = error instanceof ModuleLoadError ? error.reason : String((error as Error)?.message ?? error);
    throw new ModuleLoadError(
      file,
      `the experiment definition ${ref.module} cannot be imported (${reason}); check that it exists in the ` +
        `workspace ${workspace} and loads (a resume takes the folder run was issued from with --workspace DIR)`,
      { cause: error },
    );
  })) as Record<string, unknown>;
  const definition = module[ref.export] ?? (ref.export === 'default' ? module.definition : undefined);
  // Checked before anything uses it: the module is the user's code, its export may be anything.
  checkDefinition(definition, ref.module, ref.export, file);
  const checked = definition as ExperimentDefinition;
  // Its federation() is the user's code too: what it throws is named as the definition's, and what
  // it returns is checked (run and resume both call it before anything is recorded).
  const federation = async () => {
    let value: unknown;
    try {
      value = await checked.federation();
    } catch (error) {
      if (error instanceof RoundlogError) throw error;
      const what = `${(error as Error)?.name ?? 'Error'}: ${(error as Error)?.message ?? String(error)}`;
      throw new InvalidDefinitionError(ref.module, ref.export, file, `${ref.export}.federation()`, `threw ${what}`);
    }
    checkDefinitionFederation(value, ref.module, ref.export, file);
    return value as Awaited<ReturnType<ExperimentDefinition['federation']>>;
  };
  return { ...checked, federation };
}

export function progressLine(progress: RoundProgress, replied: number): string {
  const limit = progress.roundLimit === null ? '' : `/${progress.roundLimit}`;
  const metrics = Object.entries(progress.metrics)
    // A count (summed over the nodes: `isCountMetric`) as the whole number it is.
    .map(([name, value]) => `${name} ${isCountMetric(name) && Number.isInteger(value) ? value : value.toFixed(4)}`)
    .join('  ');
  const breakpoint = progress.breakpoint === null ? '' : `  breakpoint ${displayPath(progress.breakpoint)}`;
  const nodes = `nodes ${replied}/${progress.nodes.length} replied`;
  // The round by its index, as in breakpoint_RRRR; the count of completed rounds beside it.
  return `round ${progress.round} (${progress.roundCurrent}${limit} done)  ${nodes}  ${metrics}${breakpoint}`;
}

export type ExperimentListing = {
  folder: string;
  id: string;
  /** Null when the history is damaged: the state past the damaged record is unknown. */
  roundCurrent: number | null;
  roundLimit: number | null;
  /**
   * `created`, `running`, `crashed`, `failed`, `stopped` or `finished` (`experimentStatus`), or
   * `damaged` when its history cannot be read past a damaged record.
   */
  status: ExperimentStatus | 'damaged';
  /** The open run (its lease): owner, since when, last sign of life (ISO times); null when none is open. */
  run: { runId: string; owner: RunOwner; since: string; lastSeen: string } | null;
  /** The last run's failure (until another run starts): code, message, where and when. */
  failure: { code: string; message: string; round: number; attempt: number | null; at: string } | null;
  /**
   * Where the history is damaged (status `damaged`), else null: a damaged record (its file and byte
   * offset), or an event whose data does not have its type's shape (`file` and `offset` null, the
   * event's `revision` in its stream).
   */
  damage: { file: string | null; offset: number | null; revision?: string; reason: string } | null;
  /**
   * When which folder is the experiment's is unclear, else null: `EXPERIMENT_FOLDER_TAKEN` (the
   * folder it records holds another experiment's breakpoints) or `EXPERIMENT_FOLDER_AMBIGUOUS`
   * (several folders hold its breakpoints), with what to do. Its breakpoints are then not listed.
   */
  folderProblem: { code: string; message: string } | null;
  /**
   * The breakpoint folders on disk, by round. `paramsSha256` is the log's SHA-256 (hex) of the
   * round's parameters when the folder checks out against the log, else null, and then `damaged`
   * names the first problem (the file and why; `roundlog verify` lists them all).
   */
  breakpoints: Array<{
    round: number;
    path: string;
    paramsSha256: string | null;
    damaged: { file: string; reason: string } | null;
  }>;
  /** Rounds whose breakpoint is in the log but has no folder yet (projection lag). */
  missingBreakpoints: number[];
};

/** The experiments of a root; `options` says where its history is (default: its file log, or the environment's). */
export async function listExperiments(
  root: string,
  options: Omit<OpenRoundLogOptions, 'root'> & { status?: StatusOptions } = {},
): Promise<ExperimentListing[]> {
  const { status, ...roundLogOptions } = options;
  const rl = await openRoundLog({ ...roundLogOptions, root });
  try {
    const listing: ExperimentListing[] = [];
    for (const entry of await rl.listExperiments()) {
      let folderProblem: ExperimentListing['folderProblem'] = null;
      const opened = await rl.openExperiment(entry.experimentId).catch(async (error: unknown) => {
        if (isUnreadableHistory(error)) return error;
        if (error instanceof ExperimentFolderAmbiguousError || error instanceof ExperimentFolderTakenError) {
          // Its history reads; only which folder is its own is unclear: listed from the log, with
          // no breakpoints (the folder it records holds another's, or several claim to be its).
          folderProblem = { code: error.code, message: error.message };
          return { state: replay((await rl.withReader((log) => readHistory(log, entry))).events) };
        }
        throw error;
      });
      const damaged = isUnreadableHistory(opened);
      const state = damaged ? null : opened.state;
      const dir = path.join(rl.layout.experiments, state?.folder ?? entry.folder);
      const breakpoints = [];
      for (const name of folderProblem === null ? await listBreakpointFolders(dir) : []) {
        const folder = path.join(dir, name);
        // The round and the parameters are the log's; a folder that disagrees with the log is damaged.
        // (A damaged folder is listed by the round its name says.)
        const { round, problems } = await checkBreakpointFolder(folder, { state, root: rl.root });
        const record = problems.length === 0 && round !== null ? state?.rounds[round] : undefined;
        const first = problems[0];
        breakpoints.push({
          round: record?.round ?? roundOfFolder(name) ?? -1,
          path: folder,
          paramsSha256: record?.params.sha256 ?? null,
          damaged:
            record !== undefined
              ? null
              : first !== undefined
                ? { file: path.resolve(folder, first.file), reason: first.reason }
                : { file: folder, reason: 'its round is not in the history that can be read' },
        });
      }
      if (damaged) {
        listing.push({
          folderProblem: null,
          missingBreakpoints: [],
          folder: entry.folder,
          id: entry.experimentId,
          roundCurrent: null,
          roundLimit: null,
          status: 'damaged',
          run: null,
          failure: null,
          damage:
            opened instanceof ExperimentHistoryDamagedError
              ? { file: opened.file, offset: opened.offset, reason: opened.reason }
              : {
                  file: null,
                  offset: null,
                  revision: String(opened.revision),
                  reason:
                    opened instanceof InvalidEventDataError
                      ? `a ${opened.eventType} whose ${opened.field} ${opened.problem}`
                      : `a ${opened.eventType}, which this release of roundlog cannot read`,
                },
          breakpoints,
        });
        continue;
      }
      const missing =
        folderProblem === null
          ? await missingBreakpoints({ experimentsDir: rl.layout.experiments, blobs: rl.blobs }, state!)
          : [];
      listing.push({
        damage: null,
        folderProblem,
        missingBreakpoints: missing,
        folder: state!.folder,
        id: state!.created!.experimentId,
        roundCurrent: roundCurrent(state!),
        roundLimit: state!.settings.roundLimit,
        status: statusOf(state!, status),
        run:
          state!.run === null
            ? null
            : {
                runId: state!.run.runId,
                owner: state!.run.owner,
                since: state!.run.since.toISOString(),
                lastSeen: state!.run.lastSeen.toISOString(),
              },
        failure:
          state!.failure === null
            ? null
            : {
                code: state!.failure.code,
                message: state!.failure.message,
                round: state!.failure.round,
                attempt: state!.failure.attempt,
                at: state!.failure.timestamp.toISOString(),
              },
        breakpoints,
      });
    }
    return listing;
  } finally {
    await rl.close();
  }
}

/** One line per event of an experiment's stream: its timeline. */
export function experimentTimeline(events: readonly RecordedEvent[]): string[] {
  return table(
    ['rev', 'time', 'event', 'details'],
    events.map((recorded) => [
      String(recorded.revision),
      recorded.timestamp.toISOString(),
      recorded.type,
      describeEvent(upcast(recorded)),
    ]),
  );
}

/** The experiment folder as a tree, for the demo and for people; names in `compareNames` order (by number). */
export async function folderTree(dir: string, prefix = ''): Promise<string[]> {
  const entries = (await fs.readdir(dir, { withFileTypes: true })).sort((a, b) => compareNames(a.name, b.name));
  const lines: string[] = [];
  for (const [i, entry] of entries.entries()) {
    const last = i === entries.length - 1;
    lines.push(`${prefix}${last ? '└── ' : '├── '}${entry.name}${entry.isDirectory() ? '/' : ''}`);
    if (entry.isDirectory())
      lines.push(...(await folderTree(path.join(dir, entry.name), prefix + (last ? '    ' : '│   '))));
  }
  return lines;
}
