/** What an adapter gives the conformance suite: how to open, reopen and race its logs. */
import type { EventData, EventLog, ExpectedRevision } from '../../log/types.ts';

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
