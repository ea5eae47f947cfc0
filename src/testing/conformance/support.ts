/** Building blocks of the conformance suite: event makers and the assertions the tests share. */
import type { ExecutionContext, TestFn } from 'ava';
import { WrongExpectedRevisionError } from '../../log/errors.ts';
import type { EventData, EventLog, ExpectedRevision, RecordedEvent, SubscriptionItem } from '../../log/types.ts';
import { eventsOf } from './subscriptions.ts';
import type { ConformanceAdapter } from './types.ts';

/** What each part of the suite is given: ava's `test`, the adapter, titles and fresh logs. */
export type Suite<Context> = {
  test: TestFn<Context>;
  adapter: ConformanceAdapter;
  /** The adapter's name, then `what`. */
  title(what: string): string;
  /** A fresh log from the adapter, closed at the end of the test. */
  openLog(t: ExecutionContext<unknown>): Promise<EventLog>;
};

export function event(type: string, data: unknown = null): EventData {
  return { type, data };
}

export function numbered(prefix: string, count: number): EventData[] {
  return Array.from({ length: count }, (_, i) => event(`${prefix}${i}`, { i }));
}

export function typesOf(events: readonly { type: string }[]): string[] {
  return events.map((e) => e.type);
}

export function item(event: RecordedEvent): SubscriptionItem {
  return { kind: 'event', event };
}

export function caughtUp(items: readonly SubscriptionItem[]): boolean {
  return items.some((i) => i.kind === 'caughtUp');
}

export function isEvent(position: bigint): (received: SubscriptionItem) => boolean {
  return (received) => received.kind === 'event' && received.event.position === position;
}

export function sortStreams<T extends { stream: string }>(streams: readonly T[]): T[] {
  return [...streams].sort((a, b) => a.stream.localeCompare(b.stream));
}

export function assertIncreasing(t: ExecutionContext<unknown>, values: readonly bigint[]): void {
  t.true(
    values.every((value, i) => i === 0 || values[i - 1]! < value),
    `${values.join(', ')} should strictly increase`,
  );
}

export async function assertWrongRevision(
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
export async function seed(log: EventLog, count: number): Promise<void> {
  for (let i = 0; i * 100 < count; i++) {
    await log.append(`s${i % 3}`, numbered(`seed${i}-`, Math.min(100, count - i * 100)));
  }
}

/** Appends over streams s0, s1, s2: concurrent ones, and a chain of sequential ones of several events. */
export async function burst(log: EventLog): Promise<void> {
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
export function assertSubscription(
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
