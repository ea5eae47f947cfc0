/**
 * Retention: which rounds keep their parameter bytes, and garbage collection of the rest.
 *
 * Policy (`Retention { keepLast, keepEvery }`), per experiment:
 * - on the current branch, the last `keepLast` rounds (`keepLast >= 1`, so the parameters the next
 *   round starts from are always kept) and every round whose index is a multiple of `keepEvery`
 *   (rounds 0, K, 2K, ...: `breakpoint_0000`, `breakpoint_000K`, ...);
 * - superseded rounds (taken off the branch by a rewind) are kept only by the `keepEvery` rule:
 *   "the last N" means the last N of the branch the experiment continues;
 * - a round some fork started from is always kept, so lineage stays loadable.
 *
 * Pruning a round deletes its parameter bytes: the blobs of its `RoundCompleted` (the aggregated
 * parameters) and of its `NodeReplied` events (each node's reply), and its breakpoint folders (on
 * the branch and in `superseded/`). Every event stays; one `RoundsPruned` event per experiment and
 * run records which rounds (by index and `RoundCompleted` log position), the policy and who.
 *
 * Blobs are reference-counted across the whole root: a blob is deleted only when no event of any
 * stream references it outside pruned rounds. Initial parameters, training plan sources, imported
 * breakpoints' creation data, anything an event carries outside a round, and the rounds that are
 * kept (of any experiment, on any branch) hold their blobs. Blobs that no event references at all
 * (stored by a round that never committed) are not retention's business and are left alone.
 *
 * Order and crash safety: the `RoundsPruned` event is appended first, then the blobs are deleted,
 * both under the log's writer lock; then the folders are removed (each renamed to a temp name
 * first, so a crash never leaves half a folder under a breakpoint name). A crash after the event
 * leaves bytes that `gc` deletes on its next run. Writers check under the same lock that the blobs
 * their events reference still exist (`assertBlobsPresent`), so a blob stored by a concurrent
 * process is never deleted out from under its commit.
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.ts';
import type { EventLog, RecordedEvent } from '../log/types.ts';
import { rootLayout } from '../root.ts';
import { syncDir } from '../durable.ts';
import {
  REGISTRY_STREAM,
  type ExperimentEvent,
  type ExperimentRegistered,
  type Retention,
  type RoundsPruned,
} from '../model/events.ts';
import { initialState, replay, type ExperimentState, type RoundRecord } from '../model/state.ts';
import type { Projection } from './projection.ts';
import { blobRefsIn } from './blob-refs.ts';
import { ConcurrentModificationError, ExperimentNotFoundError } from '../model/errors.ts';
import { openRoundLog, type ExperimentHandle, type OpenRoundLogOptions, type RoundLog } from './round-log.ts';

export type { Retention };

/** Checks a retention policy: `keepLast` an integer >= 1, `keepEvery` an integer >= 1 or null. */
export function checkRetention(value: unknown, argument = 'retention'): Retention {
  if (value === null || typeof value !== 'object') {
    throw new InvalidArgumentError(argument, 'must be an object { keepLast, keepEvery? }', value);
  }
  const { keepLast, keepEvery } = value as { keepLast?: unknown; keepEvery?: unknown };
  if (typeof keepLast !== 'number' || !Number.isSafeInteger(keepLast) || keepLast < 1) {
    throw new InvalidArgumentError(`${argument}.keepLast`, 'must be an integer of at least 1 (the last round is what the next one starts from)', keepLast);
  }
  if (keepEvery !== undefined && keepEvery !== null && (typeof keepEvery !== 'number' || !Number.isSafeInteger(keepEvery) || keepEvery < 1)) {
    throw new InvalidArgumentError(`${argument}.keepEvery`, 'must be an integer of at least 1, or null', keepEvery);
  }
  return { keepLast, keepEvery: (keepEvery as number | null | undefined) ?? null };
}

/** A round named by its index, the log position of its `RoundCompleted`, and its branch. */
export type RoundRef = Readonly<{ round: number; position: string; branch: 'current' | 'superseded' }>;

export type RetentionPlan = Readonly<{
  /** Rounds outside the policy, not pruned yet. */
  prune: readonly RoundRef[];
  /** Rounds the policy keeps. */
  keep: readonly RoundRef[];
  /** Rounds pruned before. */
  alreadyPruned: readonly RoundRef[];
}>;

/**
 * Which rounds of an experiment the policy keeps and which it prunes (pure). `protectedPositions`
 * are `RoundCompleted` positions kept whatever the policy says (rounds forks started from).
 */
export function planRetention(state: ExperimentState, retention: Retention, protectedPositions: ReadonlySet<string> = new Set()): RetentionPlan {
  const policy = checkRetention(retention);
  const prune: RoundRef[] = [];
  const keep: RoundRef[] = [];
  const alreadyPruned: RoundRef[] = [];
  const n = state.rounds.length;
  const every = (round: number) => policy.keepEvery !== null && round % policy.keepEvery === 0;
  const sort = (record: RoundRecord | undefined, branch: RoundRef['branch'], kept: boolean) => {
    if (record === undefined || record === null) return;
    const ref: RoundRef = { round: record.round, position: String(record.position), branch };
    if (state.pruned[ref.position] !== undefined) alreadyPruned.push(ref);
    else if (kept || protectedPositions.has(ref.position)) keep.push(ref);
    else prune.push(ref);
  };
  for (const [index, record] of state.rounds.entries()) sort(record, 'current', index >= n - policy.keepLast || every(index));
  for (const record of state.superseded) sort(record, 'superseded', every(record.round));
  return { prune, keep, alreadyPruned };
}

type StreamEntry = {
  state: ExperimentState;
  /** Blobs of `NodeReplied` events waiting for their `RoundCompleted` (same atomic append). */
  pending: string[];
  /** Blobs held for as long as the experiment exists, with the event that references them first. */
  permanent: Map<string, string>;
  /** Blobs of each round, by the position of its `RoundCompleted` (or the `ExperimentCreated` of an import). */
  rounds: Map<string, string[]>;
  /** Positions of pruned rounds. */
  pruned: Set<string>;
};

const READ_PAGE = 4096;

/**
 * Who references which blob, for every stream of the root, and each experiment's state: a fold
 * of the log, caught up incrementally (`catchUp` reads only what was appended since).
 */
export class RootIndex {
  /** The last log position folded by `catchUp`. */
  position = -1n;
  readonly registry: ExperimentRegistered[] = [];
  readonly streams = new Map<string, StreamEntry>();
  /** Length of every blob a folded event references (from its `BlobRef`). */
  readonly blobBytes = new Map<string, number>();

  /** Folds the events appended since the last call. */
  async catchUp(log: EventLog): Promise<void> {
    for (;;) {
      const { events } = await log.readAll({ fromPosition: this.position + 1n, maxCount: READ_PAGE });
      if (events.length === 0) return;
      this.fold(events);
      this.position = events.at(-1)!.position;
      if (events.length < READ_PAGE) return;
    }
  }

  /** The hashes of the blobs `value` references, their lengths noted. */
  private refs(value: unknown): string[] {
    return blobRefsIn(value).map((ref) => {
      this.blobBytes.set(ref.sha256, ref.bytes);
      return ref.sha256;
    });
  }

  /** Folds events, in log order within each stream. Throws `UnknownEventError` for an event it cannot read. */
  fold(events: readonly RecordedEvent[]): void {
    const byStream = new Map<string, RecordedEvent[]>();
    for (const event of events) {
      if (event.stream === REGISTRY_STREAM) {
        if (event.type === 'ExperimentRegistered') this.registry.push(event.data as ExperimentRegistered);
        continue;
      }
      const entry = this.entry(event.stream);
      const position = String(event.position);
      if (event.type !== 'NodeReplied' && event.type !== 'RoundCompleted' && entry.pending.length > 0) {
        // Replies not followed by their round: never deleted, as nothing says which round they are.
        for (const sha of entry.pending.splice(0)) if (!entry.permanent.has(sha)) entry.permanent.set(sha, 'NodeReplied');
      }
      switch (event.type) {
        case 'NodeReplied':
          entry.pending.push(...this.refs(event.data));
          break;
        case 'RoundCompleted':
          entry.rounds.set(position, [...entry.pending.splice(0), ...this.refs(event.data)]);
          break;
        case 'ExperimentCreated': {
          const { importedFrom, ...rest } = event.data as { importedFrom?: unknown };
          this.hold(entry, rest, event.type);
          // An imported breakpoint stands for a round, at the position of the creation event.
          if (importedFrom) entry.rounds.set(position, this.refs(importedFrom));
          break;
        }
        case 'RoundsPruned':
          for (const round of (event.data as RoundsPruned).rounds) entry.pruned.add(round.position);
          break;
        default:
          this.hold(entry, event.data, event.type);
      }
      if (event.stream.startsWith('experiment-')) {
        let list = byStream.get(event.stream);
        if (list === undefined) byStream.set(event.stream, (list = []));
        list.push(event);
      }
    }
    for (const [stream, list] of byStream) {
      const entry = this.streams.get(stream)!;
      entry.state = replay(list, entry.state);
    }
  }

  /** The state of an experiment stream, or null when the index has none of its events. */
  state(stream: string): ExperimentState | null {
    const entry = this.streams.get(stream);
    return entry === undefined || entry.state.created === null ? null : entry.state;
  }

  /**
   * Positions of the rounds of `stream` that forks started from: named by a child's `ForkedFrom`,
   * or, for a `Forked` in the parent, the round of that index committed last before it.
   */
  protectedPositions(stream: string): Set<string> {
    const kept = new Set<string>();
    const state = this.state(stream);
    if (state === null) return kept;
    const records = [...state.rounds, ...state.superseded].filter((r): r is RoundRecord => r !== undefined && r !== null);
    const lastBefore = (round: number, before: bigint) => {
      let best: RoundRecord | undefined;
      for (const r of records) if (r.round === round && r.position < before && (best === undefined || r.position > best.position)) best = r;
      return best;
    };
    for (const fork of state.forks) {
      const record = lastBefore(fork.round, fork.position);
      if (record !== undefined) kept.add(String(record.position));
    }
    for (const other of this.streams.values()) {
      const from = other.state.forkedFrom;
      if (from === null || from.parentId !== state.created!.experimentId) continue;
      if (records.some((r) => String(r.position) === from.parentPosition)) kept.add(from.parentPosition);
      else {
        let at: bigint | null = null;
        try {
          at = BigInt(from.parentPosition);
        } catch {
          at = null;
        }
        const record = at === null ? undefined : lastBefore(from.parentRound, at + 1n);
        if (record !== undefined) kept.add(String(record.position));
      }
    }
    return kept;
  }

  /**
   * Blobs of pruned rounds that nothing else references. `candidates` limits the rounds looked at
   * (stream → positions; default every pruned round of the root); `alsoPruned` counts rounds as
   * pruned that have no `RoundsPruned` yet (a dry run).
   */
  unreferencedBlobs(
    candidates?: ReadonlyMap<string, ReadonlySet<string>>,
    alsoPruned: ReadonlyMap<string, ReadonlySet<string>> = new Map(),
  ): { deletable: Set<string>; stillReferenced: Set<string> } {
    const isPruned = (stream: string, position: string) =>
      this.streams.get(stream)?.pruned.has(position) === true || alsoPruned.get(stream)?.has(position) === true;
    const retained = new Set<string>();
    const wanted = new Set<string>();
    for (const [stream, entry] of this.streams) {
      for (const sha of entry.permanent.keys()) retained.add(sha);
      for (const sha of entry.pending) retained.add(sha);
      for (const [position, refs] of entry.rounds) {
        if (!isPruned(stream, position)) for (const sha of refs) retained.add(sha);
        else if (candidates === undefined || candidates.get(stream)?.has(position)) for (const sha of refs) wanted.add(sha);
      }
    }
    const deletable = new Set<string>();
    const stillReferenced = new Set<string>();
    for (const sha of wanted) (retained.has(sha) ? stillReferenced : deletable).add(sha);
    return { deletable, stillReferenced };
  }

  /** The blobs an experiment's kept rounds and permanent data reference, each with what references it. */
  retainedReferences(stream: string): Array<{ sha256: string; round: number | null; branch: RoundRef['branch'] | null; what: string }> {
    const entry = this.streams.get(stream);
    const state = this.state(stream);
    if (entry === undefined || state === null) return [];
    const out: Array<{ sha256: string; round: number | null; branch: RoundRef['branch'] | null; what: string }> = [];
    for (const [sha256, what] of entry.permanent) out.push({ sha256, round: null, branch: null, what });
    const byPosition = new Map<string, { round: number; branch: RoundRef['branch'] }>();
    for (const r of state.rounds) if (r) byPosition.set(String(r.position), { round: r.round, branch: 'current' });
    for (const r of state.superseded) byPosition.set(String(r.position), { round: r.round, branch: 'superseded' });
    for (const [position, refs] of entry.rounds) {
      if (entry.pruned.has(position)) continue;
      const at = byPosition.get(position);
      for (const sha256 of refs) out.push({ sha256, round: at?.round ?? null, branch: at?.branch ?? null, what: 'round parameters' });
    }
    return out;
  }

  private entry(stream: string): StreamEntry {
    let entry = this.streams.get(stream);
    if (entry === undefined) {
      entry = { state: initialState, pending: [], permanent: new Map(), rounds: new Map(), pruned: new Set() };
      this.streams.set(stream, entry);
    }
    return entry;
  }

  private hold(entry: StreamEntry, data: unknown, type: string): void {
    for (const ref of blobRefsIn(data)) if (!entry.permanent.has(ref.sha256)) entry.permanent.set(ref.sha256, type);
  }
}

/** What retention did (or, in a dry run, would do) to one experiment. */
export type ExperimentPruneReport = Readonly<{
  experimentId: string;
  folder: string;
  stream: string;
  /** The policy applied, and where it came from; null when the experiment has none and none was given. */
  retention: Retention | null;
  policyFrom: 'option' | 'experiment' | 'none';
  /** Rounds pruned by this run. */
  pruned: readonly RoundRef[];
  kept: readonly RoundRef[];
  alreadyPruned: readonly RoundRef[];
  /** The `RoundsPruned` event appended, or null (nothing to prune, or a dry run). */
  event: Readonly<{ revision: bigint; position: bigint }> | null;
}>;

export type PruneReport = Readonly<{
  root: string;
  dryRun: boolean;
  experiments: readonly ExperimentPruneReport[];
  /** Blobs deleted: nothing but pruned rounds referenced them. */
  blobsDeleted: ReadonlyArray<Readonly<{ sha256: string; bytes: number }>>;
  /** Blobs of pruned rounds kept, because a kept round or other data of some experiment references them. */
  blobsStillReferenced: number;
  /** Breakpoint folders of pruned rounds removed (absolute paths). */
  foldersRemoved: readonly string[];
  /** Bytes that left the disk: files whose last link was removed (a blob and its folder links count once). */
  bytesFreed: number;
}>;

export type GcOptions = OpenRoundLogOptions & {
  /** One experiment (id, folder name, stream or path); default every experiment of the root. */
  experiment?: string;
  /** The policy to apply; default each experiment's own (`SettingsChanged.retention`), none if unset. */
  retention?: Retention;
  /** Report what would be pruned and deleted; change nothing. */
  dryRun?: boolean;
};

/**
 * `roundlog gc`: applies retention to the experiments of a root, removes what it prunes, and sweeps
 * what earlier runs left (blobs and folders of rounds already pruned, e.g. after a crash).
 */
export async function gc(options: GcOptions = {}): Promise<PruneReport> {
  const retention = options.retention === undefined ? undefined : checkRetention(options.retention);
  const rl = await openRoundLog(options);
  try {
    const only = options.experiment === undefined ? null : (await rl.openExperiment(options.experiment)).stream;
    const run = async (log: EventLog) => {
      const index = new RootIndex();
      await index.catchUp(log);
      // Every registered experiment with a history (a registration without one holds nothing).
      const streams = only === null ? index.registry.map((e) => e.stream).filter((s) => index.state(s) !== null) : [only];
      return pruneWithIndex(rl, log, index, streams, { retention, dryRun: options.dryRun ?? false, sweep: true, expected: null });
    };
    const planned = options.dryRun ? await rl.withReader(run) : await rl.withWriter(run);
    return await finish(rl, planned);
  } finally {
    await rl.close();
  }
}

/**
 * Applies an experiment's retention policy (or `retention`) now, from its process: prunes the
 * rounds outside it and deletes what only they referenced. The handle is refreshed. `index`, kept
 * between calls, makes each call read only the log appended since the last one.
 */
export async function applyRetention(
  handle: ExperimentHandle,
  options: { retention?: Retention; index?: RootIndex; dryRun?: boolean } = {},
): Promise<PruneReport> {
  const retention = options.retention === undefined ? undefined : checkRetention(options.retention);
  const rl = handle.roundLog;
  const index = options.index ?? new RootIndex();
  const run = async (log: EventLog) => {
    await index.catchUp(log);
    return pruneWithIndex(rl, log, index, [handle.stream], { retention, dryRun: options.dryRun ?? false, sweep: false, expected: handle.state.revision });
  };
  const planned = options.dryRun ? await rl.withReader(run) : await rl.withWriter(run);
  const report = await finish(rl, planned);
  await handle.refresh();
  return report;
}

type Planned = {
  report: Omit<PruneReport, 'foldersRemoved' | 'bytesFreed'>;
  /** Views (breakpoint folders) to remove after the lock, and the bytes counted for them. */
  views: Array<{ path: string; projection: Projection }>;
  bytesFreed: number;
};

async function pruneWithIndex(
  rl: RoundLog,
  log: EventLog,
  index: RootIndex,
  streams: readonly string[],
  options: { retention: Retention | undefined; dryRun: boolean; sweep: boolean; expected: bigint | null },
): Promise<Planned> {
  const experiments: ExperimentPruneReport[] = [];
  const newlyPruned = new Map<string, Set<string>>();
  const allPruned = new Map<string, Set<string>>();
  for (const stream of streams) {
    const state = index.state(stream);
    if (state === null) throw new ExperimentNotFoundError(stream, rl.root);
    if (options.expected !== null && state.revision !== options.expected) {
      throw new ConcurrentModificationError(state.folder, options.expected, state.revision);
    }
    const policy = options.retention ?? state.settings.retention;
    const base = { experimentId: state.created!.experimentId, folder: state.folder, stream };
    if (policy === null) {
      experiments.push({ ...base, retention: null, policyFrom: 'none', pruned: [], kept: [], alreadyPruned: [], event: null });
      if (options.sweep) allPruned.set(stream, new Set(Object.keys(state.pruned)));
      continue;
    }
    const plan = planRetention(state, policy, index.protectedPositions(stream));
    let event: ExperimentPruneReport['event'] = null;
    if (plan.prune.length > 0 && !options.dryRun) {
      const data: RoundsPruned = { v: 1, rounds: plan.prune.map(({ round, position }) => ({ round, position })), retention: policy, by: rl.actor };
      const pruned: ExperimentEvent = { type: 'RoundsPruned', data };
      const result = await log.append(stream, [pruned], { expectedRevision: state.revision });
      event = { revision: result.nextExpectedRevision, position: result.lastPosition };
    }
    const fresh = new Set(plan.prune.map((r) => r.position));
    newlyPruned.set(stream, fresh);
    allPruned.set(stream, new Set([...Object.keys(state.pruned), ...fresh]));
    experiments.push({
      ...base,
      retention: policy,
      policyFrom: options.retention === undefined ? 'experiment' : 'option',
      pruned: plan.prune,
      kept: plan.keep,
      alreadyPruned: plan.alreadyPruned,
      event,
    });
  }
  if (!options.dryRun) await index.catchUp(log);
  const candidates = options.sweep ? allPruned : newlyPruned;
  const { deletable, stillReferenced } = index.unreferencedBlobs(candidates, options.dryRun ? newlyPruned : new Map());

  // Views of pruned rounds (breakpoint folders, on the branch and in superseded/).
  const views: Array<{ path: string; projection: Projection }> = [];
  for (const stream of streams) {
    const state = index.state(stream)!;
    const positions = candidates.get(stream);
    if (positions === undefined || positions.size === 0) continue;
    for (const projection of rl.projections) {
      for (const view of await projection.viewsOfRounds(state, positions)) views.push({ path: view, projection });
    }
  }
  const folders = views.map((v) => v.path);

  const blobFiles = new Map<string, string>();
  const storedElsewhere: string[] = [];
  for (const sha of [...deletable].sort()) {
    const file = rl.blobs.fileOf(sha);
    if (file === null) storedElsewhere.push(sha);
    else blobFiles.set(sha, file);
  }
  const sizes = await blobSizes(blobFiles);
  // A store without files (blobs in EventStoreDB streams): the length its references record.
  for (const sha of storedElsewhere) {
    if (await rl.blobs.has(sha)) sizes.set(sha, index.blobBytes.get(sha) ?? 0);
  }
  const bytesFreed =
    (await bytesReleased([...blobFiles.keys()].filter((sha) => sizes.has(sha)).map((sha) => blobFiles.get(sha)!), folders)) +
    storedElsewhere.reduce((sum, sha) => sum + (sizes.get(sha) ?? 0), 0);
  const blobsDeleted: Array<{ sha256: string; bytes: number }> = [];
  for (const [sha256, bytes] of sizes) {
    // Under the writer lock: no writer can append a reference to it meanwhile (see blob-refs.ts).
    if (!options.dryRun && !(await rl.blobs.delete(sha256)).deleted) continue;
    blobsDeleted.push({ sha256, bytes });
  }
  return {
    report: { root: rl.root, dryRun: options.dryRun, experiments, blobsDeleted, blobsStillReferenced: stillReferenced.size },
    views,
    bytesFreed,
  };
}

async function finish(rl: RoundLog, planned: Planned): Promise<PruneReport> {
  const removed: string[] = [];
  for (const view of planned.views) {
    if (!planned.report.dryRun) await view.projection.removeView(view.path);
    removed.push(view.path);
  }
  return { ...planned.report, foldersRemoved: removed, bytesFreed: planned.bytesFreed };
}

async function blobSizes(files: ReadonlyMap<string, string>): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (const [sha, file] of files) {
    const stat = await fs.lstat(file).catch(() => null);
    if (stat !== null) sizes.set(sha, stat.size);
  }
  return sizes;
}

/** Bytes of the inodes whose every link is among `files` and the files of `folders`. */
async function bytesReleased(files: readonly string[], folders: readonly string[]): Promise<number> {
  const all = [...files];
  for (const folder of folders) {
    for (const entry of await fs.readdir(folder, { withFileTypes: true, recursive: true }).catch(() => [])) {
      if (entry.isFile()) all.push(path.join(entry.parentPath, entry.name));
    }
  }
  const links = new Map<string, { removed: number; nlink: number; size: number }>();
  for (const file of all) {
    const stat = await fs.lstat(file).catch(() => null);
    if (stat === null) continue;
    const key = `${stat.dev}:${stat.ino}`;
    const seen = links.get(key) ?? { removed: 0, nlink: stat.nlink, size: stat.size };
    seen.removed++;
    links.set(key, seen);
  }
  let bytes = 0;
  for (const { removed, nlink, size } of links.values()) if (removed >= nlink) bytes += size;
  return bytes;
}

async function readdir(dir: string): Promise<string[]> {
  return fs.readdir(dir).catch(() => [] as string[]);
}

export function formatRounds(rounds: readonly number[]): string {
  const sorted = [...new Set(rounds)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j === i ? String(sorted[i]) : j === i + 1 ? `${sorted[i]}, ${sorted[j]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}

