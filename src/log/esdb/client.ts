/**
 * Driver clients of the EventStoreDB log, shared per connection string, and the connection
 * string's credentials: the ones appends carry, and a form without them for error messages.
 */
import { EventStoreDBClient } from '@eventstore/db-client';
import { InvalidArgumentError } from '../../errors.ts';

export type SharedClient = {
  client: EventStoreDBClient;
  /** Given with each append so the driver uses one unary Append call, not its shared batch stream. */
  appendCredentials: { username: string; password: string } | null;
  release(): Promise<void>;
};

/** How long closing the last log of a client waits for the driver to end its calls. */
const DISPOSE_WAIT_MS = 2000;

/**
 * One driver client per connection string in a process, shared by every log opened on it and
 * disposed with the last of them. The driver keeps the pending appends of all its clients in one
 * table, and a client that is disposed fails the appends of the others that are in flight: with
 * one client per store, closing a log (a follower, the blob store's) cannot fail another's append.
 */
const clients = new Map<string, { client: EventStoreDBClient; refs: number }>();

export function acquireClient(connectionString: string): SharedClient {
  let entry = clients.get(connectionString);
  if (entry === undefined) {
    let client: EventStoreDBClient;
    try {
      client = EventStoreDBClient.connectionString(connectionString);
    } catch (error) {
      throw new InvalidArgumentError(
        'connectionString',
        `is not a valid connection string (${(error as Error).message})`,
        redact(connectionString),
      );
    }
    entry = { client, refs: 0 };
    clients.set(connectionString, entry);
  }
  entry.refs++;
  const held = entry;
  let released = false;
  return {
    client: held.client,
    appendCredentials: appendCredentialsOf(connectionString),
    async release() {
      if (released) return;
      released = true;
      if (--held.refs > 0) return;
      if (clients.get(connectionString) === held) clients.delete(connectionString);
      // The driver cancels every call of the client and waits for each to end; a cancelled
      // two-way call (the batch append stream) may never report its end, so the wait is bounded.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        held.client.dispose().catch(() => undefined),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, DISPOSE_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}

/**
 * The driver sends appends over one long-lived batch stream unless an append carries
 * credentials. That stream is what its module-level table of pending appends belongs to, and
 * what a disposed client may never finish closing: appends carry the connection string's
 * credentials (ignored by an insecure connection, which takes empty ones) to use a plain
 * Append call each. A secure connection without credentials keeps the batch stream.
 */
function appendCredentialsOf(connectionString: string): { username: string; password: string } | null {
  const given = /^esdb(?:\+discover)?:\/\/([^:@/]+):([^@/]*)@/.exec(connectionString);
  if (given !== null) return { username: decodeURIComponent(given[1]!), password: decodeURIComponent(given[2]!) };
  return /[?&]tls=false(&|$)/i.test(connectionString) ? { username: '', password: '' } : null;
}

/** `esdb://user:secret@host` → `esdb://host`: error messages never carry a password. */
export function redact(connectionString: string): string {
  return connectionString.replace(/^(esdb(?:\+discover)?:\/\/)[^@/]*@/, '$1');
}
