/**
 * The EventLog conformance suite: one set of ava tests that every adapter's test file runs,
 * so every backend keeps the same contract (src/log/types.ts). Also the small subscription
 * helpers the suite is written with, for adapters' own tests.
 *
 *   eventLogConformance(test, { name: 'memory', open: async () => getInMemoryEventLog() });
 */
import type { ExecutionContext, TestFn } from 'ava';
import { lastValueFrom, take, takeWhile, tap, toArray, type Observable } from 'rxjs';
import { ClosedError, InvalidArgumentError } from '../errors.ts';
import { StreamNotFoundError, WrongExpectedRevisionError } from '../log/errors.ts';
import type {
  EventData,
  EventLog,
  ExpectedRevision,
  RecordedEvent,
  SubscribeOptions,
  SubscriptionItem,
} from '../log/types.ts';

/** How one racer of `raceAppenders` ended: its append went through, or failed with this error code. */
export type RaceOutcome = Readonly<{ ok: true }> | Readonly<{ ok: false; code: string }>;

/** Several writers append to `stream` at once, each with `expectedRevision`; racer i appends `batches[i]`. */
export type AppendRace = Readonly<{
  stream: string;
  expectedRevision: ExpectedRevision;
  batches: readonly (readonly EventData[])[];
}>;

export type AppendRaceResult = Readonly<{
  /** One per batch, in the order of `batches`. */
  outcomes: readonly RaceOutcome[];
  /**
   * The handle to read the result through and to keep using, when the hook had to close `log`
   * (e.g. to release a writer lock for child processes). The suite closes it at the end of the test.
   */
  log?: EventLog;
}>;

export type ConformanceAdapter = Readonly<{
  /** Prefix of every test title. */
  name: string;
  /** A fresh, empty log. The suite closes it at the end of each test. */
  open(): Promise<EventLog>;
  /** Close `log` and open the same log again. Persistent adapters only: enables the reopen tests. */
  reopen?(log: EventLog): Promise<EventLog>;
  /**
   * Run the writers of `race` concurrently, the way real competing writers of this backend would
   * (e.g. in separate OS processes that open the same log). Absent, the suite races the appends
   * in-process on `log` with `Promise.allSettled`.
   */
  raceAppenders?(log: EventLog, race: AppendRace): Promise<AppendRaceResult>;
  /** How many times the race runs. Default 20. */
  raceRounds?: number;
  /**
   * Error codes a losing racer may report besides `'WRONG_EXPECTED_REVISION'`, e.g. `'LOG_LOCKED'`
   * for a backend that admits one writer process at a time. Default none.
   */
  raceConflictCodes?: readonly string[];
  /** Whether typed arrays (Uint8Array, Float32Array) in event data keep their type. Default true. */
  typedArrays?: boolean;
}>;

// ---------------------------------------------------------------------------------------------
// Subscription helpers

export function eventsOf(items: readonly SubscriptionItem[]): RecordedEvent[] {
  return items.flatMap((item) => (item.kind === 'event' ? [item.event] : []));
}

/**
 * Subscribes and resolves with every item once the subscription has caught up and delivered
 * `count` events (history and live together). Rejects when it ends earlier.
 */
export async function collectSubscription(
  source: Observable<SubscriptionItem>,
  count: number,
): Promise<SubscriptionItem[]> {
  let events = 0;
  let caughtUp = false;
  const done = (): boolean => caughtUp && events >= count;
  const items = await lastValueFrom(
    source.pipe(
      takeWhile((item) => {
        if (item.kind === 'event') events++;
        else caughtUp = true;
        return !done();
      }, true),
      toArray(),
    ),
  );
  if (!done()) {
    throw new Error(`subscription ended after ${events} events (caughtUp: ${caughtUp}); ${count} were expected`);
  }
  return items;
}

/** A running subscription whose items are recorded as they arrive, to wait on and inspect. */
export type SubscriptionRecording = {
  /** Every item received so far, in order. */
  readonly items: readonly SubscriptionItem[];
  /** Resolves with the items received once `predicate` holds for them; rejects if the subscription ends first. */
  until(predicate: (items: readonly SubscriptionItem[]) => boolean): Promise<readonly SubscriptionItem[]>;
  /** `until` the subscription has caught up and delivered at least `count` events. */
  untilEvents(count: number): Promise<readonly SubscriptionItem[]>;
  /** Resolves with every item when the subscription completes; rejects with its error. */
  readonly done: Promise<readonly SubscriptionItem[]>;
  unsubscribe(): void;
};

export function recordSubscription(source: Observable<SubscriptionItem>): SubscriptionRecording {
  const items: SubscriptionItem[] = [];
  let ended: { error: unknown } | 'completed' | undefined;
  let waiters: Array<{
    predicate: (items: readonly SubscriptionItem[]) => boolean;
    resolve: (items: readonly SubscriptionItem[]) => void;
    reject: (error: unknown) => void;
  }> = [];
  let settleDone!: { resolve: (items: readonly SubscriptionItem[]) => void; reject: (error: unknown) => void };
  const done = new Promise<readonly SubscriptionItem[]>((resolve, reject) => {
    settleDone = { resolve, reject };
  });
  done.catch(() => {}); // observed through `until` or by awaiting `done`

  const check = (): void => {
    waiters = waiters.filter((waiter) => {
      if (waiter.predicate(items)) {
        waiter.resolve([...items]);
        return false;
      }
      if (ended !== undefined) {
        waiter.reject(
          ended === 'completed'
            ? new Error(`subscription completed before the awaited condition held (${items.length} items)`)
            : ended.error,
        );
        return false;
      }
      return true;
    });
  };

  const subscription = source.subscribe({
    next: (item) => {
      items.push(item);
      check();
    },
    error: (error: unknown) => {
      ended = { error };
      check();
      settleDone.reject(error);
    },
    complete: () => {
      ended = 'completed';
      check();
      settleDone.resolve([...items]);
    },
  });

  const until = (predicate: (items: readonly SubscriptionItem[]) => boolean) =>
    new Promise<readonly SubscriptionItem[]>((resolve, reject) => {
      waiters.push({ predicate, resolve, reject });
      check();
    });

  return {
    items,
    until,
    untilEvents: (count) =>
      until((received) => received.some((item) => item.kind === 'caughtUp') && eventsOf(received).length >= count),
    done,
    unsubscribe: () => subscription.unsubscribe(),
  };
}

// ---------------------------------------------------------------------------------------------
// The suite

export function eventLogConformance<Context>(test: TestFn<Context>, adapter: ConformanceAdapter): void {
  const title = (what: string): string => `${adapter.name}: ${what}`;

  const openLog = async (t: ExecutionContext<unknown>): Promise<EventLog> => {
    const log = await adapter.open();
    t.teardown(() => log.close());
    return log;
  };

  // --- append and readStream ---------------------------------------------------------------

  test(title('append returns the next expected revision and positions; readStream returns the envelopes'), async (t) => {
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
    assertIncreasing(t, read.events.map((e) => e.position));
  });

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
    await assertWrongRevision(t, log.append('s', [event('c')], { expectedRevision: 'no_stream' }), 's', 'no_stream', 1n);
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
    const appends = Array.from({ length: 12 }, (_, i) =>
      log.append(`s${i % 3}`, numbered(`batch${i}-`, 1 + (i % 4))),
    );
    const results = await Promise.all(appends);
    const all = (await log.readAll()).events;
    t.is(all.length, results.reduce((n, _, i) => n + 1 + (i % 4), 0));

    for (const [i, result] of results.entries()) {
      const size = 1 + (i % 4);
      const at = all.findIndex((e) => e.position === result.firstPosition);
      const batch = all.slice(at, at + size);
      t.deepEqual(typesOf(batch), numbered(`batch${i}-`, size).map((e) => e.type), `batch ${i} is contiguous`);
      t.is(batch[batch.length - 1]!.position, result.lastPosition);
      t.true(batch.every((e) => e.stream === `s${i % 3}`));
      t.deepEqual(
        batch.map((e) => e.revision),
        batch.map((_, k) => result.nextExpectedRevision - BigInt(size - 1 - k)),
      );
    }
    for (const stream of ['s0', 's1', 's2']) {
      const revisions = (await log.readStream(stream)).events.map((e) => e.revision);
      t.deepEqual(revisions, revisions.map((_, k) => BigInt(k)), `${stream} has dense revisions`);
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

  // --- readAll ----------------------------------------------------------------------------

  test(title('readAll returns the events of every stream in append order, both directions'), async (t) => {
    const log = await openLog(t);
    const order: string[] = [];
    for (const [i, stream] of ['a', 'b', 'a', 'c', 'b', 'a'].entries()) {
      const events = numbered(`${stream}${i}-`, 1 + (i % 2));
      await log.append(stream, events);
      order.push(...events.map((e) => e.type));
    }
    const forwards = await log.readAll();
    t.deepEqual(typesOf(forwards.events), order);
    assertIncreasing(t, forwards.events.map((e) => e.position));
    t.is(forwards.lastPosition, forwards.events[forwards.events.length - 1]!.position);

    const backwards = await log.readAll({ direction: 'backwards' });
    t.deepEqual(backwards.events, [...forwards.events].reverse());
    t.is(backwards.lastPosition, forwards.lastPosition);

    for (const stream of ['a', 'b', 'c']) {
      t.deepEqual(
        (await log.readStream(stream)).events,
        forwards.events.filter((e) => e.stream === stream),
        `readStream(${stream}) agrees with readAll`,
      );
    }
  });

  test(title('readAll from a position in the middle, both directions, with maxCount'), async (t) => {
    const log = await openLog(t);
    await log.append('a', numbered('a', 3));
    await log.append('b', numbered('b', 3));
    await log.append('a', numbered('c', 2));
    const all = (await log.readAll()).events;
    const positions = all.map((e) => e.position);
    const mid = positions[3]!;
    const read = async (options: Parameters<EventLog['readAll']>[0]) =>
      (await log.readAll(options)).events.map((e) => e.position);

    t.deepEqual(await read({ fromPosition: mid }), positions.slice(3));
    t.deepEqual(await read({ fromPosition: mid, maxCount: 2 }), positions.slice(3, 5));
    t.deepEqual(await read({ fromPosition: 'start', maxCount: 2 }), positions.slice(0, 2));
    t.deepEqual(await read({ direction: 'backwards', fromPosition: mid }), positions.slice(0, 4).reverse());
    t.deepEqual(await read({ direction: 'backwards', fromPosition: mid, maxCount: 2 }), [positions[3], positions[2]]);
    t.deepEqual(await read({ direction: 'backwards', maxCount: 3 }), positions.slice(-3).reverse());
    t.deepEqual(await read({ fromPosition: positions[0]! }), positions);
    t.deepEqual(await read({ maxCount: 0 }), []);
  });

  test(title('readAll from a position beyond the end, and on an empty log'), async (t) => {
    const log = await openLog(t);
    const empty = await log.readAll();
    t.deepEqual(empty.events, []);
    t.is(empty.lastPosition, null);
    t.deepEqual((await log.readAll({ direction: 'backwards' })).events, []);

    await log.append('s', numbered('e', 3));
    const all = await log.readAll();
    const beyond = all.lastPosition! + 1n;
    t.deepEqual((await log.readAll({ fromPosition: beyond })).events, []);
    t.deepEqual((await log.readAll({ fromPosition: 'end' })).events, []);
    t.deepEqual((await log.readAll({ direction: 'backwards', fromPosition: beyond })).events, [...all.events].reverse());
  });

  // --- listStreams -------------------------------------------------------------------------

  test(title('listStreams lists every stream with its last revision and positions'), async (t) => {
    const log = await openLog(t);
    t.deepEqual((await log.listStreams()).streams, []);
    await log.append('a', numbered('a', 2));
    await log.append('b', numbered('b', 1));
    await log.append('a', numbered('c', 1));
    const all = (await log.readAll()).events;
    const listed = [...(await log.listStreams()).streams].sort((x, y) => x.stream.localeCompare(y.stream));
    t.deepEqual(listed, [
      { stream: 'a', lastRevision: 2n, firstPosition: all[0]!.position, lastPosition: all[3]!.position },
      { stream: 'b', lastRevision: 0n, firstPosition: all[2]!.position, lastPosition: all[2]!.position },
    ]);
  });

  // --- invalid arguments -------------------------------------------------------------------

  test(title('append rejects invalid arguments with InvalidArgumentError'), async (t) => {
    const log = await openLog(t);
    await log.append('s', [event('a')]);
    const invalid = async (call: () => Promise<unknown>, message: string) => {
      const error = await t.throwsAsync(call, { instanceOf: InvalidArgumentError, code: 'INVALID_ARGUMENT' }, message);
      t.is(typeof error.argument, 'string', message);
    };
    await invalid(() => log.append('', [event('a')]), 'empty stream name');
    await invalid(() => log.append('$all', [event('a')]), 'reserved stream name');
    await invalid(() => log.append(42 as unknown as string, [event('a')]), 'stream name not a string');
    await invalid(() => log.append('s', []), 'no event');
    await invalid(() => log.append('s', undefined as unknown as EventData[]), 'events missing');
    await invalid(() => log.append('s', [{ type: '', data: 1 }]), 'empty type');
    await invalid(() => log.append('s', [{ type: 'x' } as unknown as EventData]), 'data undefined');
    await invalid(() => log.append('s', [{ type: 'x', data: 1, id: '' }]), 'empty id');
    await invalid(() => log.append('s', [event('a')], { expectedRevision: -1n }), 'negative expected revision');
    await invalid(
      () => log.append('s', [event('a')], { expectedRevision: 'latest' as unknown as ExpectedRevision }),
      'unknown expected revision',
    );
    await invalid(
      () => log.append('s', [event('a')], { expectedRevision: 0 as unknown as ExpectedRevision }),
      'number instead of bigint',
    );
    t.deepEqual(typesOf((await log.readAll()).events), ['a'], 'nothing was stored');
  });

  test(title('reads reject invalid arguments with InvalidArgumentError'), async (t) => {
    const log = await openLog(t);
    await log.append('s', [event('a')]);
    const invalid = (call: () => Promise<unknown>, message: string) =>
      t.throwsAsync(call, { instanceOf: InvalidArgumentError, code: 'INVALID_ARGUMENT' }, message);
    await invalid(() => log.readStream(''), 'empty stream name');
    await invalid(() => log.readStream('s', { fromRevision: -1n }), 'negative fromRevision');
    await invalid(() => log.readStream('s', { fromRevision: 1 as unknown as bigint }), 'number fromRevision');
    await invalid(() => log.readStream('s', { maxCount: -1 }), 'negative maxCount');
    await invalid(() => log.readStream('s', { maxCount: 1.5 }), 'fractional maxCount');
    await invalid(
      () => log.readStream('s', { direction: 'sideways' as unknown as 'forwards' }),
      'unknown direction',
    );
    await invalid(() => log.readAll({ fromPosition: -1n }), 'negative fromPosition');
    await invalid(() => log.readAll({ maxCount: -1 }), 'negative maxCount (readAll)');
    await invalid(() => log.readAll({ direction: 'up' as unknown as 'forwards' }), 'unknown direction (readAll)');
  });

  test(title('subscribe errors with InvalidArgumentError on invalid arguments'), async (t) => {
    const log = await openLog(t);
    await log.append('s', [event('a')]);
    const invalid = (options: SubscribeOptions, message: string) =>
      t.throwsAsync(
        recordSubscription(log.subscribe(options)).done,
        { instanceOf: InvalidArgumentError, code: 'INVALID_ARGUMENT' },
        message,
      );
    await invalid({ stream: '' }, 'empty stream name');
    await invalid({ stream: '$all' }, 'reserved stream name');
    await invalid({ from: -1n }, 'negative position');
    await invalid({ stream: 's', from: -1n }, 'negative revision');
    await invalid({ from: 'middle' as unknown as 'start' }, 'unknown from');
  });

  // --- envelope and data -------------------------------------------------------------------

  test(title('the log assigns unique ids and timestamps; a given id is preserved'), async (t) => {
    const log = await openLog(t);
    const id = '6f1c8f0e-3a57-4a0b-9a39-0f8a3c2b9d11';
    await log.append('s', [event('a'), { type: 'b', data: null, id }, event('c')]);
    await log.append('t', [event('d')]);
    const events = (await log.readAll()).events;
    t.is(events[1]!.id, id);
    for (const e of events) {
      t.is(typeof e.id, 'string');
      t.true(e.id.length > 0);
      t.true(e.timestamp instanceof Date);
      t.false(Number.isNaN(e.timestamp.getTime()));
    }
    t.is(new Set(events.map((e) => e.id)).size, events.length, 'ids are unique');
    t.true(events[0]!.timestamp.getTime() <= events[3]!.timestamp.getTime(), 'timestamps do not go back');
    t.deepEqual((await log.readStream('s')).events[1], events[1]);
  });

  test(title('event data round-trips: nested objects, numbers, strings, booleans, null, arrays, bigint'), async (t) => {
    const log = await openLog(t);
    const data = {
      round: 3,
      negative: -17,
      float: 0.1 + 0.2,
      large: 2 ** 40,
      maxSafe: Number.MAX_SAFE_INTEGER,
      text: 'héllo, wörld ✓ — 実験',
      empty: '',
      yes: true,
      no: false,
      nothing: null,
      list: [1, 'two', { three: [3] }, null],
      nested: { a: { b: { c: { d: 'deep' } } } },
      bigints: { small: 5n, zero: 0n, negative: -42n, huge: 2n ** 70n, i64: 9_223_372_036_854_775_807n },
    };
    await log.append('s', [
      { type: 'object', data },
      { type: 'null', data: null },
      { type: 'string', data: 'just a string' },
      { type: 'number', data: 1.5 },
      { type: 'bigint', data: 123n },
      { type: 'array', data: [] },
    ]);
    const events = (await log.readStream('s')).events;
    t.deepEqual(
      events.map((e) => e.data),
      [data, null, 'just a string', 1.5, 123n, []],
    );
  });

  if (adapter.typedArrays ?? true) {
    test(title('typed arrays in event data round-trip with their type'), async (t) => {
      const log = await openLog(t);
      const bytes = new Uint8Array([0, 1, 2, 254, 255]);
      const floats = new Float32Array([0.5, -1.25, 3.4028234663852886e38, Number.NaN]);
      await log.append('s', [{ type: 'tensors', data: { bytes, floats, empty: new Uint8Array(0) } }]);
      const data = (await log.readStream('s')).events[0]!.data as Record<string, unknown>;
      t.true(data.bytes instanceof Uint8Array, 'Uint8Array stays a Uint8Array');
      t.deepEqual(Array.from(data.bytes as Uint8Array), Array.from(bytes));
      t.true(data.floats instanceof Float32Array, 'Float32Array stays a Float32Array');
      t.deepEqual(Array.from(data.floats as Float32Array), Array.from(floats));
      t.is((data.empty as Uint8Array).length, 0);
    });
  }

  test(title('stored events do not change when the caller mutates its input or a read result'), async (t) => {
    const log = await openLog(t);
    const input = { type: 'x', data: { nested: { value: 1 }, list: [1, 2] } };
    await log.append('s', [input]);
    input.data.nested.value = 2;
    input.data.list.push(3);
    const first = (await log.readStream('s')).events[0]!;
    t.deepEqual(first.data, { nested: { value: 1 }, list: [1, 2] });

    try {
      (first.data as { nested: { value: number } }).nested.value = 3;
    } catch {
      // a frozen result is fine too
    }
    t.deepEqual((await log.readAll()).events[0]!.data, { nested: { value: 1 }, list: [1, 2] });
  });

  // --- subscriptions -----------------------------------------------------------------------

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
    const items = await recording.until((received) => caughtUp(received) && received.some(isEvent(sentinel.lastPosition)));
    assertSubscription(t, items, (await log.readAll()).events);
  });

  test(title('subscribe to a stream: no gap and no duplicate while appends race the catch-up'), async (t) => {
    const log = await openLog(t);
    await seed(log, 600);
    const recording = recordSubscription(log.subscribe({ stream: 's1' }));
    t.teardown(() => recording.unsubscribe());
    await burst(log);
    const sentinel = await log.append('s1', [event('sentinel')]);
    const items = await recording.until((received) => caughtUp(received) && received.some(isEvent(sentinel.lastPosition)));
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
    t.deepEqual(await fromAll.untilEvents(5), [...all.slice(2).map(item), { kind: 'caughtUp', position: lastPosition }]);
    const streamA = all.filter((e) => e.stream === 'a');
    t.deepEqual(await fromStream.untilEvents(3), [
      ...streamA.slice(2).map(item),
      { kind: 'caughtUp', position: lastPosition },
    ]);

    await log.append('b', [event('live-b')]);
    await log.append('a', [event('live-a')]);
    const now = (await log.readAll()).events;
    t.deepEqual(eventsOf(await fromAll.untilEvents(7)), now.slice(2));
    t.deepEqual(
      eventsOf(await fromStream.untilEvents(4)),
      now.filter((e) => e.stream === 'a').slice(2),
    );
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
    t.deepEqual(liveA, live.filter((e) => e.stream === 'a'));
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
      t.deepEqual((await again.readStream('a')).events, before.events.filter((e) => e.stream === 'a'));

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

  // --- concurrent writers ------------------------------------------------------------------

  test(title('racing appenders with the same expected revision: exactly one wins, nothing interleaves'), async (t) => {
    let log = await openLog(t);
    const race = adapter.raceAppenders?.bind(adapter) ?? raceInProcess;
    const conflictCodes = ['WRONG_EXPECTED_REVISION', ...(adapter.raceConflictCodes ?? [])];
    const rounds = adapter.raceRounds ?? 20;

    for (let round = 0; round < rounds; round++) {
      const stream = `race-${round}`;
      const seeded = round % 2 === 1;
      if (seeded) await log.append(stream, [event('seed')]);
      const batches = [0, 1].map((racer) => numbered(`round${round}-racer${racer}-`, 3));
      const result = await race(log, { stream, expectedRevision: seeded ? 0n : 'no_stream', batches });
      if (result.log !== undefined && result.log !== log) {
        const next = result.log;
        t.teardown(() => next.close());
        log = next;
      }

      const winners = result.outcomes.flatMap((outcome, racer) => (outcome.ok ? [racer] : []));
      t.is(result.outcomes.length, batches.length, `round ${round}: one outcome per racer`);
      t.is(winners.length, 1, `round ${round}: exactly one winner, got ${JSON.stringify(result.outcomes)}`);
      for (const outcome of result.outcomes) {
        if (!outcome.ok) {
          t.true(
            conflictCodes.includes(outcome.code),
            `round ${round}: the loser failed with ${outcome.code}, expected one of ${conflictCodes.join(', ')}`,
          );
        }
      }
      const winner = batches[winners[0]!]!;
      const events = (await log.readStream(stream)).events;
      t.deepEqual(
        typesOf(events),
        [...(seeded ? ['seed'] : []), ...winner.map((e) => e.type)],
        `round ${round}: the stream holds the winner's events only`,
      );
      t.deepEqual(
        events.map((e) => e.revision),
        events.map((_, k) => BigInt(k)),
      );
      const all = (await log.readAll()).events;
      const at = all.findIndex((e) => e.type === winner[0]!.type);
      t.deepEqual(typesOf(all.slice(at, at + winner.length)), typesOf(winner), `round ${round}: contiguous in the log`);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Building blocks of the suite

function event(type: string, data: unknown = null): EventData {
  return { type, data };
}

function numbered(prefix: string, count: number): EventData[] {
  return Array.from({ length: count }, (_, i) => event(`${prefix}${i}`, { i }));
}

function typesOf(events: readonly { type: string }[]): string[] {
  return events.map((e) => e.type);
}

function item(event: RecordedEvent): SubscriptionItem {
  return { kind: 'event', event };
}

function caughtUp(items: readonly SubscriptionItem[]): boolean {
  return items.some((i) => i.kind === 'caughtUp');
}

function isEvent(position: bigint): (received: SubscriptionItem) => boolean {
  return (received) => received.kind === 'event' && received.event.position === position;
}

function sortStreams<T extends { stream: string }>(streams: readonly T[]): T[] {
  return [...streams].sort((a, b) => a.stream.localeCompare(b.stream));
}

function assertIncreasing(t: ExecutionContext<unknown>, values: readonly bigint[]): void {
  t.true(
    values.every((value, i) => i === 0 || values[i - 1]! < value),
    `${values.join(', ')} should strictly increase`,
  );
}

async function assertWrongRevision(
  t: ExecutionContext<unknown>,
  append: Promise<unknown>,
  stream: string,
  expected: ExpectedRevision,
  actual: bigint | 'no_stream',
): Promise<void> {
  const error = await t.throwsAsync(append, {
    instanceOf: WrongExpectedRevisionError,
    code: 'WRONG_EXPECTED_REVISION',
  });
  t.is(error.stream, stream);
  t.is(error.expected, expected);
  t.is(error.actual, actual);
}

/** `count` events over streams s0, s1, s2, a hundred per append. */
async function seed(log: EventLog, count: number): Promise<void> {
  for (let i = 0; i * 100 < count; i++) {
    await log.append(`s${i % 3}`, numbered(`seed${i}-`, Math.min(100, count - i * 100)));
  }
}

/** Appends over streams s0, s1, s2: concurrent ones, and a chain of sequential ones of several events. */
async function burst(log: EventLog): Promise<void> {
  const concurrent = Array.from({ length: 30 }, (_, i) => log.append(`s${i % 3}`, [event(`burst${i}`)]));
  const sequential = (async () => {
    for (let i = 0; i < 10; i++) {
      await log.append(`s${i % 3}`, numbered(`chain${i}-`, 3));
      // Let the subscription run between appends, so they land all along its catch-up.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  })();
  await Promise.all([...concurrent, sequential]);
}

/**
 * The received items are `expected` in order, each once, with one `caughtUp` splitting history
 * (positions up to its position) from live events (after it).
 */
function assertSubscription(
  t: ExecutionContext<unknown>,
  items: readonly SubscriptionItem[],
  expected: readonly RecordedEvent[],
): void {
  const marks = items.flatMap((received, index) => (received.kind === 'caughtUp' ? [{ index, received }] : []));
  t.is(marks.length, 1, 'exactly one caughtUp');
  t.deepEqual(eventsOf(items), [...expected], 'every event once, in order');
  const mark = marks[0];
  if (mark?.received.kind !== 'caughtUp') return;
  const { position } = mark.received;
  const before = eventsOf(items.slice(0, mark.index));
  const after = eventsOf(items.slice(mark.index + 1));
  t.true(position === null ? before.length === 0 : before.every((e) => e.position <= position), 'history ≤ caughtUp');
  t.true(position === null || after.every((e) => e.position > position), 'live > caughtUp');
}

async function raceInProcess(log: EventLog, race: AppendRace): Promise<AppendRaceResult> {
  const settled = await Promise.allSettled(
    race.batches.map((batch) => log.append(race.stream, batch, { expectedRevision: race.expectedRevision })),
  );
  return {
    outcomes: settled.map((outcome): RaceOutcome => {
      if (outcome.status === 'fulfilled') return { ok: true };
      const code = (outcome.reason as { code?: unknown } | null)?.code;
      return { ok: false, code: typeof code === 'string' ? code : String(outcome.reason) };
    }),
  };
}
