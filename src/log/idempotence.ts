/**
 * Idempotent appends, the same rule for every adapter (EventStoreDB's): an append whose events
 * carry ids that are already stored, in the same order, in the same stream, is a retry of the
 * append that stored them. It is acknowledged again with that append's result and writes nothing.
 *
 * - At an exact expected revision (or `'no_stream'`, revision −1) below the stream's last one, the
 *   stored events after that revision are compared with the append's, one for one: all ids equal
 *   is a retry; the first id different is an ordinary conflict; the first equal and a later one
 *   different (or missing) is a conflict too: the append is neither the stored one nor a new one.
 * - With `'any'` or `'stream_exists'`, the first id is looked up among the stream's last
 *   `IDEMPOTENCY_WINDOW` events (EventStoreDB also checks only a bounded cache of recent ids
 *   then): found, the next stored events must carry the next ids (else a conflict); not found,
 *   the append is a new one.
 *
 * No index of ids is kept: the lookup reads at most the stream's last `IDEMPOTENCY_WINDOW`
 * events, or as many events as the append has, and only when the append's events carry ids.
 */
import { WrongExpectedRevisionError } from './errors.ts';
import type { AppendResult, EventData, ExpectedRevision, RecordedEvent } from './types.ts';

/** How many of a stream's last events an `'any'` or `'stream_exists'` retry is looked for in. */
export const IDEMPOTENCY_WINDOW = 1024;

/**
 * The stored events of `stream` from revision `from` (inclusive), at most `count` of them, in
 * revision order.
 */
export type ReadStored = (from: number, count: number) => Promise<readonly RecordedEvent[]>;

/** Whether an append may be a retry, given the number of events its stream already holds. */
export function mayBeRetry(events: readonly EventData[], expected: ExpectedRevision, stored: number): boolean {
  if (events[0]?.id === undefined || stored === 0) return false;
  if (expected === 'any' || expected === 'stream_exists') return true;
  const after = expected === 'no_stream' ? -1 : Number(expected);
  return after < stored - 1;
}

/**
 * The original result when the append is a retry; null when it is not (the caller then checks
 * the expected revision as for any append). A partial match is a `WrongExpectedRevisionError`.
 */
export async function findRetry(
  stream: string,
  events: readonly EventData[],
  expected: ExpectedRevision,
  stored: number,
  read: ReadStored,
): Promise<AppendResult | null> {
  if (!mayBeRetry(events, expected, stored)) return null;
  const ids = events.map((event) => event.id);
  let found: readonly RecordedEvent[];
  if (expected === 'any' || expected === 'stream_exists') {
    const from = Math.max(0, stored - IDEMPOTENCY_WINDOW);
    const recent = await read(from, stored - from);
    const at = recent.findIndex((event) => event.id === ids[0]);
    if (at < 0) return null;
    found = recent.slice(at, at + ids.length);
  } else {
    const from = expected === 'no_stream' ? 0 : Number(expected) + 1;
    found = await read(from, ids.length);
    if (found[0]?.id !== ids[0]) return null;
  }
  const mismatch = ids.findIndex((id, i) => found[i]?.id !== id);
  if (mismatch >= 0) {
    const first = found[0]!.revision;
    throw new WrongExpectedRevisionError(
      stream,
      expected,
      BigInt(stored - 1),
      `its events match the events stored from revision ${first} only in part ` +
        `(event ${mismatch} has id ${JSON.stringify(ids[mismatch])}, ` +
        `stored ${found[mismatch] === undefined ? 'nothing' : `id ${JSON.stringify(found[mismatch]!.id)}`}): ` +
        `it is neither a retry of that append nor a new one`,
    );
  }
  const last = found[ids.length - 1]!;
  return { nextExpectedRevision: last.revision, firstPosition: found[0]!.position, lastPosition: last.position };
}
