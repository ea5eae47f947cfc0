/**
 * `roundlog <args>` run by `main` in this process, which sends itself SIGTERM the moment the
 * command prints its `done:` line (the run has ended on its own; `RunEnded` is not recorded yet),
 * then exits with the code `main` returns. The test of a late signal runs it.
 */
import { main } from '../../src/cli/main.ts';

const code = await main(process.argv.slice(2), {
  out: (line) => {
    process.stdout.write(`${line}\n`);
    if (line.startsWith('done:')) process.kill(process.pid, 'SIGTERM');
  },
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
  cwd: process.cwd(),
});
process.exitCode = code;
