/**
 * The registry of a root's experiments: the `roundlog.experiments` stream, one
 * `ExperimentRegistered` per experiment, read without scanning the whole log.
 */
import { StreamNotFoundError } from '../log/errors.ts';
import type { EventLog } from '../log/types.ts';
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
    throw error;
  }
}
