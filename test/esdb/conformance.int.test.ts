/**
 * The EventLog conformance suite on EventStoreDB: the real `@eventstore/db-client` over gRPC on
 * loopback, against the wire-level test server (or the server of ROUNDLOG_ESDB_URL). Each log is a
 * fresh namespace of one server, so "a fresh, empty log" holds on a shared real server too.
 */
import test from 'ava';
import { openEsdbEventLog, type EsdbEventLog } from '../../src/log/esdb/index.ts';
import type { EventLog } from '../../src/log/types.ts';
import { eventLogConformance } from '../../src/testing/index.ts';
import { freshNamespace, inProcessServer, targetName, type EsdbTarget } from '../support/esdb.ts';

let server: EsdbTarget;
test.before(async () => {
  server = await inProcessServer();
});
test.after.always(async () => {
  await server?.close();
});

eventLogConformance(test, {
  name: `EventStoreDB (${targetName()})`,
  open: () => openEsdbEventLog({ connectionString: server.connectionString, namespace: freshNamespace() }),
  async reopen(log: EventLog) {
    const { namespace } = log as EsdbEventLog;
    await log.close();
    return openEsdbEventLog({ connectionString: server.connectionString, namespace });
  },
});
