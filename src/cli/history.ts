/**
 * `roundlog history` and `roundlog audit`: an experiment's timeline (once or live) and the audit
 * queries across the experiments of a root. The work is done by `src/audit`; this module parses
 * the options and prints the results as a table (default), JSON (`--json`) or CSV (`--csv`).
 *
 * With `--follow`, output is streamed: text lines, CSV rows after one header, or one JSON object
 * per line (JSON Lines); a line on stderr says when the history has been printed and new events
 * follow. The command runs until SIGINT or SIGTERM and then exits 0.
 */
import type { Observable, Subscription } from 'rxjs';
import { EVENT_TYPES, type Followed } from '../audit/common.ts';
import { describeEntry, describeEvent, formatActor, formatDuration, formatNumber } from '../audit/describe.ts';
import { actorOf, experimentHistory, followHistory, type HistoryEntry } from '../audit/history.ts';
import {
  ACTION_TYPES,
  auditActions,
  auditEvents,
  followEvents,
  lineage,
  metricSeries,
  nodesOf,
  roundsTable,
  type ActionType,
  type AuditEvent,
  type AuditEventsOptions,
  type LineageDescendant,
  type RoundRow,
} from '../audit/queries.ts';
import { openRoundLog, type RoundLog } from '../projections/index.ts';
import type { ExperimentEventType } from '../model/events.ts';
import { resolveRoot } from '../root.ts';
import { UsageError, parse, table, toJson, type Io } from './args.ts';

export type Command = (args: string[], io: Io) => Promise<number>;

/** An `Io` may carry an `AbortSignal` that stops a `--follow` (as SIGINT does), for callers in the same process. */
export type FollowIo = Io & { signal?: AbortSignal };

// ---- output helpers -------------------------------------------------------------------------

type Format = 'table' | 'json' | 'csv';

function formatOf(values: { json?: boolean; csv?: boolean }): Format {
  if (values.json && values.csv) throw new UsageError('--json and --csv cannot be used together');
  return values.json ? 'json' : values.csv ? 'csv' : 'table';
}

/** One CSV record (RFC 4180): fields with a comma, quote or line break are quoted, quotes doubled. */
export function csvLine(cells: ReadonlyArray<string | number | bigint | boolean | null | undefined>): string {
  return cells
    .map((cell) => {
      const text = cell === null || cell === undefined ? '' : String(cell);
      return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
    })
    .join(',');
}

/** One compact JSON line (bigints as decimal strings). */
function jsonLine(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

const iso = (time: Date | null) => (time === null ? '' : time.toISOString());
const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/** Runs `fn` with a round log on the root of `--root` or `ROUNDLOG_DIR`, closed afterwards. */
async function withRoundLog<T>(root: string | undefined, io: Io, fn: (rl: RoundLog) => Promise<T>): Promise<T> {
  const rl = await openRoundLog({ root: resolveRoot(root, io.env) });
  try {
    return await fn(rl);
  } finally {
    await rl.close();
  }
}

/**
 * Prints a live query until SIGINT/SIGTERM (or `io.signal`), then unsubscribes (which closes its
 * log handle) and resolves 0. An error of the query rejects.
 */
function followUntilStopped<T>(source: Observable<Followed<T>>, print: (item: T) => void, io: FollowIo, what: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let subscription: Subscription | undefined;
    let done = false;
    const finish = (settle: () => void) => {
      if (done) return;
      done = true;
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      io.signal?.removeEventListener('abort', stop);
      subscription?.unsubscribe();
      settle();
    };
    const stop = () => finish(() => resolve(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    io.signal?.addEventListener('abort', stop, { once: true });
    if (io.signal?.aborted) stop();
    subscription = source.subscribe({
      next: (item) => {
        if (item.kind === 'item') print(item.item);
        else io.err(`-- ${what}: caught up at log position ${item.position ?? '(empty log)'}; following new events, Ctrl-C to stop`);
      },
      error: (error: unknown) => finish(() => reject(error)),
      complete: () => finish(() => resolve(0)),
    });
    if (done) subscription.unsubscribe();
  });
}

function oneExperiment(positionals: string[], usage: string): string {
  if (positionals.length === 0) throw new UsageError(`${usage} needs an experiment: a folder name (Experiment_0003), an id, or a path`);
  if (positionals.length > 1) throw new UsageError(`${usage} takes one experiment, got ${positionals.length}: ${positionals.join(' ')}`);
  return positionals[0]!;
}

/**
 * A time: ISO 8601 (`2025-06-01`, `2025-06-01T14:00:00Z`), or a duration before now
 * (`90s`, `15m`, `2h`, `7d`).
 */
export function parseTime(flag: string, value: string, now: Date = new Date()): Date {
  const relative = /^(\d+)(ms|s|m|h|d)$/.exec(value);
  if (relative !== null) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[relative[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
    return new Date(now.getTime() - Number(relative[1]) * unit);
  }
  const time = /^\d{4}-\d{2}-\d{2}/.test(value) ? new Date(value) : new Date(Number.NaN);
  if (Number.isNaN(time.getTime())) {
    throw new UsageError(`${flag} must be an ISO 8601 time (2025-06-01, 2025-06-01T14:00:00Z) or a duration before now (90s, 15m, 2h, 7d); got ${JSON.stringify(value)}`);
  }
  return time;
}

function timeRange(values: { since?: string; until?: string }): { since?: Date; until?: Date } {
  const now = new Date();
  const since = values.since === undefined ? undefined : parseTime('--since', values.since, now);
  const until = values.until === undefined ? undefined : parseTime('--until', values.until, now);
  if (since !== undefined && until !== undefined && since.getTime() > until.getTime()) {
    throw new UsageError(`--since (${since.toISOString()}) is after --until (${until.toISOString()})`);
  }
  return { ...(since === undefined ? {} : { since }), ...(until === undefined ? {} : { until }) };
}

/** `--type` values (repeatable, or comma-separated), matched to the catalogue case-insensitively. */
function eventTypes<T extends string>(values: string[] | undefined, allowed: readonly T[], what: string): T[] | undefined {
  if (values === undefined) return undefined;
  const out: T[] = [];
  for (const raw of values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v.length > 0)) {
    const type = allowed.find((t) => t.toLowerCase() === raw.toLowerCase());
    if (type === undefined) throw new UsageError(`--type ${JSON.stringify(raw)} is not ${what}; use one of ${allowed.join(', ')}`);
    if (!out.includes(type)) out.push(type);
  }
  if (out.length === 0) throw new UsageError('--type needs a value');
  return out;
}

// ---- roundlog history -----------------------------------------------------------------------

const HISTORY_CSV_HEADER = ['position', 'revision', 'time', 'kind', 'round', 'attempt', 'user', 'host', 'pid', 'details'];

function historyCsv(entry: HistoryEntry): string {
  const by = actorOf(entry);
  const round = entry.kind === 'round' || entry.kind === 'aborted' || entry.kind === 'started' ? entry : null;
  return csvLine([
    entry.position,
    entry.revision,
    entry.time.toISOString(),
    entry.kind,
    round?.round,
    round?.attempt,
    by?.user,
    by?.host,
    by?.pid,
    describeEntry(entry),
  ]);
}

const HISTORY_HEADER = `${'time'.padEnd(24)}  ${'rev'.padStart(5)}  ${'event'.padEnd(11)}  details`;

function historyText(entry: HistoryEntry): string {
  return `${entry.time.toISOString()}  ${String(entry.revision).padStart(5)}  ${entry.kind.padEnd(11)}  ${describeEntry(entry)}`;
}

const historyCommand: Command = async (args, io) => {
  const { values, positionals } = parse(args, {
    root: { type: 'string' },
    json: { type: 'boolean', default: false },
    csv: { type: 'boolean', default: false },
    follow: { type: 'boolean', short: 'f', default: false },
  });
  const format = formatOf(values);
  const experiment = oneExperiment(positionals, 'history');
  return withRoundLog(values.root, io, async (rl) => {
    if (values.follow) {
      if (format === 'csv') io.out(csvLine(HISTORY_CSV_HEADER));
      if (format === 'table') io.out(HISTORY_HEADER);
      const print = format === 'json' ? (e: HistoryEntry) => io.out(jsonLine(e)) : format === 'csv' ? (e: HistoryEntry) => io.out(historyCsv(e)) : (e: HistoryEntry) => io.out(historyText(e));
      return followUntilStopped(followHistory(rl, { experiment }), print, io, `history of ${experiment}`);
    }
    const result = await experimentHistory(rl, { experiment });
    if (format === 'json') io.out(toJson(result));
    else if (format === 'csv') {
      io.out(csvLine(HISTORY_CSV_HEADER));
      for (const entry of result.entries) io.out(historyCsv(entry));
    } else {
      io.out(`${result.experiment.folder} (${result.experiment.id}): ${count(result.roundCurrent, 'round')} completed on the current branch`);
      io.out(HISTORY_HEADER);
      for (const entry of result.entries) io.out(historyText(entry));
    }
    return 0;
  });
};

// ---- roundlog audit events --------------------------------------------------------------------

const EVENTS_CSV_HEADER = ['position', 'time', 'experiment', 'experiment_id', 'revision', 'type', 'nodes', 'details'];

function eventCsv(event: AuditEvent): string {
  return csvLine([event.position, event.time.toISOString(), event.folder, event.experimentId, event.revision, event.type, nodesOf(event).join(';'), describeEvent(event)]);
}

const EVENTS_HEADER = `${'time'.padEnd(24)}  ${'experiment'.padEnd(15)}  ${'rev'.padStart(5)}  ${'type'.padEnd(18)}  details`;

function eventText(event: AuditEvent): string {
  return `${event.time.toISOString()}  ${event.folder.padEnd(15)}  ${String(event.revision).padStart(5)}  ${event.type.padEnd(18)}  ${describeEvent(event)}`;
}

const auditEventsCommand: Command = async (args, io) => {
  const { values, positionals } = parse(args, {
    root: { type: 'string' },
    json: { type: 'boolean', default: false },
    csv: { type: 'boolean', default: false },
    follow: { type: 'boolean', short: 'f', default: false },
    type: { type: 'string', multiple: true },
    experiment: { type: 'string', multiple: true },
    node: { type: 'string', multiple: true },
    since: { type: 'string' },
    until: { type: 'string' },
  });
  if (positionals.length > 0) throw new UsageError(`audit events takes no positional argument (got ${positionals.join(' ')}); name experiments with --experiment`);
  const format = formatOf(values);
  const types = eventTypes<ExperimentEventType>(values.type, EVENT_TYPES, 'an event type');
  const options: AuditEventsOptions = {
    ...(types === undefined ? {} : { types }),
    ...(values.experiment === undefined ? {} : { experiments: values.experiment }),
    ...(values.node === undefined ? {} : { nodes: values.node }),
    ...timeRange(values),
  };
  return withRoundLog(values.root, io, async (rl) => {
    if (values.follow) {
      if (format === 'csv') io.out(csvLine(EVENTS_CSV_HEADER));
      if (format === 'table') io.out(EVENTS_HEADER);
      const print = format === 'json' ? (e: AuditEvent) => io.out(jsonLine(e)) : format === 'csv' ? (e: AuditEvent) => io.out(eventCsv(e)) : (e: AuditEvent) => io.out(eventText(e));
      return followUntilStopped(followEvents(rl, options), print, io, 'audit events');
    }
    const result = await auditEvents(rl, options);
    if (format === 'json') io.out(toJson(result));
    else if (format === 'csv') {
      io.out(csvLine(EVENTS_CSV_HEADER));
      for (const event of result.events) io.out(eventCsv(event));
    } else {
      io.out(EVENTS_HEADER);
      for (const event of result.events) io.out(eventText(event));
      io.out(count(result.events.length, 'event'));
    }
    return 0;
  });
};

// ---- roundlog audit rounds --------------------------------------------------------------------

function breakpointCell(row: RoundRow): string {
  if (row.breakpoint.folder !== null) return row.breakpoint.folder;
  return row.breakpoint.requested ? 'missing' : '-';
}

const auditRoundsCommand: Command = async (args, io) => {
  const { values, positionals } = parse(args, {
    root: { type: 'string' },
    json: { type: 'boolean', default: false },
    csv: { type: 'boolean', default: false },
  });
  const format = formatOf(values);
  const experiment = oneExperiment(positionals, 'audit rounds');
  const result = await withRoundLog(values.root, io, (rl) => roundsTable(rl, { experiment }));
  if (format === 'json') {
    io.out(toJson(result));
    return 0;
  }
  if (format === 'csv') {
    io.out(
      csvLine([
        'round', 'attempt', 'status', 'nodes', 'sample_sizes', 'samples', ...result.metricNames, 'duration_ms',
        'breakpoint_requested', 'breakpoint_folder', 'pruned', 'started', 'completed', 'position',
      ]),
    );
    for (const row of result.rounds) {
      io.out(
        csvLine([
          row.round, row.attempt, row.status, row.nodes.map((n) => n.node).join(';'), row.nodes.map((n) => n.sampleSize ?? '').join(';'), row.samples,
          ...result.metricNames.map((name) => row.metrics[name]), row.durationMs, row.breakpoint.requested, row.breakpoint.folder, row.pruned,
          iso(row.startedAt), iso(row.completedAt), row.position,
        ]),
      );
    }
    return 0;
  }
  const attempts = result.rounds.length;
  io.out(`${result.experiment.folder} (${result.experiment.id}): ${count(result.roundCurrent, 'round')} on the current branch, ${count(attempts, 'attempt')} recorded`);
  for (const line of table(
    ['round', 'attempt', 'status', 'nodes (samples)', 'samples', ...result.metricNames, 'duration', 'breakpoint', 'pruned', 'completed'],
    result.rounds.map((row) => [
      String(row.round),
      String(row.attempt),
      row.status,
      row.nodes.map((n) => (n.sampleSize === null ? n.node : `${n.node} ${n.sampleSize}`)).join(', '),
      row.samples === null ? '-' : String(row.samples),
      ...result.metricNames.map((name) => (row.metrics[name] === undefined ? '-' : formatNumber(row.metrics[name]!))),
      formatDuration(row.durationMs),
      breakpointCell(row),
      row.pruned ? 'pruned' : '-',
      row.completedAt === null ? '-' : row.completedAt.toISOString(),
    ]),
  )) {
    io.out(line);
  }
  return 0;
};

// ---- roundlog audit metric ------------------------------------------------------------------

const auditMetricCommand: Command = async (args, io) => {
  const { values, positionals } = parse(args, {
    root: { type: 'string' },
    json: { type: 'boolean', default: false },
    csv: { type: 'boolean', default: false },
    node: { type: 'string' },
  });
  const format = formatOf(values);
  if (positionals.length !== 2) {
    throw new UsageError(`audit metric needs an experiment and a metric name, e.g. 'roundlog audit metric Experiment_0000 loss' (got ${positionals.length} arguments)`);
  }
  const [experiment, metric] = positionals as [string, string];
  const result = await withRoundLog(values.root, io, (rl) => metricSeries(rl, { experiment, metric, ...(values.node === undefined ? {} : { node: values.node }) }));
  if (format === 'json') io.out(toJson(result));
  else if (format === 'csv') {
    io.out(csvLine(['round', 'attempt', 'value', 'time', 'position']));
    for (const p of result.points) io.out(csvLine([p.round, p.attempt, p.value, p.time.toISOString(), p.position]));
  } else {
    io.out(
      `${metric}${result.node === null ? '' : ` at ${result.node}`} over the current branch of ${result.experiment.folder} ` +
        `(${result.experiment.id}): ${count(result.points.length, 'round')}`,
    );
    for (const line of table(['round', 'attempt', metric, 'time'], result.points.map((p) => [String(p.round), String(p.attempt), formatNumber(p.value), p.time.toISOString()]))) {
      io.out(line);
    }
  }
  return 0;
};

// ---- roundlog audit lineage -------------------------------------------------------------------

type LineageRow = { relation: 'ancestor' | 'self' | 'descendant'; depth: number; id: string; folder: string; currentFolder: string | null; known: boolean; round: number | null; via: string | null; parentId: string | null; by: string | null; time: string | null };

const auditLineageCommand: Command = async (args, io) => {
  const { values, positionals } = parse(args, {
    root: { type: 'string' },
    json: { type: 'boolean', default: false },
    csv: { type: 'boolean', default: false },
  });
  const format = formatOf(values);
  const experiment = oneExperiment(positionals, 'audit lineage');
  const result = await withRoundLog(values.root, io, (rl) => lineage(rl, { experiment }));
  if (format === 'json') {
    io.out(toJson(result));
    return 0;
  }
  const self = result.experiment;
  if (format === 'csv') {
    const rows: LineageRow[] = [];
    result.ancestors.forEach((a, i) =>
      rows.push({ relation: 'ancestor', depth: -(i + 1), id: a.id, folder: a.folder, currentFolder: a.currentFolder, known: a.known, round: a.round, via: a.via, parentId: result.ancestors[i + 1]?.id ?? null, by: null, time: null }),
    );
    rows.push({ relation: 'self', depth: 0, id: self.id, folder: self.folder, currentFolder: self.folder, known: true, round: null, via: null, parentId: result.ancestors[0]?.id ?? null, by: null, time: null });
    const walk = (nodes: readonly LineageDescendant[], depth: number, parentId: string) => {
      for (const d of nodes) {
        rows.push({ relation: 'descendant', depth, id: d.id, folder: d.folder, currentFolder: d.currentFolder, known: d.known, round: d.round, via: 'fork', parentId, by: formatActor(d.by), time: d.time.toISOString() });
        walk(d.children, depth + 1, d.id);
      }
    };
    walk(result.descendants, 1, self.id);
    io.out(csvLine(['relation', 'depth', 'id', 'folder', 'current_folder', 'known', 'round', 'via', 'parent_id', 'by', 'time']));
    for (const r of rows) io.out(csvLine([r.relation, r.depth, r.id, r.folder, r.currentFolder, r.known, r.round, r.via, r.parentId, r.by, r.time]));
    return 0;
  }
  io.out(`${self.folder} (${self.id})`);
  io.out(result.ancestors.length === 0 ? 'ancestors: none' : 'ancestors (nearest first):');
  for (const a of result.ancestors) {
    const where = a.known ? (a.currentFolder !== a.folder ? `, now ${a.currentFolder}` : '') : a.via === 'import' ? ', in another root' : ', not in this root';
    io.out(`  ${a.via === 'fork' ? 'forked from' : 'imported from'} ${a.folder} (${a.id}) after its round ${a.round}${where}`);
  }
  io.out(result.descendants.length === 0 ? 'descendants: none' : 'descendants:');
  const tree = (nodes: readonly LineageDescendant[], prefix: string) => {
    nodes.forEach((d, i) => {
      const last = i === nodes.length - 1;
      const where = d.known ? (d.currentFolder !== d.folder ? `, now ${d.currentFolder}` : '') : ', not in this root';
      io.out(`${prefix}${last ? '└── ' : '├── '}${d.folder} (${d.id}) forked at round ${d.round} by ${formatActor(d.by)} on ${d.time.toISOString()}${where}`);
      tree(d.children, prefix + (last ? '    ' : '│   '));
    });
  };
  tree(result.descendants, '  ');
  return 0;
};

// ---- roundlog audit actions -----------------------------------------------------------------

const auditActionsCommand: Command = async (args, io) => {
  const { values, positionals } = parse(args, {
    root: { type: 'string' },
    json: { type: 'boolean', default: false },
    csv: { type: 'boolean', default: false },
    type: { type: 'string', multiple: true },
    experiment: { type: 'string', multiple: true },
    user: { type: 'string', multiple: true },
    host: { type: 'string', multiple: true },
    since: { type: 'string' },
    until: { type: 'string' },
  });
  if (positionals.length > 0) throw new UsageError(`audit actions takes no positional argument (got ${positionals.join(' ')}); name experiments with --experiment`);
  const format = formatOf(values);
  const types = eventTypes<ActionType>(values.type, ACTION_TYPES, 'an action');
  const result = await withRoundLog(values.root, io, (rl) =>
    auditActions(rl, {
      ...(types === undefined ? {} : { types }),
      ...(values.experiment === undefined ? {} : { experiments: values.experiment }),
      ...(values.user === undefined ? {} : { users: values.user }),
      ...(values.host === undefined ? {} : { hosts: values.host }),
      ...timeRange(values),
    }),
  );
  if (format === 'json') io.out(toJson(result));
  else if (format === 'csv') {
    io.out(csvLine(['position', 'time', 'experiment', 'experiment_id', 'action', 'user', 'host', 'pid', 'details']));
    for (const a of result.actions) {
      io.out(csvLine([a.position, a.time.toISOString(), a.folder, a.experimentId, a.type, a.by.user, a.by.host, a.by.pid, describeEvent(a)]));
    }
  } else {
    for (const line of table(
      ['time', 'experiment', 'action', 'user', 'host', 'pid', 'details'],
      result.actions.map((a) => [a.time.toISOString(), a.folder, a.type, a.by.user, a.by.host, String(a.by.pid), describeEvent(a)]),
    )) {
      io.out(line);
    }
  }
  return 0;
};

// ---- roundlog audit -------------------------------------------------------------------------

const AUDIT_QUERIES: Record<string, Command> = {
  events: auditEventsCommand,
  rounds: auditRoundsCommand,
  metric: auditMetricCommand,
  lineage: auditLineageCommand,
  actions: auditActionsCommand,
};

const auditCommand: Command = async (args, io) => {
  const [first, ...rest] = args;
  if (first === undefined || first.startsWith('-')) return auditEventsCommand(args, io);
  const query = Object.hasOwn(AUDIT_QUERIES, first) ? AUDIT_QUERIES[first] : undefined;
  if (query === undefined) {
    throw new UsageError(`unknown audit query ${JSON.stringify(first)}; use one of ${Object.keys(AUDIT_QUERIES).join(', ')}`);
  }
  return query(rest, io);
};

/** Commands this module adds to `roundlog`, by name. */
export const commands: Record<string, Command> = {
  history: historyCommand,
  audit: auditCommand,
};

/** Lines for `roundlog help` (the command column is 38 wide, as in main's help). */
export const help: string[] = [
  'history <experiment> [--follow] [--json|--csv]',
  '                                      the timeline of one experiment: creation, rounds (nodes,',
  '                                      metrics), aborted attempts, resumes (who, host), rewinds,',
  '                                      forks, settings changes, pruning; --follow keeps printing',
  '                                      new events until Ctrl-C (--json: one object per line)',
  'audit [events] [--type T] [--experiment E] [--node N] [--since TIME] [--until TIME]',
  '      [--follow] [--json|--csv]       events of every experiment, filtered; --type, --experiment',
  '                                      and --node repeat (--type also takes T1,T2); TIME is ISO',
  '                                      8601 or a duration ago (15m, 2h, 7d); --since <= t < --until',
  'audit rounds <experiment> [--json|--csv]',
  '                                      every attempt: nodes, sample sizes, metrics, duration,',
  '                                      breakpoint folder; superseded and aborted ones marked',
  'audit metric <experiment> <name> [--node N] [--json|--csv]',
  '                                      a metric over the current branch, one value per round',
  'audit lineage <experiment> [--json|--csv]',
  '                                      ancestors (ForkedFrom, imports) and descendants (Forked)',
  'audit actions [--type T] [--experiment E] [--user U] [--host H] [--since TIME] [--until TIME]',
  '      [--json|--csv]                  who created, resumed, rewound, forked, changed or pruned',
  '                                      what, and when',
];
