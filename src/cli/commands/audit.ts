/**
 * `roundlog audit events|rounds|metric|lineage|actions`: the audit queries across the experiments of a
 * root. The work is done by `src/audit`; this module prints the results as a table (default), JSON
 * (`--json`) or CSV (`--csv`). `audit` alone is `audit events`; `audit events --follow` streams.
 */
import { EVENT_TYPES } from '../../audit/common.ts';
import { describeEvent, formatActor, formatDuration, formatNumber } from '../../audit/describe.ts';
import {
  ACTION_TYPES,
  auditActions,
  auditEvents,
  followEvents,
  lineage as lineageQuery,
  metricSeries,
  nodesOf,
  roundsTable,
  type ActionType,
  type AuditEvent,
  type AuditEventsOptions,
  type LineageDescendant,
  type LineageResult,
  type RoundRow,
  type RoundsResult,
} from '../../audit/index.ts';
import type { ExperimentEventType } from '../../model/events.ts';
import { UsageError, jsonLine, repeated, table, toJson, type Io } from '../args.ts';
import { defineCommand, withRoundLog } from '../command.ts';
import { EXPERIMENT, NEEDS_EXPERIMENT, TIME_OPTIONS, eventTypes, oneExperiment, timeRange } from '../filters.ts';
import { FORMAT_OPTIONS, count, csvLine, followUntilStopped, formatOf, type Format } from '../output.ts';
import { FOLLOW } from './history.ts';

const iso = (time: Date | null) => (time === null ? '' : time.toISOString());

/** An option that may be given more than once. */
const many = (describe: string) =>
  ({ type: 'string', describe: `${describe} (repeatable)`, coerce: repeated }) as const;

function noPositional(command: string, extra: readonly string[]): void {
  if (extra.length > 0) {
    throw new UsageError(
      `${command} takes no positional argument (got ${extra.join(' ')}); name experiments with --experiment`,
    );
  }
}

// ---- audit events ---------------------------------------------------------------------------

const EVENTS_CSV_HEADER = ['position', 'time', 'experiment', 'experiment_id', 'revision', 'type', 'nodes', 'details'];

function eventCsv(e: AuditEvent): string {
  const nodes = nodesOf(e).join(';');
  return csvLine([
    e.position,
    e.time.toISOString(),
    e.folder,
    e.experimentId,
    e.revision,
    e.type,
    nodes,
    describeEvent(e),
  ]);
}

const EVENTS_HEADER = [
  'time'.padEnd(24),
  'experiment'.padEnd(15),
  'rev'.padStart(5),
  'type'.padEnd(18),
  'details',
].join('  ');

function eventText(e: AuditEvent): string {
  const rev = String(e.revision).padStart(5);
  return `${e.time.toISOString()}  ${e.folder.padEnd(15)}  ${rev}  ${e.type.padEnd(18)}  ${describeEvent(e)}`;
}

export const events = defineCommand({
  name: 'events',
  isDefault: true,
  describe:
    'events of every experiment, filtered (the default query); --type, --experiment and --node repeat ' +
    '(--type also takes T1,T2); --since <= time < --until',
  options: {
    ...FORMAT_OPTIONS,
    follow: FOLLOW,
    type: many('an event type, e.g. Resumed or Resumed,Rewound'),
    experiment: many('an experiment: folder name, id or path'),
    node: many('a node'),
    ...TIME_OPTIONS,
  },
  examples: [
    ['roundlog audit --type Resumed,Rewound --since 1d', 'resumes and rewinds of the last day'],
    ['roundlog audit --node hospital-b --type NodeReplied --csv', "one node's replies as CSV"],
  ],
  run: async (args, { global, io, extra }) => {
    noPositional('audit events', extra);
    const format = formatOf(args);
    const types = eventTypes<ExperimentEventType>(args.type, EVENT_TYPES, 'an event type');
    const options: AuditEventsOptions = {
      ...(types === undefined ? {} : { types }),
      ...(args.experiment === undefined ? {} : { experiments: args.experiment }),
      ...(args.node === undefined ? {} : { nodes: args.node }),
      ...timeRange(args),
    };
    return withRoundLog(global, async (rl) => {
      if (args.follow) {
        if (format === 'csv') io.out(csvLine(EVENTS_CSV_HEADER));
        if (format === 'table') io.out(EVENTS_HEADER);
        const print = (e: AuditEvent) =>
          io.out(format === 'json' ? jsonLine(e) : format === 'csv' ? eventCsv(e) : eventText(e));
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
      for (const damage of result.damaged) io.err(`roundlog: ${damage.message}`);
      return result.damaged.length > 0 ? 1 : 0;
    });
  },
});

// ---- audit rounds ---------------------------------------------------------------------------

export const rounds = defineCommand({
  name: 'rounds',
  describe:
    'every attempt: nodes, sample sizes, metrics, duration, breakpoint folder; superseded and aborted ones marked',
  positionals: { experiment: EXPERIMENT },
  options: FORMAT_OPTIONS,
  needs: NEEDS_EXPERIMENT,
  run: async (args, { global, io, extra }) => {
    const format = formatOf(args);
    const experiment = oneExperiment('audit rounds', args.experiment, extra);
    printRounds(await withRoundLog(global, (rl) => roundsTable(rl, { experiment })), format, io);
    return 0;
  },
});

function breakpointCell(row: RoundRow): string {
  if (row.breakpoint.folder !== null) return row.breakpoint.folder;
  return row.breakpoint.requested ? 'missing' : '-';
}

function printRounds(result: RoundsResult, format: Format, io: Io): void {
  if (format === 'json') {
    io.out(toJson(result));
    return;
  }
  const metrics = result.metricNames;
  if (format === 'csv') {
    io.out(
      csvLine([
        ...['round', 'attempt', 'status', 'nodes', 'sample_sizes', 'samples', ...metrics, 'duration_ms'],
        ...['breakpoint_requested', 'breakpoint_folder', 'pruned', 'started', 'completed', 'position'],
      ]),
    );
    for (const row of result.rounds) {
      const nodes = row.nodes.map((n) => n.node).join(';');
      const sizes = row.nodes.map((n) => n.sampleSize ?? '').join(';');
      io.out(
        csvLine([
          ...[
            row.round,
            row.attempt,
            row.status,
            nodes,
            sizes,
            row.samples,
            ...metrics.map((name) => row.metrics[name]),
          ],
          ...[row.durationMs, row.breakpoint.requested, row.breakpoint.folder, row.pruned],
          ...[iso(row.startedAt), iso(row.completedAt), row.position],
        ]),
      );
    }
    return;
  }
  const { folder, id } = result.experiment;
  const attempts = count(result.rounds.length, 'attempt');
  io.out(`${folder} (${id}): ${count(result.roundCurrent, 'round')} on the current branch, ${attempts} recorded`);
  const headers = ['round', 'attempt', 'status', 'nodes (samples)', 'samples', ...metrics];
  const rows = result.rounds.map((row) => [
    String(row.round),
    String(row.attempt),
    row.status,
    row.nodes.map((n) => (n.sampleSize === null ? n.node : `${n.node} ${n.sampleSize}`)).join(', '),
    row.samples === null ? '-' : String(row.samples),
    ...metrics.map((name) => (row.metrics[name] === undefined ? '-' : formatNumber(row.metrics[name]!))),
    formatDuration(row.durationMs),
    breakpointCell(row),
    row.pruned ? 'pruned' : '-',
    row.completedAt === null ? '-' : row.completedAt.toISOString(),
  ]);
  for (const line of table([...headers, 'duration', 'breakpoint', 'pruned', 'completed'], rows)) io.out(line);
}

// ---- audit metric ---------------------------------------------------------------------------

export const metric = defineCommand({
  name: 'metric',
  describe: 'a metric over the current branch, one value per round',
  positionals: {
    experiment: EXPERIMENT,
    name: { type: 'string', demandOption: true, describe: 'the metric, e.g. loss' },
  },
  options: { ...FORMAT_OPTIONS, node: { type: 'string', describe: "one node's value instead of the aggregate" } },
  needs: "an experiment and a metric name, e.g. 'roundlog audit metric Experiment_0000 loss'",
  run: async (args, { global, io, extra }) => {
    const format = formatOf(args);
    if (extra.length > 0) {
      const given = [args.experiment, args.name, ...extra];
      throw new UsageError(
        `audit metric needs an experiment and a metric name, e.g. 'roundlog audit metric Experiment_0000 loss' ` +
          `(got ${given.length} arguments)`,
      );
    }
    const { experiment, name } = args;
    const node = args.node === undefined ? {} : { node: args.node };
    const result = await withRoundLog(global, (rl) => metricSeries(rl, { experiment, metric: name, ...node }));
    if (format === 'json') io.out(toJson(result));
    else if (format === 'csv') {
      io.out(csvLine(['round', 'attempt', 'value', 'time', 'position']));
      for (const p of result.points) io.out(csvLine([p.round, p.attempt, p.value, p.time.toISOString(), p.position]));
    } else {
      const at = result.node === null ? '' : ` at ${result.node}`;
      const { folder, id } = result.experiment;
      io.out(`${name}${at} over the current branch of ${folder} (${id}): ${count(result.points.length, 'round')}`);
      const rows = result.points.map((p) => [
        String(p.round),
        String(p.attempt),
        formatNumber(p.value),
        p.time.toISOString(),
      ]);
      for (const line of table(['round', 'attempt', name, 'time'], rows)) io.out(line);
    }
    return 0;
  },
});

// ---- audit lineage --------------------------------------------------------------------------

export const lineage = defineCommand({
  name: 'lineage',
  describe: 'ancestors (ForkedFrom, imports) and descendants (Forked)',
  positionals: { experiment: EXPERIMENT },
  options: FORMAT_OPTIONS,
  needs: NEEDS_EXPERIMENT,
  run: async (args, { global, io, extra }) => {
    const format = formatOf(args);
    const experiment = oneExperiment('audit lineage', args.experiment, extra);
    const result = await withRoundLog(global, (rl) => lineageQuery(rl, { experiment }));
    if (format === 'json') io.out(toJson(result));
    else if (format === 'csv') printLineageCsv(result, io);
    else printLineageTree(result, io);
    return 0;
  },
});

type LineageRow = {
  relation: 'ancestor' | 'self' | 'descendant';
  depth: number;
  id: string;
  folder: string;
  currentFolder: string | null;
  known: boolean;
  round: number | null;
  via: string | null;
  parentId: string | null;
  by: string | null;
  time: string | null;
};

function printLineageCsv(result: LineageResult, io: Io): void {
  const self = result.experiment;
  const rows: LineageRow[] = [];
  result.ancestors.forEach((a, i) => {
    const parentId = result.ancestors[i + 1]?.id ?? null;
    rows.push({ relation: 'ancestor', depth: -(i + 1), ...a, parentId, by: null, time: null });
  });
  const firstParent = result.ancestors[0]?.id ?? null;
  rows.push({
    ...{ relation: 'self', depth: 0, id: self.id, folder: self.folder, currentFolder: self.folder, known: true },
    ...{ round: null, via: null, parentId: firstParent, by: null, time: null },
  });
  const walk = (nodes: readonly LineageDescendant[], depth: number, parentId: string) => {
    for (const d of nodes) {
      const { id, folder, currentFolder, known, round } = d;
      const by = formatActor(d.by);
      rows.push({
        relation: 'descendant',
        depth,
        id,
        folder,
        currentFolder,
        known,
        round,
        via: 'fork',
        parentId,
        by,
        time: d.time.toISOString(),
      });
      walk(d.children, depth + 1, d.id);
    }
  };
  walk(result.descendants, 1, self.id);
  io.out(
    csvLine([
      'relation',
      'depth',
      'id',
      'folder',
      'current_folder',
      'known',
      'round',
      'via',
      'parent_id',
      'by',
      'time',
    ]),
  );
  for (const r of rows) {
    io.out(
      csvLine([
        r.relation,
        r.depth,
        r.id,
        r.folder,
        r.currentFolder,
        r.known,
        r.round,
        r.via,
        r.parentId,
        r.by,
        r.time,
      ]),
    );
  }
}

function printLineageTree(result: LineageResult, io: Io): void {
  const self = result.experiment;
  io.out(`${self.folder} (${self.id})`);
  io.out(result.ancestors.length === 0 ? 'ancestors: none' : 'ancestors (nearest first):');
  for (const a of result.ancestors) {
    const moved = a.currentFolder !== a.folder ? `, now ${a.currentFolder}` : '';
    const where = a.known ? moved : a.via === 'import' ? ', in another root' : ', not in this root';
    io.out(
      `  ${a.via === 'fork' ? 'forked from' : 'imported from'} ${a.folder} (${a.id}) ` +
        `after its round ${a.round}${where}`,
    );
  }
  io.out(result.descendants.length === 0 ? 'descendants: none' : 'descendants:');
  const tree = (nodes: readonly LineageDescendant[], prefix: string) => {
    nodes.forEach((d, i) => {
      const last = i === nodes.length - 1;
      const where = d.known ? (d.currentFolder !== d.folder ? `, now ${d.currentFolder}` : '') : ', not in this root';
      const when = `forked at round ${d.round} by ${formatActor(d.by)} on ${d.time.toISOString()}`;
      io.out(`${prefix}${last ? '└── ' : '├── '}${d.folder} (${d.id}) ${when}${where}`);
      tree(d.children, prefix + (last ? '    ' : '│   '));
    });
  };
  tree(result.descendants, '  ');
}

// ---- audit actions --------------------------------------------------------------------------

export const actions = defineCommand({
  name: 'actions',
  describe: 'who created, resumed, rewound, forked, changed or pruned what, and when',
  options: {
    ...FORMAT_OPTIONS,
    type: many('an action, e.g. Resumed or Resumed,Rewound'),
    experiment: many('an experiment: folder name, id or path'),
    user: many('a user'),
    host: many('a host'),
    ...TIME_OPTIONS,
  },
  run: async (args, { global, io, extra }) => {
    noPositional('audit actions', extra);
    const format = formatOf(args);
    const types = eventTypes<ActionType>(args.type, ACTION_TYPES, 'an action');
    const result = await withRoundLog(global, (rl) =>
      auditActions(rl, {
        ...(types === undefined ? {} : { types }),
        ...(args.experiment === undefined ? {} : { experiments: args.experiment }),
        ...(args.user === undefined ? {} : { users: args.user }),
        ...(args.host === undefined ? {} : { hosts: args.host }),
        ...timeRange(args),
      }),
    );
    if (format === 'json') io.out(toJson(result));
    else if (format === 'csv') {
      io.out(csvLine(['position', 'time', 'experiment', 'experiment_id', 'action', 'user', 'host', 'pid', 'details']));
      for (const a of result.actions) {
        const { user, host, pid } = a.by;
        io.out(
          csvLine([
            a.position,
            a.time.toISOString(),
            a.folder,
            a.experimentId,
            a.type,
            user,
            host,
            pid,
            describeEvent(a),
          ]),
        );
      }
    } else {
      const rows = result.actions.map((a) => {
        const { user, host, pid } = a.by;
        return [a.time.toISOString(), a.folder, a.type, user, host, String(pid), describeEvent(a)];
      });
      for (const line of table(['time', 'experiment', 'action', 'user', 'host', 'pid', 'details'], rows)) io.out(line);
    }
    for (const damage of result.damaged) io.err(`roundlog: ${damage.message}`);
    return result.damaged.length > 0 ? 1 : 0;
  },
});

export const audit = defineCommand({
  name: 'audit',
  describe: 'audit queries across the experiments of the root (default: events)',
  subcommandNoun: 'query',
  readsRoot: true,
  subcommands: [events, rounds, metric, lineage, actions],
});
