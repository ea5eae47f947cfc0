/**
 * SIGINT (Ctrl-C) and SIGTERM during `roundlog run` and `resume`: the first asks the run to stop
 * cleanly (`Experiment.stop`: the round in flight completes and commits, no later round starts,
 * `RunEnded` records the signal, the lease is released, `ls` shows `stopped`) and the command then
 * exits 130 (SIGINT) or 143 (SIGTERM). A second one stops the process at once, with the same exit
 * code: the round in flight is not recorded, and the run's lease is left open (`ls` shows the run
 * `crashed`, which it is, until the next `resume`).
 */
import type { Io } from './args.ts';

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;
type StopSignal = (typeof STOP_SIGNALS)[number];

/** The exit code of a command stopped by `signal`: 128 plus its number. */
export const SIGNAL_EXIT_CODES: Readonly<Record<StopSignal, number>> = { SIGINT: 130, SIGTERM: 143 };

export type StopOnSignals = {
  /** The first signal received, or null. */
  readonly received: StopSignal | null;
  /** The exit code for the signal received, or null when none was. */
  exitCode(): number | null;
  /** Stops listening (the default handlers, which end the process, apply again). */
  dispose(): void;
};

/** Listens for SIGINT and SIGTERM while a run goes on; `onStop` is called with the first. */
export function stopOnSignals(io: Io, onStop: (signal: StopSignal) => void): StopOnSignals {
  let received: StopSignal | null = null;
  const handler = (signal: StopSignal) => {
    if (received !== null) {
      io.err(
        `roundlog: ${signal} again: stopping at once; the round in flight is not recorded ` +
          "and the run shows as crashed until 'roundlog resume'",
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
    dispose: () => {
      for (const signal of STOP_SIGNALS) process.off(signal, handler);
    },
  };
}
