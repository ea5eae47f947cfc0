/**
 * What a node says when its stream to the researcher's address ends (`connectionFailure`), for
 * what real servers answer a node's Connect: nothing listening, an HTTP/1 server, an HTTP/2 server
 * that is not gRPC (404; 503 as a proxy whose researcher is down), a gRPC server without the
 * federation service. Plain words naming the address; `foreign` for the answers that are not a
 * roundlog researcher, which the node gives up on after `FOREIGN_ATTEMPTS` in a row.
 */
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { connectionFailure } from '../../src/federated/remote/node.ts';
import { federationProtocol } from '../../src/federated/remote/protocol.ts';

/** The status a node's Connect to `address` ends with. */
function connectStatus(address: string): Promise<grpc.ServiceError> {
  const { Client } = federationProtocol();
  const client = new Client(address, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    const stream = client.Connect();
    stream.on('data', () => undefined);
    stream.on('error', (error: grpc.ServiceError) => {
      client.close();
      resolve(error);
    });
    stream.write({ hello: { protocol_version: 1, node_id: 'x', tags: ['t'], dataset: null } });
  });
}

async function listening<S extends HttpServer | Http2Server>(server: S): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const closed = (server: HttpServer | Http2Server) => new Promise<void>((resolve) => server.close(() => resolve()));

test('each end of a connection is said plainly, naming the address', async (t) => {
  // Nothing listening: a port taken, then let go.
  const probe = createHttpServer();
  const free = await listening(probe);
  await closed(probe);
  t.deepEqual(connectionFailure(free, await connectStatus(free), false), {
    kind: 'absent',
    text: `the researcher at ${free} is not listening (connection refused)`,
  });

  const http1 = createHttpServer((_q, a) => a.end('hello'));
  const h1 = await listening(http1);
  t.teardown(() => closed(http1));
  t.like(connectionFailure(h1, await connectStatus(h1), false), {
    kind: 'foreign',
    text: `${h1} answered, but not in HTTP/2: not a roundlog researcher (an HTTP/1 server or another service?)`,
  });

  let status = 404;
  const http2 = createHttp2Server((_q, a) => {
    a.statusCode = status;
    a.end();
  });
  const h2 = await listening(http2);
  t.teardown(() => closed(http2));
  t.deepEqual(connectionFailure(h2, await connectStatus(h2), false), {
    kind: 'foreign',
    text: `${h2} answered HTTP 404: it is an HTTP server, not a roundlog researcher`,
  });
  status = 503;
  t.deepEqual(connectionFailure(h2, await connectStatus(h2), false), {
    kind: 'absent',
    text: `${h2} answered HTTP 503 (a proxy whose researcher is not up?)`,
  });

  const other = new grpc.Server();
  const port = await new Promise<number>((resolve, reject) =>
    other.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  t.teardown(() => other.forceShutdown());
  const g = `127.0.0.1:${port}`;
  t.deepEqual(connectionFailure(g, await connectStatus(g), false), {
    kind: 'foreign',
    text: `${g} is a gRPC server but not a roundlog researcher (it does not serve roundlog.federation.v1)`,
  });

  // A connection that was welcomed and went away; a clean end; another status.
  const lost = { code: grpc.status.UNAVAILABLE, details: 'Connection dropped' };
  t.deepEqual(connectionFailure(g, lost, true), {
    kind: 'lost',
    text: `lost the connection to the researcher at ${g}`,
  });
  t.deepEqual(connectionFailure(g, null, true), { kind: 'lost', text: `the researcher at ${g} closed the connection` });
  const big = { code: grpc.status.RESOURCE_EXHAUSTED, details: 'Received message larger than max (9 vs. 4)' };
  t.deepEqual(connectionFailure(g, big, true), {
    kind: 'failed',
    text:
      `the connection to the researcher at ${g} failed ` +
      '(gRPC status RESOURCE_EXHAUSTED: Received message larger than max (9 vs. 4))',
  });
});
