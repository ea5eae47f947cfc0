/**
 * The EventLog conformance suite: one set of ava tests that every adapter's test file runs,
 * so every backend keeps the same contract (src/log/types.ts). Also the small subscription
 * helpers the suite is written with, for adapters' own tests.
 *
 *   eventLogConformance(test, { name: 'memory', open: async () => getInMemoryEventLog() });
 *
 * Each feature's tests are in their own module; they run in the order listed here.
 */
import type { ExecutionContext, TestFn } from 'ava';
import type { EventLog } from '../../log/types.ts';
import { appendTests } from './append.ts';
import { invalidArgumentTests } from './arguments.ts';
import { dataTests } from './data.ts';
import { lifecycleTests } from './lifecycle.ts';
import { raceTests } from './race.ts';
import { readAllTests } from './reads.ts';
import { subscribeTests } from './subscribe.ts';
import type { Suite } from './support.ts';
import type { ConformanceAdapter } from './types.ts';

export { collectSubscription, eventsOf, recordSubscription, type SubscriptionRecording } from './subscriptions.ts';
export type { AppendRace, AppendRaceResult, ConformanceAdapter, RaceOutcome } from './types.ts';

export function eventLogConformance<Context>(test: TestFn<Context>, adapter: ConformanceAdapter): void {
  const suite: Suite<Context> = {
    test,
    adapter,
    title: (what) => `${adapter.name}: ${what}`,
    openLog: async (t: ExecutionContext<unknown>): Promise<EventLog> => {
      const log = await adapter.open();
      t.teardown(() => log.close());
      return log;
    },
  };
  appendTests(suite);
  readAllTests(suite);
  invalidArgumentTests(suite);
  dataTests(suite);
  subscribeTests(suite);
  lifecycleTests(suite);
  raceTests(suite);
}
