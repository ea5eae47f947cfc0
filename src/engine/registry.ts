/**
 * The registry of a root's experiments: the `roundlog.experiments` stream, one
 * `ExperimentRegistered` per experiment, read without scanning the whole log.
 */
import { CorruptLogError, StreamNotFoundError } from '../log/errors.ts';
import type { EventLog, ReadStreamOptions, ReadStreamResult } from '../log/types.ts';
import { ExperimentHistoryDamagedError, InvalidEventDataError, UnknownEventError } from '../model/errors.ts';
import { REGISTRY_STREAM, type ExperimentRegistered } from '../model/events.ts';
import { upcastRegistered } from '../model/state.ts';

/** Every registration, and the registry stream's last revision (null: no registration yet). */
export async function readRegistryStream(
  log: EventLog,
): Promise<{ entries: ExperimentRegistered[]; lastRevision: bigint | null }> {
  try {
    const { events, lastRevision } = await log.readStream(REGISTRY_STREAM);
    return { entries: events.map(upcastRegistered), lastRevision };
  } catch (error) {
    if (error instanceof StreamNotFoundError) return { entries: [], lastRevision: null };
    throw error;
  }
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
