/** Helpers for tests that consume subscriptions: collect or record their items, and pick out the events. */
import { lastValueFrom, takeWhile, toArray, type Observable } from 'rxjs';
import type { RecordedEvent, SubscriptionItem } from '../../log/types.ts';

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
