/**
 * The run lease: a process starts a run (`RunStarted`, refused while another live process holds
 * it unless taken over), shows it is alive (`RunHeartbeat`), and ends it (`RunEnded`; a failure is
 * `decideFail`'s `RunFailed`).
 */
import { InvalidArgumentError } from '../../errors.ts';
import { ExperimentRunningError, RunNotOwnedError } from '../errors.ts';
import type { ExperimentEvent, RemoteRun, RunOwner } from '../events.ts';
import { roundCurrent, type ExperimentState } from '../state.ts';
import { experimentStatus, type OwnerLiveness } from '../status.ts';
import { requireCreated } from './context.ts';

export type StartRun = {
  runId: string;
  owner: RunOwner;
  /** How often the run gives a sign of life while it appends nothing else (ms, a positive integer). */
  heartbeatMs: number;
  /** What the operating system says of the open run's owner (the caller asks it), and the time now. */
  liveness: OwnerLiveness;
  now: Date;
  /** Take over a run that still looks alive; default false. */
  takeOver?: boolean;
  /** The node processes the run trains on (recorded); null or absent: in-process nodes. */
  remote?: RemoteRun | null;
};

/**
 * Decides `[RunStarted]`. An open run whose owner is gone (crashed) is replaced without a word;
 * one that is `running` is refused, unless `takeOver`, recorded in `tookOver`.
 *
 * Errors: `ExperimentNotCreatedError`; `ExperimentRunningError` naming the owner;
 * `InvalidArgumentError` (`heartbeatMs` not a positive integer).
 */
export function decideStartRun(state: ExperimentState, command: StartRun): readonly ExperimentEvent[] {
  const created = requireCreated(state, 'start a run');
  if (!Number.isSafeInteger(command.heartbeatMs) || command.heartbeatMs <= 0) {
    throw new InvalidArgumentError('heartbeatMs', 'must be a positive integer (milliseconds)', command.heartbeatMs);
  }
  const open = state.run;
  const running = open !== null && experimentStatus(state, command) === 'running';
  if (running && command.takeOver !== true) {
    throw new ExperimentRunningError(state.folder || created.folder, open.owner, open.since, open.lastSeen);
  }
  return [
    {
      type: 'RunStarted',
      data: {
        v: 1,
        runId: command.runId,
        owner: command.owner,
        heartbeatMs: command.heartbeatMs,
        tookOver: running ? { runId: open.runId, owner: open.owner } : null,
        // Absent for in-process nodes, as in the runs recorded before the field.
        ...(command.remote == null
          ? {}
          : { remote: { listen: command.remote.listen, nodes: [...command.remote.nodes] } }),
      },
    },
  ];
}

export type RunCommand = { runId: string };

/** The run `runId` must be the open one: else `RunNotOwnedError` naming the run that holds it now. */
function requireOwnRun(state: ExperimentState, runId: string, command: string): void {
  const created = requireCreated(state, command);
  if (state.run?.runId !== runId) {
    const current = state.run === null ? null : { runId: state.run.runId, owner: state.run.owner };
    throw new RunNotOwnedError(state.folder || created.folder, runId, current);
  }
}

/** Decides `[RunHeartbeat]`. Errors: `ExperimentNotCreatedError`, `RunNotOwnedError`. */
export function decideHeartbeat(state: ExperimentState, command: RunCommand): readonly ExperimentEvent[] {
  requireOwnRun(state, command.runId, 'give a heartbeat');
  return [{ type: 'RunHeartbeat', data: { v: 1, runId: command.runId } }];
}

/**
 * Decides `[RunEnded]` (with the `signal` that stopped the run, if one did) when `runId` is the open
 * run, else nothing (it ended already, by a failure, or another process took it over: nothing of
 * it is left to end).
 *
 * Errors: `ExperimentNotCreatedError`.
 */
export function decideEndRun(
  state: ExperimentState,
  command: RunCommand & Readonly<{ signal?: string | null }>,
): readonly ExperimentEvent[] {
  requireCreated(state, 'end a run');
  if (state.run?.runId !== command.runId) return [];
  const data = { v: 1 as const, runId: command.runId, roundCurrent: roundCurrent(state) };
  // `signal` only when one stopped the run: a run that ended on its own records what it always did.
  const signal = command.signal ?? null;
  return [{ type: 'RunEnded', data: signal === null ? data : { ...data, signal } }];
}
