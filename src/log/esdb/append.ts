/**
 * Appends to the EventStoreDB log: events encoded as binary server events, the expected
 * revision mapped onto the client's, and positions read back after the write (the server's
 * answer names only the revision). Also the soft delete of a stream.
 */
import {
  ANY as ESDB_ANY,
  NO_STREAM as ESDB_NO_STREAM,
  STREAM_EXISTS as ESDB_STREAM_EXISTS,
  binaryEvent,
  type AppendExpectedRevision,
} from '@eventstore/db-client';
import { AppendTooLargeError, StoreRequestFailedError } from '../errors.ts';
import type { AppendOptions, AppendResult, EventData } from '../types.ts';
import { checkEvents, checkStreamName, expectedRevisionOf } from '../validate.ts';
import { encode, serverStream } from './mapping.ts';
import { readServerStream } from './read.ts';
import { closedError, run, type EsdbState } from './state.ts';

export function append(
  log: EsdbState,
  stream: string,
  events: readonly EventData[],
  options?: AppendOptions,
): Promise<AppendResult> {
  if (log.closed) return Promise.reject(closedError());
  let expected: ReturnType<typeof expectedRevisionOf>;
  let serverEvents: ReturnType<typeof binaryEvent>[];
  try {
    checkStreamName(stream);
    checkEvents(events);
    expected = expectedRevisionOf(options);
    serverEvents = events.map((event, i) =>
      binaryEvent({ type: event.type, data: encode(event.data, i), id: event.id ?? log.newId() }),
    );
  } catch (error) {
    return Promise.reject(error);
  }
  const bytes = serverEvents.reduce((sum, e) => sum + (e.data as Uint8Array).length, 0);
  const serverExpected: AppendExpectedRevision =
    expected === 'any'
      ? ESDB_ANY
      : expected === 'no_stream'
        ? ESDB_NO_STREAM
        : expected === 'stream_exists'
          ? ESDB_STREAM_EXISTS
          : expected;
  return run(
    log,
    'append',
    async () => {
      let result;
      try {
        result = await log.client.appendToStream(serverStream(log, stream), serverEvents, {
          expectedRevision: serverExpected,
          ...(log.shared.appendCredentials === null ? {} : { credentials: log.shared.appendCredentials }),
        });
      } catch (error) {
        if ((error as { type?: string })?.type === 'maximum-append-size-exceeded') {
          const limit = Number((error as { maxAppendSize?: number }).maxAppendSize ?? 1_048_576);
          throw new AppendTooLargeError(stream, bytes, limit, error);
        }
        throw error;
      }
      // The response names the stream's revision; the events' positions come from reading them back.
      const next = result.nextExpectedRevision;
      const firstRevision = next - BigInt(events.length) + 1n;
      const written = await readServerStream(log, stream, {
        forwards: true,
        from: firstRevision,
        maxCount: events.length,
      });
      const first = written.find((e) => e.revision === firstRevision);
      const last = written.find((e) => e.revision === next);
      if (first === undefined || last === undefined) {
        throw new StoreRequestFailedError(
          log.store,
          'append',
          `the events appended to ${JSON.stringify(stream)} could not be read back (was the stream deleted meanwhile?)`,
          null,
        );
      }
      return { nextExpectedRevision: next, firstPosition: first.position, lastPosition: last.position };
    },
    stream,
    expected,
  );
}

export function deleteStream(log: EsdbState, stream: string): Promise<void> {
  if (log.closed) return Promise.reject(closedError());
  try {
    checkStreamName(stream);
  } catch (error) {
    return Promise.reject(error);
  }
  return run(
    log,
    'deleteStream',
    async () => {
      try {
        await log.client.deleteStream(serverStream(log, stream));
      } catch (error) {
        // Deleting a stream that has no event is not an error: there is nothing left to delete.
        if ((error as { type?: string })?.type === 'stream-not-found') return;
        throw error;
      }
    },
    stream,
  );
}
