/** Conformance: reopening a persistent log, verify, and close. */
import { ClosedError } from '../../errors.ts';
import { collectSubscription, eventsOf, recordSubscription } from './subscriptions.ts';
import { assertWrongRevision, event, numbered, sortStreams, type Suite } from './support.ts';

export function lifecycleTests<Context>(suite: Suite<Context>): void {
  const { test, title, openLog, adapter } = suite;

  // --- reopen ------------------------------------------------------------------------------

  const reopen = adapter.reopen?.bind(adapter);
  if (reopen !== undefined) {
    test(title('reopen preserves every event, stream and position, and appends continue'), async (t) => {
      const log = await openLog(t);
      await log.append('a', [{ type: 'created', data: { seed: 7n, tags: ['x'], nothing: null } }, event('a1')]);
      await log.append('b', numbered('b', 3));
      await log.append('a', [{ type: 'given-id', data: 1.5, id: 'c0ffee00-0000-4000-8000-000000000000' }]);
      const before = await log.readAll();
      const streamsBefore = await log.listStreams();

      const again = await reopen(log);
      t.teardown(() => again.close());
      await t.throwsAsync(log.readAll(), { code: 'CLOSED' }, 'reopen closed the old handle');
      t.deepEqual(await again.readAll(), before);
      t.deepEqual(sortStreams((await again.listStreams()).streams), sortStreams(streamsBefore.streams));
      t.deepEqual(
        (await again.readStream('a')).events,
        before.events.filter((e) => e.stream === 'a'),
      );

      await assertWrongRevision(t, again.append('a', [event('stale')], { expectedRevision: 1n }), 'a', 1n, 2n);
      const next = await again.append('a', [event('a3')], { expectedRevision: 2n });
      t.is(next.nextExpectedRevision, 3n);
      t.true(next.firstPosition > before.lastPosition!);
      const caught = await collectSubscription(again.subscribe(), before.events.length + 1);
      t.deepEqual(eventsOf(caught), (await again.readAll()).events);
    });

    test(title('reopen of an empty log gives an empty log'), async (t) => {
      const log = await openLog(t);
      const again = await reopen(log);
      t.teardown(() => again.close());
      t.deepEqual(await again.readAll(), { events: [], lastPosition: null });
      t.deepEqual((await again.listStreams()).streams, []);
      t.is((await again.append('s', [event('a')], { expectedRevision: 'no_stream' })).nextExpectedRevision, 0n);
    });
  }

  // --- verify and close --------------------------------------------------------------------

  test(title('verify reports a healthy log'), async (t) => {
    const log = await openLog(t);
    t.true((await log.verify()).ok);
    await log.append('s', numbered('e', 3));
    const result = await log.verify();
    t.true(result.ok);
    t.deepEqual(result.problems, []);
    t.true(result.eventsChecked >= 3);
  });

  test(title('after close every call fails with ClosedError and live subscriptions complete'), async (t) => {
    const log = await openLog(t);
    await log.append('s', numbered('e', 2));
    const live = recordSubscription(log.subscribe());
    const liveStream = recordSubscription(log.subscribe({ stream: 's' }));
    await live.untilEvents(2);
    await liveStream.untilEvents(2);

    await log.close();
    t.is((await live.done).length, 3, 'the subscription completed');
    t.is((await liveStream.done).length, 3);

    const closed = { instanceOf: ClosedError, code: 'CLOSED' } as const;
    await t.throwsAsync(() => log.append('s', [event('x')]), closed, 'append');
    await t.throwsAsync(() => log.readStream('s'), closed, 'readStream');
    await t.throwsAsync(() => log.readAll(), closed, 'readAll');
    await t.throwsAsync(() => log.listStreams(), closed, 'listStreams');
    await t.throwsAsync(() => log.verify(), closed, 'verify');
    await t.throwsAsync(recordSubscription(log.subscribe()).done, closed, 'subscribe');
    await t.notThrowsAsync(() => log.close(), 'close again is a no-op');
  });
}
