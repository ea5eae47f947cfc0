/**
 * A child process that runs the logistic-regression example with the custom `scaffold` aggregator
 * (test/support/scaffold.ts) registered by name, for tests that SIGKILL it and resume.
 *
 *   run <root> <seed> <roundLimit>
 *     Continues the root's experiment from its last breakpoint (`resumed <roundCurrent>`), or creates
 *     one when there is none (`created`); runs rounds one at a time, printing `round <index> committed`
 *     after each, finishes at the limit and prints `done <params sha256> <states sha256>`: the final
 *     parameters (`hashParameters`) and the JSON of every round's recorded state.
 *
 * Any failure prints `error <code> <message>` and exits with code 1.
 */
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { NoBreakpointError } from '../../src/model/errors.ts';
import { Experiment } from '../../src/federated/experiment.ts';
import { syntheticClinicalFederation } from '../../examples/logistic-regression/data.ts';
import { hashParameters } from './gate.ts';
import { scaffold, scaffoldRegistry } from './scaffold.ts';

const WORKSPACE = fileURLToPath(new URL('../..', import.meta.url));
const say = (line: string) => process.stdout.write(`${line}\n`);

async function run(root: string, seed: number, roundLimit: number): Promise<void> {
  const federation = syntheticClinicalFederation({ seed: 11 });
  const registry = { aggregators: scaffoldRegistry() };
  let exp: Experiment;
  try {
    exp = await Experiment.loadBreakpoint(undefined, { root, federation, workspace: WORKSPACE, registry });
    say(`resumed ${exp.roundCurrent()}`);
  } catch (error) {
    if (!(error instanceof NoBreakpointError)) throw error;
    exp = await Experiment.create({
      tags: ['#clinical'],
      trainingPlan: { module: 'examples/logistic-regression/plan.ts', export: 'logisticRegressionPlan' },
      federation,
      modelArgs: { columns: 5 },
      trainingArgs: { epochs: 1, batchSize: 32, learningRate: 0.2 },
      saveBreakpoints: true,
      seed,
      roundLimit,
      root,
      workspace: WORKSPACE,
      aggregator: scaffold({ scale: 0.5, eta: 0.3 }),
      registry,
    });
    say('created');
  }
  try {
    while (exp.roundCurrent() < roundLimit) {
      const round = exp.roundCurrent();
      await exp.runOnce();
      say(`round ${round} committed`);
    }
    await exp.run();
    const states = JSON.stringify(exp.state.rounds.map((r) => r.state));
    say(`done ${hashParameters(await exp.parameters())} ${createHash('sha256').update(states).digest('hex')}`);
  } finally {
    await exp.close();
  }
}

const [mode, root, seed, limit] = process.argv.slice(2);
try {
  if (mode !== 'run' || root === undefined || seed === undefined || limit === undefined) {
    throw new Error('usage: scaffold-child run <root> <seed> <roundLimit>');
  }
  await run(root, Number(seed), Number(limit));
  process.exit(0);
} catch (error) {
  const code = (error as { code?: unknown })?.code ?? 'UNKNOWN';
  say(`error ${String(code)} ${(error as Error)?.message ?? String(error)}`.replace(/\n/g, ' '));
  process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
}
