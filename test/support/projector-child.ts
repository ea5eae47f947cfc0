/**
 * A child process for tests of several processes writing the views of one root at once: it takes
 * commands from stdin, one a line, and answers each with one JSON line on stdout once it is done
 * (`{ "done": <command>, "errors": [...], "problems": [...] }`), so the parent can release several
 * children at the same moment (one `go` line each) and know when each is through.
 *
 *   tsx test/support/projector-child.ts <root>
 *
 * Commands:
 *   create <b>        creates the root's one experiment, saving breakpoints when b is `true`
 *                     (else the first `record` creates it, saving them)
 *   record <n>        records n rounds (with metrics, each with a breakpoint) of the root's one
 *                     experiment through the round log with its views: each round's breakpoint
 *                     folder and event files are written by this process after its commit
 *   rewind <r>        rewinds the experiment to round r, moving its folders (roundlog rewind)
 *   rewind-log <r>    appends the rewind to round r and nothing else, as a rewind whose process died
 *                     right after its append leaves it: the folders of later rounds are still in place
 *   project           roundlog project, once
 *   rebuild           roundlog project --rebuild, once
 *   loop <file> <max> roundlog project again and again until <file> exists (at most max times),
 *                     then once more
 *   exit              ends the process
 * Errors thrown are reported with their code and message, never end the process.
 */
import { existsSync } from 'node:fs';
import { RoundlogError } from '../../src/errors.ts';
import { openRoundLog, projectRoot, rewindExperiment, type RoundLog } from '../../src/projections/index.ts';
import { openRoundLog as openBareRoundLog, type ExperimentHandle } from '../../src/engine/round-log.ts';
import { decideRewind } from '../../src/model/decide/index.ts';
import { readLineSync } from './gate.ts';
import { tensors } from './rounds.ts';

const root = process.argv[2]!;
let rl: RoundLog | null = null;
let handle: ExperimentHandle | null = null;

type Answer = { done: string; errors: string[]; problems: string[] };

function describe(error: unknown): string {
  if (error instanceof RoundlogError) return `${error.code}: ${error.message}`;
  const code = (error as NodeJS.ErrnoException)?.code;
  return `${code ?? 'Error'}: ${(error as Error)?.message ?? String(error)}`;
}

async function project(rebuild: boolean, answer: Answer): Promise<void> {
  try {
    const report = await projectRoot({ root, rebuild });
    answer.problems.push(...report.experiments.flatMap((e) => e.problems));
  } catch (error) {
    answer.errors.push(describe(error));
  }
}

async function experiment(saveBreakpoints = true): Promise<ExperimentHandle> {
  if (rl === null) rl = await openRoundLog({ root });
  if (handle === null) {
    const listed = await rl.listExperiments();
    handle =
      listed.length === 0
        ? await rl.createExperiment({ saveBreakpoints, roundLimit: 10_000, initialParams: tensors(0, 0) })
        : await rl.openExperiment(listed[0]!.experimentId);
  }
  return handle;
}

async function run(command: string): Promise<Answer> {
  const [name, ...args] = command.split(' ');
  const answer: Answer = { done: name!, errors: [], problems: [] };
  try {
    if (name === 'create') {
      await experiment(args[0] === 'true');
    } else if (name === 'record') {
      const exp = await experiment();
      for (let i = 0; i < Number(args[0]); i++) {
        const r = exp.roundCurrent();
        await exp.recordRound({
          params: tensors(r, 1),
          replies: [],
          metrics: { loss: 1 / (r + 1) },
          nodes: [{ node: 'n1', sampleSize: 3, metrics: { loss: r } }],
        });
      }
    } else if (name === 'rewind') {
      const exp = await experiment();
      await rewindExperiment(rl!, exp.id, { round: Number(args[0]), reason: 'a test rewinds beside projectors' });
      // The handle's state is behind the rewind: the next command opens it again.
      handle = null;
    } else if (name === 'rewind-log') {
      const exp = await experiment();
      // The engine's round log keeps no view: the append moves no folder.
      const bare = await openBareRoundLog({ root });
      try {
        const opened = await bare.openExperiment(exp.id);
        const reason = 'a test rewinds the log alone';
        await opened.append(decideRewind(opened.state, { round: Number(args[0]), reason }, { actor: bare.actor }));
      } finally {
        await bare.close();
      }
      handle = null;
    } else if (name === 'project' || name === 'rebuild') {
      await project(name === 'rebuild', answer);
    } else if (name === 'loop') {
      const max = Number(args[1]);
      for (let i = 0; i < max && !existsSync(args[0]!); i++) await project(false, answer);
      await project(false, answer);
    } else {
      answer.errors.push(`unknown command ${command}`);
    }
  } catch (error) {
    answer.errors.push(describe(error));
  }
  return answer;
}

for (;;) {
  const line = readLineSync();
  if (line === null || line === 'exit') break;
  process.stdout.write(`${JSON.stringify(await run(line))}\n`);
}
if (rl !== null) await (rl as RoundLog).close();
