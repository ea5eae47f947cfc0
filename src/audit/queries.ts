/**
 * Audit queries over a roundlog root: events across every experiment (filtered by type,
 * experiment, node and time, once or live), the rounds table of an experiment (superseded rounds
 * and aborted attempts included, marked), a metric's series over the current branch, lineage
 * through forks, and who resumed, rewound or changed what. Each query takes a `RoundLog` and one
 * options object and returns one typed result; nothing here writes to the root.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Observable } from 'rxjs';
import { foldersByPosition } from '../projections/breakpoints/index.ts';
import { ExperimentNotFoundError } from '../model/errors.ts';
import type { RoundLog } from '../projections/index.ts';
import { InvalidArgumentError } from '../errors.ts';
import {
  REGISTRY_STREAM,
  type Actor,
  type ExperimentEvent,
  type ExperimentEventType,
  type ExperimentRegistered,
} from '../model/events.ts';
import { roundCurrent, upcast } from '../model/state.ts';
import type { EventLog, RecordedEvent } from '../log/types.ts';
import {
  EVENT_TYPES,
  checkTimeRange,
  inTimeRange,
  followLog,
  isEventType,
  openWithHistory,
  resolveExperiment,
  type ExperimentRef,
  type FollowOptions,
  type Followed,
} from './common.ts';
import { MetricNotFoundError } from './errors.ts';

// ---- events across experiments ------------------------------------------------------------

/** An experiment event with the experiment it belongs to and its place in the log. */
export type AuditEvent = ExperimentEvent &
  Readonly<{
    experimentId: string;
    /** The experiment's folder as of this event (a resume into a renamed folder changes it). */
    folder: string;
    stream: string;
    revision: bigint;
    position: bigint;
    time: Date;
  }>;

export type AuditEventsOptions = {
  /** Only events of these types. Default: every type. */
  types?: readonly ExperimentEventType[];
  /** Only events of these experiments (ids, folder names, stream names or paths). Default: every experiment. */
  experiments?: readonly string[];
  /**
   * Only events that name one of these nodes: a `RoundStarted` selecting it, its `NodeReplied`,
   * a `RoundCompleted` it replied to, an `ExperimentCreated` restricted to a list that holds it.
   */
  nodes?: readonly string[];
  /** Only events appended at or after this time. */
  since?: Date;
  /** Only events appended before this time. */
  until?: Date;
};

export type AuditEventsResult = Readonly<{
  events: readonly AuditEvent[];
  /** The last log position read (events after it are not in this result), null for an empty log. */
  lastPosition: bigint | null;
}>;

/** A filter with its experiment names resolved to ids. */
type EventFilter = Readonly<{
  types: ReadonlySet<string> | null;
  experimentIds: ReadonlySet<string> | null;
  nodes: readonly string[] | null;
  since: Date | undefined;
  until: Date | undefined;
}>;

async function resolveFilter(rl: RoundLog, options: AuditEventsOptions): Promise<EventFilter> {
  if (options.types !== undefined) {
    for (const type of options.types) {
      if (!isEventType(type)) throw new InvalidArgumentError('types', `must name experiment event types (${EVENT_TYPES.join(', ')})`, type);
    }
  }
  if (options.nodes !== undefined) {
    for (const node of options.nodes) {
      if (typeof node !== 'string' || node.length === 0) throw new InvalidArgumentError('nodes', 'must be non-empty node ids', node);
    }
  }
  checkTimeRange(options.since, options.until);
  let experimentIds: Set<string> | null = null;
  if (options.experiments !== undefined) {
    experimentIds = new Set();
    for (const name of options.experiments) experimentIds.add((await resolveExperiment(rl, name)).ref.id);
  }
  return {
    types: options.types === undefined ? null : new Set(options.types),
    experimentIds,
    nodes: options.nodes === undefined ? null : [...options.nodes],
    since: options.since,
    until: options.until,
  };
}

/** The nodes an event names. */
export function nodesOf(event: ExperimentEvent): readonly string[] {
  switch (event.type) {
    case 'ExperimentCreated':
      return event.data.federated?.nodes ?? [];
    case 'RoundStarted':
      return event.data.nodes;
    case 'NodeReplied':
      return [event.data.node];
    case 'RoundCompleted':
      return event.data.nodes.map((n) => n.node);
    default:
      return [];
  }
}

function matches(event: AuditEvent, filter: EventFilter): boolean {
  if (filter.types !== null && !filter.types.has(event.type)) return false;
  if (filter.experimentIds !== null && !filter.experimentIds.has(event.experimentId)) return false;
  if (filter.nodes !== null) {
    const named = nodesOf(event);
    if (!filter.nodes.some((n) => named.includes(n))) return false;
  }
  return inTimeRange(event.time, filter.since, filter.until);
}

/**
 * Reads the whole log in order and yields the experiment events that pass the filter, each with
 * its experiment. Only registered experiments count (as `listExperiments`): an experiment's
 * events are held back until its registration, which `createExperiment` appends right after its
 * `ExperimentCreated`; a stream never registered (a crash in between) is left out.
 */
class LogScanner {
  private readonly experiments = new Map<string, { id: string; folder: string; registered: boolean; held: AuditEvent[] }>();

  constructor(private readonly filter: EventFilter) {}

  push(recorded: RecordedEvent): AuditEvent[] {
    if (recorded.stream === REGISTRY_STREAM) {
      if (recorded.type !== 'ExperimentRegistered') return [];
      const registered = recorded.data as ExperimentRegistered;
      const known = this.experiments.get(registered.stream);
      if (known === undefined) {
        this.experiments.set(registered.stream, { id: registered.experimentId, folder: registered.folder, registered: true, held: [] });
        return [];
      }
      known.registered = true;
      return known.held.splice(0);
    }
    if (!recorded.stream.startsWith('experiment-')) return [];
    const event = upcast(recorded);
    let known = this.experiments.get(recorded.stream);
    if (known === undefined) {
      if (event.type !== 'ExperimentCreated') return [];
      known = { id: event.data.experimentId, folder: event.data.folder, registered: false, held: [] };
      this.experiments.set(recorded.stream, known);
    }
    if (event.type === 'Resumed' && event.data.folder !== null) known.folder = event.data.folder;
    const audit = {
      ...event,
      experimentId: known.id,
      folder: known.folder,
      stream: recorded.stream,
      revision: recorded.revision,
      position: recorded.position,
      time: recorded.timestamp,
    } as AuditEvent;
    if (!matches(audit, this.filter)) return [];
    if (!known.registered) {
      known.held.push(audit);
      return [];
    }
    return [audit];
  }
}

/** Events per read while scanning the log. */
const PAGE = 4096;

async function scanLog(log: EventLog, filter: EventFilter): Promise<AuditEventsResult> {
  const scanner = new LogScanner(filter);
  const events: AuditEvent[] = [];
  const first = await log.readAll({ maxCount: PAGE });
  const end = first.lastPosition;
  let page = first.events;
  for (;;) {
    for (const recorded of page) {
      if (end !== null && recorded.position > end) break;
      events.push(...scanner.push(recorded));
    }
    const last = page.at(-1);
    if (last === undefined || end === null || last.position >= end || page.length < PAGE) break;
    page = (await log.readAll({ fromPosition: last.position + 1n, maxCount: PAGE })).events;
  }
  return { events, lastPosition: end };
}

/** Events across every experiment of the root, in log order, filtered. */
export async function auditEvents(rl: RoundLog, options: AuditEventsOptions = {}): Promise<AuditEventsResult> {
  const filter = await resolveFilter(rl, options);
  return rl.withReader((log) => scanLog(log, filter));
}

export type FollowEventsOptions = AuditEventsOptions & FollowOptions;

/**
 * `auditEvents`, then live: the events already in the log (`live: false`), one `caughtUp`, then
 * events other processes append (`live: true`), filtered the same way. Runs on its own read-only
 * handle on the log, closed when the subscriber unsubscribes. Experiments named in the filter
 * must exist when the subscription starts.
 */
export function followEvents(rl: RoundLog, options: FollowEventsOptions = {}): Observable<Followed<AuditEvent>> {
  return followLog<AuditEvent>(rl, options, async () => {
    const scanner = new LogScanner(await resolveFilter(rl, options));
    let live = false;
    return {
      subscribe: { from: 'start' },
      handler: (item, emit) => {
        if (item.kind === 'caughtUp') {
          if (live) return;
          live = true;
          emit({ kind: 'caughtUp', position: item.position });
          return;
        }
        for (const event of scanner.push(item.event)) emit({ kind: 'item', item: event, live });
      },
    };
  });
}

// ---- the rounds table -----------------------------------------------------------------------

/**
 * `current`: a completed round of the current branch. `superseded`: a completed round a rewind
 * (or a resume from an older breakpoint) took off the branch. `aborted`: an attempt that never
 * completed. `started`: the last attempt, not completed yet (running, or its process stopped).
 */
export type RoundStatus = 'current' | 'superseded' | 'aborted' | 'started';

export type RoundRow = Readonly<{
  round: number;
  attempt: number;
  status: RoundStatus;
  /** The nodes of the attempt; sample sizes and metrics are null/empty for an attempt that did not complete. */
  nodes: ReadonlyArray<
    Readonly<{ node: string; sampleSize: number | null; metrics: Readonly<Record<string, number>>; durationMs: number | null }>
  >;
  /** Total samples of the nodes that replied; null when the attempt did not complete. */
  samples: number | null;
  metrics: Readonly<Record<string, number>>;
  durationMs: number | null;
  startedAt: Date | null;
  completedAt: Date | null;
  breakpoint: Readonly<{
    /** The round asked for a breakpoint folder. */
    requested: boolean;
    /** Its folder, relative to the experiment folder (`breakpoint_0003`, `superseded/breakpoint_0004.1`), when present. */
    folder: string | null;
  }>;
  /** Retention deleted the round's parameters. */
  pruned: boolean;
  /** For a superseded round: the rewind that took it off the branch (null if the log holds none). */
  supersededBy: Readonly<{ position: bigint; time: Date; reason: string }> | null;
  /** Log position of the round's `RoundCompleted` (of its `RoundStarted` for an attempt that did not complete). */
  position: bigint;
}>;

export type RoundsOptions = { experiment: string };

export type RoundsResult = Readonly<{
  experiment: ExperimentRef;
  roundCurrent: number;
  /** Names of the round metrics, in the order they first appear. */
  metricNames: readonly string[];
  /** Every attempt, by round index then log position. */
  rounds: readonly RoundRow[];
}>;

type MutableRow = { -readonly [K in keyof RoundRow]: RoundRow[K] };

/** The rounds table of one experiment. `ExperimentNotFoundError` when nothing answers to the name. */
export async function roundsTable(rl: RoundLog, options: RoundsOptions): Promise<RoundsResult> {
  const { ref, state, events } = await openWithHistory(rl, options.experiment);
  const folders = await foldersByPosition(path.join(rl.layout.experiments, state.folder), ref.id);
  const rows: MutableRow[] = [];
  const branch = new Map<number, MutableRow>();
  const durations = new Map<string, Map<string, number>>();
  let pending: MutableRow | null = null;
  const supersede = (fromRound: number, by: RoundRow['supersededBy']) => {
    for (const [round, row] of branch) {
      if (round < fromRound) continue;
      row.status = 'superseded';
      row.supersededBy = by;
      branch.delete(round);
    }
  };
  const abortPending = () => {
    if (pending !== null) pending.status = 'aborted';
    pending = null;
  };
  for (const recorded of events) {
    const event = upcast(recorded);
    switch (event.type) {
      case 'RoundStarted': {
        abortPending();
        const d = event.data;
        pending = {
          round: d.round,
          attempt: d.attempt,
          status: 'started',
          nodes: d.nodes.map((node) => ({ node, sampleSize: null, metrics: {}, durationMs: null })),
          samples: null,
          metrics: {},
          durationMs: null,
          startedAt: recorded.timestamp,
          completedAt: null,
          breakpoint: { requested: false, folder: null },
          pruned: false,
          supersededBy: null,
          position: recorded.position,
        };
        rows.push(pending);
        break;
      }
      case 'NodeReplied': {
        const key = `${event.data.round}/${event.data.attempt}`;
        const map = durations.get(key) ?? new Map<string, number>();
        map.set(event.data.node, event.data.durationMs);
        durations.set(key, map);
        break;
      }
      case 'RoundCompleted': {
        const d = event.data;
        const key = `${d.round}/${d.attempt}`;
        let row: MutableRow;
        if (pending !== null && pending.round === d.round && pending.attempt === d.attempt) {
          row = pending;
          pending = null;
        } else {
          row = {
            round: d.round,
            attempt: d.attempt,
            status: 'current',
            nodes: [],
            samples: null,
            metrics: {},
            durationMs: null,
            startedAt: null,
            completedAt: null,
            breakpoint: { requested: false, folder: null },
            pruned: false,
            supersededBy: null,
            position: recorded.position,
          };
          rows.push(row);
        }
        const replies = durations.get(key);
        durations.delete(key);
        Object.assign(row, {
          status: 'current',
          nodes: d.nodes.map((n) => ({ node: n.node, sampleSize: n.sampleSize, metrics: n.metrics, durationMs: replies?.get(n.node) ?? null })),
          samples: d.nodes.reduce((sum, n) => sum + n.sampleSize, 0),
          metrics: d.metrics,
          durationMs: d.durationMs,
          completedAt: recorded.timestamp,
          breakpoint: { requested: d.breakpoint, folder: folders.get(String(recorded.position)) ?? null },
          pruned: state.pruned[String(recorded.position)] !== undefined,
          position: recorded.position,
        } satisfies Partial<MutableRow>);
        // A round recorded again without a rewind replaces the branch from that round on.
        supersede(d.round, null);
        branch.set(d.round, row);
        break;
      }
      case 'Resumed':
        abortPending();
        break;
      case 'Rewound':
        abortPending();
        supersede(event.data.roundCurrent, { position: recorded.position, time: recorded.timestamp, reason: event.data.reason });
        break;
      default:
        break;
    }
  }
  rows.sort((a, b) => a.round - b.round || (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
  const metricNames: string[] = [];
  for (const row of rows) for (const name of Object.keys(row.metrics)) if (!metricNames.includes(name)) metricNames.push(name);
  return { experiment: ref, roundCurrent: roundCurrent(state), metricNames, rounds: rows };
}

// ---- a metric's series --------------------------------------------------------------------

export type MetricOptions = {
  experiment: string;
  /** A metric of the rounds (`loss`), as `RoundCompleted.metrics` records it. */
  metric: string;
  /** The metric as this node reported it, instead of the round's aggregate. */
  node?: string;
};

export type MetricPoint = Readonly<{ round: number; attempt: number; value: number; time: Date; position: bigint }>;

export type MetricResult = Readonly<{
  experiment: ExperimentRef;
  metric: string;
  node: string | null;
  /** One point per round of the current branch that records the metric, by round. */
  points: readonly MetricPoint[];
}>;

/**
 * A metric over the current branch: the value each of its completed rounds recorded (superseded
 * rounds excluded). `MetricNotFoundError` when no completed round (current or superseded)
 * records it; an experiment with no completed round has an empty series. A fork's or an import's
 * series starts with its own first round (the rounds it continues are in its ancestor's).
 */
export async function metricSeries(rl: RoundLog, options: MetricOptions): Promise<MetricResult> {
  if (typeof options.metric !== 'string' || options.metric.length === 0) throw new InvalidArgumentError('metric', 'must be a metric name', options.metric);
  const node = options.node ?? null;
  if (node !== null && (typeof node !== 'string' || node.length === 0)) throw new InvalidArgumentError('node', 'must be a node id', node);
  const { ref, state } = await openWithHistory(rl, options.experiment);
  const metricsOf = (record: (typeof state.rounds)[number]): Readonly<Record<string, number>> | undefined =>
    node === null ? record.metrics : record.nodes.find((n) => n.node === node)?.metrics;
  const points: MetricPoint[] = [];
  for (const record of state.rounds) {
    if (record === undefined) continue; // rounds an imported breakpoint stands for
    const value = metricsOf(record)?.[options.metric];
    if (typeof value === 'number') points.push({ round: record.round, attempt: record.attempt, value, time: record.timestamp, position: record.position });
  }
  // Rounds completed in this stream (an imported breakpoint's round stands in at revision 0, the creation).
  const completed = [...state.rounds, ...state.superseded].filter((r) => r !== undefined && r.revision > 0n);
  if (points.length === 0 && completed.length > 0) {
    const available = [...new Set(completed.flatMap((r) => Object.keys(metricsOf(r) ?? {})))];
    if (!available.includes(options.metric)) throw new MetricNotFoundError(ref.folder, options.metric, node, available);
  }
  return { experiment: ref, metric: options.metric, node, points };
}

// ---- lineage ------------------------------------------------------------------------------

/** An experiment this one continues: the parent of a fork, or (`import`) the experiment of a breakpoint carried from another root. */
export type LineageAncestor = Readonly<{
  via: 'fork' | 'import';
  id: string;
  /** The folder recorded at the fork or import. */
  folder: string;
  /** The round of the ancestor its child continues from. */
  round: number;
  /** Log position (decimal) of that round in the ancestor's log. */
  position: string;
  /** Whether this root holds the ancestor; when it does, its folder now. */
  known: boolean;
  currentFolder: string | null;
}>;

export type LineageDescendant = Readonly<{
  id: string;
  folder: string;
  /** The round of its parent it was forked from. */
  round: number;
  by: Actor;
  time: Date;
  /** Log position of the `Forked` event in the parent. */
  position: bigint;
  known: boolean;
  currentFolder: string | null;
  children: readonly LineageDescendant[];
}>;

export type LineageOptions = { experiment: string };

export type LineageResult = Readonly<{
  experiment: ExperimentRef;
  /** Nearest first: the parent, its parent, ... */
  ancestors: readonly LineageAncestor[];
  /** Forks of this experiment, each with its own forks. */
  descendants: readonly LineageDescendant[];
}>;

/** Ancestors through `ForkedFrom` (and an import's origin), descendants through `Forked`. */
export async function lineage(rl: RoundLog, options: LineageOptions): Promise<LineageResult> {
  const self = await openWithHistory(rl, options.experiment);
  const open = async (id: string) => {
    try {
      return await openWithHistory(rl, id);
    } catch (error) {
      if (error instanceof ExperimentNotFoundError) return null;
      throw error;
    }
  };
  const ancestors: LineageAncestor[] = [];
  const seen = new Set<string>([self.ref.id]);
  let current = self.state;
  for (;;) {
    const forkedFrom = current.forkedFrom;
    const imported = current.created?.importedFrom ?? null;
    let step: Omit<LineageAncestor, 'known' | 'currentFolder'>;
    if (forkedFrom !== null) {
      step = { via: 'fork', id: forkedFrom.parentId, folder: forkedFrom.parentFolder, round: forkedFrom.parentRound, position: forkedFrom.parentPosition };
    } else if (imported !== null) {
      step = { via: 'import', id: imported.experimentId, folder: imported.folder, round: imported.round, position: imported.logPosition };
    } else {
      break;
    }
    if (seen.has(step.id)) break; // a cycle can only come from a damaged history: stop rather than loop
    seen.add(step.id);
    const parent = await open(step.id);
    ancestors.push({ ...step, known: parent !== null, currentFolder: parent?.ref.folder ?? null });
    if (parent === null) break;
    current = parent.state;
  }
  const visited = new Set<string>([self.ref.id]);
  const descend = async (events: readonly RecordedEvent[]): Promise<LineageDescendant[]> => {
    const out: LineageDescendant[] = [];
    for (const recorded of events) {
      if (recorded.type !== 'Forked') continue;
      const event = upcast(recorded);
      if (event.type !== 'Forked' || visited.has(event.data.childId)) continue;
      visited.add(event.data.childId);
      const child = await open(event.data.childId);
      out.push({
        id: event.data.childId,
        folder: event.data.childFolder,
        round: event.data.round,
        by: event.data.by,
        time: recorded.timestamp,
        position: recorded.position,
        known: child !== null,
        currentFolder: child?.ref.folder ?? null,
        children: child === null ? [] : await descend(child.events),
      });
    }
    return out;
  };
  return { experiment: self.ref, ancestors, descendants: await descend(self.events) };
}

// ---- actions: who did what ------------------------------------------------------------------

/** Events that record who did them. */
export const ACTION_TYPES = Object.freeze([
  'ExperimentCreated',
  'SettingsChanged',
  'Resumed',
  'Rewound',
  'Forked',
  'RoundsPruned',
] as const satisfies readonly ExperimentEventType[]);

export type ActionType = (typeof ACTION_TYPES)[number];

/** An event someone did, with who did it (`createdBy` of an `ExperimentCreated`, `by` of the others). */
export type AuditAction = Extract<AuditEvent, { type: ActionType }> & Readonly<{ by: Actor }>;

export type ActionsOptions = {
  /** Only these kinds of action. Default: every one (`ACTION_TYPES`). */
  types?: readonly ActionType[];
  experiments?: readonly string[];
  /** Only actions by these users. */
  users?: readonly string[];
  /** Only actions from these hosts. */
  hosts?: readonly string[];
  since?: Date;
  until?: Date;
};

export type ActionsResult = Readonly<{ actions: readonly AuditAction[]; lastPosition: bigint | null }>;

export function isActionType(type: string): type is ActionType {
  return (ACTION_TYPES as readonly string[]).includes(type);
}

/** Who created, resumed, rewound, forked, changed settings of or pruned which experiment, and when; in log order. */
export async function auditActions(rl: RoundLog, options: ActionsOptions = {}): Promise<ActionsResult> {
  for (const type of options.types ?? []) {
    if (!isActionType(type)) throw new InvalidArgumentError('types', `must name actions (${ACTION_TYPES.join(', ')})`, type);
  }
  const { events, lastPosition } = await auditEvents(rl, {
    types: options.types ?? ACTION_TYPES,
    ...(options.experiments === undefined ? {} : { experiments: options.experiments }),
    ...(options.since === undefined ? {} : { since: options.since }),
    ...(options.until === undefined ? {} : { until: options.until }),
  });
  const actions: AuditAction[] = [];
  for (const event of events) {
    const action = asAction(event);
    if (action === null) continue;
    if (options.users !== undefined && !options.users.includes(action.by.user)) continue;
    if (options.hosts !== undefined && !options.hosts.includes(action.by.host)) continue;
    actions.push(action);
  }
  return { actions, lastPosition };
}

/** The action an event records, or null for an event nobody in particular did. */
export function asAction(event: AuditEvent): AuditAction | null {
  switch (event.type) {
    case 'ExperimentCreated':
      return { ...event, by: event.data.createdBy };
    case 'SettingsChanged':
    case 'Resumed':
    case 'Rewound':
    case 'Forked':
    case 'RoundsPruned':
      return { ...event, by: event.data.by } as AuditAction;
    default:
      return null;
  }
}
