/**
 * The EventStoreDB test server (`test/support/esdb-server.ts`) against the real
 * `@eventstore/db-client` over loopback: every behaviour the server claims, as the client sees it.
 */
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import {
  BACKWARDS,
  END,
  EventStoreDBClient,
  FORWARDS,
  MaxAppendSizeExceededError,
  NO_STREAM,
  START,
  STREAM_EXISTS,
  StreamDeletedError,
  StreamNotFoundError,
  WrongExpectedVersionError,
  binaryEvent,
  eventTypeFilter,
  excludeSystemEvents,
  jsonEvent,
  streamNameFilter,
  type AllStreamResolvedEvent,
  type AllStreamSubscription,
  type Position,
  type ResolvedEvent,
  type StreamSubscription,
} from '@eventstore/db-client';
import type * as StreamsGrpcModule from '@eventstore/db-client/generated/streams_grpc_pb.js';
import type * as StreamsPbModule from '@eventstore/db-client/generated/streams_pb.js';
import type * as SharedPbModule from '@eventstore/db-client/generated/shared_pb.js';
import type * as FeaturesGrpcModule from '@eventstore/db-client/generated/serverfeatures_grpc_pb.js';
import { startTestServer, type TestServer, type TestServerOptions } from '../support/esdb-server.ts';

const require = createRequire(import.meta.url);
const streamsGrpc: typeof StreamsGrpcModule = require('@eventstore/db-client/generated/streams_grpc_pb.js');
const pb: typeof StreamsPbModule = require('@eventstore/db-client/generated/streams_pb.js');
const shared: typeof SharedPbModule = require('@eventstore/db-client/generated/shared_pb.js');
const featuresGrpc: typeof FeaturesGrpcModule = require('@eventstore/db-client/generated/serverfeatures_grpc_pb.js');

/**
 * Makes the client use Streams.Append instead of Streams.BatchAppend (credentials are ignored on an insecure
 * channel).
 */
const VIA_APPEND = { credentials: { username: 'admin', password: 'changeit' } } as const;
const MIB = 1_048_576;

async function setup(
  t: ExecutionContext,
  options?: TestServerOptions,
): Promise<{ server: TestServer; client: EventStoreDBClient }> {
  const server = await startTestServer(options);
  const client = EventStoreDBClient.connectionString(server.connectionString);
  t.teardown(async () => {
    await client.dispose();
    await server.close();
  });
  return { server, client };
}

const event = (type: string, data: Record<string, unknown> = {}) => jsonEvent({ type, data });

async function readStream(
  client: EventStoreDBClient,
  stream: string,
  options: Parameters<EventStoreDBClient['readStream']>[1] = {},
) {
  const events = [];
  for await (const resolved of client.readStream(stream, options)) events.push(resolved.event!);
  return events;
}

async function readAll(client: EventStoreDBClient, options: Parameters<EventStoreDBClient['readAll']>[0] = {}) {
  const events = [];
  for await (const resolved of client.readAll(options)) events.push(resolved.event!);
  return events;
}

const userEvents = <E extends { streamId: string; type: string }>(events: E[]) =>
  events.filter((e) => !e.type.startsWith('$') && !e.streamId.startsWith('$'));

type Item =
  | { kind: 'confirmation' }
  | { kind: 'caughtUp' }
  | { kind: 'event'; stream: string; type: string; revision: bigint; position: Position | undefined }
  | { kind: 'checkpoint'; position: Position };

/** Records what a subscription emits, in order, and waits on it without sleeping. */
function recorder() {
  const items: Item[] = [];
  let failure: unknown;
  const waiters = new Set<() => void>();
  const changed = () => {
    for (const waiter of [...waiters]) waiter();
  };
  const push = (item: Item) => {
    items.push(item);
    changed();
  };
  return {
    items,
    checkpoint: (_: AllStreamSubscription, position: Position) => push({ kind: 'checkpoint', position }),
    attach(subscription: StreamSubscription | AllStreamSubscription) {
      subscription.on('confirmation', () => push({ kind: 'confirmation' }));
      subscription.on('caughtUp', () => push({ kind: 'caughtUp' }));
      subscription.on('data', (resolved: ResolvedEvent | AllStreamResolvedEvent) => {
        const e = resolved.event!;
        push({ kind: 'event', stream: e.streamId, type: e.type, revision: e.revision, position: e.position });
      });
      subscription.on('error', (error: unknown) => {
        failure = error;
        changed();
      });
      return subscription;
    },
    /** The sequence as short strings: `confirmation`, `caughtUp`, `checkpoint`, or `<stream>/<type>`. */
    trace: () => items.map((i) => (i.kind === 'event' ? `${i.stream}/${i.type}` : i.kind)),
    until(predicate: (items: Item[]) => boolean): Promise<void> {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (predicate(items)) {
            waiters.delete(check);
            resolve();
          } else if (failure !== undefined) {
            waiters.delete(check);
            reject(failure);
          }
        };
        waiters.add(check);
        check();
      });
    },
    failed(): Promise<unknown> {
      return new Promise((resolve) => {
        const check = () => {
          if (failure === undefined) return;
          waiters.delete(check);
          resolve(failure);
        };
        waiters.add(check);
        check();
      });
    },
  };
}

const has =
  (kind: Item['kind'], count = 1) =>
  (items: Item[]) =>
    items.filter((i) => i.kind === kind).length >= count;
const hasEvent = (type: string) => (items: Item[]) => items.some((i) => i.kind === 'event' && i.type === type);

// ---------------------------------------------------------------------------------------------

test.serial('advertises the methods it serves like a 24.x node, BatchAppend included', async (t) => {
  const { server } = await setup(t);
  const raw = new featuresGrpc.ServerFeaturesClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  t.teardown(() => raw.close());
  const supported = await new Promise<import('@eventstore/db-client/generated/serverfeatures_pb.js').SupportedMethods>(
    (resolve, reject) =>
      raw.getSupportedMethods(new shared.Empty(), (error, resp) => (error ? reject(error) : resolve(resp))),
  );
  t.regex(supported.getEventStoreServerVersion(), /^2[34]\.\d+\.\d+$/);
  const methods = supported
    .getMethodsList()
    .map((m) => `${m.getServiceName()}/${m.getMethodName()}[${m.getFeaturesList().join(',')}]`);
  t.deepEqual(methods.sort(), [
    'event_store.client.server_features.serverfeatures/getsupportedmethods[]',
    'event_store.client.streams.streams/append[]',
    'event_store.client.streams.streams/batchappend[deadline_duration]',
    'event_store.client.streams.streams/delete[]',
    'event_store.client.streams.streams/read[position,events]',
    'event_store.client.streams.streams/tombstone[]',
  ]);
});

test.serial('append then read a stream forwards and backwards, every decoded field round-tripping', async (t) => {
  const { client } = await setup(t);
  const before = Date.now();
  const bytes = Uint8Array.from([0, 1, 2, 250, 255]);
  const first = await client.appendToStream('orders-1', [
    jsonEvent({
      id: '6a3b4f1e-8d2c-4b7a-9e10-1f2a3b4c5d6e',
      type: 'created',
      data: { n: 1, s: 'é' },
      metadata: { by: 'me' },
    }),
    binaryEvent({ type: 'blob', data: bytes, metadata: Uint8Array.from([9, 8]) }),
  ]);
  t.true(first.success);
  t.is(first.nextExpectedRevision, 1n);
  const second = await client.appendToStream('orders-1', event('shipped'), VIA_APPEND);
  t.is(second.nextExpectedRevision, 2n);
  t.true(second.position!.commit > first.position!.commit);

  const forwards = await readStream(client, 'orders-1');
  t.deepEqual(
    forwards.map((e) => [e.revision, e.type, e.isJson]),
    [
      [0n, 'created', true],
      [1n, 'blob', false],
      [2n, 'shipped', true],
    ],
  );
  const [created, blob, shipped] = forwards;
  t.is(created!.id, '6a3b4f1e-8d2c-4b7a-9e10-1f2a3b4c5d6e');
  t.is(created!.streamId, 'orders-1');
  t.deepEqual(created!.data, { n: 1, s: 'é' });
  t.deepEqual(created!.metadata, { by: 'me' });
  t.deepEqual(Uint8Array.from(blob!.data as Uint8Array), bytes);
  t.deepEqual(Uint8Array.from(blob!.metadata as Uint8Array), Uint8Array.from([9, 8]));
  t.deepEqual(shipped!.position, second.position);
  t.deepEqual(blob!.position, first.position, 'an append reports the position of its last event');
  t.is(created!.position!.commit, created!.position!.prepare);
  t.true(created!.position!.commit < blob!.position!.commit);
  t.true(
    created!.created.getTime() >= before - 1 && created!.created.getTime() <= Date.now() + 1,
    'created is decoded from ticks since the epoch',
  );

  t.deepEqual(
    (await readStream(client, 'orders-1', { fromRevision: 1n })).map((e) => e.revision),
    [1n, 2n],
    'forwards from a revision is inclusive',
  );
  t.deepEqual(
    (await readStream(client, 'orders-1', { direction: BACKWARDS, fromRevision: END })).map((e) => e.revision),
    [2n, 1n, 0n],
  );
  t.deepEqual(
    (await readStream(client, 'orders-1', { direction: BACKWARDS, fromRevision: 1n })).map((e) => e.revision),
    [1n, 0n],
    'backwards from a revision is inclusive',
  );
  t.deepEqual(
    (await readStream(client, 'orders-1', { maxCount: 2 })).map((e) => e.revision),
    [0n, 1n],
  );
  t.deepEqual(
    (await readStream(client, 'orders-1', { direction: BACKWARDS, fromRevision: END, maxCount: 1 })).map(
      (e) => e.revision,
    ),
    [2n],
  );
  t.deepEqual(await readStream(client, 'orders-1', { fromRevision: 10n }), [], 'past the end: empty, not not-found');

  const missing = await t.throwsAsync(readStream(client, 'nobody'), { instanceOf: StreamNotFoundError });
  t.is(missing.streamName, 'nobody');
});

test.serial('$all: one global order; forwards from a position inclusive, backwards exclusive; maxCount', async (t) => {
  const { client } = await setup(t, { systemEvents: false });
  await client.appendToStream('a', [event('a0'), event('a1')]);
  await client.appendToStream('b', [event('b0')]);
  await client.appendToStream('a', [event('a2')], VIA_APPEND);
  const all = await readAll(client);
  t.deepEqual(
    all.map((e) => `${e.streamId}/${e.type}/${e.revision}`),
    ['a/a0/0', 'a/a1/1', 'b/b0/0', 'a/a2/2'],
  );
  const positions = all.map((e) => e.position!.commit);
  t.deepEqual(
    [...positions].sort((x, y) => (x < y ? -1 : 1)),
    positions,
    'positions increase',
  );
  const at = all[2]!.position!;
  t.deepEqual(
    (await readAll(client, { fromPosition: at })).map((e) => e.type),
    ['b0', 'a2'],
    'forwards from an event position includes it',
  );
  t.deepEqual(
    (await readAll(client, { fromPosition: at, direction: BACKWARDS })).map((e) => e.type),
    ['a1', 'a0'],
    'backwards from an event position excludes it',
  );
  t.deepEqual(
    (await readAll(client, { fromPosition: END, direction: BACKWARDS, maxCount: 2 })).map((e) => e.type),
    ['a2', 'b0'],
  );
  t.deepEqual(
    (await readAll(client, { fromPosition: START, direction: FORWARDS, maxCount: 1 })).map((e) => e.type),
    ['a0'],
  );
  t.deepEqual(await readAll(client, { fromPosition: END }), [], 'forwards from the end reads nothing');
  const between = { commit: at.commit + 1n, prepare: at.prepare + 1n };
  t.deepEqual(
    (await readAll(client, { fromPosition: between })).map((e) => e.type),
    ['a2'],
  );
  t.deepEqual(
    (await readAll(client, { fromPosition: between, direction: BACKWARDS })).map((e) => e.type),
    ['b0', 'a1', 'a0'],
  );
  // Positions compare commit first, then prepare: (p, p + 1) is after the event at (p, p).
  const p = at.commit;
  t.deepEqual(
    (await readAll(client, { fromPosition: { commit: p, prepare: p + 1n } })).map((e) => e.type),
    ['a2'],
  );
  t.deepEqual(
    (await readAll(client, { fromPosition: { commit: p, prepare: p + 1n }, direction: BACKWARDS })).map((e) => e.type),
    ['b0', 'a1', 'a0'],
  );
  t.deepEqual(
    (await readAll(client, { fromPosition: { commit: p, prepare: p - 1n } })).map((e) => e.type),
    ['b0', 'a2'],
  );
});

for (const [path, extra] of [
  ['BatchAppend', {}],
  ['Append', VIA_APPEND],
] as const) {
  test.serial(
    `expected revisions through ${path}: any, no_stream, stream_exists, exact; ` +
      `a wrong one is a WrongExpectedVersionError`,
    async (t) => {
      const { client } = await setup(t);
      const wrong = (promise: Promise<unknown>) => t.throwsAsync(promise, { instanceOf: WrongExpectedVersionError });

      let error = await wrong(client.appendToStream('s', event('x'), { ...extra, expectedRevision: STREAM_EXISTS }));
      t.like(error, { streamName: 's', expectedVersion: 'stream_exists', actualVersion: 'no_stream' });
      error = await wrong(client.appendToStream('s', event('x'), { ...extra, expectedRevision: 0n }));
      t.like(error, { expectedVersion: 0n, actualVersion: 'no_stream' });

      t.is(
        (await client.appendToStream('s', [event('e0'), event('e1')], { ...extra, expectedRevision: NO_STREAM }))
          .nextExpectedRevision,
        1n,
      );
      error = await wrong(client.appendToStream('s', event('x'), { ...extra, expectedRevision: NO_STREAM }));
      t.like(error, { streamName: 's', expectedVersion: 'no_stream', actualVersion: 1n });
      error = await wrong(client.appendToStream('s', event('x'), { ...extra, expectedRevision: 5n }));
      t.like(error, { expectedVersion: 5n, actualVersion: 1n });
      error = await wrong(client.appendToStream('s', event('x'), { ...extra, expectedRevision: 0n }));
      t.like(error, { expectedVersion: 0n, actualVersion: 1n });

      t.is(
        (await client.appendToStream('s', event('e2'), { ...extra, expectedRevision: 1n })).nextExpectedRevision,
        2n,
      );
      t.is(
        (await client.appendToStream('s', event('e3'), { ...extra, expectedRevision: STREAM_EXISTS }))
          .nextExpectedRevision,
        3n,
      );
      t.is((await client.appendToStream('s', event('e4'), { ...extra })).nextExpectedRevision, 4n);
      t.deepEqual(
        (await readStream(client, 's')).map((e) => e.type),
        ['e0', 'e1', 'e2', 'e3', 'e4'],
        'failed appends wrote nothing',
      );
    },
  );
}

test.serial('re-appending the same event ids at the same expected revision is idempotent', async (t) => {
  const { client } = await setup(t);
  const batch = [jsonEvent({ type: 'a', data: {} }), jsonEvent({ type: 'b', data: {} })];
  const first = await client.appendToStream('s', batch, { expectedRevision: NO_STREAM });
  const again = await client.appendToStream('s', batch, { expectedRevision: NO_STREAM });
  t.deepEqual(again, first);
  const anyAgain = await client.appendToStream('s', batch, VIA_APPEND);
  t.deepEqual(anyAgain, first);
  t.is((await readStream(client, 's')).length, 2);
  await t.throwsAsync(client.appendToStream('s', [batch[0]!, event('new')], { expectedRevision: NO_STREAM }), {
    instanceOf: WrongExpectedVersionError,
  });
});

for (const [path, extra] of [
  ['BatchAppend', {}],
  ['Append', VIA_APPEND],
] as const) {
  test.serial(
    `an append over 1 MiB is rejected through ${path} with MaxAppendSizeExceededError and writes nothing`,
    async (t) => {
      const { client } = await setup(t);
      await client.appendToStream('big', event('before'));
      const allBefore = await readAll(client);
      const data = new Uint8Array(MIB);
      const error = await t.throwsAsync(client.appendToStream('big', binaryEvent({ type: 'x', data }), extra), {
        instanceOf: MaxAppendSizeExceededError,
      });
      t.is(error.maxAppendSize, MIB);
      // Append fails the call with a status (its code is kept); BatchAppend answers with a rich error.
      t.is(error.code, path === 'Append' ? grpc.status.INVALID_ARGUMENT : undefined, `the client went through ${path}`);
      // Split over several events, still one atomic append: none of it is written.
      await t.throwsAsync(
        client.appendToStream(
          'big',
          [0, 1, 2, 3].map(() => binaryEvent({ type: 'part', data: new Uint8Array(MIB / 4) })),
          extra,
        ),
        { instanceOf: MaxAppendSizeExceededError },
      );
      // Larger than gRPC's default 4 MiB message limit: still the append size error.
      await t.throwsAsync(
        client.appendToStream('big', binaryEvent({ type: 'x', data: new Uint8Array(5 * MIB) }), extra),
        {
          instanceOf: MaxAppendSizeExceededError,
        },
      );
      t.deepEqual(await readAll(client), allBefore, 'nothing written');
      await t.throwsAsync(readStream(client, 'never'), { instanceOf: StreamNotFoundError });
      // The server counts data + metadata + 2 bytes per character of the event type.
      const fits = binaryEvent({ type: 'ab', data: new Uint8Array(MIB - 4 - 10), metadata: new Uint8Array(10) });
      t.is((await client.appendToStream('big', fits, extra)).nextExpectedRevision, 1n);
      const overByOne = binaryEvent({ type: 'abc', data: new Uint8Array(MIB - 6 + 1) });
      await t.throwsAsync(client.appendToStream('big', overByOne, extra), { instanceOf: MaxAppendSizeExceededError });
      t.is((await readStream(client, 'big')).length, 2);
    },
  );
}

test.serial('maxAppendSize is configurable and the connection stays usable after a rejection', async (t) => {
  const { client } = await setup(t, { maxAppendSize: 100 });
  const error = await t.throwsAsync(client.appendToStream('s', binaryEvent({ type: 't', data: new Uint8Array(99) })), {
    instanceOf: MaxAppendSizeExceededError,
  });
  t.is(error.maxAppendSize, 100);
  t.is(
    (await client.appendToStream('s', binaryEvent({ type: 't', data: new Uint8Array(98) }))).nextExpectedRevision,
    0n,
  );
});

test.serial('wire order of a catch-up subscription: confirmation, history, caughtUp, then live events', async (t) => {
  const { server, client } = await setup(t);
  await client.appendToStream('s', [event('h0'), event('h1')]);
  const raw = new streamsGrpc.StreamsClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  t.teardown(() => raw.close());
  const req = new pb.ReadReq();
  const options = new pb.ReadReq.Options();
  const streamOptions = new pb.ReadReq.Options.StreamOptions();
  const identifier = new shared.StreamIdentifier();
  identifier.setStreamName(new TextEncoder().encode('s'));
  streamOptions.setStreamIdentifier(identifier);
  streamOptions.setStart(new shared.Empty());
  options.setStream(streamOptions);
  options.setSubscription(new pb.ReadReq.Options.SubscriptionOptions());
  const uuid = new pb.ReadReq.Options.UUIDOption();
  uuid.setStructured(new shared.Empty());
  options.setUuidOption(uuid);
  options.setNoFilter(new shared.Empty());
  req.setOptions(options);
  const call = raw.read(req);
  t.teardown(() => call.cancel());
  const seen: string[] = [];
  let ids: string[] = [];
  const live = new Promise<void>((resolve, reject) => {
    call.on('error', reject);
    call.on('data', (resp: StreamsPbModule.ReadResp) => {
      if (resp.hasConfirmation()) seen.push('confirmation');
      if (resp.hasCaughtUp()) {
        seen.push('caughtUp');
        void client.appendToStream('s', event('live'));
      }
      if (resp.hasEvent()) {
        const recorded = resp.getEvent()!.getEvent()!;
        seen.push(recorded.getMetadataMap().get('type')!);
        t.true(recorded.getId()!.hasStructured(), 'ids in the requested structured form');
        ids = [...ids, recorded.getId()!.getStructured()!.getMostSignificantBits()];
        if (seen.at(-1) === 'live') resolve();
      }
    });
  });
  await live;
  t.deepEqual(seen, ['confirmation', 'h0', 'h1', 'caughtUp', 'live']);
  const expected = (await readStream(client, 's')).map((e) =>
    BigInt.asIntN(64, BigInt(`0x${e.id.replaceAll('-', '').slice(0, 16)}`)).toString(),
  );
  t.deepEqual(ids, expected);
});

test.serial('subscribeToStream: history, caughtUp, live; from a revision exclusive; from end live only', async (t) => {
  const { client } = await setup(t);
  await client.appendToStream('s', [event('h0'), event('h1'), event('h2')]);
  await client.appendToStream('other', event('noise'));

  const fromStart = recorder();
  const fromRevision = recorder();
  const fromEnd = recorder();
  // Attached synchronously after creation: the client emits nothing before the next tick.
  const subs = [
    fromStart.attach(client.subscribeToStream('s')),
    fromRevision.attach(client.subscribeToStream('s', { fromRevision: 1n })),
    fromEnd.attach(client.subscribeToStream('s', { fromRevision: END })),
  ];
  t.teardown(() => Promise.all(subs.map((s) => s.unsubscribe())));
  await Promise.all([fromStart, fromRevision, fromEnd].map((r) => r.until(has('caughtUp'))));
  t.deepEqual(fromStart.trace(), ['confirmation', 's/h0', 's/h1', 's/h2', 'caughtUp']);
  t.deepEqual(fromRevision.trace(), ['confirmation', 's/h2', 'caughtUp']);
  t.deepEqual(fromEnd.trace(), ['confirmation', 'caughtUp']);

  await client.appendToStream('other', event('noise'));
  await client.appendToStream('s', [event('l3'), event('l4')]);
  await Promise.all([fromStart, fromRevision, fromEnd].map((r) => r.until(hasEvent('l4'))));
  t.deepEqual(fromStart.trace().slice(5), ['s/l3', 's/l4']);
  t.deepEqual(fromRevision.trace().slice(3), ['s/l3', 's/l4']);
  t.deepEqual(fromEnd.trace(), ['confirmation', 'caughtUp', 's/l3', 's/l4']);
  t.deepEqual(
    fromStart.items.flatMap((i) => (i.kind === 'event' ? [i.revision] : [])),
    [0n, 1n, 2n, 3n, 4n],
  );
});

test.serial('a subscription to a stream that does not exist yet is caught up and waits for its events', async (t) => {
  const { client } = await setup(t);
  const rec = recorder();
  const sub = rec.attach(client.subscribeToStream('later'));
  t.teardown(() => sub.unsubscribe());
  // Like a 24.x server: caught up at once (nothing to catch up on), the stream's events come live.
  await rec.until(has('caughtUp'));
  await client.appendToStream('elsewhere', event('noise'));
  await client.appendToStream('later', [event('first'), event('second')]);
  await client.appendToStream('later', event('third'));
  await rec.until(hasEvent('third'));
  t.deepEqual(rec.trace(), ['confirmation', 'caughtUp', 'later/first', 'later/second', 'later/third']);

  // A soft-deleted stream: nothing visible to catch up on; its recreation arrives live.
  await client.deleteStream('later');
  const again = recorder();
  const subAgain = again.attach(client.subscribeToStream('later'));
  t.teardown(() => subAgain.unsubscribe());
  await again.until(has('caughtUp'));
  await client.appendToStream('later', event('reborn'));
  await again.until(hasEvent('reborn'));
  t.deepEqual(again.trace(), ['confirmation', 'caughtUp', 'later/reborn']);
  t.is((again.items.at(-1) as { revision: bigint }).revision, 3n);
});

test.serial('subscribeToAll: history, caughtUp, live; from a position exclusive; from end live only', async (t) => {
  const { client } = await setup(t);
  await client.appendToStream('a', [event('a0'), event('a1')]);
  const fromStart = recorder();
  const fromPosition = recorder();
  const fromEnd = recorder();
  const beforeA0 = recorder();
  const a0 = (await readStream(client, 'a'))[0]!.position!;
  const subs = [
    fromStart.attach(client.subscribeToAll()),
    fromPosition.attach(client.subscribeToAll({ fromPosition: a0 })),
    fromEnd.attach(client.subscribeToAll({ fromPosition: END })),
    beforeA0.attach(client.subscribeToAll({ fromPosition: { commit: a0.commit, prepare: a0.prepare - 1n } })),
  ];
  t.teardown(() => Promise.all(subs.map((s) => s.unsubscribe())));
  await Promise.all([fromStart, fromPosition, fromEnd].map((r) => r.until(has('caughtUp'))));
  t.deepEqual(
    userEvents(fromStart.items.flatMap((i) => (i.kind === 'event' ? [{ streamId: i.stream, type: i.type }] : []))),
    [
      { streamId: 'a', type: 'a0' },
      { streamId: 'a', type: 'a1' },
    ],
  );
  t.is(fromStart.trace()[0], 'confirmation');
  t.is(fromStart.trace().at(-1), 'caughtUp');
  t.true(
    fromStart.trace().some((s) => s.startsWith('$')),
    'system events are delivered too',
  );
  t.deepEqual(fromPosition.trace(), ['confirmation', 'a/a1', 'caughtUp']);
  t.deepEqual(fromEnd.trace(), ['confirmation', 'caughtUp']);
  await beforeA0.until(has('caughtUp'));
  t.deepEqual(beforeA0.trace(), ['confirmation', 'a/a0', 'a/a1', 'caughtUp']);
  await client.appendToStream('b', event('b0'));
  await Promise.all([fromStart, fromPosition, fromEnd].map((r) => r.until(hasEvent('b0'))));
  for (const rec of [fromStart, fromPosition, fromEnd]) t.is(rec.trace().at(-1), 'b/b0');
});

test.serial('filtered $all subscriptions: system events excluded, prefixes, regex, checkpoints', async (t) => {
  const { client } = await setup(t);
  await client.appendToStream('run-1', [event('Started'), event('Stepped')]);
  await client.appendToStream('other-1', event('Started'));
  await client.setStreamMetadata('run-1', { maxCount: 10 });
  const all = await readAll(client);
  t.is(all.length, 7, '3 system events, 3 appended, 1 metadata event');

  const noSystem = recorder();
  const prefixed = recorder();
  const typed = recorder();
  const checkpoints = recorder();
  const subs = [
    noSystem.attach(client.subscribeToAll({ filter: excludeSystemEvents() })),
    prefixed.attach(client.subscribeToAll({ filter: streamNameFilter({ prefixes: ['run-', 'nothing'] }) })),
    typed.attach(client.subscribeToAll({ filter: eventTypeFilter({ regex: '^Start' }) })),
    checkpoints.attach(
      client.subscribeToAll({
        filter: streamNameFilter({
          prefixes: ['run-'],
          maxSearchWindow: 2,
          checkpointInterval: 1,
          checkpointReached: checkpoints.checkpoint,
        }),
      }),
    ),
  ];
  t.teardown(() => Promise.all(subs.map((s) => s.unsubscribe())));
  await Promise.all([noSystem, prefixed, typed, checkpoints].map((r) => r.until(has('caughtUp'))));
  const withoutCheckpoints = (r: ReturnType<typeof recorder>) => r.trace().filter((s) => s !== 'checkpoint');
  const checkpointPositions = (r: ReturnType<typeof recorder>) =>
    r.items.flatMap((i) => (i.kind === 'checkpoint' ? [i.position] : []));
  t.deepEqual(noSystem.trace(), ['confirmation', 'run-1/Started', 'run-1/Stepped', 'other-1/Started', 'caughtUp']);
  t.deepEqual(prefixed.trace(), ['confirmation', 'run-1/Started', 'run-1/Stepped', 'caughtUp']);
  t.deepEqual(typed.trace(), ['confirmation', 'run-1/Started', 'other-1/Started', 'caughtUp']);
  t.deepEqual(withoutCheckpoints(checkpoints), ['confirmation', 'run-1/Started', 'run-1/Stepped', 'caughtUp']);
  // Window 2 × multiplier 1: a checkpoint every 2 events considered, plus one ending the catch-up.
  t.deepEqual(checkpointPositions(checkpoints), [
    all[1]!.position,
    all[3]!.position,
    all[5]!.position,
    all[6]!.position,
  ]);

  await client.appendToStream('run-2', event('Stopped'));
  await client.appendToStream('$system', jsonEvent({ type: '$internal', data: {} }));
  await client.appendToStream('other-2', event('Started'));
  const live = (await readAll(client)).slice(7);
  await noSystem.until((items) => items.filter((i) => i.kind === 'event').length === 5);
  t.deepEqual(noSystem.trace().slice(5), ['run-2/Stopped', 'other-2/Started']);
  await prefixed.until(hasEvent('Stopped'));
  t.deepEqual(prefixed.trace().slice(4), ['run-2/Stopped']);
  await typed.until((items) => items.filter((i) => i.kind === 'event').length === 3);
  t.deepEqual(typed.trace().slice(4), ['other-2/Started']);
  // Live, the count starts again: the second live event completes an interval.
  await checkpoints.until(has('checkpoint', 5));
  t.deepEqual(withoutCheckpoints(checkpoints).slice(4), ['run-2/Stopped']);
  t.deepEqual(checkpointPositions(checkpoints).slice(4), [live[1]!.position]);
});

test.serial(
  'soft delete: reads say not found; a later append recreates the stream with revisions continuing',
  async (t) => {
    const { client } = await setup(t);
    await client.appendToStream('s', [event('e0'), event('e1')]);
    await client.setStreamMetadata('s', { custom: 'kept?' });
    const deleted = await client.deleteStream('s', { expectedRevision: 1n });
    t.truthy(deleted.position);
    await t.throwsAsync(readStream(client, 's'), { instanceOf: StreamNotFoundError });
    t.deepEqual(
      userEvents(await readAll(client)).map((e) => e.type),
      ['e0', 'e1'],
      'the events stay in $all (until a scavenge)',
    );
    t.deepEqual(
      (await client.getStreamMetadata('s')).metadata,
      { truncateBefore: 2 ** 63 },
      'soft delete replaces the metadata with $tb = max',
    );
    await t.throwsAsync(client.appendToStream('s', event('x'), { expectedRevision: STREAM_EXISTS }), {
      instanceOf: StreamDeletedError,
    });

    const recreated = await client.appendToStream('s', event('e2'), { expectedRevision: NO_STREAM });
    t.is(recreated.nextExpectedRevision, 2n);
    t.deepEqual(
      (await readStream(client, 's')).map((e) => [e.revision, e.type]),
      [[2n, 'e2']],
    );
    t.deepEqual((await client.getStreamMetadata('s')).metadata, { truncateBefore: 2 });
    await client.appendToStream('s', event('e3'), { expectedRevision: 2n });
    t.deepEqual(
      (await readStream(client, 's', { direction: BACKWARDS, fromRevision: END })).map((e) => e.revision),
      [3n, 2n],
    );

    await client.deleteStream('s');
    t.is((await client.appendToStream('s', event('e4'))).nextExpectedRevision, 4n, 'expected any recreates it as well');
    const wrong = await t.throwsAsync(client.deleteStream('never-written'), { instanceOf: WrongExpectedVersionError });
    t.like(wrong, { streamName: 'never-written', actualVersion: -1n });
    await t.throwsAsync(client.deleteStream('s', { expectedRevision: 1n }), { instanceOf: WrongExpectedVersionError });
  },
);

test.serial('tombstone: the stream is gone for good, everything on it fails with StreamDeletedError', async (t) => {
  const { client } = await setup(t);
  await client.appendToStream('t', [event('e0')]);
  const live = recorder();
  const sub = live.attach(client.subscribeToStream('t'));
  await live.until(has('caughtUp'));
  const result = await client.tombstoneStream('t', { expectedRevision: 0n });
  t.truthy(result.position);
  t.true((await live.failed()) instanceof StreamDeletedError, 'an open subscription fails');
  t.deepEqual(
    live.trace(),
    ['confirmation', 't/e0', 'caughtUp', 't/$streamDeleted'],
    'after getting the tombstone, like the server',
  );
  await sub.unsubscribe();

  const readError = await t.throwsAsync(readStream(client, 't'), { instanceOf: StreamDeletedError });
  t.is(readError.streamName, 't');
  const appendError = await t.throwsAsync(client.appendToStream('t', event('x')), { instanceOf: StreamDeletedError });
  t.is(appendError.streamName, 't');
  await t.throwsAsync(client.appendToStream('t', event('x'), { ...VIA_APPEND, expectedRevision: NO_STREAM }), {
    instanceOf: StreamDeletedError,
  });
  await t.throwsAsync(client.deleteStream('t'), { instanceOf: StreamDeletedError });
  await t.throwsAsync(client.tombstoneStream('t'), { instanceOf: StreamDeletedError });
  await t.throwsAsync(client.getStreamMetadata('t'), { instanceOf: StreamDeletedError });
  await t.throwsAsync(client.setStreamMetadata('t', { maxCount: 1 }), { instanceOf: StreamDeletedError });
  const later = recorder();
  const laterSub = later.attach(client.subscribeToStream('t'));
  t.teardown(() => laterSub.unsubscribe());
  t.true((await later.failed()) instanceof StreamDeletedError);
  t.deepEqual(later.trace(), ['confirmation']);
  const tomb = (await readAll(client)).at(-1)!;
  t.like(tomb, { streamId: 't', type: '$streamDeleted', revision: 9_223_372_036_854_775_807n });

  await client.tombstoneStream('never-written');
  await t.throwsAsync(readStream(client, 'never-written'), { instanceOf: StreamDeletedError });
  const wrong = await t.throwsAsync(client.tombstoneStream('other', { expectedRevision: 3n }), {
    instanceOf: WrongExpectedVersionError,
  });
  t.like(wrong, { expectedVersion: 3n, actualVersion: -1n });
});

test.serial(
  'stream metadata round-trips through $$stream and maxCount/truncateBefore apply to stream reads',
  async (t) => {
    const { client } = await setup(t);
    t.deepEqual(await client.getStreamMetadata('m'), { streamName: 'm' });
    await client.appendToStream(
      'm',
      [0, 1, 2, 3, 4].map((i) => event(`e${i}`)),
    );
    const metadata = {
      maxCount: 3,
      maxAge: 3600,
      cacheControl: 10,
      acl: { readRoles: ['$all'] },
      custom: { nested: [1, 'two'] },
    };
    const set = await client.setStreamMetadata('m', metadata);
    t.is(set.nextExpectedRevision, 0n);
    const got = await client.getStreamMetadata('m');
    t.is(got.streamName, 'm');
    t.deepEqual(got.metadata, metadata);
    t.is(typeof got.metastreamRevision, 'bigint');
    const raw = (await readStream(client, '$$m'))[0]!;
    t.like(raw, { streamId: '$$m', type: '$metadata', isJson: true, revision: 0n });
    t.deepEqual(raw.data, {
      $maxCount: 3,
      $maxAge: 3600,
      $cacheControl: 10,
      $acl: { $r: ['$all'] },
      custom: { nested: [1, 'two'] },
    });
    t.deepEqual(
      (await readStream(client, 'm')).map((e) => e.type),
      ['e2', 'e3', 'e4'],
      '$maxCount hides older events from stream reads',
    );

    await client.setStreamMetadata('m', { truncateBefore: 4 }, { expectedRevision: 0n });
    t.deepEqual((await client.getStreamMetadata('m')).metadata, { truncateBefore: 4 });
    t.deepEqual(
      (await readStream(client, 'm')).map((e) => e.type),
      ['e4'],
    );
    t.deepEqual(
      (await readStream(client, '$$m')).map((e) => e.revision),
      [1n],
      'a metastream shows its last event only',
    );
    await t.throwsAsync(client.setStreamMetadata('m', { maxCount: 1 }, { expectedRevision: 0n }), {
      instanceOf: WrongExpectedVersionError,
    });
    t.is(userEvents(await readAll(client)).length, 5, '$all still has every event');
  },
);

test.serial(
  'system events: a few in $all from the start and the $metadata events, none with systemEvents: false',
  async (t) => {
    const withSystem = await setup(t);
    const start = await readAll(withSystem.client);
    t.true(start.length >= 2);
    for (const e of start) {
      t.true(e.streamId.startsWith('$'), e.streamId);
      t.true(e.type.startsWith('$'), e.type);
    }
    await withSystem.client.setStreamMetadata('s', { maxCount: 2 });
    t.like((await readAll(withSystem.client)).at(-1), { streamId: '$$s', type: '$metadata' });

    const without = await setup(t, { systemEvents: false });
    t.deepEqual(await readAll(without.client), []);
    await without.client.appendToStream('s', event('only'));
    t.deepEqual(
      (await readAll(without.client)).map((e) => e.type),
      ['only'],
    );
  },
);

test.serial('close() ends open subscriptions and stops serving', async (t) => {
  const server = await startTestServer();
  const client = EventStoreDBClient.connectionString(server.connectionString);
  t.teardown(() => client.dispose());
  const rec = recorder();
  rec.attach(client.subscribeToAll());
  await rec.until(has('caughtUp'));
  await server.close();
  t.truthy(await rec.failed());
  await t.throwsAsync(client.appendToStream('s', event('x')));
});

test.serial('esdb-server-main runs the server in its own process until SIGTERM', async (t) => {
  const main = fileURLToPath(new URL('../support/esdb-server-main.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', main, '--max-append-size=64', '--no-system-events'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', () => reject(new Error('server process exited before listening')));
  });
  const match = /^listening (esdb:\/\/127\.0\.0\.1:\d+\?tls=false)$/.exec(line);
  t.truthy(match, line);
  const client = EventStoreDBClient.connectionString(match![1]!);
  t.teardown(() => client.dispose());
  await client.appendToStream('s', event('e'));
  t.deepEqual(
    (await readAll(client)).map((e) => e.type),
    ['e'],
  );
  await t.throwsAsync(client.appendToStream('s', binaryEvent({ type: 't', data: new Uint8Array(64) })), {
    instanceOf: MaxAppendSizeExceededError,
  });
  child.kill('SIGTERM');
  t.is(await exited, 0);
});
