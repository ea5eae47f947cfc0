/**
 * `roundlog demo` (what `npm start` runs): the heart-disease example on processes, a researcher and
 * four nodes, the researcher and a node killed with SIGKILL part-way (`demo-nodes.ts`).
 *
 * `roundlog demo --synthetic`: the synthetic example federated experiment with breakpoints, its
 * training process killed with SIGKILL part-way, resumed from the last breakpoint in a new
 * process, run to the end, and checked bit for bit against a run that never stopped; then the
 * folder tree and the experiment's timeline. Its root is the one the README's samples show.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { TensorSet } from '../../codec/tensors.ts';
import { openRoundLog } from '../../projections/index.ts';
import { Experiment } from '../../federated/experiment.ts';
import { RoundlogError } from '../../errors.ts';
import { rootLayout } from '../../root.ts';
import { PACKAGE_ROOT } from '../../version.ts';
import { UsageError, positiveInt, type Io } from '../args.ts';
import { GLOBAL_OPTIONS, defineCommand, storeOptions, type GlobalOptions } from '../command.ts';
import { displayPath, experimentTimeline, folderTree, importDefinition, listExperiments } from '../experiments.ts';
import { NODE_KILL_DELAY, NODES_ROUNDS, runNodesDemo } from './demo-nodes.ts';

/** The folder that holds `examples/`: module paths of the example are relative to it. */
const WORKSPACE = PACKAGE_ROOT;
const DEFINITION = 'examples/logistic-regression/experiment.ts';
/** The `roundlog` entry point next to this module (`main.ts` run through tsx, or the built `main.js`). */
const MAIN = fileURLToPath(new URL(`../main${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url));

export const demo = defineCommand({
  name: 'demo',
  describe:
    'run the heart-disease example on a researcher and four node processes, SIGKILL the researcher after K rounds ' +
    'and a node later, resume, check it bit for bit',
  options: {
    'crash-after': {
      type: 'string',
      default: '4',
      describe:
        "committed rounds before the researcher's SIGKILL " +
        `(at most ${NODES_ROUNDS - NODE_KILL_DELAY - 1}; with --synthetic, less than 10)`,
      coerce: positiveInt('--crash-after'),
    },
    synthetic: {
      type: 'boolean',
      default: false,
      describe: 'the synthetic example in one training process instead (killed, resumed, its folder tree shown)',
    },
  },
  run: async (args, { global, io }) => {
    const crashAfter = args['crash-after'];
    if (args.synthetic) {
      if (crashAfter >= 10)
        throw new UsageError(`--crash-after must be less than the example's 10 rounds (got ${crashAfter})`);
      return runDemo(global, crashAfter, io);
    }
    const most = NODES_ROUNDS - NODE_KILL_DELAY - 1;
    if (crashAfter > most) {
      throw new UsageError(
        `--crash-after must be at most ${most}: a node is killed ${NODE_KILL_DELAY} rounds after the researcher, ` +
          `before the example's ${NODES_ROUNDS} rounds end (got ${crashAfter})`,
      );
    }
    return runNodesDemo(
      { global, io, main: MAIN, workspace: WORKSPACE, globalArgs: globalArgs(global), paramsHash },
      crashAfter,
    );
  },
});

export function paramsHash(tensors: TensorSet): string {
  const hash = createHash('sha256');
  for (const name of Object.keys(tensors).sort()) {
    const data = tensors[name]!.data;
    hash.update(name).update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return hash.digest('hex');
}

/** The global options as arguments for a child `roundlog`, so it works on the same root and store. */
function globalArgs(global: GlobalOptions): string[] {
  const given = { root: global.root, store: global.store, blobs: global.blobs, namespace: global.namespace };
  return Object.keys(GLOBAL_OPTIONS).flatMap((name) => {
    const value = given[name as keyof typeof given];
    return value === undefined ? [] : [`--${name}`, value];
  });
}

/** Runs a `roundlog` command in a child process; kills it with SIGKILL after `killAfterRounds` committed rounds. */
function child(args: string[], io: Io, killAfterRounds: number | null): Promise<{ killed: boolean }> {
  // The child reads the same environment as this command (ROUNDLOG_* and the rest).
  const proc = spawn(process.execPath, [...process.execArgv, MAIN, ...args], {
    cwd: WORKSPACE,
    env: io.env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let rounds = 0;
  let killed = false;
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    io.out(`  [pid ${proc.pid}] ${line}`);
    if (killAfterRounds !== null && line.startsWith('round ') && ++rounds === killAfterRounds) {
      proc.kill('SIGKILL');
      killed = true;
      io.out(`  [demo] SIGKILL sent to pid ${proc.pid} after ${rounds} committed rounds: the training process crashed`);
    }
  });
  return new Promise((resolve, reject) => {
    proc.on('error', reject);
    proc.on('exit', (code, signal) => {
      if (killed && signal === 'SIGKILL') resolve({ killed: true });
      else if (code === 0) resolve({ killed: false });
      else reject(new DemoStepFailedError(args[0]!, code ?? signal ?? 'unknown'));
    });
  });
}

async function runDemo(global: GlobalOptions, crashAfter: number, io: Io): Promise<number> {
  const { root, ...store } = storeOptions(global);
  io.out(`roundlog demo: ${DEFINITION}`);
  io.out(`logistic regression on synthetic clinical data held by 3 hospitals, FedAvg, breakpoints saved; root ${root}`);
  io.out('');
  io.out(`1. roundlog run ${DEFINITION}  (killed after round ${crashAfter - 1}: ${crashAfter} rounds completed)`);
  await child(['run', DEFINITION, ...globalArgs(global)], io, crashAfter);

  const before = (await listExperiments(root, store)).at(-1)!;
  io.out('');
  io.out(
    `2. after the crash: ${before.folder} has ${before.roundCurrent} completed rounds, ` +
      `status ${before.status}, breakpoints:`,
  );
  for (const b of before.breakpoints)
    io.out(`  round ${b.round}  ${path.relative(root, b.path)}  params ${b.paramsSha256?.slice(0, 16) ?? 'damaged'}`);

  io.out('');
  io.out('3. roundlog resume  (the last breakpoint of the last experiment, in a new process)');
  await child(['resume', ...globalArgs(global)], io, null);

  io.out('');
  io.out('4. check against a run that never stopped (in a temporary root)');
  const reference = mkdtempSync(path.join(os.tmpdir(), 'roundlog-demo-reference-'));
  let expected: string;
  try {
    const definition = await importDefinition(WORKSPACE, { module: DEFINITION, export: 'default' });
    // On a file log of its own, wherever the demo's history is (ROUNDLOG_STORE may name EventStoreDB).
    const uninterrupted = await Experiment.create({
      ...definition,
      federation: await definition.federation(),
      root: reference,
      store: 'file',
      blobs: path.join(reference, 'blobs'),
      workspace: WORKSPACE,
    });
    await uninterrupted.run();
    expected = paramsHash(await uninterrupted.parameters());
    await uninterrupted.close();
  } finally {
    rmSync(reference, { recursive: true, force: true });
  }
  const rl = await openRoundLog({ ...store, root });
  try {
    const handle = await rl.openExperiment(before.id);
    const actual = paramsHash((await handle.loadRound('last')).params);
    const same = actual === expected;
    io.out(`  uninterrupted      ${expected}`);
    io.out(`  crashed + resumed  ${actual}  ${same ? 'identical, bit for bit' : 'DIFFERENT'}`);

    io.out('');
    const folder = path.join(rootLayout(root).experiments, handle.state.folder);
    io.out(`5. ${displayPath(folder, global.cwd)}/`);
    for (const line of await folderTree(folder)) io.out(`  ${line}`);

    io.out('');
    io.out(`6. the timeline of ${handle.state.folder}`);
    const events = await rl.withReader(async (log) => (await log.readStream(handle.stream)).events);
    for (const line of experimentTimeline(events)) io.out(`  ${line}`);
    return same ? 0 : 1;
  } finally {
    await rl.close();
  }
}

/** A step of the demo (a `roundlog` child process) failed; its own error is printed above. */
export class DemoStepFailedError extends RoundlogError {
  readonly code = 'DEMO_STEP_FAILED' as const;
  constructor(
    readonly step: string,
    readonly exit: number | string,
  ) {
    super(
      `the demo's 'roundlog ${step}' exited with ${exit}; its error is printed above. ` +
        'Run roundlog verify on the demo root to see what is wrong',
    );
  }
}
