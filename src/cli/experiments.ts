/** `roundlog run`, `resume` and `ls`: experiments from the command line. */
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { listBreakpointFolders, missingBreakpoints, readBreakpoint } from '../projections/breakpoints.ts';
import { openRoundLog } from '../engine/round-log.ts';
import type { ExperimentDefinition } from '../federated/definition.ts';
import { Experiment, type RoundProgress } from '../federated/experiment.ts';
import { importModule } from '../federated/load-module.ts';
import { roundCurrent, upcast, type ExperimentState } from '../model/state.ts';
import type { RecordedEvent } from '../log/types.ts';
import { rootLayout } from '../root.ts';
import { UsageError, table, type Io } from './args.ts';
import { describeEvent } from '../audit/describe.ts';

type DefinitionRef = { module: string; export: string };

/** A path relative to the current directory when it is inside it, else as it is. */
export function displayPath(target: string): string {
  const relative = path.relative(process.cwd(), target);
  return relative === '' || relative.startsWith('..') || path.isAbsolute(relative) ? target : relative;
}

/** Imports an experiment definition module (path relative to the workspace). */
export async function importDefinition(workspace: string, ref: DefinitionRef): Promise<ExperimentDefinition> {
  const file = path.resolve(workspace, ref.module);
  const module = (await importModule(file).catch((error: unknown) => {
    throw new UsageError(`cannot import the experiment definition ${ref.module}: ${(error as Error).message}`);
  })) as Record<string, unknown>;
  const definition = (module[ref.export] ?? (ref.export === 'default' ? module.definition : undefined)) as ExperimentDefinition | undefined;
  if (typeof definition !== 'object' || definition === null || typeof definition.federation !== 'function') {
    throw new UsageError(`${ref.module} must export an experiment definition (${ref.export}) with tags, trainingPlan and a federation() function`);
  }
  return definition;
}

export function progressLine(progress: RoundProgress, replied: number): string {
  const limit = progress.roundLimit === null ? '' : `/${progress.roundLimit}`;
  const metrics = Object.entries(progress.metrics)
    .map(([name, value]) => `${name} ${value.toFixed(4)}`)
    .join('  ');
  const breakpoint = progress.breakpoint === null ? '' : `  breakpoint ${displayPath(progress.breakpoint)}`;
  return `round ${progress.roundCurrent}${limit}  nodes ${replied}/${progress.nodes.length} replied  ${metrics}${breakpoint}`;
}

export async function runCommand(moduleArg: string, options: { root: string; rounds?: number; workspace: string }, io: Io): Promise<number> {
  const module = path.relative(options.workspace, path.resolve(moduleArg)).split(path.sep).join('/');
  const definition = await importDefinition(options.workspace, { module, export: 'default' });
  const federation = await definition.federation();
  const experiment = await Experiment.create({
    ...definition,
    federation,
    root: options.root,
    workspace: options.workspace,
    definition: { module, export: 'default' },
    onRound: (p) => io.out(progressLine(p, p.nodes.length)),
  });
  try {
    io.out(`experiment ${experiment.experimentationFolder()} (${experiment.id}) in ${experiment.experimentationPath()}`);
    await experiment.run(options.rounds === undefined ? {} : { rounds: options.rounds, increase: true });
    io.out(`done: ${experiment.roundCurrent()} rounds completed`);
  } finally {
    await experiment.close();
  }
  return 0;
}

export async function resumeCommand(
  breakpoint: string | undefined,
  options: { root: string; rounds?: number; workspace: string; acceptPlanChange: boolean },
  io: Io,
): Promise<number> {
  const experiment = await Experiment.loadBreakpoint(breakpoint, {
    root: options.root,
    workspace: options.workspace,
    acceptPlanChange: options.acceptPlanChange,
    federation: async (config) => {
      const ref = (config as { definition?: DefinitionRef | null } | null)?.definition;
      if (!ref) throw new UsageError('this experiment was not created from a definition module; resume it from your own code with Experiment.loadBreakpoint');
      return (await importDefinition(options.workspace, ref)).federation();
    },
    onRound: (p) => io.out(progressLine(p, p.nodes.length)),
  });
  try {
    io.out(
      `resumed ${experiment.experimentationFolder()} (${experiment.id}) at round ${experiment.roundCurrent()}` +
        (experiment.roundLimit() === null ? '' : `/${experiment.roundLimit()}`),
    );
    await experiment.run(options.rounds === undefined ? {} : { rounds: options.rounds, increase: true });
    io.out(`done: ${experiment.roundCurrent()} rounds completed`);
  } finally {
    await experiment.close();
  }
  return 0;
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

export async function listExperiments(root: string): Promise<ExperimentListing[]> {
  const rl = await openRoundLog({ root });
  try {
    const listing: ExperimentListing[] = [];
    for (const entry of await rl.listExperiments()) {
      const { state } = await rl.openExperiment(entry.experimentId);
      const dir = path.join(rootLayout(root).experiments, state.folder);
      const breakpoints = [];
      for (const name of await listBreakpointFolders(dir)) {
        const folder = path.join(dir, name);
        const manifest = await readBreakpoint(folder).catch(() => null);
        breakpoints.push({ round: manifest?.round ?? -1, path: folder, paramsSha256: manifest?.params.sha256 ?? '(damaged: run roundlog verify)' });
      }
      const missing = await missingBreakpoints({ experimentsDir: rootLayout(root).experiments, blobs: rl.blobs }, state);
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

export async function lsCommand(options: { root: string; json: boolean }, io: Io): Promise<number> {
  const listing = await listExperiments(options.root);
  if (options.json) {
    io.out(JSON.stringify(listing, null, 2));
    return 0;
  }
  if (listing.length === 0) {
    io.out(`no experiment in ${options.root}`);
    return 0;
  }
  for (const line of table(
    ['folder', 'id', 'rounds', 'status', 'breakpoints'],
    listing.map((e) => [
      e.folder,
      e.id,
      `${e.roundCurrent}/${e.roundLimit ?? '-'}`,
      e.status,
      String(e.breakpoints.length) + (e.missingBreakpoints.length > 0 ? ` (${e.missingBreakpoints.length} not yet written: resume writes them)` : ''),
    ]),
  )) {
    io.out(line);
  }
  for (const e of listing.filter((x) => x.breakpoints.length > 0)) {
    io.out('');
    io.out(`${e.folder}:`);
    for (const line of table(
      ['round', 'params sha256', 'path'],
      e.breakpoints.map((b) => [String(b.round), b.paramsSha256, displayPath(b.path)]),
    )) {
      io.out(`  ${line}`);
    }
  }
  return 0;
}

/** One line per event of an experiment's stream: its timeline. */
export function experimentTimeline(events: readonly RecordedEvent[]): string[] {
  return table(
    ['rev', 'time', 'event', 'details'],
    events.map((recorded) => [String(recorded.revision), recorded.timestamp.toISOString(), recorded.type, describeEvent(upcast(recorded))]),
  );
}

/** The experiment folder as a tree, for the demo and for people. */
export async function folderTree(dir: string, prefix = ''): Promise<string[]> {
  const entries = (await fs.readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
  const lines: string[] = [];
  for (const [i, entry] of entries.entries()) {
    const last = i === entries.length - 1;
    lines.push(`${prefix}${last ? '└── ' : '├── '}${entry.name}${entry.isDirectory() ? '/' : ''}`);
    if (entry.isDirectory()) lines.push(...(await folderTree(path.join(dir, entry.name), prefix + (last ? '    ' : '│   '))));
  }
  return lines;
}
