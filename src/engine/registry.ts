/**
 * The registry of a root's experiments: the `roundlog.experiments` stream, one
 * `ExperimentRegistered` per experiment, read without scanning the whole log.
 */
import { CorruptLogError, StreamNotFoundError } from '../log/errors.ts';
import type { EventLog, ReadStreamOptions, ReadStreamResult, RecordedEvent, StreamInfo } from '../log/types.ts';
import {
  ExperimentHistoryDamagedError,
  InvalidEventDataError,
  RegistryDamagedError,
  UnknownEventError,
  registryDamageAt,
} from '../model/errors.ts';
import { EXPERIMENT_STREAM_PREFIX, REGISTRY_STREAM, type ExperimentRegistered } from '../model/events.ts';
import { upcast, upcastRegistered } from '../model/state.ts';

/**
 * The first record of the registry stream that cannot be read: damaged bytes (`file`, `offset`),
 * or a whole record of an unknown type or data of the wrong shape (`revision`).
 */
export type RegistryDamage = Readonly<{
  file: string | null;
  offset: number | null;
  revision: bigint | null;
  reason: string;
  error: CorruptLogError | InvalidEventDataError | UnknownEventError;
}>;

export type RegistryRead = Readonly<{
  /** Every experiment, in order of number. */
  entries: ExperimentRegistered[];
  /** The registry stream's last revision (null: no registration yet). */
  lastRevision: bigint | null;
  /** Null when every record of the registry was read. */
  damage: RegistryDamage | null;
  /** Every damaged record of the registry (`damage` is the first): whole-log reads pass them. */
  damaged: readonly RegistryDamage[];
}>;

/**
 * Every registration, and the registry stream's last revision. When a record of the registry
 * cannot be read (`damage`), the experiments are found from the log itself: the readable records
 * of the registry, read one by one, and every experiment stream, whose first event
 * (`ExperimentCreated`) gives its number, id and folder. A damaged registry record never hides an
 * experiment whose own history is fine. A warning names the damage once per process (unless
 * `warn: false`: `verify` reports it itself).
 */
export async function readRegistryStream(log: EventLog, options: { warn?: boolean } = {}): Promise<RegistryRead> {
  try {
    const { events, lastRevision } = await log.readStream(REGISTRY_STREAM);
    return { entries: events.map(upcastRegistered), lastRevision, damage: null, damaged: [] };
  } catch (error) {
    if (error instanceof StreamNotFoundError) return { entries: [], lastRevision: null, damage: null, damaged: [] };
    if (!isUnreadableRecord(error)) throw error;
    const read = await readDamagedRegistry(log, error);
    if (options.warn !== false) warnRegistryDamaged(read.damage);
    return read;
  }
}

/**
 * Refuses, before anything is written, an append to a registry that cannot be read: nothing is
 * appended after damage in a stream, and a number allocated past an unreadable record could be
 * one already in use.
 */
export function assertRegistryWritable(read: RegistryRead): void {
  const { damage } = read;
  if (damage === null) return;
  throw new RegistryDamagedError(
    REGISTRY_STREAM,
    damage.file,
    damage.offset,
    damage.revision,
    damage.reason,
    damage.error,
  );
}

/**
 * `assertRegistryWritable` of the root's registry, read on its own: callers that store things
 * before creating an experiment (its parameters, its training plan) refuse before storing them.
 */
export async function checkRegistryWritable(access: {
  withReader<T>(fn: (log: EventLog) => Promise<T>): Promise<T>;
}): Promise<void> {
  assertRegistryWritable(await access.withReader((log) => readRegistryStream(log)));
}

function isUnreadableRecord(error: unknown): error is CorruptLogError | InvalidEventDataError | UnknownEventError {
  return (
    error instanceof CorruptLogError || error instanceof InvalidEventDataError || error instanceof UnknownEventError
  );
}

function damageOf(
  error: CorruptLogError | InvalidEventDataError | UnknownEventError,
  revision: bigint | null,
): RegistryDamage {
  if (error instanceof CorruptLogError)
    return { file: error.file, offset: error.offset, revision, reason: error.reason, error };
  const reason =
    error instanceof InvalidEventDataError
      ? `its ${error.eventType} event has ${error.field} that ${error.problem}`
      : `its event of type ${JSON.stringify(error.eventType)} is one this release of roundlog cannot read`;
  return { file: null, offset: null, revision: error.revision, reason, error };
}

async function readDamagedRegistry(
  log: EventLog,
  first: CorruptLogError | InvalidEventDataError | UnknownEventError,
): Promise<RegistryRead & { damage: RegistryDamage }> {
  const { streams } = await log.listStreams();
  const lastRevision = streams.find((s) => s.stream === REGISTRY_STREAM)?.lastRevision ?? null;
  const registered: ExperimentRegistered[] = [];
  const damaged: RegistryDamage[] = [];
  // One record at a time: a damaged one does not keep the records after it from being read.
  for (let revision = 0n; lastRevision !== null && revision <= lastRevision; revision++) {
    try {
      const { events } = await log.readStream(REGISTRY_STREAM, { fromRevision: revision, maxCount: 1 });
      for (const event of events) registered.push(upcastRegistered(event));
    } catch (error) {
      if (!isUnreadableRecord(error)) throw error;
      damaged.push(damageOf(error, revision));
    }
  }
  const damage = damaged[0] ?? damageOf(first, null);
  const known = new Set(registered.map((e) => e.stream));
  const numbers = new Set(registered.map((e) => e.number));
  // The experiment streams no readable record registers, from their `ExperimentCreated`.
  const found = new Map<number, { entry: ExperimentRegistered; at: StreamInfo }>();
  for (const info of streams) {
    if (!info.stream.startsWith(EXPERIMENT_STREAM_PREFIX) || known.has(info.stream)) continue;
    const entry = await createdEntry(log, info.stream);
    // A stream whose first event cannot be read is named by `verify`; nothing here can tell its folder.
    // A number a readable record registers, or a later stream has, is a creation that crashed before
    // its registration (the next creation took the same number): nothing lists it, as ever.
    if (entry === null || numbers.has(entry.number)) continue;
    const other = found.get(entry.number);
    if (other === undefined || other.at.firstPosition < info.firstPosition)
      found.set(entry.number, { entry, at: info });
  }
  const entries = [...registered, ...[...found.values()].map((f) => f.entry)].sort((a, b) => a.number - b.number);
  return { entries, lastRevision, damage, damaged };
}

/** The registration an experiment stream's first event stands for, or null when it cannot be read as one. */
async function createdEntry(log: EventLog, stream: string): Promise<ExperimentRegistered | null> {
  try {
    const [first] = (await log.readStream(stream, { maxCount: 1 })).events;
    if (first === undefined) return null;
    const event = upcast(first);
    if (event.type !== 'ExperimentCreated') return null;
    const { number, experimentId, folder } = event.data;
    return { v: 1, number, experimentId, folder, stream };
  } catch (error) {
    if (error instanceof StreamNotFoundError || isUnreadableRecord(error)) return null;
    throw error;
  }
}

/** A page of the whole log read by `readAllPastRegistryDamage`. */
export type LogPage = Readonly<{
  events: readonly RecordedEvent[];
  /** The position of the last record read or passed; null when there was none. */
  last: bigint | null;
  /** Whether the page holds `maxCount` records, those passed counted: more may follow. */
  full: boolean;
  /** Whether a damaged record of the registry was passed. */
  passed: boolean;
}>;

/**
 * `log.readAll` forwards from `fromPosition`, passing the damaged records of the registry stream:
 * a registration holds no blob reference and no event of an experiment, and the experiments are
 * found from their own streams (`readRegistryStream`), so the folds of the whole log (gc, audit)
 * need not stop there. Any other damaged record is thrown as ever.
 */
export async function readAllPastRegistryDamage(
  log: EventLog,
  fromPosition: bigint,
  maxCount: number,
): Promise<LogPage> {
  let passable: readonly RegistryDamage[] | null = null;
  const events: RecordedEvent[] = [];
  let from = fromPosition;
  let left = maxCount;
  let last: bigint | null = null;
  while (left > 0) {
    try {
      const page = await log.readAll({ fromPosition: from, maxCount: left });
      events.push(...page.events);
      last = page.events.at(-1)?.position ?? last;
      return { events, last, full: page.events.length === left, passed: from !== fromPosition };
    } catch (error) {
      if (!(error instanceof CorruptLogError)) throw error;
      passable ??= (await readRegistryStream(log)).damaged;
      const isRegistry = (e: unknown) =>
        e instanceof CorruptLogError && passable!.some((d) => d.file === e.file && d.offset === e.offset);
      if (!isRegistry(error)) throw error;
      // The fewest records from `from` whose read fails: the damaged one is the last of them.
      const fails = async (count: number) =>
        log.readAll({ fromPosition: from, maxCount: count }).then(
          () => false,
          (e: unknown) => {
            if (isRegistry(e)) return true;
            throw e;
          },
        );
      let lo = 1;
      let hi = left;
      while (lo < hi) {
        const mid = Math.floor((lo + hi) / 2);
        if (await fails(mid)) hi = mid;
        else lo = mid + 1;
      }
      if (lo > 1) events.push(...(await log.readAll({ fromPosition: from, maxCount: lo - 1 })).events);
      last = from + BigInt(lo - 1);
      from = last + 1n;
      left -= lo;
    }
  }
  return { events, last, full: true, passed: true };
}

/** Registry damage this process has warned about. */
const warned = new Set<string>();

/** Warns, once per process for each damaged record, that the registry is damaged and where. */
function warnRegistryDamaged(damage: RegistryDamage): void {
  const where = registryDamageAt(damage.file, damage.offset, damage.revision);
  if (warned.has(where)) return;
  warned.add(where);
  process.emitWarning(
    `the registry of experiments (stream ${JSON.stringify(REGISTRY_STREAM)}) is damaged: ${where}: ` +
      `${damage.reason}; the experiments are read from their own histories, and creating an experiment is ` +
      `refused; run 'roundlog verify' to list every damaged record`,
    { code: 'ROUNDLOG_REGISTRY_DAMAGED' },
  );
}

/**
 * The registered experiments that have a history. `createExperiment` writes the history first,
 * so every registration has one; a registration without one (written by other tooling, or by a
 * store that lost the stream) is skipped rather than failing every listing.
 */
export async function readRegistry(log: EventLog): Promise<ExperimentRegistered[]> {
  const { entries } = await readRegistryStream(log);
  const withHistory: ExperimentRegistered[] = [];
  for (const entry of entries) if (await hasHistory(log, entry.stream)) withHistory.push(entry);
  return withHistory;
}

/**
 * Whether the stream has an event: one one-event read (never a scan of the whole log, which on
 * EventStoreDB is a scan of `$all`).
 */
export async function hasHistory(log: EventLog, stream: string): Promise<boolean> {
  try {
    return (await log.readStream(stream, { direction: 'backwards', maxCount: 1 })).events.length > 0;
  } catch (error) {
    if (error instanceof StreamNotFoundError) return false;
    // A record is there, damaged: the history exists, and reading it names the damage (`readHistory`).
    if (error instanceof CorruptLogError) return true;
    throw error;
  }
}

/**
 * Reads an experiment's stream; a damaged record is `ExperimentHistoryDamagedError` naming the
 * experiment (`experiment`: its folder), the file and the offset, never a bare `CorruptLogError`.
 * Every read of an experiment's history goes through it.
 */
export async function readHistory(
  log: EventLog,
  experiment: Readonly<{ folder: string; stream: string }>,
  options?: ReadStreamOptions,
): Promise<ReadStreamResult> {
  try {
    return await log.readStream(experiment.stream, options);
  } catch (error) {
    throw historyDamaged(error, experiment);
  }
}

/**
 * `error` naming the experiment: a `CorruptLogError` as `ExperimentHistoryDamagedError`, an
 * `InvalidEventDataError` or `UnknownEventError` of its stream with its folder; else itself.
 */
export function historyDamaged(error: unknown, experiment: Readonly<{ folder: string; stream: string }>): unknown {
  if (error instanceof InvalidEventDataError && error.experiment === null && error.stream === experiment.stream) {
    const { stream, revision, eventType, field, problem } = error;
    return new InvalidEventDataError(stream, revision, eventType, field, problem, experiment.folder);
  }
  if (error instanceof UnknownEventError && error.experiment === null && error.stream === experiment.stream) {
    return new UnknownEventError(error.stream, error.revision, error.eventType, experiment.folder);
  }
  if (!(error instanceof CorruptLogError)) return error;
  return new ExperimentHistoryDamagedError(
    experiment.folder,
    experiment.stream,
    error.file,
    error.offset,
    error.reason,
    error,
  );
}
