/**
 * `roundlog/testing`: the conformance suite every EventLog adapter runs, helpers for tests that
 * consume subscriptions, and the given/when/then specification of deciders. Test-only: nothing
 * here is needed at run time.
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
export {
  GIVEN_TIMESTAMP,
  given,
  type DeciderSpecification,
  type DecisionSpecification,
  type GivenEvent,
  type GivenOptions,
  type When,
} from './decider.ts';
export {
  blobStoreConformance,
  damageFileBlob,
  damageStreamBlob,
  type BlobDamage,
  type BlobStoreConformanceAdapter,
} from './blob-conformance.ts';
