/**
 * Subscriptions of the EventStoreDB log: a catch-up subscription of the server (a stream, or
 * `$all` filtered to the namespace) whose caught-up message becomes the port's `caughtUp` item.
 */
import {
  END,
  START,
  excludeSystemEvents,
  streamNameFilter,
  type Position,
  type ResolvedEvent,
} from '@eventstore/db-client';
import { Observable } from 'rxjs';
import { InvalidArgumentError } from '../../errors.ts';
import type { SubscribeOptions, SubscriptionItem } from '../types.ts';
import { checkStreamName } from '../validate.ts';
import { serverStream, toRecorded, type ServerEvent } from './mapping.ts';
import { lastVisiblePosition, scanAll } from './read.ts';
import { closedError, type EsdbState } from './state.ts';
import { translate } from './translate.ts';

export function subscribe(log: EsdbState, options?: SubscribeOptions): Observable<SubscriptionItem> {
  return new Observable<SubscriptionItem>((subscriber) => {
    if (log.closed) {
      subscriber.error(closedError());
      return;
    }
    const stream = options?.stream;
    const from = options?.from ?? 'start';
    try {
      if (stream !== undefined) checkStreamName(stream);
      if (!(from === 'start' || from === 'end' || (typeof from === 'bigint' && from >= 0n))) {
        throw new InvalidArgumentError('from', 'must be a non-negative bigint, "start" or "end"', from);
      }
    } catch (error) {
      subscriber.error(error);
      return;
    }
    let stopped = false;
    let server: { unsubscribe(): Promise<void>; destroy(): void } | null = null;
    // Items pass through one promise chain, so the caught-up item (which needs a read) keeps its place.
    let chain: Promise<void> = Promise.resolve();
    const fail = (error: unknown) => {
      if (stopped) return;
      stopped = true;
      subscriber.error(translate(log.store, error, 'subscribe', stream));
      void server?.unsubscribe().catch(() => undefined);
    };
    const enqueue = (step: () => Promise<void> | void) => {
      chain = chain
        .then(async () => {
          if (!stopped && !subscriber.closed) await step();
        })
        .catch(fail);
    };
    let caughtUp = false;
    const complete = () => {
      if (stopped) return;
      stopped = true;
      void server?.unsubscribe().catch(() => undefined);
      subscriber.complete();
    };
    log.subscriptions.add(complete);

    // The caught-up position: the newest of the log's last position before the subscription
    // started and the last event delivered. Never read after the fact, so no live event can be
    // at or below it.
    let lastSeen: bigint | null = null;
    let before: bigint | null = null;
    const start = async () => {
      before = await lastVisiblePosition(log);
      let subscription;
      if (stream !== undefined) {
        const fromRevision = from === 'start' || from === 0n ? START : from === 'end' ? END : (from as bigint) - 1n;
        subscription = log.client.subscribeToStream(serverStream(log, stream), { fromRevision });
      } else {
        // The server starts after a position: the one of the event before `from`, if any.
        let fromPosition: Position | typeof START | typeof END = from === 'end' ? END : START;
        if (typeof from === 'bigint') {
          const atEventBefore = (event: ServerEvent) => {
            fromPosition = event.position!;
            return false;
          };
          await scanAll(log, false, from, atEventBefore, 1);
        }
        subscription = log.client.subscribeToAll({
          fromPosition,
          filter: log.namespace === '' ? excludeSystemEvents() : streamNameFilter({ prefixes: [log.namespace] }),
        });
      }
      if (stopped || subscriber.closed) {
        await subscription.unsubscribe().catch(() => undefined);
        return;
      }
      server = subscription;
      subscription.on('data', (resolved: ResolvedEvent) => {
        const event = resolved.event;
        if (event === undefined) return;
        enqueue(() => {
          const recorded = toRecorded(log, event);
          if (recorded === null) return;
          // A bigint `from` of $all is inclusive; the server started at the event before it.
          if (stream === undefined && typeof from === 'bigint' && recorded.position < from) return;
          if (lastSeen === null || recorded.position > lastSeen) lastSeen = recorded.position;
          subscriber.next({ kind: 'event', event: recorded });
        });
      });
      subscription.on('caughtUp', () => {
        if (caughtUp) return;
        caughtUp = true;
        enqueue(() => {
          const position = before === null ? lastSeen : lastSeen === null || before > lastSeen ? before : lastSeen;
          subscriber.next({ kind: 'caughtUp', position });
        });
      });
      subscription.on('error', (error: unknown) => enqueue(() => fail(error)));
      subscription.on('end', () => enqueue(complete));
    };
    start().catch(fail);

    return () => {
      stopped = true;
      log.subscriptions.delete(complete);
      const s = server as { unsubscribe(): Promise<void> } | null;
      void s?.unsubscribe().catch(() => undefined);
    };
  });
}
