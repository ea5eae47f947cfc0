/** CLI commands: see each command's help line. */
import { resolveRoot } from '../root.ts';
import { formatRounds, gc, type PruneReport, type RoundRef } from '../projections/index.ts';
import { followProjection, projectRoot, type ProjectReport, type ProjectionUpdate } from '../projections/index.ts';
import { verifyRoot, type VerifyReport } from '../projections/index.ts';
import type { BlobProblem } from '../blobs/types.ts';
import { UsageError, parse, toJson, type Io } from './args.ts';
import { displayPath } from './experiments.ts';

export type Command = (args: string[], io: Io) => Promise<number>;

/** Commands this module adds to `roundlog`, by name. */
export const commands: Record<string, Command> = {
  project: projectCommand,
  verify: verifyCommand,
  gc: gcCommand,
};

/** Lines for `roundlog help`, one per command. */
export const help: string[] = [
  'project [<experiment>] [--rebuild] [--json]',
  '                                      write the breakpoint folders the log asks for (shows the lag before);',
  '                                      --rebuild removes the folders the log can write again first',
  '                                      (never superseded/)',
  'project --follow [--json]             keep projecting as the log grows (here or on another machine,',
  '                                      from EventStoreDB); shows the lag at start and of each update,',
  '                                      keeps its checkpoint; stops on SIGINT or SIGTERM',
  'gc [<experiment>] [--keep-last N [--keep-every K]] [--dry-run] [--json]',
  "                                      retention: delete the parameters of rounds outside the policy",
  "                                      (default: each experiment's own); events stay, RoundsPruned records it",
  'verify [--json]                       check every log record, every blob, every breakpoint folder',
  '                                      against the log; name each problem and exit 1 if there is any',
];

async function projectCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, {
    root: { type: 'string' },
    rebuild: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    follow: { type: 'boolean', default: false },
  });
  if (positionals.length > 1) throw new UsageError(`project takes at most one experiment (got ${positionals.join(' ')})`);
  if (values.follow) {
    if (values.rebuild || positionals.length > 0) throw new UsageError('project --follow projects every experiment and takes neither --rebuild nor an experiment');
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      await followProjection({
        root: resolveRoot(values.root, io.env),
        env: io.env,
        signal: stop.signal,
        onUpdate: (update) => io.out(values.json ? JSON.stringify(update, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) : followLine(update)),
      });
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    return 0;
  }
  const report = await projectRoot({
    root: resolveRoot(values.root, io.env),
    rebuild: values.rebuild,
    ...(positionals[0] === undefined ? {} : { experiment: positionals[0] }),
  });
  if (values.json) io.out(toJson(report));
  else for (const line of projectLines(report)) io.out(line);
  return report.ok ? 0 : 1;
}

export function followLine(update: ProjectionUpdate): string {
  switch (update.kind) {
    case 'started':
      return (
        `following ${update.store} from ${update.checkpoint === null ? 'the beginning (no checkpoint)' : `checkpoint ${update.checkpoint}`}: ` +
        `projection lag ${update.lagEvents} event${update.lagEvents === 1 ? '' : 's'} (log end ${update.logEnd ?? 'none'})`
      );
    case 'caughtUp':
      return `caught up at position ${update.position ?? 'none'} (${update.experiments} experiment${update.experiments === 1 ? '' : 's'} projected); following live events`;
    case 'projected': {
      const what = update.written.length === 0 ? 'up to date' : `wrote ${update.written.map((f) => f.split(/[\\/]/).pop()).join(', ')}`;
      const problems = update.problems.map((p) => `; problem: ${p}`).join('');
      return `${update.folder}: ${what} (position ${update.position}, lag ${update.lagMs} ms${update.live ? '' : ', catch-up'})${problems}`;
    }
  }
}

export function projectLines(report: ProjectReport): string[] {
  const lines: string[] = [];
  if (report.experiments.length === 0) return [`no experiment in ${report.root}`];
  let written = 0;
  let removed = 0;
  let moved = 0;
  for (const e of report.experiments) {
    written += e.written.length;
    removed += e.removed.length;
    moved += e.movedAside.length;
    lines.push(
      `${e.folder}: projection lag before: ` +
        (e.lagBefore.length === 0 ? 'none' : `${e.lagBefore.length} breakpoint folder${e.lagBefore.length === 1 ? '' : 's'} missing (rounds ${formatRounds(e.lagBefore)})`),
    );
    for (const folder of e.removed) lines.push(`  removed  ${displayPath(folder)}`);
    for (const round of e.rescued) lines.push(`  gave round ${round}'s bytes back to the blob store from its folder before removing it`);
    for (const folder of e.written) lines.push(`  wrote    ${displayPath(folder)}`);
    for (const folder of e.movedAside) lines.push(`  moved aside (not of this history) to ${displayPath(folder)}`);
    if (e.pruned.length > 0) lines.push(`  skipped rounds ${formatRounds(e.pruned)}: pruned by retention`);
    for (const problem of e.problems) lines.push(`  problem: ${problem}`);
    if (e.lagAfter.length > 0) lines.push(`  still missing: rounds ${formatRounds(e.lagAfter)}`);
  }
  lines.push(
    `projected ${report.experiments.length} experiment${report.experiments.length === 1 ? '' : 's'}${report.rebuild ? ' (rebuild)' : ''}: ` +
      `${written} folder${written === 1 ? '' : 's'} written, ${removed} removed, ${moved} moved aside; ` +
      `lag now ${report.experiments.reduce((n, e) => n + e.lagAfter.length, 0)}`,
  );
  return lines;
}

async function verifyCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { root: { type: 'string' }, json: { type: 'boolean', default: false } });
  if (positionals.length > 0) throw new UsageError(`verify checks the whole root and takes no argument (got ${positionals.join(' ')})`);
  const report = await verifyRoot({ root: resolveRoot(values.root, io.env) });
  if (values.json) io.out(toJson(report));
  else for (const line of verifyLines(report)) io.out(line);
  return report.ok ? 0 : 1;
}

export function verifyLines(report: VerifyReport): string[] {
  const { log, blobs, history, references, breakpoints } = report;
  const lines = [`log:   ${log.eventsChecked} records, ${log.bytesChecked} bytes checked, ${log.problems.length} problems`];
  for (const p of log.problems) lines.push(`  ${p.file} at byte ${p.offset}: ${p.reason}`);
  lines.push(`blobs: ${blobs.blobsChecked} blobs, ${blobs.bytesChecked} bytes checked, ${blobs.problems.length} problems`);
  for (const p of blobs.problems) lines.push(`  ${p.file}: ${describeBlobProblem(p)}`);
  lines.push(`history: ${history.experimentsChecked} experiments, ${history.eventsRead} events read, ${history.problems.length} problems`);
  for (const p of history.problems) lines.push(`  ${p.experiment} (stream ${p.stream}): ${p.reason}`);
  lines.push(`references: ${references.blobsChecked} blob references of kept rounds checked, ${references.problems.length} problems`);
  for (const p of references.problems) lines.push(`  ${p.experiment}${p.round === null ? '' : ` round ${p.round}`}: ${p.reason}`);
  lines.push(`breakpoints: ${breakpoints.foldersChecked} folders checked, ${breakpoints.problems.length} problems`);
  for (const p of breakpoints.problems) {
    const where = p.file === '.' ? p.folder : `${p.folder}/${p.file}`;
    lines.push(`  ${where} (${p.experiment}${p.round === null ? '' : ` round ${p.round}`}): ${p.reason}`);
  }
  if (report.lag.length === 0) lines.push('projection lag: none');
  else for (const l of report.lag) lines.push(`projection lag: ${l.experiment} rounds ${formatRounds(l.rounds)} have no breakpoint folder yet (roundlog project writes them)`);
  for (const note of report.notes) lines.push(`note: ${note}`);
  const total = log.problems.length + blobs.problems.length + history.problems.length + references.problems.length + breakpoints.problems.length;
  lines.push(report.ok ? 'ok: no problem found' : `${total} problem${total === 1 ? '' : 's'} found`);
  return lines;
}

function describeBlobProblem(p: BlobProblem): string {
  switch (p.kind) {
    case 'hash_mismatch':
      return `blob ${p.sha256} now hashes to ${p.actual}`;
    case 'unreadable':
      return `blob ${p.sha256} cannot be read: ${p.reason}`;
    default:
      return 'a file that is not a blob';
  }
}

async function gcCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, {
    root: { type: 'string' },
    'keep-last': { type: 'string' },
    'keep-every': { type: 'string' },
    'dry-run': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  });
  if (positionals.length > 1) throw new UsageError(`gc takes at most one experiment (got ${positionals.join(' ')})`);
  if (values['keep-every'] !== undefined && values['keep-last'] === undefined) {
    throw new UsageError('--keep-every needs --keep-last N too (the last N rounds are always part of the policy)');
  }
  const retention =
    values['keep-last'] === undefined
      ? undefined
      : {
          keepLast: positiveInt('--keep-last', values['keep-last']),
          keepEvery: values['keep-every'] === undefined ? null : positiveInt('--keep-every', values['keep-every']),
        };
  const report = await gc({
    root: resolveRoot(values.root, io.env),
    dryRun: values['dry-run'],
    ...(retention === undefined ? {} : { retention }),
    ...(positionals[0] === undefined ? {} : { experiment: positionals[0] }),
  });
  if (values.json) io.out(toJson(report));
  else for (const line of gcLines(report)) io.out(line);
  return 0;
}

export function gcLines(report: PruneReport): string[] {
  const would = report.dryRun ? 'would prune' : 'pruned';
  const lines: string[] = [];
  if (report.dryRun) lines.push('dry run: nothing is changed');
  if (report.experiments.length === 0) lines.push(`no experiment in ${report.root}`);
  for (const e of report.experiments) {
    if (e.retention === null) {
      lines.push(`${e.folder}: no retention policy, left alone (give --keep-last N, or set one on the experiment)`);
      continue;
    }
    const policy = `keep the last ${e.retention.keepLast}${e.retention.keepEvery === null ? '' : ` and every ${ordinal(e.retention.keepEvery)} round`}`;
    const head = `${e.folder}: ${policy} (${e.policyFrom === 'option' ? 'given' : "the experiment's own"}): `;
    lines.push(head + (e.pruned.length === 0 ? 'nothing to prune' : `${would} ${e.pruned.length} round${e.pruned.length === 1 ? '' : 's'} (${describeRounds(e.pruned)})`));
    if (e.kept.length > 0) lines.push(`  kept ${describeRounds(e.kept)}`);
    if (e.alreadyPruned.length > 0) lines.push(`  pruned before: ${describeRounds(e.alreadyPruned)}`);
    if (e.event !== null) lines.push(`  recorded as RoundsPruned at revision ${e.event.revision} (log position ${e.event.position})`);
  }
  for (const folder of report.foldersRemoved) lines.push(`${report.dryRun ? 'would remove' : 'removed'} ${displayPath(folder)}`);
  const deletedBytes = report.blobsDeleted.reduce((n, b) => n + b.bytes, 0);
  lines.push(
    `${report.dryRun ? 'would delete' : 'deleted'} ${report.blobsDeleted.length} blob${report.blobsDeleted.length === 1 ? '' : 's'} (${deletedBytes} bytes); ` +
      `${report.bytesFreed} bytes ${report.dryRun ? 'would be freed' : 'freed'} on disk; ` +
      `${report.blobsStillReferenced} blob${report.blobsStillReferenced === 1 ? '' : 's'} of pruned rounds kept (still referenced elsewhere)`,
  );
  const events = report.experiments.filter((e) => e.event !== null).length;
  if (!report.dryRun) lines.push(`every event stays: ${events} RoundsPruned event${events === 1 ? '' : 's'} appended, nothing else written to the log`);
  return lines;
}

function describeRounds(rounds: readonly RoundRef[]): string {
  const current = rounds.filter((r) => r.branch === 'current').map((r) => r.round);
  const superseded = rounds.filter((r) => r.branch === 'superseded').map((r) => r.round);
  const parts: string[] = [];
  if (current.length > 0) parts.push(`round${current.length === 1 ? '' : 's'} ${formatRounds(current)}`);
  if (superseded.length > 0) parts.push(`superseded round${superseded.length === 1 ? '' : 's'} ${formatRounds(superseded)}`);
  return parts.join('; ');
}

function ordinal(n: number): string {
  const suffix = n % 100 >= 11 && n % 100 <= 13 ? 'th' : ({ 1: 'st', 2: 'nd', 3: 'rd' } as Record<number, string>)[n % 10] ?? 'th';
  return `${n}${suffix}`;
}

function positiveInt(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a positive integer (got ${JSON.stringify(value)})`);
  return n;
}
