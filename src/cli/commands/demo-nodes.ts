/**
 * `roundlog demo` (what `npm start` runs): the heart-disease example (`examples/heart-disease/`) on
 * real processes. Four node processes, one per hospital, each approving the training plan first
 * (`roundlog node approve`) and loading its own hospital's file (`roundlog node start --data
 * processed.<hospital>.data`: split and standardised on the node); the researcher is a child
 * process too (`roundlog run --listen 127.0.0.1:0 --nodes ...`).
 *
 * 1. The researcher is killed with SIGKILL once `crashAfter` rounds are committed; a new one
 *    (`roundlog resume --listen` on the same port) resumes from the last breakpoint, the nodes
 *    having connected again by themselves.
 * 2. Two rounds later, the `va` node is killed with SIGKILL while it holds that round's request
 *    (the node's stdin gate holds it there, so the kill lands while the round waits on it). The
 *    engine has no quorum: the round fails (`NodeFailedError`, nothing of it committed, `RunFailed`
 *    recorded) and the researcher exits 1. The node is started again, a third researcher resumes,
 *    runs that round again (same RNG: it depends on the round, not the attempt) and the rest.
 * 3. The final parameters are checked bit for bit against a run that never stopped (in process, on
 *    the example's in-process nodes, in a temporary root); the timeline of what happened and the
 *    final model's held-out accuracy (per hospital, and pooled: `evaluateHeldOut`, the function
 *    `examples/heart-disease/evaluate.ts` prints) are printed.
 *
 * Every process the demo starts is waited on by the lines it prints (never a sleep), and killed
 * (SIGKILL) when the demo ends, fails, or gets SIGINT or SIGTERM; the demo prints their pids and
 * checks they are gone. Its temporary folders (the nodes' folders, the reference run's root) are
 * removed in each of those ways too, and on any other exit of the process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Experiment } from '../../federated/experiment.ts';
import { RoundlogError } from '../../errors.ts';
import type { TensorSet } from '../../codec/tensors.ts';
import { importModule } from '../../federated/load-module.ts';
import { openRoundLog } from '../../projections/index.ts';
import type { Io } from '../args.ts';
import { storeOptions, type GlobalOptions } from '../command.ts';
import { importDefinition, listExperiments } from '../experiments.ts';
import { SIGNAL_EXIT_CODES } from '../signals.ts';
import { NODE_GATE_ENV } from './node.ts';

export const NODES_DEFINITION = 'examples/heart-disease/experiment.ts';
const PLAN = 'examples/heart-disease/plan.ts';
/** The example's evaluation script: the demo's accuracies are the ones it prints. */
const EVALUATE = 'examples/heart-disease/evaluate.ts';
const HOSPITALS = ['cleveland', 'hungarian', 'switzerland', 'va'] as const;
const TAGS = 'heart-disease';
/** The node killed in a later round, and how many rounds after the researcher's crash. */
const VICTIM = 'va';
export const NODE_KILL_DELAY = 2;
export const NODES_ROUNDS = 10;
/** The whole demo's bound: a step waiting past it fails the demo (a stuck step, not a timing). */
const DEADLINE_MS = 180_000;

export type DemoContext = Readonly<{
  global: GlobalOptions;
  io: Io;
  /** The `roundlog` entry point and the folder the example's paths are relative to. */
  main: string;
  workspace: string;
  globalArgs: readonly string[];
  paramsHash: (tensors: Awaited<ReturnType<Experiment['parameters']>>) => string;
}>;

type Exit = { code: number | null; signal: NodeJS.Signals | null };

/** A `roundlog` child process, read line by line. */
class Proc {
  readonly process: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<Exit>;
  private readonly listeners = new Set<(line: string) => void>();
  private exit: Exit | null = null;
  /** The last lines of its stderr, for the error of a step that failed. */
  readonly stderr: string[] = [];

  constructor(
    readonly name: string,
    args: readonly string[],
    context: DemoContext,
    options: { env?: NodeJS.ProcessEnv; stdin?: boolean; echo: (line: string) => void },
  ) {
    this.process = spawn(process.execPath, [...process.execArgv, context.main, ...args], {
      cwd: context.workspace,
      env: { ...context.io.env, ...options.env },
      stdio: [options.stdin === true ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    this.pid = this.process.pid ?? -1;
    this.exited = new Promise<Exit>((resolve) => {
      this.process.on('error', () => resolve((this.exit = { code: null, signal: null })));
      // 'close', not 'exit': every line it printed has been read by then (a waitFor sees its last line).
      this.process.on('close', (code, signal) => resolve((this.exit = { code, signal })));
    });
    createInterface({ input: this.process.stdout! }).on('line', (line) => {
      options.echo(line);
      for (const listener of [...this.listeners]) listener(line);
    });
    createInterface({ input: this.process.stderr! }).on('line', (line) => {
      this.stderr.push(line);
      if (this.stderr.length > 20) this.stderr.shift();
      context.io.err(`  [${this.name} pid ${this.pid}] ${line}`);
    });
  }

  get alive(): boolean {
    return this.exit === null;
  }

  onLine(listener: (line: string) => void): void {
    this.listeners.add(listener);
  }

  /** The first line from now on that matches `pattern`; rejects if the process exits first or past `deadline`. */
  waitFor(pattern: RegExp, deadline: number): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const done = () => {
        this.listeners.delete(listener);
        clearTimeout(timer);
      };
      const listener = (line: string) => {
        const match = pattern.exec(line);
        if (match !== null) {
          done();
          resolve(match);
        }
      };
      const timer = setTimeout(
        () => {
          done();
          reject(new DemoStuckError(this.name, `a line matching ${pattern}`));
        },
        Math.max(0, deadline - Date.now()),
      );
      this.listeners.add(listener);
      void this.exited.then((exit) => {
        if (!this.listeners.has(listener)) return;
        done();
        reject(new NodesDemoStepError(this.name, exit, this.stderr));
      });
    });
  }

  /** Its exit, or `DemoStuckError` past `deadline`. */
  exitBy(deadline: number): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DemoStuckError(this.name, 'its exit')), Math.max(0, deadline - Date.now()));
    });
    return Promise.race([this.exited, late]).finally(() => clearTimeout(timer));
  }
}

export async function runNodesDemo(context: DemoContext, crashAfter: number): Promise<number> {
  const { global, io } = context;
  const { root, ...store } = storeOptions(global);
  const started = Date.now();
  const deadline = started + DEADLINE_MS;
  const killRound = crashAfter + NODE_KILL_DELAY;
  const procs: Proc[] = [];
  const timeline: string[] = [];
  const event = (line: string) => timeline.push(`+${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s  ${line}`);
  const nodeDirs = mkdtempSync(path.join(os.tmpdir(), 'roundlog-demo-nodes-'));
  // The demo's temporary folders go in every way it ends: its end, a failure, a signal (a second
  // one exits at once), or any other exit of the process.
  const temps = [nodeDirs];
  const removeTemps = () => {
    for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
  };

  const start = (
    name: string,
    args: readonly string[],
    options: { env?: NodeJS.ProcessEnv; stdin?: boolean; echo?: (line: string) => boolean } = {},
  ) => {
    const proc: Proc = new Proc(name, args, context, {
      ...options,
      echo: (line) => {
        if (options.echo?.(line) ?? true) io.out(`  [${name} pid ${proc.pid}] ${line}`);
      },
    });
    procs.push(proc);
    return proc;
  };
  const killAll = () => {
    for (const proc of procs) if (proc.alive) proc.process.kill('SIGKILL');
  };
  const onExit = () => {
    killAll();
    removeTemps();
  };
  // Ctrl-C or a SIGTERM: every process started goes with the demo, which exits once they have
  // (a second signal exits at once).
  let stopping = false;
  // (Ctrl-C in a terminal reaches the demo twice under `npm start`: from the terminal, and relayed
  // by tsx. The exit handler removes the temporary folders either way.)
  const onSignal = (signal: 'SIGINT' | 'SIGTERM') => {
    if (stopping) process.exit(SIGNAL_EXIT_CODES[signal]);
    stopping = true;
    io.err(`roundlog demo: ${signal}: killing the processes it started (${procs.map((p) => p.pid).join(' ')})`);
    killAll();
    void Promise.all(procs.map((proc) => proc.exited)).then(() => {
      removeTemps();
      process.exit(SIGNAL_EXIT_CODES[signal]);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', onExit);

  const nodeArgs = ['--nodes', HOSPITALS.join(',')];
  try {
    io.out(`roundlog demo: ${NODES_DEFINITION} on processes`);
    io.out(
      `logistic regression on the UCI heart-disease data of ${HOSPITALS.length} hospitals, one node process each ` +
        `(${HOSPITALS.join(', ')}), FedAvg, ${NODES_ROUNDS} rounds, breakpoints saved; root ${root}`,
    );
    io.out('');
    // The researcher starts while the nodes approve the plan: neither needs the other yet.
    io.out(`1. the researcher: roundlog run ${NODES_DEFINITION} --listen 127.0.0.1:0 ${nodeArgs.join(' ')}`);
    io.out(`2. each node approves the training plan: roundlog node approve ${PLAN}`);
    const researcher1 = start('researcher', [
      'run',
      NODES_DEFINITION,
      '--listen',
      '127.0.0.1:0',
      ...nodeArgs,
      ...context.globalArgs,
    ]);
    trackRounds(researcher1, event);
    const listening = researcher1.waitFor(/^listening for nodes on (\S+);/, deadline);
    // Awaited below; a failure before then is not an unhandled rejection meanwhile.
    listening.catch(() => undefined);
    await Promise.all(
      HOSPITALS.map(async (hospital) => {
        const approve = start(`approve ${hospital}`, [
          'node',
          'approve',
          PLAN,
          '--node-dir',
          path.join(nodeDirs, hospital),
        ]);
        const exit = await approve.exitBy(deadline);
        if (exit.code !== 0) throw new NodesDemoStepError(approve.name, exit, approve.stderr);
        event(`node ${hospital} approved ${PLAN}`);
      }),
    );
    const address = (await listening)[1]!;
    event(`researcher pid ${researcher1.pid} listening on ${address}`);

    io.out('');
    io.out(
      `3. the nodes: roundlog node start --id <hospital> --data examples/heart-disease/data/processed.<hospital>.data`,
    );
    const startNode = (hospital: string, gated: boolean) => {
      const node = start(
        `node ${hospital}`,
        [
          'node',
          'start',
          '--id',
          hospital,
          '--data',
          `examples/heart-disease/data/processed.${hospital}.data`,
          '--tags',
          TAGS,
          '--researcher',
          address,
          '--node-dir',
          path.join(nodeDirs, hospital),
        ],
        {
          ...(gated ? { env: { [NODE_GATE_ENV]: 'stdin' }, stdin: true } : {}),
          // Only what shows the node's life; its requests and replies are in the researcher's rounds.
          echo: (line) => / dataset | stopped$| SIGTERM: /.test(line),
        },
      );
      node.onLine((line) => {
        if (/ connected to /.test(line)) event(`node ${hospital} (pid ${node.pid}) connected`);
      });
      return node;
    };
    const nodes = new Map<string, Proc>(HOSPITALS.map((h) => [h, startNode(h, h === VICTIM)]));
    // The victim holds each request until it is let go: all but the one of `killRound`.
    let victimKilled = false;
    const gate = (node: Proc) =>
      node.onLine((line) => {
        const request = / train-request .*round=(\d+) /.exec(line);
        if (request === null || !node.alive) return;
        if (Number(request[1]) === killRound && !victimKilled) {
          victimKilled = true;
          node.process.kill('SIGKILL');
          io.out(`  [demo] SIGKILL sent to node ${VICTIM} (pid ${node.pid}) holding round ${killRound}'s request`);
          event(`SIGKILL node ${VICTIM} (pid ${node.pid}) while it holds round ${killRound}'s request`);
        } else node.process.stdin!.write('\n');
      });
    gate(nodes.get(VICTIM)!);

    const crashLine = new RegExp(`^round ${crashAfter - 1} \\(${crashAfter}/`);
    await researcher1.waitFor(crashLine, deadline);
    researcher1.process.kill('SIGKILL');
    io.out(`  [demo] SIGKILL sent to the researcher (pid ${researcher1.pid}) after ${crashAfter} committed rounds`);
    event(`SIGKILL researcher (pid ${researcher1.pid}) after ${crashAfter} committed rounds`);
    await researcher1.exitBy(deadline);

    io.out('');
    io.out(`4. a new researcher resumes on the same port: roundlog resume --listen ${address} ${nodeArgs.join(' ')}`);
    const resume = (name: string) => {
      const proc = start(name, ['resume', '--listen', address, ...nodeArgs, ...context.globalArgs]);
      proc.onLine((line) => {
        const resumed = /^resumed (\S+) .*?(after round \d+|from its initial parameters)/.exec(line);
        if (resumed !== null) event(`researcher pid ${proc.pid} resumed ${resumed[1]} ${resumed[2]}`);
      });
      trackRounds(proc, event);
      return proc;
    };
    const researcher2 = resume('researcher');
    const failed = await researcher2.exitBy(deadline);
    if (!victimKilled || failed.code !== 1) throw new NodesDemoStepError('researcher', failed, researcher2.stderr);
    // `roundlog: node "va" failed in round 6 of experiment ...: the node disconnected (...); nothing of ...`
    const reason = researcher2.stderr.find((line) => line.startsWith('roundlog: ')) ?? 'roundlog: no error printed';
    event(
      `round ${killRound} failed, nothing of it committed; the researcher exited 1: ${reason.slice(10).split('; ')[0]}`,
    );

    io.out('');
    io.out(`5. node ${VICTIM} starts again; a third researcher resumes and runs to round ${NODES_ROUNDS}`);
    const restarted = startNode(VICTIM, false);
    nodes.set(VICTIM, restarted);
    event(`node ${VICTIM} restarted (pid ${restarted.pid})`);
    const researcher3 = resume('researcher');
    const done = await researcher3.waitFor(/^done: /, deadline);
    event(`researcher pid ${researcher3.pid}: ${done.input}`);
    const finished = await researcher3.exitBy(deadline);
    if (finished.code !== 0) throw new NodesDemoStepError('researcher', finished, researcher3.stderr);
    for (const node of nodes.values()) node.process.kill('SIGTERM');
    for (const node of nodes.values()) await node.exitBy(deadline);
    event('nodes stopped (SIGTERM)');

    io.out('');
    io.out('6. check against a run that never stopped (in process, on the in-process nodes, in a temporary root)');
    const expected = await uninterrupted(context, temps);
    const rl = await openRoundLog({ ...store, root });
    let same: boolean;
    try {
      const handle = await rl.openExperiment((await listExperiments(root, store)).at(-1)!.id);
      const last = await handle.loadRound('last');
      const actual = context.paramsHash(last.params);
      same = actual === expected;
      io.out(`  uninterrupted                  ${expected}`);
      io.out(`  killed + resumed, on processes ${actual}  ${same ? 'identical, bit for bit' : 'DIFFERENT'}`);

      io.out('');
      io.out('7. timeline');
      for (const line of timeline) io.out(`  ${line}`);

      io.out('');
      io.out(
        `8. held-out accuracy of the final model (after round ${last.round}) on each hospital's held-out ` +
          `patients, as ${EVALUATE} computes it`,
      );
      for (const line of await heldOutLines(context, last.params)) io.out(`  ${line}`);
    } finally {
      await rl.close();
    }
    return same ? 0 : 1;
  } catch (error) {
    // Stopped by a signal: a step failing because its process was killed is not the demo's error;
    // the signal's handler exits with its code once every process has gone.
    if (stopping) return new Promise<number>(() => undefined);
    throw error;
  } finally {
    killAll();
    await Promise.all(procs.map((proc) => proc.exited));
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
    removeTemps();
    const left = procs.filter((proc) => isAlive(proc.pid));
    io.out('');
    io.out(
      `processes started: ${procs.map((proc) => proc.pid).join(' ')}; ` +
        (left.length === 0 ? 'none left running' : `STILL RUNNING: ${left.map((p) => p.pid).join(' ')}`),
    );
  }
}

/** Adds a timeline line for each round the researcher commits. */
function trackRounds(researcher: Proc, event: (line: string) => void): void {
  researcher.onLine((line) => {
    const round = /^round (\d+) \((\d+\/\d+) done\) {2}nodes (\d+\/\d+) replied/.exec(line);
    if (round !== null) event(`round ${round[1]} committed (${round[2]} done, ${round[3]} nodes replied)`);
  });
}

/**
 * The held-out accuracy of `params` per hospital and pooled, by the example's own function
 * (`evaluateHeldOut` of its plan, which `evaluate.ts` prints) on the example's in-process data
 * (the same bits the node processes hold), one line each: `<hospital> <accuracy>  (<correct>/<rows>)`.
 */
async function heldOutLines(context: DemoContext, params: TensorSet): Promise<string[]> {
  const plan = await importModule(path.join(context.workspace, PLAN));
  const evaluate = plan.evaluateHeldOut as (params: TensorSet, federation: unknown) => HeldOut;
  const definition = await importDefinition(context.workspace, { module: NODES_DEFINITION, export: 'default' });
  const { hospitals, pooled } = evaluate(params, await definition.federation());
  return [
    ...hospitals.map((h) => `${h.hospital.padEnd(12)} ${h.accuracy.toFixed(4)}  (${h.correct}/${h.rows})`),
    `${'pooled'.padEnd(12)} ${pooled.accuracy.toFixed(4)}  (${pooled.correct}/${pooled.rows})`,
  ];
}

type Score = { rows: number; correct: number; accuracy: number };
type HeldOut = { hospitals: (Score & { hospital: string })[]; pooled: Score };

/**
 * The parameters' hash of the definition run to its end without a stop, in process, in a temporary
 * root (listed in `temps` while it exists, so that an exit meanwhile removes it).
 */
async function uninterrupted(context: DemoContext, temps: string[]): Promise<string> {
  const reference = mkdtempSync(path.join(os.tmpdir(), 'roundlog-demo-reference-'));
  temps.push(reference);
  try {
    const definition = await importDefinition(context.workspace, { module: NODES_DEFINITION, export: 'default' });
    const experiment = await Experiment.create({
      ...definition,
      federation: await definition.federation(),
      root: reference,
      store: 'file',
      blobs: path.join(reference, 'blobs'),
      workspace: context.workspace,
    });
    try {
      await experiment.run();
      return context.paramsHash(await experiment.parameters());
    } finally {
      await experiment.close();
    }
  } finally {
    rmSync(reference, { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A process of the demo exited when it should not have (or not as it should have). */
export class NodesDemoStepError extends RoundlogError {
  readonly code = 'DEMO_STEP_FAILED' as const;
  constructor(
    readonly step: string,
    readonly exit: Exit,
    stderr: readonly string[],
  ) {
    super(
      `the demo's ${step} exited with ${exit.code ?? exit.signal ?? 'unknown'}` +
        (stderr.length === 0 ? '' : `: ${stderr.at(-1)}`) +
        '. Its output is printed above; every process the demo started has been killed',
    );
  }
}

/** A step of the demo did not come within the demo's time bound. */
export class DemoStuckError extends RoundlogError {
  readonly code = 'DEMO_TIMED_OUT' as const;
  constructor(
    readonly step: string,
    readonly waitingFor: string,
  ) {
    super(
      `the demo's ${step} did not print ${waitingFor} within ${DEADLINE_MS / 1000} s; its output is printed ` +
        'above, and every process the demo started has been killed',
    );
  }
}
