/**
 * Runs the EventStoreDB test server (`esdb-server.ts`) in its own process, for tests that need the
 * server outside the test process. Prints `listening <connectionString>` on stdout once it listens;
 * closes and exits on SIGTERM, SIGINT, or when stdin ends (so it dies with its parent).
 *
 *   node --import tsx test/support/esdb-server-main.ts [--max-append-size=N] [--no-system-events]
 */
import { startTestServer, type TestServerOptions } from './esdb-server.ts';

const options: TestServerOptions = {};
for (const arg of process.argv.slice(2)) {
  if (arg === '--no-system-events') options.systemEvents = false;
  else if (arg.startsWith('--max-append-size=')) {
    const size = Number(arg.slice('--max-append-size='.length));
    if (!Number.isSafeInteger(size) || size <= 0) throw new Error(`invalid ${arg}`);
    options.maxAppendSize = size;
  } else throw new Error(`unknown argument ${arg}`);
}

const server = await startTestServer(options);
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void server.close().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
process.stdout.write(`listening ${server.connectionString}\n`);
