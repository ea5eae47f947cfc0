/**
 * `RootIndex`: who references which blob, for every stream of a root, and each experiment's
 * state, folded from the log and caught up incrementally. Retention and gc ask it which blobs
 * only pruned rounds reference and which rounds forks started from; verify reads it too.
 */
import type { EventLog, RecordedEvent } from '../log/types.ts';
import { REGISTRY_STREAM, type ExperimentRegistered, type RoundsPruned } from '../model/events.ts';
import { initialState, replay, upcast, upcastRegistered, type ExperimentState } from '../model/state.ts';
import { isUnreadableHistory, type UnreadableHistoryError } from '../model/errors.ts';
import { blobRefsIn } from './blob-refs.ts';
import { historyDamaged, readAllPastRegistryDamage } from './registry.ts';
import { forkProtectedPositions, type RoundRef } from '../model/retention.ts';

type StreamEntry = {
  /**
   * Whether the stream is an experiment's: its first event is `ExperimentCreated`. Other streams
   * (written into the log by other code, such as the README's library example) are never folded as
   * experiments; every blob they reference is held.
   */
  experiment: boolean;
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

/** A blob an experiment holds: by a kept round (its index and branch), or by other data (`what` names the event). */
export type RetainedReference = {
  sha256: string;
  round: number | null;
  branch: RoundRef['branch'] | null;
  what: string;
};

/** An experiment that references a blob: by a kept round (its index and branch), or by other data (`what`). */
export type BlobUser = Readonly<{
  /** The experiment's folder name (its stream when it has no state). */
  experiment: string;
  round: number | null;
  branch: RoundRef['branch'] | null;
  what: string;
}>;

/**
 * Who references which blob, for every stream of the root, and each experiment's state: a fold
 * of the log, caught up incrementally (`catchUp` reads only what was appended since).
 */
export class RootIndex {
  /** The last log position folded by `catchUp`. */
  position = -1n;
  readonly registry: ExperimentRegistered[] = [];
  /** Whether an event of the registry stream could not be read (then `registry` may miss experiments). */
  registryDamaged = false;
  readonly streams = new Map<string, StreamEntry>();
  /**
   * Experiment streams with an event that cannot be read (`UnknownEventError`, `InvalidEventDataError`;
   * `damage` names the experiment): folded up to it; the events from it on are not folded, and every blob
   * they reference is held. The other experiments are folded as ever.
   */
  readonly damaged = new Map<string, UnreadableHistoryError>();
  /** Length of every blob a folded event references (from its `BlobRef`). */
  readonly blobBytes = new Map<string, number>();

  /** Folds the events appended since the last call. */
  async catchUp(log: EventLog): Promise<void> {
    for (;;) {
      // A damaged record of the registry is passed (it holds no blob reference; see `readAllPastRegistryDamage`).
      const { events, last, full, passed } = await readAllPastRegistryDamage(log, this.position + 1n, READ_PAGE);
      if (passed) this.registryDamaged = true;
      if (last === null) return;
      this.fold(events);
      this.position = last;
      if (!full) return;
    }
  }

  /** The hashes of the blobs `value` references, their lengths noted. */
  private refs(value: unknown): string[] {
    return blobRefsIn(value).map((ref) => {
      this.blobBytes.set(ref.sha256, ref.bytes);
      return ref.sha256;
    });
  }

  /** Folds events, in log order within each stream; a stream's event it cannot read marks it `damaged`. */
  fold(events: readonly RecordedEvent[]): void {
    const byStream = new Map<string, RecordedEvent[]>();
    for (const event of events) {
      if (event.stream === REGISTRY_STREAM) {
        // A registration that cannot be read lists no experiment here; `registryDamaged` says to
        // read the experiments as `readRegistryStream` finds them.
        try {
          this.registry.push(upcastRegistered(event));
        } catch (error) {
          if (!isUnreadableHistory(error)) throw error;
          this.registryDamaged = true;
        }
        continue;
      }
      const entry = this.entry(event.stream, event.type);
      if (!entry.experiment) {
        this.hold(entry, event.data, event.type);
        continue;
      }
      if (this.damaged.has(event.stream)) {
        this.hold(entry, event.data, event.type);
        continue;
      }
      // Checked once here (the fold below finds it checked): its data is used before the fold.
      try {
        upcast(event);
      } catch (error) {
        if (!isUnreadableHistory(error)) throw error;
        this.damaged.set(event.stream, error);
        this.hold(entry, event.data, event.type);
        continue;
      }
      const position = String(event.position);
      if (event.type !== 'NodeReplied' && event.type !== 'RoundCompleted' && entry.pending.length > 0) {
        // Replies not followed by their round: never deleted, as nothing says which round they are.
        for (const sha of entry.pending.splice(0)) {
          if (!entry.permanent.has(sha)) entry.permanent.set(sha, 'NodeReplied');
        }
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
      let list = byStream.get(event.stream);
      if (list === undefined) byStream.set(event.stream, (list = []));
      list.push(event);
    }
    for (const [stream, list] of byStream) {
      const entry = this.streams.get(stream)!;
      entry.state = replay(list, entry.state);
    }
  }

  /** Why an experiment's history cannot be read, naming its folder; null when it can. */
  damage(stream: string): UnreadableHistoryError | null {
    const error = this.damaged.get(stream);
    if (error === undefined) return null;
    const folder = this.registry.find((e) => e.stream === stream)?.folder ?? (this.state(stream)?.folder || stream);
    return historyDamaged(error, { folder, stream }) as UnreadableHistoryError;
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
    const state = this.state(stream);
    if (state === null) return new Set();
    const children = [...this.streams.values()].map((other) => other.state.forkedFrom).filter((f) => f !== null);
    return forkProtectedPositions(state, children);
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
        else if (candidates === undefined || candidates.get(stream)?.has(position)) {
          for (const sha of refs) wanted.add(sha);
        }
      }
    }
    const deletable = new Set<string>();
    const stillReferenced = new Set<string>();
    for (const sha of wanted) (retained.has(sha) ? stillReferenced : deletable).add(sha);
    return { deletable, stillReferenced };
  }

  /** The blobs an experiment's kept rounds and permanent data reference, each with what references it. */
  /**
   * The experiments and kept rounds that reference each of `hashes` (every hash is a key, with no
   * user when nothing the log keeps references it). What verify and verify --repair name beside a
   * damaged or missing blob.
   */
  usersOf(hashes: Iterable<string>): Map<string, BlobUser[]> {
    const users = new Map<string, BlobUser[]>();
    for (const sha256 of hashes) users.set(sha256, []);
    if (users.size === 0) return users;
    for (const [stream] of this.streams) {
      const experiment = this.state(stream)?.folder ?? stream;
      for (const ref of this.retainedReferences(stream)) {
        users.get(ref.sha256)?.push({ experiment, round: ref.round, branch: ref.branch, what: ref.what });
      }
    }
    return users;
  }

  retainedReferences(stream: string): RetainedReference[] {
    const entry = this.streams.get(stream);
    const state = this.state(stream);
    if (entry === undefined || state === null) return [];
    const out: RetainedReference[] = [];
    for (const [sha256, what] of entry.permanent) out.push({ sha256, round: null, branch: null, what });
    const byPosition = new Map<string, { round: number; branch: RoundRef['branch'] }>();
    for (const r of state.rounds) if (r) byPosition.set(String(r.position), { round: r.round, branch: 'current' });
    for (const r of state.superseded) byPosition.set(String(r.position), { round: r.round, branch: 'superseded' });
    for (const [position, refs] of entry.rounds) {
      if (entry.pruned.has(position)) continue;
      const at = byPosition.get(position);
      for (const sha256 of refs) {
        out.push({ sha256, round: at?.round ?? null, branch: at?.branch ?? null, what: 'round parameters' });
      }
    }
    return out;
  }

  private entry(stream: string, firstType: string): StreamEntry {
    let entry = this.streams.get(stream);
    if (entry === undefined) {
      entry = {
        experiment: firstType === 'ExperimentCreated',
        state: initialState,
        pending: [],
        permanent: new Map(),
        rounds: new Map(),
        pruned: new Set(),
      };
      this.streams.set(stream, entry);
    }
    return entry;
  }

  private hold(entry: StreamEntry, data: unknown, type: string): void {
    for (const ref of blobRefsIn(data)) if (!entry.permanent.has(ref.sha256)) entry.permanent.set(ref.sha256, type);
  }
}
