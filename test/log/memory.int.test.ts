/** The in-memory EventLog adapter: the conformance suite, plus what only this adapter promises. */
import test from 'ava';
import { getInMemoryEventLog } from '../../src/log/memory.ts';
import { collectSubscription, eventLogConformance, eventsOf } from '../../src/testing/index.ts';

eventLogConformance(test, { name: 'memory', open: async () => getInMemoryEventLog() });

test('memory: timestamps come from the injected clock and ids from the injected source', async (t) => {
  let tick = 0;
  let next = 0;
  const log = getInMemoryEventLog({
    clock: () => new Date(Date.UTC(2024, 0, 1, 0, 0, tick++)),
    newId: () => `id-${next++}`,
  });
  t.teardown(() => log.close());
  await log.append('s', [
    { type: 'a', data: null },
    { type: 'b', data: null, id: 'given' },
    { type: 'c', data: null },
  ]);
  await log.append('s', [{ type: 'd', data: null }]);
  const events = (await log.readAll()).events;
  t.deepEqual(
    events.map((e) => e.id),
    ['id-0', 'given', 'id-1', 'id-2'],
  );
  t.deepEqual(
    events.map((e) => e.timestamp.toISOString()),
    ['2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:01.000Z'],
    'one clock reading per append',
  );
});

test('memory: positions are dense from 0n', async (t) => {
  const log = getInMemoryEventLog();
  t.teardown(() => log.close());
  const first = await log.append('a', [
    { type: 'a0', data: 0 },
    { type: 'a1', data: 1 },
  ]);
  const second = await log.append('b', [{ type: 'b0', data: 0 }]);
  t.deepEqual(first, { nextExpectedRevision: 1n, firstPosition: 0n, lastPosition: 1n });
  t.deepEqual(second, { nextExpectedRevision: 0n, firstPosition: 2n, lastPosition: 2n });
  t.deepEqual(
    (await log.readAll()).events.map((e) => e.position),
    [0n, 1n, 2n],
  );
});

test('memory: data that cannot be cloned is an invalid argument and stores nothing', async (t) => {
  const log = getInMemoryEventLog();
  t.teardown(() => log.close());
  const error = await t.throwsAsync(
    log.append('s', [
      { type: 'ok', data: 1 },
      { type: 'bad', data: { callback: () => 1 } },
    ]),
    { code: 'INVALID_ARGUMENT' },
  );
  t.regex(error.message, /events\[1\]\.data/);
  t.deepEqual((await log.readAll()).events, []);
});

test('memory: returned events are frozen copies', async (t) => {
  const log = getInMemoryEventLog();
  t.teardown(() => log.close());
  await log.append('s', [{ type: 'a', data: { n: 1 } }]);
  const [event] = (await log.readStream('s')).events;
  t.true(Object.isFrozen(event));
  event!.timestamp.setTime(0);
  t.not((await log.readStream('s')).events[0]!.timestamp.getTime(), 0);
});

test('memory: a catch-up longer than one page lets appends in and still misses nothing', async (t) => {
  const log = getInMemoryEventLog();
  t.teardown(() => log.close());
  for (let i = 0; i < 10; i++) {
    await log.append(
      's',
      Array.from({ length: 100 }, (_, k) => ({ type: `e${i}-${k}`, data: k })),
    );
  }
  const collecting = collectSubscription(log.subscribe({ stream: 's', from: 50n }), 1000);
  await log.append('s', [{ type: 'during-catch-up', data: null }]);
  await log.append('other', [{ type: 'ignored', data: null }]);
  await log.append(
    's',
    Array.from({ length: 49 }, (_, k) => ({ type: `late${k}`, data: k })),
  );
  const items = await collecting;
  const expected = (await log.readStream('s', { fromRevision: 50n })).events;
  t.deepEqual(eventsOf(items), expected);
  const caughtUpAt = items.findIndex((i) => i.kind === 'caughtUp');
  t.is(caughtUpAt, items.length - 1, 'the appends made during catch-up arrived before caughtUp');
});
