/**
 * The events query: experiment events across every experiment of a root, filtered by type,
 * experiment, node and time, once (`auditEvents`) or live (`followEvents`). The actions query
 * reads through it. Nothing here writes to the root.
 */
import type { Observable } from 'rxjs';
import type { RoundLog } from '../projections/index.ts';
import { InvalidArgumentError } from '../errors.ts';
import {
  REGISTRY_STREAM,
  type ExperimentEvent,
  type ExperimentEventType,
  type ExperimentRegistered,
} from '../model/events.ts';
import { upcast, upcastRegistered } from '../model/state.ts';
import { isUnreadableHistory, type UnreadableHistoryError } from '../model/errors.ts';
import { historyDamaged, readAllPastRegistryDamage, readRegistryStream } from '../engine/registry.ts';
import type { EventLog, RecordedEvent } from '../log/types.ts';
import {
  EVENT_TYPES,
  checkTimeRange,
  followLog,
  inTimeRange,
  isEventType,
  resolveExperiment,
  type FollowOptions,
  type Followed,
} from './common.ts';

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
    /**
     * `Resumed`, `Rewound` and `ExperimentFinished` only (their data's `roundCurrent` is a count):
     * the last round kept, by index as in `breakpoint_RRRR`; null when none is.
     */
    round?: number | null;
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
  /**
   * Experiments whose history cannot be read past an event (`UnreadableHistoryError`, naming the
   * experiment): their events before it are in `events`; the others' events are all there.
   */
  damaged: ReadonlyArray<Readonly<{ folder: string; stream: string; code: string; message: string }>>;
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
      if (!isEventType(type)) {
        throw new InvalidArgumentError('types', `must name experiment event types (${EVENT_TYPES.join(', ')})`, type);
      }
    }
  }
  if (options.nodes !== undefined) {
    for (const node of options.nodes) {
      if (typeof node !== 'string' || node.length === 0) {
        throw new InvalidArgumentError('nodes', 'must be non-empty node ids', node);
      }
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
  private readonly experiments = new Map<
    string,
    { id: string; folder: string; registered: boolean; held: AuditEvent[] }
  >();

  /** Streams whose first event is not `ExperimentCreated`. */
  private readonly foreign = new Set<string>();

  /** Experiment streams with an event that cannot be read: none of their events from it on is yielded. */
  readonly damaged = new Map<string, UnreadableHistoryError>();

  /**
   * @param found the experiment streams counted as registered from their first event: those the
   * registry lists when a record of it cannot be read (`readRegistryStream`), else none.
   */
  constructor(
    private readonly filter: EventFilter,
    private readonly found: ReadonlySet<string> = new Set(),
  ) {}

  push(recorded: RecordedEvent): AuditEvent[] {
    if (recorded.stream === REGISTRY_STREAM) {
      let registered: ExperimentRegistered;
      try {
        registered = upcastRegistered(recorded);
      } catch (error) {
        // A registration that cannot be read: its experiment is among `found`, as `ls` lists it.
        if (isUnreadableHistory(error)) return [];
        throw error;
      }
      const known = this.experiments.get(registered.stream);
      if (known === undefined) {
        this.experiments.set(registered.stream, {
          id: registered.experimentId,
          folder: registered.folder,
          registered: true,
          held: [],
        });
        return [];
      }
      known.registered = true;
      return known.held.splice(0);
    }
    // An experiment's stream starts with `ExperimentCreated`; any other stream (written into the log
    // by other code, such as the README's library example) is not read as one.
    if (this.foreign.has(recorded.stream)) return [];
    let known = this.experiments.get(recorded.stream);
    if (known === undefined && recorded.type !== 'ExperimentCreated') {
      this.foreign.add(recorded.stream);
      return [];
    }
    if (this.damaged.has(recorded.stream)) return [];
    let event: ExperimentEvent;
    try {
      event = upcast(recorded);
    } catch (error) {
      if (!isUnreadableHistory(error)) throw error;
      const folder = known?.folder ?? recorded.stream;
      this.damaged.set(
        recorded.stream,
        historyDamaged(error, { folder, stream: recorded.stream }) as UnreadableHistoryError,
      );
      return [];
    }
    if (known === undefined) {
      if (event.type !== 'ExperimentCreated') return [];
      known = {
        id: event.data.experimentId,
        folder: event.data.folder,
        registered: this.found.has(recorded.stream),
        held: [],
      };
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
      ...(event.type === 'Resumed' || event.type === 'Rewound' || event.type === 'ExperimentFinished'
        ? { round: event.data.roundCurrent === 0 ? null : event.data.roundCurrent - 1 }
        : {}),
    } as AuditEvent;
    if (!matches(audit, this.filter)) return [];
    if (!known.registered) {
      known.held.push(audit);
      return [];
    }
    return [audit];
  }
}

/**
 * The experiment streams the registry lists when a record of it cannot be read (found from their
 * own streams, as `ls` lists them); none when it reads whole, and the scan's registrations count.
 */
async function foundStreams(log: EventLog): Promise<ReadonlySet<string>> {
  const { entries, damage } = await readRegistryStream(log);
  return new Set(damage === null ? [] : entries.map((e) => e.stream));
}

/** Events per read while scanning the log. */
const PAGE = 4096;

async function scanLog(log: EventLog, filter: EventFilter): Promise<AuditEventsResult> {
  const scanner = new LogScanner(filter, await foundStreams(log));
  const events: AuditEvent[] = [];
  const end = (await log.readAll({ maxCount: 0 })).lastPosition;
  // A damaged record of the registry is passed: the experiments are known from their streams (`found`).
  let page = end === null ? null : await readAllPastRegistryDamage(log, 0n, PAGE);
  while (page !== null) {
    for (const recorded of page.events) {
      if (end !== null && recorded.position > end) break;
      events.push(...scanner.push(recorded));
    }
    const last = page.last;
    if (last === null || end === null || last >= end || !page.full) break;
    page = await readAllPastRegistryDamage(log, last + 1n, PAGE);
  }
  const damaged = [...scanner.damaged].map(([stream, error]) => ({
    folder: error.experiment ?? stream,
    stream,
    code: error.code,
    message: error.message,
  }));
  return { events, lastPosition: end, damaged };
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
    const scanner = new LogScanner(await resolveFilter(rl, options), await rl.withReader(foundStreams));
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
        // Following ends on an event it cannot read, naming the experiment, as before.
        const damage = scanner.damaged.get(item.event.stream);
        if (damage !== undefined) throw damage;
      },
    };
  });
}
