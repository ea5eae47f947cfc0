/** What a user sees when the EventStoreDB store is misnamed or down: typed errors that name it. */
import test from 'ava';
import { openRoundLog } from '../../src/projections/index.ts';
import { InvalidArgumentError } from '../../src/errors.ts';
import { EventStoreDBClient, jsonEvent } from '@eventstore/db-client';
import { StoreRequestFailedError, StoreUnavailableError } from '../../src/log/errors.ts';
import { openEsdbEventLog } from '../../src/log/esdb/index.ts';
import { startTestServer } from '../support/esdb-server.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

test('a server that does not answer is STORE_UNAVAILABLE at open, naming the store without its password', async (t) => {
  const server = await startTestServer();
  const port = server.port;
  await server.close();
  const error = await t.throwsAsync(
    openEsdbEventLog({ connectionString: `esdb://admin:secret@127.0.0.1:${port}?tls=false` }),
    {
      instanceOf: StoreUnavailableError,
    },
  );
  t.is(error!.code, 'STORE_UNAVAILABLE');
  t.is(error!.store, `esdb://127.0.0.1:${port}?tls=false`);
  t.false(error!.message.includes('secret'));
  t.regex(error!.message, /--store or ROUNDLOG_STORE/);
});

test('a store that is not a connection string is refused before anything is opened', async (t) => {
  await t.throwsAsync(openEsdbEventLog({ connectionString: 'http://localhost:2113' }), {
    instanceOf: InvalidArgumentError,
  });
  const error = await t.throwsAsync(openRoundLog({ root: tempDir(), store: 'localhost:2113' }), {
    instanceOf: InvalidArgumentError,
  });
  t.is(error!.argument, 'store');
  await t.throwsAsync(
    openRoundLog({ root: tempDir(), blobs: 'esdb', store: 'file' }),
    { instanceOf: InvalidArgumentError },
    "'esdb' blobs need an EventStoreDB store",
  );
});

test(
  'an event another writer put in the namespace is ' + 'STORE_REQUEST_FAILED naming it, not a crash or a silent skip',
  async (t) => {
    const server = await startTestServer();
    t.teardown(() => server.close());
    const other = EventStoreDBClient.connectionString(server.connectionString);
    await other.appendToStream('ns-mixed', jsonEvent({ type: 'SomeoneElses', data: { hello: 'world' } }));
    await other.dispose();
    const log = await openEsdbEventLog({ connectionString: server.connectionString, namespace: 'ns-' });
    t.teardown(() => log.close());
    const error = await t.throwsAsync(log.readStream('mixed'), { instanceOf: StoreRequestFailedError });
    t.is(error!.code, 'STORE_REQUEST_FAILED');
    t.regex(error!.message, /SomeoneElses.*"ns-mixed".*not written by roundlog/);
    const verified = await log.verify();
    t.false(verified.ok);
    t.is(verified.problems.length, 1);
  },
);
