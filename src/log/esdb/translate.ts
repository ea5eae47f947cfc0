/** The EventStoreDB driver's errors as roundlog's own, by the driver's error type. */
import { RoundlogError } from '../../errors.ts';
import {
  StoreRequestFailedError,
  StoreUnavailableError,
  StreamNotFoundError,
  WrongExpectedRevisionError,
} from '../errors.ts';
import type { AppendOptions } from '../types.ts';

export function translate(
  store: string,
  error: unknown,
  operation: string,
  stream?: string,
  expected?: AppendOptions['expectedRevision'],
): unknown {
  if (error instanceof RoundlogError) return error;
  const type = (error as { type?: string })?.type;
  switch (type) {
    case 'wrong-expected-version': {
      const actual = (error as { actualVersion?: bigint | string }).actualVersion;
      const revision = typeof actual === 'bigint' ? actual : 'no_stream';
      return new WrongExpectedRevisionError(stream!, expected ?? 'any', revision);
    }
    case 'stream-not-found':
      return new StreamNotFoundError(stream ?? '$all');
    case 'unavailable':
    case 'deadline-exceeded':
    case 'timeout':
    case 'not-leader':
      return new StoreUnavailableError(store, operation, error);
    case 'stream-deleted':
      return new StoreRequestFailedError(
        store,
        operation,
        `stream ${JSON.stringify(stream)} was deleted for good (tombstoned) on the server; ` +
          'its name cannot be used again',
        error,
      );
    case 'access-denied':
      return new StoreRequestFailedError(
        store,
        operation,
        'access denied: give credentials in the connection string (esdb://user:password@host)',
        error,
      );
    default:
      return new StoreRequestFailedError(store, operation, (error as Error)?.message ?? String(error), error);
  }
}
