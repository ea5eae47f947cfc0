/**
 * `roundlog project`, `verify` and `gc`: the breakpoint folders written from the log, the root
 * checked against it, and retention applied. The work is in `src/engine`; this module parses and prints.
 */
import { formatRounds, gc as gcRoot, type PruneReport, type RoundRef } from '../../projections/index.ts';
import { followProjection, projectRoot, type ProjectReport, type ProjectionUpdate } from '../../projections/index.ts';
import { repairRoot, verifyRoot, type RepairReport, type VerifyReport } from '../../projections/index.ts';
import type { BlobUser } from '../../projections/index.ts';
import type { BlobProblem } from '../../blobs/types.ts';
import { UsageError, jsonLine, positiveInt, toJson } from '../args.ts';
import { defineCommand, storeOptions } from '../command.ts';
import { displayPath } from '../experiments.ts';
import { count } from '../output.ts';

const JSON_OPTION = { type: 'boolean', default: false, describe: 'print JSON' } as const;
const EXPERIMENT = { type: 'string', describe: 'one experiment (folder name, id or path); default every one' } as const;

export const project = defineCommand({
  name: 'project',
  describe:
    'write the breakpoint folders and TensorBoard event files the log asks for (shows the lag before); ' +
    '--follow keeps projecting as the log ' +
    'grows (here or on another machine, from EventStoreDB), keeps its checkpoint, stops on SIGINT or SIGTERM',
  positionals: { experiment: EXPERIMENT },
  options: {
    rebuild: {
      type: 'boolean',
      default: false,
      describe:
        'remove the folders the log can write again first (never superseded/); ' +
        'write every TensorBoard event file again',
    },
    follow: { type: 'boolean', default: false, describe: 'keep projecting every experiment as the log grows' },
    json: JSON_OPTION,
  },
  readsRoot: true,
  run: async (args, { global, io, extra }) => {
    if (extra.length > 0)
      throw new UsageError(`project takes at most one experiment (got ${[args.experiment, ...extra].join(' ')})`);
    if (args.follow) {
      if (args.rebuild || args.experiment !== undefined) {
        throw new UsageError(
          'project --follow projects every experiment and takes neither --rebuild nor an experiment',
        );
      }
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      io.signal?.addEventListener('abort', onSignal, { once: true });
      try {
        await followProjection({
          ...storeOptions(global),
          signal: stop.signal,
          onUpdate: (update) => io.out(args.json ? jsonLine(update) : followLine(update)),
        });
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        io.signal?.removeEventListener('abort', onSignal);
      }
      return 0;
    }
    const report = await projectRoot({
      ...storeOptions(global),
      rebuild: args.rebuild,
      ...(args.experiment === undefined ? {} : { experiment: args.experiment }),
    });
    if (args.json) io.out(toJson(report));
    else for (const line of projectLines(report, global.cwd)) io.out(line);
    for (const d of report.damaged) io.err(`roundlog: ${d.folder} not projected: ${d.message}`);
    return report.ok ? 0 : 1;
  },
});

export const verify = defineCommand({
  name: 'verify',
  describe:
    'check every log record, every blob, every breakpoint folder and every cache (indexes, snapshots, ' +
    'checkpoints) against the log; name each problem and exit 1 if there is any; --repair heals what good ' +
    'copies allow and names what it cannot',
  options: {
    json: JSON_OPTION,
    repair: {
      type: 'boolean',
      default: false,
      describe:
        'heal damaged or missing blobs from breakpoint folder copies, link damaged folder files again from the ' +
        'store, write folders and snapshots again from the log; exit 1 if anything is left',
    },
    'repair-tail': {
      type: 'boolean',
      default: false,
      describe:
        'first cut off stray non-zero bytes found after the data of the log (no record is there); ' +
        'writing commands refuse to open a log that has them',
    },
  },
  readsRoot: true,
  run: async (args, { global, io, extra }) => {
    if (extra.length > 0)
      throw new UsageError(`verify checks the whole root and takes no argument (got ${extra.join(' ')})`);
    if (args.repair) {
      const repaired = await repairRoot(storeOptions(global));
      if (args.json) io.out(toJson(repaired));
      else for (const line of repairLines(repaired, global.cwd)) io.out(line);
      return repaired.ok ? 0 : 1;
    }
    const report = await verifyRoot({ ...storeOptions(global), repairTail: args['repair-tail'] });
    if (args.json) io.out(toJson(report));
    else for (const line of verifyLines(report)) io.out(line);
    return report.ok ? 0 : 1;
  },
});

export const gc = defineCommand({
  name: 'gc',
  describe:
    "retention: delete the parameters of rounds outside the policy (default: each experiment's own); events stay, " +
    'RoundsPruned records it',
  positionals: { experiment: EXPERIMENT },
  options: {
    'keep-last': { type: 'string', describe: 'N: keep the last N rounds', coerce: positiveInt('--keep-last') },
    'keep-every': {
      type: 'string',
      describe: 'K: and every K-th round (index a multiple of K); needs --keep-last',
      coerce: positiveInt('--keep-every'),
    },
    'dry-run': { type: 'boolean', default: false, describe: 'say what would be pruned and deleted; change nothing' },
    json: JSON_OPTION,
  },
  readsRoot: true,
  run: async (args, { global, io, extra }) => {
    if (extra.length > 0)
      throw new UsageError(`gc takes at most one experiment (got ${[args.experiment, ...extra].join(' ')})`);
    const keepLast = args['keep-last'];
    const keepEvery = args['keep-every'];
    if (keepEvery !== undefined && keepLast === undefined) {
      throw new UsageError('--keep-every needs --keep-last N too (the last N rounds are always part of the policy)');
    }
    const report = await gcRoot({
      ...storeOptions(global),
      dryRun: args['dry-run'],
      ...(keepLast === undefined ? {} : { retention: { keepLast, keepEvery: keepEvery ?? null } }),
      ...(args.experiment === undefined ? {} : { experiment: args.experiment }),
    });
    if (args.json) io.out(toJson(report));
    else for (const line of gcLines(report, global.cwd)) io.out(line);
    for (const d of report.damaged) io.err(`roundlog: ${d.folder} left alone: ${d.message}`);
    return report.damaged.length > 0 ? 1 : 0;
  },
});

export function followLine(update: ProjectionUpdate): string {
  switch (update.kind) {
    case 'started':
      return (
        `following ${update.store} from ` +
        (update.checkpoint !== null
          ? `checkpoint ${update.checkpoint}`
          : update.ignored === null
            ? 'the beginning (no checkpoint)'
            : `the beginning (checkpoint ignored: ${update.ignored})`) +
        `: projection lag ${count(update.lagEvents, 'event')} (log end ${update.logEnd ?? 'none'})`
      );
    case 'caughtUp':
      return (
        `caught up at position ${update.position ?? 'none'} (${count(update.experiments, 'experiment')} projected); ` +
        'following live events'
      );
    case 'projected': {
      const what =
        update.written.length === 0
          ? 'up to date'
          : `wrote ${update.written.map((f) => f.split(/[\\/]/).pop()).join(', ')}`;
      const problems = update.problems.map((p) => `; problem: ${p}`).join('');
      const lag = `lag ${update.lagMs} ms${update.live ? '' : ', catch-up'}`;
      return `${update.folder}: ${what} (position ${update.position}, ${lag})${problems}`;
    }
  }
}

/** `round 19`, `rounds 18, 19`, `rounds 3-9`: rounds named with the number they take. */
function roundsNamed(rounds: readonly number[]): string {
  return `${new Set(rounds).size === 1 ? 'round' : 'rounds'} ${formatRounds(rounds)}`;
}

/** How the lag of a view is said: what a round lacks (`breakpoints`: its folder; `tensorboard`: its scalars). */
function viewLag(view: string, rounds: readonly number[]): string {
  if (view === 'breakpoints') return `${count(rounds.length, 'breakpoint folder')} missing (${roundsNamed(rounds)})`;
  if (view === 'tensorboard')
    return `TensorBoard scalars of ${count(rounds.length, 'round')} missing (${roundsNamed(rounds)})`;
  return `${view} of ${count(rounds.length, 'round')} missing (${roundsNamed(rounds)})`;
}

export function projectLines(report: ProjectReport, cwd: string = process.cwd()): string[] {
  const lines: string[] = [];
  if (report.experiments.length === 0) return [`no experiment in ${report.root}`];
  let written = 0;
  let eventFiles = 0;
  let removed = 0;
  let moved = 0;
  for (const e of report.experiments) {
    const views = e.views ?? [{ ...e, name: 'breakpoints' }];
    for (const view of views) {
      if (view.name === 'tensorboard') eventFiles += view.written.length;
      else written += view.written.length;
    }
    removed += e.removed.length;
    moved += e.movedAside.length;
    const lag = views.filter((v) => v.lagBefore.length > 0).map((v) => viewLag(v.name, v.lagBefore));
    lines.push(`${e.folder}: projection lag before: ${lag.length === 0 ? 'none' : lag.join('; ')}`);
    for (const folder of e.removed) lines.push(`  removed  ${displayPath(folder, cwd)}`);
    for (const round of e.rescued)
      lines.push(`  gave round ${round}'s bytes back to the blob store from its folder before removing it`);
    for (const folder of e.written) lines.push(`  wrote    ${displayPath(folder, cwd)}`);
    for (const folder of e.movedAside) lines.push(`  moved aside (not of this history) to ${displayPath(folder, cwd)}`);
    if (e.pruned.length > 0) lines.push(`  skipped ${roundsNamed(e.pruned)}: pruned by retention`);
    for (const problem of e.problems) lines.push(`  problem: ${problem}`);
    if (e.lagAfter.length > 0) lines.push(`  still missing: ${roundsNamed(e.lagAfter)}`);
  }
  lines.push(
    `projected ${count(report.experiments.length, 'experiment')}${report.rebuild ? ' (rebuild)' : ''}: ` +
      `${written} folder${written === 1 ? '' : 's'} written, ${removed} removed, ${moved} moved aside; ` +
      `lag now ${report.experiments.reduce((n, e) => n + e.lagAfter.length, 0)}; ` +
      `${count(eventFiles, 'TensorBoard event file')} written`,
  );
  return lines;
}

export function verifyLines(report: VerifyReport): string[] {
  const { log, blobs, history, references, breakpoints } = report;
  const lines = [
    `log:   ${count(log.eventsChecked, 'record')}, ${count(log.bytesChecked, 'byte')} checked, ` +
      count(log.problems.length, 'problem'),
  ];
  for (const p of log.problems) lines.push(`  ${p.file} at byte ${p.offset}: ${p.reason}`);
  lines.push(
    `blobs: ${count(blobs.blobsChecked, 'blob')}, ${count(blobs.bytesChecked, 'byte')} checked, ` +
      count(blobs.problems.length, 'problem'),
  );
  for (const p of blobs.problems) {
    const users = p.kind === 'stray_file' ? '' : `; referenced by ${describeUsers(p.referencedBy)}`;
    lines.push(`  ${p.file}: ${describeBlobProblem(p)}${users}`);
  }
  lines.push(
    `history: ${count(history.experimentsChecked, 'experiment')}, ${count(history.eventsRead, 'event')} read, ` +
      `${count(history.problems.length, 'problem')}`,
  );
  for (const p of history.problems) lines.push(`  ${p.experiment} (stream ${p.stream}): ${p.reason}`);
  lines.push(
    `references: ${count(references.blobsChecked, 'blob reference')} of kept rounds checked, ` +
      `${count(references.problems.length, 'problem')}`,
  );
  for (const p of references.problems)
    lines.push(`  ${p.experiment}${p.round === null ? '' : ` round ${p.round}`}: ${p.reason}`);
  lines.push(
    `breakpoints: ${count(breakpoints.foldersChecked, 'folder')} checked, ` +
      count(breakpoints.problems.length, 'problem'),
  );
  const viewProblem = (p: (typeof breakpoints.problems)[number]) => {
    const where = p.file === '.' ? p.folder : `${p.folder}/${p.file}`;
    lines.push(`  ${where} (${p.experiment}${p.round === null ? '' : ` round ${p.round}`}): ${p.reason}`);
  };
  breakpoints.problems.forEach(viewProblem);
  const otherViews = report.views.filter((v) => v.name !== 'breakpoints');
  for (const view of otherViews) {
    const what = view.name === 'tensorboard' ? 'event file' : 'view';
    lines.push(`${view.name}: ${count(view.checked, what)} checked, ${count(view.problems.length, 'problem')}`);
    view.problems.forEach(viewProblem);
  }
  lines.push(
    `caches: ${count(report.caches.filesChecked, 'file')} checked, ${count(report.caches.problems.length, 'problem')}`,
  );
  for (const p of report.caches.problems) lines.push(`  ${p.file}: ${p.reason}`);
  if (report.lag.length === 0) lines.push('projection lag: none');
  else
    for (const l of report.lag)
      lines.push(
        `projection lag: ${l.experiment} ${roundsNamed(l.rounds)} ` +
          `${new Set(l.rounds).size === 1 ? 'has' : 'have'} no ` +
          `${l.view === 'tensorboard' ? 'TensorBoard scalars' : 'breakpoint folder'} yet ` +
          '(roundlog project writes them)',
      );
  for (const note of report.notes) lines.push(`note: ${note}`);
  const total =
    log.problems.length +
    blobs.problems.length +
    history.problems.length +
    references.problems.length +
    breakpoints.problems.length +
    otherViews.reduce((n, v) => n + v.problems.length, 0) +
    report.caches.problems.length;
  lines.push(report.ok ? 'ok: no problem found' : `${total} problem${total === 1 ? '' : 's'} found`);
  return lines;
}

export function repairLines(report: RepairReport, cwd: string = process.cwd()): string[] {
  const lines: string[] = [];
  for (const b of report.blobsHealed) lines.push(`healed blob ${b.sha256} from ${displayPath(b.from, cwd)}`);
  for (const f of report.filesRelinked)
    lines.push(`healed ${displayPath(f.file, cwd)}: linked again to blob ${f.sha256} of the store`);
  for (const folder of report.foldersWritten) lines.push(`wrote ${displayPath(folder, cwd)} again from the log`);
  for (const file of report.snapshotsRewritten)
    lines.push(`wrote snapshot ${displayPath(file, cwd)} again from the log`);
  if (report.projectionCheckpointRemoved !== null) {
    lines.push(
      `removed the damaged projection checkpoint ${displayPath(report.projectionCheckpointRemoved, cwd)} ` +
        '(a cache: project --follow projects from the beginning and writes it again)',
    );
  }
  for (const { file, bytes } of report.tempFilesRemoved)
    lines.push(`removed ${displayPath(file, cwd)} (${bytes} bytes), a temp file of an upload whose writer is gone`);
  for (const { file, action } of report.logCachesRebuilt) {
    lines.push(
      action === 'rebuilt'
        ? `rebuilt the segment index ${displayPath(file, cwd)} from its segment's records (a cache of the log)`
        : `removed the damaged heads checkpoint ${displayPath(file, cwd)} (a cache: the log reads its records ` +
            'and writes it again at its next segment seal)',
    );
  }
  for (const p of report.problems) {
    const where = p.file === '.' ? p.folder : `${p.folder}/${p.file}`;
    // A reason that starts with the path (an error's message) is not given the path twice.
    const shown = displayPath(where, cwd);
    lines.push(
      p.reason.startsWith(`${where} `)
        ? `not healed: ${shown} ${p.reason.slice(where.length + 1)}`
        : `not healed: ${shown}: ${p.reason}`,
    );
  }
  for (const u of report.unhealable) {
    lines.push(
      `cannot heal blob ${u.sha256} (${u.state}): no good copy in this root; ` +
        `referenced by ${describeUsers(u.referencedBy)}. ` +
        'Copy a breakpoint folder that holds it (from a backup or another root) under experiments/ and run ' +
        'verify --repair again, or run those rounds again',
    );
  }
  const healed =
    report.blobsHealed.length +
    report.filesRelinked.length +
    report.foldersWritten.length +
    report.snapshotsRewritten.length +
    report.logCachesRebuilt.length;
  lines.push(`repair: ${healed === 0 ? 'nothing healed' : `${healed} healed`}; verify after the repair:`);
  lines.push(...verifyLines(report.after));
  return lines;
}

/** The experiments and rounds that reference a blob, as verify and verify --repair name them. */
function describeUsers(users: readonly BlobUser[]): string {
  if (users.length === 0) return 'nothing the log keeps';
  return users
    .map((r) =>
      r.round === null
        ? `${r.experiment} (${r.what})`
        : `${r.experiment} ${r.branch === 'superseded' ? 'superseded ' : ''}round ${r.round}`,
    )
    .join(', ');
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

export function gcLines(report: PruneReport, cwd: string = process.cwd()): string[] {
  const would = report.dryRun ? 'would prune' : 'pruned';
  const lines: string[] = [];
  if (report.dryRun) lines.push('dry run: nothing is changed');
  if (report.experiments.length === 0) lines.push(`no experiment in ${report.root}`);
  for (const e of report.experiments) {
    if (e.retention === null) {
      lines.push(`${e.folder}: no retention policy, left alone (give --keep-last N, or set one on the experiment)`);
      continue;
    }
    const every = e.retention.keepEvery === null ? '' : ` and every ${ordinal(e.retention.keepEvery)} round`;
    const policy = `keep the last ${e.retention.keepLast}${every}`;
    const head = `${e.folder}: ${policy} (${e.policyFrom === 'option' ? 'given' : "the experiment's own"}): `;
    lines.push(
      head +
        (e.pruned.length === 0
          ? 'nothing to prune'
          : `${would} ${e.pruned.length} round${e.pruned.length === 1 ? '' : 's'} (${describeRounds(e.pruned)})`),
    );
    if (e.kept.length > 0) lines.push(`  kept ${describeRounds(e.kept)}`);
    if (e.alreadyPruned.length > 0) lines.push(`  pruned before: ${describeRounds(e.alreadyPruned)}`);
    if (e.event !== null)
      lines.push(`  recorded as RoundsPruned at revision ${e.event.revision} (log position ${e.event.position})`);
  }
  for (const folder of report.foldersRemoved)
    lines.push(`${report.dryRun ? 'would remove' : 'removed'} ${displayPath(folder, cwd)}`);
  const deletedBytes = report.blobsDeleted.reduce((n, b) => n + b.bytes, 0);
  lines.push(
    `${report.dryRun ? 'would delete' : 'deleted'} ${count(report.blobsDeleted.length, 'blob')} ` +
      `(${deletedBytes} bytes); ` +
      `${report.bytesFreed} bytes ${report.dryRun ? 'would be freed' : 'freed'} on disk; ` +
      `${count(report.blobsStillReferenced, 'blob')} of pruned rounds kept (still referenced elsewhere)`,
  );
  const events = report.experiments.filter((e) => e.event !== null).length;
  if (!report.dryRun)
    lines.push(`every event stays: ${count(events, 'RoundsPruned event')} appended, nothing else written to the log`);
  return lines;
}

function describeRounds(rounds: readonly RoundRef[]): string {
  const current = rounds.filter((r) => r.branch === 'current').map((r) => r.round);
  const superseded = rounds.filter((r) => r.branch === 'superseded').map((r) => r.round);
  const parts: string[] = [];
  if (current.length > 0) parts.push(`round${current.length === 1 ? '' : 's'} ${formatRounds(current)}`);
  if (superseded.length > 0)
    parts.push(`superseded round${superseded.length === 1 ? '' : 's'} ${formatRounds(superseded)}`);
  return parts.join('; ');
}

function ordinal(n: number): string {
  const suffix =
    n % 100 >= 11 && n % 100 <= 13 ? 'th' : (({ 1: 'st', 2: 'nd', 3: 'rd' } as Record<number, string>)[n % 10] ?? 'th');
  return `${n}${suffix}`;
}
