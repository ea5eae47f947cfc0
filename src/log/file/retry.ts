/**
 * Idempotent appends on the file log (the rule is in `src/log/idempotence.ts`): an append whose
 * event ids may be those of a stored append is compared with the durable events of its stream
 * before it goes to the writer. Appends without ids, or at the stream's current revision, go
 * straight to the writer and keep its group commit.
 */
import type { AppendOptions, AppendResult, EventData } from '../types.ts';
import { findRetry, mayBeRetry } from '../idempotence.ts';
import { checkEvents, checkStreamName, expectedRevisionOf } from '../validate.ts';
import { readStream } from './reader.ts';
import { checkOpen, type FileLogState } from './state.ts';
import { append } from './writer.ts';

export async function appendOnce(
  log: FileLogState,
  stream: string,
  events: readonly EventData[],
  options?: AppendOptions,
): Promise<AppendResult> {
  checkOpen(log);
  checkStreamName(stream);
  checkEvents(events);
  const expected = expectedRevisionOf(options);
  const state = log.streams.get(stream);
  if (!log.readOnly && state !== undefined && mayBeRetry(events, expected, state.pending)) {
    // Compare with durable events only: wait for the appends already accepted on this stream.
    while (state.pending > state.count && log.flushing !== null && log.failed === null) await log.flushing;
    const retry = await findRetry(stream, events, expected, state.count, async (from, count) => {
      return (await readStream(log, stream, { fromRevision: BigInt(from), maxCount: count })).events;
    });
    if (retry !== null) return retry;
  }
  return append(log, stream, events, options);
}
