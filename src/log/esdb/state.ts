/**
 * What the operations of an open EventStoreDB log share: the driver client, the namespace and
 * hidden prefixes, the live subscriptions and the calls in flight; and `run`, through which
 * every call to the server goes.
 */
import type { EventStoreDBClient } from '@eventstore/db-client';
import { ClosedError } from '../../errors.ts';
import type { AppendOptions } from '../types.ts';
import type { SharedClient } from './client.ts';
import { translate } from './translate.ts';

export type EsdbState = {
  readonly shared: SharedClient;
  readonly client: EventStoreDBClient;
  /** The connection string without credentials. */
  readonly store: string;
  readonly namespace: string;
  readonly hide: readonly string[];
  readonly newId: () => string;
  closed: boolean;
  /** Completes each live subscription; called on close. */
  readonly subscriptions: Set<() => void>;
  readonly inFlight: Set<Promise<unknown>>;
};

export function createState(
  shared: SharedClient,
  store: string,
  namespace: string,
  hide: readonly string[],
  newId: () => string,
): EsdbState {
  return {
    shared,
    client: shared.client,
    store,
    namespace,
    hide,
    newId,
    closed: false,
    subscriptions: new Set(),
    inFlight: new Set(),
  };
}

export function closedError(): ClosedError {
  return new ClosedError('EventStoreDB event log');
}

/** Runs a call to the server: refused once closed, its errors translated, awaited by close. */
export async function run<T>(
  log: EsdbState,
  operation: string,
  fn: () => Promise<T>,
  stream?: string,
  expected?: AppendOptions['expectedRevision'],
): Promise<T> {
  if (log.closed) throw closedError();
  const running = (async () => {
    try {
      return await fn();
    } catch (error) {
      throw translate(log.store, error, operation, stream, expected);
    }
  })();
  log.inFlight.add(running);
  try {
    return await running;
  } finally {
    log.inFlight.delete(running);
  }
}
