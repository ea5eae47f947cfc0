/**
 * The server's access to experiments: one `ExperimentHandle` per experiment, kept open between
 * requests, and one queue per experiment, so a request reads, decides and appends without another
 * request of the same experiment in between (a heartbeat never races a round into a conflict).
 * Before each request the handle reads what other processes appended since (`refresh`): a CLI
 * `rewind` or another server on the same root is seen, and an append that still races one fails
 * its expected revision (`ConcurrentModificationError`, 409).
 */
import type { ExperimentHandle, RoundLog } from '../projections/index.ts';
import { RequestIndex } from './idempotency.ts';

export class ExperimentAccess {
  /** Handles by experiment id. */
  private readonly handles = new Map<string, ExperimentHandle>();
  /** Experiment ids by the names requests gave (ids, folder names, stream names). */
  private readonly names = new Map<string, string>();
  /** The request keys of each experiment's stream (`RequestIndex`). */
  private readonly requests = new Map<string, RequestIndex>();
  /** The tail of each experiment's queue. */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(private readonly rl: RoundLog) {}

  /**
   * Runs `fn` with the experiment `name` names (id, folder name, stream name or path, as the CLI
   * takes them), its handle up to date, alone among this server's requests of that experiment.
   * `ExperimentNotFoundError` when nothing answers to the name.
   */
  async with<T>(name: string, fn: (handle: ExperimentHandle) => Promise<T>): Promise<T> {
    let id = this.names.get(name);
    if (id === undefined) {
      const opened = await this.rl.openExperiment(name);
      id = opened.id;
      if (!this.handles.has(id)) this.handles.set(id, opened);
      // Paths are resolved each time (the folder they name may move); names that cannot change are kept.
      if (name === id || name === opened.stream || name === opened.state.folder) this.names.set(name, id);
    }
    const key = id;
    const run = async () => {
      const handle = this.handles.get(key)!;
      await handle.refresh();
      return fn(handle);
    };
    const previous = this.queues.get(key) ?? Promise.resolve();
    const next = previous.then(run, run);
    const tail = next.catch(() => undefined);
    this.queues.set(key, tail);
    void tail.then(() => {
      if (this.queues.get(key) === tail) this.queues.delete(key);
    });
    return next;
  }

  /** The request index of an experiment (used inside `with`, so one request at a time touches it). */
  requestIndex(handle: ExperimentHandle): RequestIndex {
    let index = this.requests.get(handle.id);
    if (index === undefined) {
      index = new RequestIndex(handle.stream);
      this.requests.set(handle.id, index);
    }
    return index;
  }

  /** Runs `fn` alone among this server's requests of every experiment (creations, forks). */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.global;
    const next = previous.then(fn, fn);
    this.global = next.catch(() => undefined);
    return next;
  }

  private global: Promise<unknown> = Promise.resolve();

  /** Waits for the requests in flight, then snapshots every open experiment (the next open replays less). */
  async close(): Promise<void> {
    await Promise.all([...this.queues.values(), this.global]);
    for (const handle of this.handles.values()) await handle.snapshot().catch(() => undefined);
  }
}
