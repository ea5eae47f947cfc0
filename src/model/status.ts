/**
 * The status of an experiment, a pure function of its state, of what is known of its run's owner
 * process, and of the time: `created`, `running`, `crashed`, `failed`, `stopped` or `finished`.
 *
 * The run lease is the open `RunStarted` in the state. Whether its owner process is alive is asked
 * of the operating system by the caller where it can be (same host: pid and process start time,
 * `src/engine/lease.ts`). Where it cannot (another host, e.g. EventStoreDB users on several
 * machines), the heartbeat decides: a run with no sign of life for `LEASE_STALE_HEARTBEATS`
 * heartbeat intervals is taken for crashed.
 */
import type { ExperimentState } from './state.ts';

export type ExperimentStatus = 'created' | 'running' | 'crashed' | 'failed' | 'stopped' | 'finished';

/** What the operating system says of the run's owner process; `unknown` on another host. */
export type OwnerLiveness = 'alive' | 'dead' | 'unknown';

/** Heartbeat intervals without a sign of life after which a run whose liveness is unknown is crashed. */
export const LEASE_STALE_HEARTBEATS = 3;

export type StatusContext = Readonly<{ liveness: OwnerLiveness; now: Date }>;

/**
 * - `running`: a run is open and its owner is alive (or, liveness unknown, gave a sign of life
 *   within `LEASE_STALE_HEARTBEATS` heartbeat intervals);
 * - `crashed`: a run is open and its owner is gone (or silent for longer), or an attempt was left
 *   open by a process that held no lease;
 * - `finished`: at its round limit (`ExperimentFinished`), no run open;
 * - `failed`: the last run ended with an error (`state.failure` says which);
 * - `created`: no round completed here and no run open (an experiment imported from a carried
 *   breakpoint folder, or forked, that never ran a round of its own is `created`); `stopped`:
 *   rounds completed, no run open (the
 *   run closed between rounds, or was stopped by SIGINT / SIGTERM: `RunEnded.signal`).
 */
export function experimentStatus(state: ExperimentState, context: StatusContext): ExperimentStatus {
  const run = state.run;
  if (run !== null) {
    if (context.liveness === 'alive') return 'running';
    if (context.liveness === 'dead') return 'crashed';
    return context.now.getTime() - run.lastSeen.getTime() <= LEASE_STALE_HEARTBEATS * run.heartbeatMs
      ? 'running'
      : 'crashed';
  }
  if (state.finished) return 'finished';
  if (state.failure !== null) return 'failed';
  if (state.openAttempt !== null) return 'crashed';
  // Rounds an import (a carried breakpoint folder, a fork) brought with it were run elsewhere.
  const broughtRounds = state.created?.importedFrom == null ? 0 : state.created.importedFrom.round + 1;
  return state.rounds.length <= broughtRounds ? 'created' : 'stopped';
}
