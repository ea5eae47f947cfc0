/**
 * SIGINT (Ctrl-C) and SIGTERM during `roundlog run` and `resume`: the first asks the run to stop
 * cleanly (`Experiment.stop`: the round in flight completes and commits, no later round starts,
 * `RunEnded` records the signal, the lease is released, `ls` shows `stopped`) and the command then
 * exits 130 (SIGINT) or 143 (SIGTERM). A second one stops the process at once, with the same exit
 * code: the round in flight is not recorded, and the run's lease is left open (`ls` shows the run
 * `crashed`, which it is, until the next `resume`).
 *
 * Once the run has ended on its own (`settle`, called when `Experiment.run` returns, before
 * `done:` is printed and `RunEnded` recorded), a signal changes nothing: the run is not asked to
 * stop, `RunEnded` records no signal, and the exit code stays that of the run (0 after `done:`).
 * A second late signal still stops the process at once.
 */
import type { Io } from './args.ts';

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;
type StopSignal = (typeof STOP_SIGNALS)[number];

/** The exit code of a command stopped by `signal`: 128 plus its number. */
export const SIGNAL_EXIT_CODES: Readonly<Record<StopSignal, number>> = { SIGINT: 130, SIGTERM: 143 };

export type StopOnSignals = {
  /** The first signal received, or null. */
  readonly received: StopSignal | null;
  /** The exit code for the signal received before `settle`, or null when none was. */
  exitCode(): number | null;
  /**
   * The run has ended: what it ended by is kept (`received` stays as it is), and a signal from
   * now on is only reported.
   */
  settle(): void;
  /** Stops listening (the default handlers, which end the process, apply again). */
  dispose(): void;
};

/**
 * Listens for SIGINT and SIGTERM while a run goes on; `onStop` is called with the first. `resume`
 * gives the command that continues the run (its folder, and its node processes), named when a
 * second signal stops it at once; null (or absent) names `roundlog resume` alone.
 */
export function stopOnSignals(
  io: Io,
  onStop: (signal: StopSignal) => void,
  resume: () => string | null = () => null,
): StopOnSignals {
  let received: StopSignal | null = null;
  let settled = false;
  let late = false;
  const handler = (signal: StopSignal) => {
    if (settled && !late) {
      late = true;
      io.err(
        `roundlog: ${signal} after the run ended: closing the log; ` +
          `${signal === 'SIGINT' ? 'press Ctrl-C' : 'send it'} again to stop at once`,
      );
      return;
    }
    if (received !== null || late) {
      io.err(
        `roundlog: ${signal} again: stopping at once; the round in flight is not recorded ` +
          `and the run shows as crashed until '${resume() ?? 'roundlog resume'}'`,
      );
      process.exit(SIGNAL_EXIT_CODES[signal]);
    }
    received = signal;
    io.err(
      `roundlog: ${signal}: stopping after the round in flight (committed rounds are kept); ` +
        `${signal === 'SIGINT' ? 'press Ctrl-C' : 'send it'} again to stop at once`,
    );
    onStop(signal);
  };
  for (const signal of STOP_SIGNALS) process.on(signal, handler);
  return {
    get received() {
      return received;
    },
    exitCode: () => (received === null ? null : SIGNAL_EXIT_CODES[received]),
    settle: () => {
      settled = true;
    },
    dispose: () => {
      for (const signal of STOP_SIGNALS) process.off(signal, handler);
    },
  };
}
