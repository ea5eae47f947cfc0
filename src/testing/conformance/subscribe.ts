/** Conformance: subscriptions: history, one caughtUp, live events, no gap or duplicate under racing appends. */
import { lastValueFrom, take, tap, toArray } from 'rxjs';
import { collectSubscription, eventsOf, recordSubscription } from './subscriptions.ts';
import { assertSubscription, burst, caughtUp, event, isEvent, item, numbered, seed, type Suite } from './support.ts';

export function subscribeTests<Context>(suite: Suite<Context>): void {
  const { test, title, openLog } = suite;

  test(title('subscribe to all: history, one caughtUp, then live events'), async (t) => {
    const log = await openLog(t);
    await log.append('a', numbered('a', 2));
    await log.append('b', numbered('b', 1));
    const recording = recordSubscription(log.subscribe());
    t.teardown(() => recording.unsubscribe());

    const history = await recording.untilEvents(3);
    const all = (await log.readAll()).events;
    t.deepEqual(history, [...all.map(item), { kind: 'caughtUp', position: all[2]!.position }]);

    await log.append('c', numbered('c', 2));
    const items = await recording.untilEvents(5);
    const after = (await log.readAll()).events;
    t.deepEqual(eventsOf(items), after);
    t.is(items.filter((i) => i.kind === 'caughtUp').length, 1);
    t.is(items[3]!.kind, 'caughtUp', 'live events come after caughtUp');
  });

  test(title('subscribe on an empty log: caughtUp with a null position, then live events'), async (t) => {
    const log = await openLog(t);
    const all = recordSubscription(log.subscribe());
    const stream = recordSubscription(log.subscribe({ stream: 's' }));
    t.teardown(() => all.unsubscribe());
    t.teardown(() => stream.unsubscribe());
    t.deepEqual(await all.until(caughtUp), [{ kind: 'caughtUp', position: null }]);
    t.deepEqual(await stream.until(caughtUp), [{ kind: 'caughtUp', position: null }]);

    await log.append('t', [event('other')]);
    await log.append('s', [event('mine')]);
    const events = (await log.readAll()).events;
    t.deepEqual(await all.untilEvents(2), [{ kind: 'caughtUp', position: null }, ...events.map(item)]);
    t.deepEqual(await stream.untilEvents(1), [{ kind: 'caughtUp', position: null }, item(events[1]!)]);
  });

  test(title('subscribe to all: no gap and no duplicate while appends race the catch-up'), async (t) => {
    const log = await openLog(t);
    await seed(log, 600);
    const recording = recordSubscription(log.subscribe());
    t.teardown(() => recording.unsubscribe());
    await burst(log);
    const sentinel = await log.append('sentinel', [event('sentinel')]);
    const items = await recording.until(
      (received) => caughtUp(received) && received.some(isEvent(sentinel.lastPosition)),
    );
    assertSubscription(t, items, (await log.readAll()).events);
  });

  test(title('subscribe to a stream: no gap and no duplicate while appends race the catch-up'), async (t) => {
    const log = await openLog(t);
    await seed(log, 600);
    const recording = recordSubscription(log.subscribe({ stream: 's1' }));
    t.teardown(() => recording.unsubscribe());
    await burst(log);
    const sentinel = await log.append('s1', [event('sentinel')]);
    const items = await recording.until(
      (received) => caughtUp(received) && received.some(isEvent(sentinel.lastPosition)),
    );
    const expected = (await log.readStream('s1')).events;
    assertSubscription(t, items, expected);
    t.deepEqual(
      eventsOf(items).map((e) => e.revision),
      expected.map((_, k) => BigInt(k)),
    );
  });

  test(title('subscribe from a position or revision in the middle'), async (t) => {
    const log = await openLog(t);
    await log.append('a', numbered('a', 3));
    await log.append('b', numbered('b', 2));
    await log.append('a', numbered('c', 2));
    const all = (await log.readAll()).events;
    const fromPosition = all[2]!.position;

    const fromAll = recordSubscription(log.subscribe({ from: fromPosition }));
    const fromStream = recordSubscription(log.subscribe({ stream: 'a', from: 2n }));
    t.teardown(() => fromAll.unsubscribe());
    t.teardown(() => fromStream.unsubscribe());
    const lastPosition = all[all.length - 1]!.position;
    t.deepEqual(await fromAll.untilEvents(5), [
      ...all.slice(2).map(item),
      { kind: 'caughtUp', position: lastPosition },
    ]);
    const streamA = all.filter((e) => e.stream === 'a');
    t.deepEqual(await fromStream.untilEvents(3), [
      ...streamA.slice(2).map(item),
      { kind: 'caughtUp', position: lastPosition },
    ]);

    await log.append('b', [event('live-b')]);
    await log.append('a', [event('live-a')]);
    const now = (await log.readAll()).events;
    t.deepEqual(eventsOf(await fromAll.untilEvents(7)), now.slice(2));
    t.deepEqual(eventsOf(await fromStream.untilEvents(4)), now.filter((e) => e.stream === 'a').slice(2));
  });

  test(title("subscribe from 'end' delivers only new events"), async (t) => {
    const log = await openLog(t);
    await log.append('a', numbered('a', 3));
    await log.append('b', numbered('b', 2));
    const before = await log.readAll();
    const fromAll = recordSubscription(log.subscribe({ from: 'end' }));
    const fromStream = recordSubscription(log.subscribe({ stream: 'a', from: 'end' }));
    t.teardown(() => fromAll.unsubscribe());
    t.teardown(() => fromStream.unsubscribe());
    t.deepEqual(await fromAll.until(caughtUp), [{ kind: 'caughtUp', position: before.lastPosition }]);
    t.deepEqual(await fromStream.until(caughtUp), [{ kind: 'caughtUp', position: before.lastPosition }]);

    await log.append('b', [event('live-b')]);
    await log.append('a', [event('live-a')]);
    const live = (await log.readAll({ fromPosition: before.lastPosition! + 1n })).events;
    t.deepEqual(eventsOf(await fromAll.untilEvents(2)), live);
    const liveA = eventsOf(await fromStream.untilEvents(1));
    t.deepEqual(
      liveA,
      live.filter((e) => e.stream === 'a'),
    );
    t.is(liveA[0]!.revision, 3n);
  });

  test(title('each subscriber gets its own run, and unsubscribing one leaves the others running'), async (t) => {
    const log = await openLog(t);
    await log.append('a', numbered('a', 3));
    const source = log.subscribe();
    const first = recordSubscription(source);
    const second = recordSubscription(source);
    t.teardown(() => first.unsubscribe());
    t.teardown(() => second.unsubscribe());
    await first.untilEvents(3);
    await second.untilEvents(3);

    first.unsubscribe();
    const delivered = first.items.length;
    await log.append('a', numbered('b', 2));
    const third = recordSubscription(source);
    t.teardown(() => third.unsubscribe());
    const all = (await log.readAll()).events;
    t.deepEqual(eventsOf(await second.untilEvents(5)), all);
    t.deepEqual(eventsOf(await third.untilEvents(5)), all, 'a later subscriber replays from the start');
    t.is(first.items.length, delivered, 'an unsubscribed subscriber gets nothing more');

    const once = await collectSubscription(source, 1);
    t.deepEqual(once, [...all.map(item), { kind: 'caughtUp', position: all[all.length - 1]!.position }]);
  });

  test(title('unsubscribing from inside a handler stops delivery'), async (t) => {
    const log = await openLog(t);
    await log.append('a', numbered('a', 5));
    let delivered = 0;
    const seen = await lastValueFrom(
      log.subscribe().pipe(
        tap(() => delivered++),
        take(2),
        toArray(),
      ),
    );
    await log.append('a', numbered('b', 2));
    await collectSubscription(log.subscribe(), 7);
    t.is(delivered, 2);
    t.deepEqual(eventsOf(seen), (await log.readAll({ maxCount: 2 })).events);
  });

  test(title('appending from inside a subscriber keeps one ordered sequence'), async (t) => {
    const log = await openLog(t);
    await log.append('pings', numbered('ping', 5));
    const appends: Promise<unknown>[] = [];
    const recording = recordSubscription(log.subscribe());
    t.teardown(() => recording.unsubscribe());
    const reactor = log.subscribe().subscribe((received) => {
      if (received.kind === 'caughtUp') appends.push(log.append('pings', [event('ping-live')]));
      else if (received.event.stream === 'pings') {
        appends.push(log.append('pongs', [event(`pong-for-${received.event.type}`)]));
      }
    });
    t.teardown(() => reactor.unsubscribe());

    const items = await recording.untilEvents(12);
    await Promise.all(appends);
    const all = (await log.readAll()).events;
    t.is(all.length, 12);
    t.deepEqual(eventsOf(items), all);
    t.deepEqual(
      all
        .filter((e) => e.stream === 'pongs')
        .map((e) => e.type)
        .sort(),
      [...numbered('ping', 5), event('ping-live')].map((e) => `pong-for-${e.type}`).sort(),
    );
  });
}
