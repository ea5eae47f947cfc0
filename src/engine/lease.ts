/**
 * The run lease's questions to the operating system: which process this is (`currentOwner`: user,
 * host, pid and process start time), whether the owner of an open run is still alive
 * (`ownerLiveness`), and so the experiment's status (`statusOf`).
 *
 * A pid alone does not name a process: pids are reused. On Linux the start time of a process (field
 * 22 of `/proc/<pid>/stat`, clock ticks since boot) with the boot id
 * (`/proc/sys/kernel/random/boot_id`) does, so a lease records `<boot id>:<ticks>` and a process
 * with the same pid but another start time is not its owner. Elsewhere (no `/proc`) the start time
 * is null and a signal 0 to the pid answers. A lease held on another host cannot be asked: its
 * liveness is `unknown` and the heartbeat age decides (`experimentStatus`).
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { processIsAlive } from '../durable.ts';
import type { Actor, RunOwner } from '../model/events.ts';
import type { ExperimentState } from '../model/state.ts';
import { experimentStatus, type ExperimentStatus, type OwnerLiveness } from '../model/status.ts';

/** Default interval of a run's heartbeat while it appends nothing else. */
export const DEFAULT_HEARTBEAT_MS = 60_000;

let bootId: string | null | undefined;

function readBootId(): string | null {
  if (bootId === undefined) {
    try {
      bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootId = null;
    }
  }
  return bootId;
}

/** Fields of `/proc/<pid>/stat` after the command name (which may hold spaces and parentheses). */
function statFields(pid: number): string[] | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  // Field 3 (state) is the first after the name: index 0 here; field 22 (starttime) is index 19.
  return text
    .slice(close + 2)
    .trim()
    .split(' ');
}

/**
 * The start of process `pid` as `<boot id>:<clock ticks since boot>` (Linux), or null when the
 * platform does not say or the process does not exist.
 */
export function processStartOf(pid: number): string | null {
  const boot = readBootId();
  if (boot === null) return null;
  const fields = statFields(pid);
  const ticks = fields?.[19];
  return ticks === undefined ? null : `${boot}:${ticks}`;
}

/** The owner a lease taken now by `actor` records (the start time only when `actor` is this process). */
export function currentOwner(actor: Actor): RunOwner {
  const processStart = actor.pid === process.pid ? processStartOf(process.pid) : null;
  return { user: actor.user, host: actor.host, pid: actor.pid, processStart };
}

/**
 * Whether the process that owns a lease is alive, asked of this machine's operating system:
 * `unknown` when it runs on another host (`host`: this one's name, default `os.hostname()`);
 * `dead` when its pid is gone, is a zombie, or now names a process started at another time.
 */
export function ownerLiveness(owner: RunOwner, host: string = os.hostname()): OwnerLiveness {
  if (owner.host !== host) return 'unknown';
  if (owner.processStart !== null && readBootId() !== null) {
    const fields = statFields(owner.pid);
    if (fields === null || fields[0] === 'Z' || fields[0] === 'X') return 'dead';
    return `${readBootId()}:${fields[19]}` === owner.processStart ? 'alive' : 'dead';
  }
  return processIsAlive(owner.pid) ? 'alive' : 'dead';
}

export type StatusOptions = {
  /** The time now; default the clock's. */
  now?: Date;
  /** This machine's name; default `os.hostname()`. */
  host?: string;
};

/** The liveness of the open run's owner (`unknown` when no run is open). */
export function runLiveness(state: ExperimentState, host?: string): OwnerLiveness {
  return state.run === null ? 'unknown' : ownerLiveness(state.run.owner, host);
}

/** The experiment's status: its state, its run owner's liveness on this machine, and the time. */
export function statusOf(state: ExperimentState, options: StatusOptions = {}): ExperimentStatus {
  return experimentStatus(state, { liveness: runLiveness(state, options.host), now: options.now ?? new Date() });
}
