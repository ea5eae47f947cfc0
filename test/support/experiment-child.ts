/**
 * A child process that runs the logistic-regression example through the `Experiment` facade, for
 * tests that need real processes: SIGKILL at any moment and resume, two processes resuming one
 * experiment at once. Talks line by line on stdout; modes and their arguments come as argv.
 *
 *   run <root> <seed> <rounds> <roundLimit> [gate | throw:<round>] [from:<path>]
 *     Prints `opening`, then continues the root's experiment from its last breakpoint (from its
 *     initial parameters when it completed no round), or creates one when the root has none (what a
 *     user does after a crash before the experiment was registered); with `from:<path>`, it
 *     continues from that breakpoint or experiment folder only (`Experiment.loadBreakpoint(path)`), and
 *     prints `created <folder> <id>` or `resumed <roundCurrent> <folder> <id>` (before `created`,
 *     `orphan-registration <message>` if it met a registered experiment without a history, then fails).
 *     Then runs rounds one at a time with `runOnce()`, at most `<rounds>` of them (`all`: no cap),
 *     until the round limit, printing `round <index> committed` after each. At the limit it
 *     finishes the experiment and prints `done <sha256>` of the final parameters
 *     (`hashParameters`); below it, `stopped <roundCurrent>`.
 *     With `gate`, the first node to start training in each round prints `training <round> <node>`
 *     and the process blocks until a line comes on stdin: by then the round's `RoundStarted` is
 *     durable and nothing else of the round is, so a SIGKILL sent on that line aborts the round.
 *     With `throw:<round>`, the training of node hospital-b in round `<round>` throws
 *     `Error('diverged: loss is NaN')` (the round fails with `NODE_FAILED`).
 *
 *   resume-wait <root> [hold]
 *     Prints `ready`, waits for a line `go` on stdin, loads the last breakpoint, prints
 *     `resumed <roundCurrent>` or `error <code>`; on success runs one round and prints
 *     `round <index> committed` or `error <code>`, then exits. With `hold`, once the experiment's
 *     history has been read (and before anything is appended to it) it prints `loaded` and waits
 *     for a second line on stdin, so two processes can be made to resume from the same revision.
 *
 * Any other failure prints `error <code> <message>` and exits with code 1.
 */
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { NoBreakpointError } from '../../src/model/errors.ts';
import { Experiment } from '../../src/federated/experiment.ts';
import type { Federation } from '../../src/federated/training-plan.ts';
import { syntheticClinicalFederation } from '../../examples/logistic-regression/data.ts';
import { hashParameters, onDataRead, readLineSync } from './gate.ts';

const WORKSPACE = fileURLToPath(new URL('../..', import.meta.url));
const FEDERATION_SEED = 11;
const TRAINING_ARGS = { epochs: 2, batchSize: 32, learningRate: 0.2, l2: 1e-3 } as const;

function say(line: string): void {
  // Writes to a pipe are synchronous on Linux: the line is out before the next statement runs.
  process.stdout.write(`${line}\n`);
}

function codeOf(error: unknown): string {
  return (error as { code?: unknown })?.code === undefined ? 'UNKNOWN' : String((error as { code: unknown }).code);
}

/**
 * The example federation; with a gate, reading a node's data for training (which the facade does
 * only after `RoundStarted` is durable) announces the round and waits for the parent once per round.
 */
function federation(gate: { round: number; open: number } | null, throwAt: number | null = null): Federation {
  const plain = syntheticClinicalFederation({ seed: FEDERATION_SEED });
  if (throwAt !== null) {
    // `gate` only tells the round here (the run loop sets it); nothing blocks.
    return onDataRead(plain, (node) => {
      if (node === 'hospital-b' && gate?.round === throwAt) throw new Error('diverged: loss is NaN');
    });
  }
  if (gate === null) return plain;
  return onDataRead(plain, (node) => {
    if (gate.open === gate.round) return;
    gate.open = gate.round;
    say(`training ${gate.round} ${node}`);
    if (readLineSync() === null) throw new Error('stdin closed while waiting at the gate');
  });
}

async function continueOrCreate(
  root: string,
  seed: number,
  roundLimit: number,
  nodes: Federation,
  from: string | null,
): Promise<Experiment> {
  const load = (target?: string) =>
    Experiment.loadBreakpoint(target, { root, federation: nodes, workspace: WORKSPACE });
  if (from !== null) {
    const exp = await load(from);
    say(`resumed ${exp.roundCurrent()} ${exp.experimentationFolder()} ${exp.id}`);
    return exp;
  }
  try {
    const exp = await load();
    say(`resumed ${exp.roundCurrent()} ${exp.experimentationFolder()} ${exp.id}`);
    return exp;
  } catch (error) {
    if ((error as { code?: unknown })?.code === 'STREAM_NOT_FOUND') {
      // A registered experiment without its history: createExperiment must never leave one.
      say(`orphan-registration ${String((error as Error).message).replace(/\n/g, ' ')}`);
      throw error;
    }
    if (!(error instanceof NoBreakpointError)) throw error;
    if (error.newest !== null) {
      // The last experiment has no breakpoint but an older one has: continue that one.
      const exp = await load(error.newest);
      say(`resumed ${exp.roundCurrent()} ${exp.experimentationFolder()} ${exp.id}`);
      return exp;
    }
  }
  // No experiment anywhere (a crash during creation, before it was registered): start again.
  // The seed is the same, so the new experiment trains to the same parameters.
  return create(root, seed, roundLimit, nodes);
}

async function create(root: string, seed: number, roundLimit: number, nodes: Federation): Promise<Experiment> {
  const exp = await Experiment.create({
    tags: ['#clinical'],
    trainingPlan: { module: 'examples/logistic-regression/plan.ts', export: 'logisticRegressionPlan' },
    federation: nodes,
    modelArgs: { columns: 5 },
    trainingArgs: { ...TRAINING_ARGS },
    saveBreakpoints: true,
    seed,
    roundLimit,
    root,
    workspace: WORKSPACE,
  });
  say(`created ${exp.experimentationFolder()} ${exp.id}`);
  return exp;
}

async function run(args: string[]): Promise<void> {
  const [root, seedArg, roundsArg, limitArg, ...flags] = args;
  if (root === undefined || seedArg === undefined || roundsArg === undefined || limitArg === undefined) {
    throw new Error('usage: experiment-child run <root> <seed> <rounds|all> <roundLimit> [gate] [from:<path>]');
  }
  const gateArg = flags.find((f) => !f.startsWith('from:'));
  const fromArg = flags.find((f) => f.startsWith('from:'));
  const from = fromArg === undefined ? null : fromArg.slice('from:'.length);
  const maxRounds = roundsArg === 'all' ? Infinity : Number(roundsArg);
  const throwAt = gateArg?.startsWith('throw:') ? Number(gateArg.slice('throw:'.length)) : null;
  const gate = gateArg === 'gate' || throwAt !== null ? { round: -1, open: -1 } : null;
  const nodes = federation(gate, throwAt);
  // Loaded now (the facade's own import of it is then a cache hit), so that a kill on `opening`
  // lands in the writes of creating or resuming, not in module loading before any of them.
  await import('../../examples/logistic-regression/plan.ts');
  say('opening');
  const exp = await continueOrCreate(root, Number(seedArg), Number(limitArg), nodes, from);
  try {
    const limit = exp.roundLimit();
    let ran = 0;
    while (ran < maxRounds && (limit === null || exp.roundCurrent() < limit)) {
      const round = exp.roundCurrent();
      if (gate !== null) gate.round = round;
      await exp.runOnce();
      ran++;
      say(`round ${round} committed`);
    }
    if (limit !== null && exp.roundCurrent() >= limit) {
      await exp.run(); // no round left: records ExperimentFinished
      say(`done ${hashParameters(await exp.parameters())}`);
    } else {
      say(`stopped ${exp.roundCurrent()}`);
    }
  } finally {
    await exp.close();
  }
}

async function resumeWait(args: string[]): Promise<void> {
  const [root, holdArg] = args;
  if (root === undefined) throw new Error('usage: experiment-child resume-wait <root> [hold]');
  const input = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const nextLine = async () => {
    const next = await input.next();
    if (next.done) throw new Error('stdin closed');
    return next.value;
  };
  const nodes = federation(null);
  say('ready');
  await nextLine();
  let exp: Experiment;
  try {
    exp = await Experiment.loadBreakpoint(undefined, {
      root,
      workspace: WORKSPACE,
      // The facade builds the federation after reading the history and before appending to it.
      federation:
        holdArg === 'hold'
          ? async () => {
              say('loaded');
              await nextLine();
              return nodes;
            }
          : nodes,
    });
  } catch (error) {
    say(`error ${codeOf(error)}`);
    return;
  }
  try {
    const round = exp.roundCurrent();
    say(`resumed ${round}`);
    try {
      await exp.runOnce();
      say(`round ${round} committed`);
    } catch (error) {
      say(`error ${codeOf(error)}`);
    }
  } finally {
    await exp.close();
  }
}

const [mode, ...args] = process.argv.slice(2);
try {
  if (mode === 'run') await run(args);
  else if (mode === 'resume-wait') await resumeWait(args);
  else throw new Error(`unknown mode ${String(mode)}`);
  process.exit(0);
} catch (error) {
  say(`error ${codeOf(error)} ${(error as Error)?.message ?? String(error)}`.replace(/\n/g, ' '));
  process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
}
