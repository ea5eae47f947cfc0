/**
 * The EventStoreDB the ESDB tests run against: the server named by `ROUNDLOG_ESDB_URL` when it is
 * set (a real one, e.g. the cluster of docker/docker-compose.yml), else the wire-level test server
 * of `esdb-server.ts`, in this process or in a child process. Each user gets its own namespace,
 * so tests never see each other's streams, on a shared real server too.
 */
import { randomUUID } from 'node:crypto';
import { spawnTs, type Child } from './child.ts';
import { startTestServer, type TestServer } from './esdb-server.ts';

export const REAL_SERVER = process.env.ROUNDLOG_ESDB_URL || null;

/** Where the tests connect, and whether it is the real server. */
export function targetName(): string {
  return REAL_SERVER === null ? 'test server' : 'real server';
}

/** A namespace no other test uses. */
export function freshNamespace(): string {
  return `t${randomUUID().slice(0, 8)}-`;
}

export type EsdbTarget = { connectionString: string; close(): Promise<void> };

/** A server in this process (or the real one). Reads through it must not block this process's event loop. */
export async function inProcessServer(): Promise<EsdbTarget> {
  if (REAL_SERVER !== null) return { connectionString: REAL_SERVER, close: async () => undefined };
  const server: TestServer = await startTestServer();
  return { connectionString: server.connectionString, close: () => server.close() };
}

/** A server in a child process (or the real one), for tests that run `roundlog` against EventStoreDB. */
export async function childServer(): Promise<EsdbTarget> {
  if (REAL_SERVER !== null) return { connectionString: REAL_SERVER, close: async () => undefined };
  const child: Child = spawnTs('esdb-server-main.ts', []);
  const line = await child.waitFor((l) => l.startsWith('listening '));
  return {
    connectionString: line.slice('listening '.length),
    async close() {
      child.process.kill('SIGTERM');
      await child.exited;
    },
  };
}
