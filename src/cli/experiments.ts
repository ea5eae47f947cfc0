/** What the experiment commands (run, resume, ls, demo) share: definitions, progress lines, listings, trees. */
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { listBreakpointFolders, missingBreakpoints, readBreakpoint } from '../projections/breakpoints/index.ts';
import { openRoundLog, type OpenRoundLogOptions } from '../projections/index.ts';
import type { ExperimentDefinition } from '../federated/definition.ts';
import type { RoundProgress } from '../federated/experiment.ts';
import { importModule, workspaceModule } from '../federated/load-module.ts';
import { roundCurrent, upcast, type ExperimentState } from '../model/state.ts';
import type { RecordedEvent } from '../log/types.ts';
import { UsageError, table } from './args.ts';
import { describeEvent } from '../audit/describe.ts';

export type DefinitionRef = { module: string; export: string };

/** A path relative to the current directory when it is inside it, else as it is. */
export function displayPath(target: string, cwd: string = process.cwd()): string {
  const relative = path.relative(cwd, target);
  return relative === '' || relative.startsWith('..') || path.isAbsolute(relative) ? target : relative;
}

/** Imports an experiment definition module (path relative to the workspace). */
export async function importDefinition(workspace: string, ref: DefinitionRef): Promise<ExperimentDefinition> {
  const file = workspaceModule(workspace, ref.module);
  const module = (await importModule(file).catch((error: unknown) => {
    throw new UsageError(`cannot import the experiment definition ${ref.module}: ${(error as Error).message}`);
  })) as Record<string, unknown>;
  const definition = (module[ref.export] ?? (ref.export === 'default' ? module.definition : undefined)) as
    ExperimentDefinition | undefined;
  if (typeof definition !== 'object' || definition === null || typeof definition.federation !== 'function') {
    throw new UsageError(
      `${ref.module} must export an experiment definition (${ref.export}) ` +
        'with tags, trainingPlan and a federation() function',
    );
  }
  return definition;
}

export function progressLine(progress: RoundProgress, replied: number): string {
  const limit = progress.roundLimit === null ? '' : `/${progress.roundLimit}`;
  const metrics = Object.entries(progress.metrics)
    .map(([name, value]) => `${name} ${value.toFixed(4)}`)
    .join('  ');
  const breakpoint = progress.breakpoint === null ? '' : `  breakpoint ${displayPath(progress.breakpoint)}`;
  const nodes = `nodes ${replied}/${progress.nodes.length} replied`;
  // The round by its index, as in breakpoint_RRRR; the count of completed rounds beside it.
  return `round ${progress.round} (${progress.roundCurrent}${limit} done)  ${nodes}  ${metrics}${breakpoint}`;
}

export type ExperimentListing = {
  folder: string;
  id: string;
  roundCurrent: number;
  roundLimit: number | null;
  status: 'created' | 'in progress' | 'interrupted' | 'finished';
  breakpoints: Array<{ round: number; path: string; paramsSha256: string }>;
  /** Rounds whose breakpoint is in the log but has no folder yet (projection lag). */
  missingBreakpoints: number[];
};

export function statusOf(state: ExperimentState): ExperimentListing['status'] {
  if (state.finished) return 'finished';
  if (state.openAttempt !== null) return 'interrupted';
  return roundCurrent(state) === 0 ? 'created' : 'in progress';
}

/** The experiments of a root; `options` says where its history is (default: its file log, or the environment's). */
export async function listExperiments(
  root: string,
  options: Omit<OpenRoundLogOptions, 'root'> = {},
): Promise<ExperimentListing[]> {
  const rl = await openRoundLog({ ...options, root });
  try {
    const listing: ExperimentListing[] = [];
    for (const entry of await rl.listExperiments()) {
      const { state } = await rl.openExperiment(entry.experimentId);
      const dir = path.join(rl.layout.experiments, state.folder);
      const breakpoints = [];
      for (const name of await listBreakpointFolders(dir)) {
        const folder = path.join(dir, name);
        const manifest = await readBreakpoint(folder).catch(() => null);
        breakpoints.push({
          round: manifest?.round ?? -1,
          path: folder,
          paramsSha256: manifest?.params.sha256 ?? '(damaged: run roundlog verify)',
        });
      }
      const missing = await missingBreakpoints({ experimentsDir: rl.layout.experiments, blobs: rl.blobs }, state);
      listing.push({
        missingBreakpoints: missing,
        folder: state.folder,
        id: state.created!.experimentId,
        roundCurrent: roundCurrent(state),
        roundLimit: state.settings.roundLimit,
        status: statusOf(state),
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

/** The experiment folder as a tree, for the demo and for people. */
export async function folderTree(dir: string, prefix = ''): Promise<string[]> {
  const entries = (await fs.readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
  const lines: string[] = [];
  for (const [i, entry] of entries.entries()) {
    const last = i === entries.length - 1;
    lines.push(`${prefix}${last ? '└── ' : '├── '}${entry.name}${entry.isDirectory() ? '/' : ''}`);
    if (entry.isDirectory())
      lines.push(...(await folderTree(path.join(dir, entry.name), prefix + (last ? '    ' : '│   '))));
  }
  return lines;
}
