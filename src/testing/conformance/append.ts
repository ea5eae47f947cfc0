/** Conformance: append and readStream, expected revisions, and the atomicity of one append. */
import { randomUUID } from 'node:crypto';
import { StreamNotFoundError, WrongExpectedRevisionError } from '../../log/errors.ts';
import type { EventData, EventLog } from '../../log/types.ts';
import { assertIncreasing, assertWrongRevision, event, numbered, typesOf, type Suite } from './support.ts';

export function appendTests<Context>(suite: Suite<Context>): void {
  const { test, title, openLog } = suite;

  // --- append and readStream ---------------------------------------------------------------

  test(
    title('append returns the next expected revision and positions; readStream returns the envelopes'),
    async (t) => {
      const log = await openLog(t);
      const first = await log.append('s', [event('a0'), event('a1')]);
      const second = await log.append('s', [event('a2'), event('a3'), event('a4')]);
      t.is(first.nextExpectedRevision, 1n);
      t.is(second.nextExpectedRevision, 4n);
      t.true(first.firstPosition < first.lastPosition);
      t.true(first.lastPosition < second.firstPosition);

      const read = await log.readStream('s');
      t.is(read.lastRevision, 4n);
      t.deepEqual(typesOf(read.events), ['a0', 'a1', 'a2', 'a3', 'a4']);
      t.deepEqual(
        read.events.map((e) => e.revision),
        [0n, 1n, 2n, 3n, 4n],
      );
      t.true(read.events.every((e) => e.stream === 's'));
      t.is(read.events[0]!.position, first.firstPosition);
      t.is(read.events[1]!.position, first.lastPosition);
      t.is(read.events[2]!.position, second.firstPosition);
      t.is(read.events[4]!.position, second.lastPosition);
      assertIncreasing(
        t,
        read.events.map((e) => e.position),
      );
    },
  );

  test(title('readStream forwards from start, a middle revision and the end, with maxCount'), async (t) => {
    const log = await openLog(t);
    await log.append('s', numbered('e', 5));
    const revisions = async (options: Parameters<EventLog['readStream']>[1]) =>
      (await log.readStream('s', options)).events.map((e) => e.revision);

    t.deepEqual(await revisions({}), [0n, 1n, 2n, 3n, 4n], 'default');
    t.deepEqual(await revisions({ direction: 'forwards', fromRevision: 'start' }), [0n, 1n, 2n, 3n, 4n], 'start');
    t.deepEqual(await revisions({ fromRevision: 2n }), [2n, 3n, 4n], 'from 2');
    t.deepEqual(await revisions({ fromRevision: 1n, maxCount: 2 }), [1n, 2n], 'from 1, 2 events');
    t.deepEqual(await revisions({ fromRevision: 3n, maxCount: 10 }), [3n, 4n], 'maxCount past the end');
    t.deepEqual(await revisions({ fromRevision: 4n }), [4n], 'from the last revision');
    t.deepEqual(await revisions({ maxCount: 0 }), [], 'maxCount 0');
    t.deepEqual(await revisions({ fromRevision: 'end' }), [], "from 'end'");
  });

  test(title('readStream backwards from the end, a middle revision and the start, with maxCount'), async (t) => {
    const log = await openLog(t);
    await log.append('s', numbered('e', 5));
    const revisions = async (options: Parameters<EventLog['readStream']>[1]) =>
      (await log.readStream('s', { direction: 'backwards', ...options })).events.map((e) => e.revision);

    t.deepEqual(await revisions({}), [4n, 3n, 2n, 1n, 0n], 'default is from the end');
    t.deepEqual(await revisions({ fromRevision: 'end', maxCount: 2 }), [4n, 3n], 'from the end, 2 events');
    t.deepEqual(await revisions({ fromRevision: 2n }), [2n, 1n, 0n], 'from 2');
    t.deepEqual(await revisions({ fromRevision: 3n, maxCount: 2 }), [3n, 2n], 'from 3, 2 events');
    t.deepEqual(await revisions({ fromRevision: 0n }), [0n], 'from revision 0');
    t.deepEqual(await revisions({ fromRevision: 'start' }), [0n], "from 'start'");
    t.deepEqual(await revisions({ maxCount: 0 }), [], 'maxCount 0');
  });

  test(title('readStream from a revision beyond the end'), async (t) => {
    const log = await openLog(t);
    await log.append('s', numbered('e', 3));
    const forwards = await log.readStream('s', { fromRevision: 10n });
    t.deepEqual(forwards.events, []);
    t.is(forwards.lastRevision, 2n);
    const backwards = await log.readStream('s', { direction: 'backwards', fromRevision: 10n });
    t.deepEqual(
      backwards.events.map((e) => e.revision),
      [2n, 1n, 0n],
    );
    const limited = await log.readStream('s', { direction: 'backwards', fromRevision: 10n, maxCount: 1 });
    t.deepEqual(
      limited.events.map((e) => e.revision),
      [2n],
    );
  });

  test(title('readStream of a stream with no event fails with StreamNotFoundError'), async (t) => {
    const log = await openLog(t);
    const error = await t.throwsAsync(log.readStream('missing'), {
      instanceOf: StreamNotFoundError,
      code: 'STREAM_NOT_FOUND',
    });
    t.is(error.stream, 'missing');

    await log.append('other', [event('x')]);
    await t.throwsAsync(log.append('missing', [event('x')], { expectedRevision: 'stream_exists' }));
    await t.throwsAsync(log.readStream('missing'), { code: 'STREAM_NOT_FOUND' }, 'a rejected append creates no stream');
    await t.throwsAsync(log.readStream('missing', { direction: 'backwards' }), { code: 'STREAM_NOT_FOUND' });
  });

  // --- expected revision -------------------------------------------------------------------

  test(title("expectedRevision 'no_stream' succeeds on a new stream and fails on an existing one"), async (t) => {
    const log = await openLog(t);
    const result = await log.append('s', [event('a'), event('b')], { expectedRevision: 'no_stream' });
    t.is(result.nextExpectedRevision, 1n);
    const again = log.append('s', [event('c')], { expectedRevision: 'no_stream' });
    await assertWrongRevision(t, again, 's', 'no_stream', 1n);
    t.deepEqual(typesOf((await log.readStream('s')).events), ['a', 'b']);
  });

  test(title("expectedRevision 'stream_exists' fails on a new stream and succeeds on an existing one"), async (t) => {
    const log = await openLog(t);
    await assertWrongRevision(
      t,
      log.append('s', [event('a')], { expectedRevision: 'stream_exists' }),
      's',
      'stream_exists',
      'no_stream',
    );
    await log.append('s', [event('a')]);
    const result = await log.append('s', [event('b')], { expectedRevision: 'stream_exists' });
    t.is(result.nextExpectedRevision, 1n);
    t.deepEqual(typesOf((await log.readStream('s')).events), ['a', 'b']);
  });

  test(title("expectedRevision 'any' (the default) succeeds on a new and on an existing stream"), async (t) => {
    const log = await openLog(t);
    t.is((await log.append('s', [event('a')], { expectedRevision: 'any' })).nextExpectedRevision, 0n);
    t.is((await log.append('s', [event('b')], { expectedRevision: 'any' })).nextExpectedRevision, 1n);
    t.is((await log.append('s', [event('c')])).nextExpectedRevision, 2n);
    t.is((await log.append('t', [event('d')], {})).nextExpectedRevision, 0n);
    t.deepEqual(typesOf((await log.readStream('s')).events), ['a', 'b', 'c']);
  });

  test(title('an exact expectedRevision succeeds when it is the last revision'), async (t) => {
    const log = await openLog(t);
    const first = await log.append('s', [event('a'), event('b')]);
    const second = await log.append('s', [event('c')], { expectedRevision: first.nextExpectedRevision });
    t.is(second.nextExpectedRevision, 2n);
    const third = await log.append('s', [event('d'), event('e')], { expectedRevision: 2n });
    t.is(third.nextExpectedRevision, 4n);
    t.deepEqual(typesOf((await log.readStream('s')).events), ['a', 'b', 'c', 'd', 'e']);
  });

  test(title('an exact expectedRevision fails when behind, ahead, or on a new stream'), async (t) => {
    const log = await openLog(t);
    await log.append('s', numbered('e', 3));
    await assertWrongRevision(t, log.append('s', [event('x')], { expectedRevision: 1n }), 's', 1n, 2n);
    await assertWrongRevision(t, log.append('s', [event('x')], { expectedRevision: 3n }), 's', 3n, 2n);
    await assertWrongRevision(t, log.append('new', [event('x')], { expectedRevision: 0n }), 'new', 0n, 'no_stream');
    t.is((await log.readStream('s')).lastRevision, 2n);
    t.is((await log.readAll()).events.length, 3, 'rejected appends store nothing');
  });

  // --- atomic appends ----------------------------------------------------------------------

  test(title('the events of one append get consecutive revisions and nothing interleaves them'), async (t) => {
    const log = await openLog(t);
    const appends = Array.from({ length: 12 }, (_, i) => log.append(`s${i % 3}`, numbered(`batch${i}-`, 1 + (i % 4))));
    const results = await Promise.all(appends);
    const all = (await log.readAll()).events;
    t.is(
      all.length,
      results.reduce((n, _, i) => n + 1 + (i % 4), 0),
    );

    for (const [i, result] of results.entries()) {
      const size = 1 + (i % 4);
      const at = all.findIndex((e) => e.position === result.firstPosition);
      const batch = all.slice(at, at + size);
      t.deepEqual(
        typesOf(batch),
        numbered(`batch${i}-`, size).map((e) => e.type),
        `batch ${i} is contiguous`,
      );
      t.is(batch[batch.length - 1]!.position, result.lastPosition);
      t.true(batch.every((e) => e.stream === `s${i % 3}`));
      t.deepEqual(
        batch.map((e) => e.revision),
        batch.map((_, k) => result.nextExpectedRevision - BigInt(size - 1 - k)),
      );
    }
    for (const stream of ['s0', 's1', 's2']) {
      const revisions = (await log.readStream(stream)).events.map((e) => e.revision);
      t.deepEqual(
        revisions,
        revisions.map((_, k) => BigInt(k)),
        `${stream} has dense revisions`,
      );
    }
  });

  test(title('an append with one invalid event stores none of them'), async (t) => {
    const log = await openLog(t);
    await log.append('s', [event('kept')]);
    await t.throwsAsync(log.append('s', [event('a'), { type: '', data: 1 }, event('c')]), {
      code: 'INVALID_ARGUMENT',
    });
    await t.throwsAsync(log.append('t', [event('a'), { type: 'b' } as unknown as EventData]), {
      code: 'INVALID_ARGUMENT',
    });
    t.deepEqual(typesOf((await log.readAll()).events), ['kept']);
    await t.throwsAsync(log.readStream('t'), { code: 'STREAM_NOT_FOUND' });
  });

  // --- idempotent retries ------------------------------------------------------------------
  // An append retried with the same event ids is acknowledged again without writing anything
  // (EventStoreDB's rule): at an exact expected revision (or 'no_stream') the events after that
  // revision are compared one for one; with 'any' or 'stream_exists' the stream's recent events.

  const withIds = (...types: string[]): EventData[] =>
    types.map((type) => ({ type, data: { type }, id: randomUUID() }));

  test(
    title('an append retried with the same ids at the same expected revision returns the original result'),
    async (t) => {
      const log = await openLog(t);
      const batch = withIds('a', 'b');
      const first = await log.append('s', batch, { expectedRevision: 'no_stream' });
      const again = await log.append('s', batch, { expectedRevision: 'no_stream' });
      t.deepEqual(again, first, 'retried at once');
      const next = withIds('c');
      const second = await log.append('s', next, { expectedRevision: first.nextExpectedRevision });
      await log.append('s', withIds('d'));
      t.deepEqual(
        await log.append('s', batch, { expectedRevision: 'no_stream' }),
        first,
        'retried after later appends',
      );
      t.deepEqual(await log.append('s', next, { expectedRevision: 1n }), second, 'exact revision, retried later');
      t.deepEqual(typesOf((await log.readStream('s')).events), ['a', 'b', 'c', 'd'], 'nothing written twice');
      t.is((await log.readAll()).events.length, 4);
    },
  );

  test(
    title("an append retried with the same ids and 'any' or 'stream_exists' returns the original result"),
    async (t) => {
      const log = await openLog(t);
      await log.append('s', withIds('a'));
      const batch = withIds('b', 'c');
      const first = await log.append('s', batch);
      await log.append('s', withIds('d'));
      t.deepEqual(await log.append('s', batch, { expectedRevision: 'any' }), first);
      t.deepEqual(await log.append('s', batch, { expectedRevision: 'stream_exists' }), first);
      t.deepEqual(typesOf((await log.readStream('s')).events), ['a', 'b', 'c', 'd']);
    },
  );

  test(title('a retry that matches the stored events only in part is a conflict and writes nothing'), async (t) => {
    const log = await openLog(t);
    const [a, b] = withIds('a', 'b');
    await log.append('s', [a!, b!], { expectedRevision: 'no_stream' });
    const changed = [a!, ...withIds('x')];
    const exact = await t.throwsAsync(log.append('s', changed, { expectedRevision: 'no_stream' }));
    t.true(exact instanceof WrongExpectedRevisionError, 'second id differs, exact revision');
    const longer = await t.throwsAsync(log.append('s', [a!, b!, ...withIds('y')], { expectedRevision: 'no_stream' }));
    t.true(longer instanceof WrongExpectedRevisionError, 'more events than were stored');
    const any = await t.throwsAsync(log.append('s', changed, { expectedRevision: 'any' }));
    t.true(any instanceof WrongExpectedRevisionError, "second id differs, 'any'");
    t.deepEqual(typesOf((await log.readStream('s')).events), ['a', 'b']);
  });

  test(title('ids are compared within one stream: the same ids on another stream are new events'), async (t) => {
    const log = await openLog(t);
    const batch = withIds('a');
    await log.append('s', batch, { expectedRevision: 'no_stream' });
    const other = await log.append('t', batch, { expectedRevision: 'no_stream' });
    t.is(other.nextExpectedRevision, 0n);
    t.deepEqual(typesOf((await log.readStream('t')).events), ['a']);
    t.is((await log.readAll()).events.length, 2);
  });

  test(title('a different append at a stale expected revision is still a conflict'), async (t) => {
    const log = await openLog(t);
    await log.append('s', withIds('a', 'b'), { expectedRevision: 'no_stream' });
    await assertWrongRevision(t, log.append('s', withIds('c'), { expectedRevision: 0n }), 's', 0n, 1n);
    await assertWrongRevision(t, log.append('s', [event('c')], { expectedRevision: 0n }), 's', 0n, 1n);
  });

  if (suite.adapter.reopen !== undefined) {
    const reopen = suite.adapter.reopen.bind(suite.adapter);
    test(
      title('an append retried with the same ids after the log is reopened returns the original result'),
      async (t) => {
        const log = await suite.adapter.open();
        const batch = withIds('a', 'b');
        const first = await log.append('s', batch, { expectedRevision: 'no_stream' });
        const again = await reopen(log);
        t.teardown(() => again.close());
        t.deepEqual(await again.append('s', batch, { expectedRevision: 'no_stream' }), first);
        t.deepEqual(await again.append('s', batch), first);
        t.deepEqual(typesOf((await again.readStream('s')).events), ['a', 'b']);
      },
    );
  }
}
