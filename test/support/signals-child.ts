/**
 * A process that listens for SIGINT / SIGTERM with the CLI's `stopOnSignals` and never stops on its
 * own: it prints `ready`, then `stop <signal>` when asked to stop, and exits 0 only when told so on
 * stdin. Its first argument, when given, is the command that continues the run. The test of the
 * second signal (which must end the process at once) runs it.
 */
import { createInterface } from 'node:readline';
import { stopOnSignals } from '../../src/cli/signals.ts';

const signals = stopOnSignals(
  { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`), env: {}, cwd: '.' },
  (signal) => process.stdout.write(`stop ${signal}\n`),
  () => process.argv[2] ?? null,
);
process.stdout.write('ready\n');
// Keeps the event loop alive (signal handlers run) until a line on stdin.
createInterface({ input: process.stdin }).once('line', () => {
  signals.dispose();
  process.exit(0);
});
