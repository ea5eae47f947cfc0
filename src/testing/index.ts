/**
 * `roundlog/testing`: the conformance suite every EventLog adapter runs, and helpers for
 * tests that consume subscriptions. Test-only: nothing here is needed at run time.
 */
export {
  collectSubscription,
  eventLogConformance,
  eventsOf,
  recordSubscription,
  type AppendRace,
  type AppendRaceResult,
  type ConformanceAdapter,
  type RaceOutcome,
  type SubscriptionRecording,
} from './conformance/index.ts';
