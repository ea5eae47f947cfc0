/**
 * `roundlog run|resume --listen --nodes` as real processes, with real `roundlog node start` processes:
 *
 * - a node that stops answering (SIGSTOPped) fails the round after `--node-timeout`, and the
 *   researcher process exits then, without waiting for the stopped node (its connection is
 *   force-closed); the failure names the command that retries the round on the node processes;
 * - the run records that it trained on node processes (`RunStarted.remote`), and `resume` without
 *   `--listen` refuses it (`REMOTE_NODES_REQUIRED`) with that command;
 * - SIGINT while a round waits on a node: the round commits, the researcher exits 130 printing the
 *   command that continues on the node processes, and that command, run as printed, completes it
 *   (a rewind's and a fork's "continue with" name the node processes too, and the fork, which goes
 *   on with its parent's node processes, is refused in process);
 * - a node of `--nodes` whose tags do not match the experiment's is refused before the first round
 *   (`NODE_TAGS_MISMATCH`, naming the node, its tags and the experiment's);
 * - a node back with other data is refused with the command that takes it (`--on-dataset-change
 *   record`), and that flag takes it;
 * - `--node-timeout` and `--on-dataset-change` without `--listen` are usage errors.
 *
 * Every process is killed (SIGCONT first) in the test's teardown; the tests wait on the lines the
 * processes print, never on a sleep.
 */
import test, { type ExecutionContext } from 'ava';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import { CLINICAL_FEATURES, syntheticClinicalFederation } from '../../examples/logistic-regression/data.ts';
import { approvePlan } from '../../src/federated/remote/approvals.ts';
import { numericCsv } from '../../src/federated/remote/dataset.ts';
import { openFileEventLog } from '../../src/log/file/index.ts';
import type { RunStarted } from '../../src/model/events.ts';
import { killSpawned, killedAfter, spawnTs, type Child } from '../support/child.ts';
import { REPO, roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const DEFINITION = 'examples/logistic-regression/experiment.ts';
const PLAN_FILE = path.join(REPO, 'examples/logistic-regression/plan.ts');
const TAGS = '#clinical,#heart';
const NODES = ['hospital-a', 'hospital-b'] as const;
/** A bound on what must come promptly (a process's exit): past it the test fails, it is not a wait. */
const PROMPTLY_MS = 30_000;

type Setup = { files: Record<string, string>; nodeDirs: Record<string, string> };

async function setup(ids: readonly string[]): Promise<Setup> {
  const dir = tempDir();
  const federation = syntheticClinicalFederation({ seed: 11, nodes: 3, rows: [120, 60, 90] });
  const files: Record<string, string> = {};
  const nodeDirs: Record<string, string> = {};
  for (const [i, id] of ids.entries()) {
    files[id] = path.join(dir, `${id}.csv`);
    writeFileSync(files[id], numericCsv(CLINICAL_FEATURES, federation.nodes[i]!.datasets[0]!.data));
    nodeDirs[id] = path.join(dir, `node-${id}`);
    await approvePlan(nodeDirs[id], PLAN_FILE);
  }
  return { files, nodeDirs };
}

function roundlogChild(t: ExecutionContext, args: string[], onLine?: (line: string, child: Child) => void): Child {
  return killedAfter(t, spawnTs('../../src/cli/main.ts', args, onLine));
}

/** `roundlog run … --listen 127.0.0.1:0`; resolves once it listens, with its address. */
async function researcher(
  t: ExecutionContext,
  root: string,
  args: string[],
): Promise<{ child: Child; address: string }> {
  const child = roundlogChild(t, ['run', DEFINITION, '--root', root, '--listen', '127.0.0.1:0', ...args]);
  const line = await child.waitFor((l) => l.startsWith('listening for nodes on '));
  return { child, address: /^listening for nodes on (\S+);/.exec(line)![1]! };
}

/**
 * `roundlog node start` as a process. With `hold`, the node waits at its gate before each request
 * (ROUNDLOG_TEST_NODE_GATE=stdin), and every request `hold` does not match is let through at once.
 */
function node(
  t: ExecutionContext,
  s: Setup,
  id: string,
  address: string,
  tags = TAGS,
  hold?: (request: string) => boolean,
): Child {
  const args = ['node', 'start', '--id', id, '--data', s.files[id]!, '--tags', tags, '--researcher', address];
  const all = [...args, '--node-dir', s.nodeDirs[id]!];
  if (hold === undefined) return roundlogChild(t, all);
  const onLine = (line: string, child: Child) => {
    if (/ train-request /.test(line) && !hold(line)) child.process.stdin!.write('\n');
  };
  return killedAfter(t, spawnTs('../../src/cli/main.ts', all, onLine, { ROUNDLOG_TEST_NODE_GATE: 'stdin' }));
}

/** The child's exit, or a failure of the test if it has not exited within `PROMPTLY_MS`. */
async function exitsPromptly(t: ExecutionContext, child: Child, what: string) {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), PROMPTLY_MS)));
  const exit = await Promise.race([child.exited, late]).finally(() => clearTimeout(timer));
  if (exit === null) t.fail(`${what} had not exited ${PROMPTLY_MS / 1000} s after it should have`);
  return exit;
}

async function runsStarted(root: string): Promise<RunStarted[]> {
  const log = await openFileEventLog({ dir: path.join(root, 'log'), readOnly: true });
  try {
    const { events } = await log.readAll();
    return events.filter((e) => e.type === 'RunStarted').map((e) => e.data as RunStarted);
  } finally {
    await log.close();
  }
}

test.serial(
  'a SIGSTOPped node times out: the researcher exits at once; resume without --listen is refused with the command',
  async (t) => {
    const s = await setup(NODES);
    const root = tempDir();
    const { child, address } = await researcher(t, root, ['--nodes', NODES.join(','), '--node-timeout', '2']);
    const a = node(t, s, 'hospital-a', address);
    // hospital-b is stopped as soon as it gets round 0's request: it never replies, never closes.
    const b = node(t, s, 'hospital-b', address);
    await b.waitFor((l) => / train-request /.test(l));
    b.process.kill('SIGSTOP');
    t.teardown(() => void b.process.kill('SIGCONT'));

    const exit = await exitsPromptly(t, child, 'the researcher');
    t.deepEqual(exit, { code: 1, signal: null }, child.stderr());
    // Every command printed names the root this one ran on.
    const retry = `roundlog resume --root ${root} Experiment_0000 --listen ${address} --nodes hospital-a,hospital-b`;
    t.regex(
      child.stderr(),
      new RegExp(
        'node "hospital-b" failed in round 0 of experiment Experiment_0000: no reply within 2000 ms ' +
          '\\(if the node is only slow, raise --node-timeout SECONDS of run and resume \\(nodeTimeoutMs in code\\)\\)',
      ),
    );
    t.true(child.stderr().includes(`run '${retry}' to retry it`), child.stderr());
    // Nothing was created on disk for round 0: the first line says so rather than name a missing folder.
    t.regex(
      child.lines.find((l) => l.startsWith('experiment '))!,
      /\(created with its first breakpoint\)$/,
    );

    // The log says how the run trained.
    t.deepEqual(
      (await runsStarted(root)).map((r) => r.remote),
      [{ listen: address, nodes: ['hospital-a', 'hospital-b'] }],
    );
    const history = await roundlog(['history', 'Experiment_0000', '--root', root]);
    t.regex(history.stdout, new RegExp(`on node processes at ${address} \\(nodes hospital-a, hospital-b\\)`));
    // resume without --listen would train on the definition's in-process nodes: refused, with the command.
    const resumed = await roundlog(['resume', 'Experiment_0000', '--root', root]);
    t.is(resumed.code, 1, resumed.stdout);
    t.regex(resumed.stderr, /REMOTE_NODES_REQUIRED|last ran on node processes/);
    t.true(resumed.stderr.includes(`Run '${retry}'`), resumed.stderr);
    t.is((await runsStarted(root)).length, 1, 'the refused resume recorded nothing');
    a.process.kill('SIGTERM');
    await a.exited;
  },
);

test.serial(
  'SIGINT mid-round: the round commits, and the command printed to continue resumes on the nodes',
  async (t) => {
    const s = await setup(NODES);
    const root = tempDir();
    const { child, address } = await researcher(t, root, ['--nodes', NODES.join(',')]);
    node(t, s, 'hospital-a', address);
    // hospital-b holds round 0's request until the researcher has its SIGINT.
    const b = node(t, s, 'hospital-b', address, TAGS, (l) => / round=0 attempt=1 /.test(l));
    await b.waitFor((l) => / train-request .*round=0 attempt=1 /.test(l));
    child.process.kill('SIGINT');
    await child.waitForErr((l) => l.includes('SIGINT: stopping after the round in flight'));
    b.process.stdin!.write('\n');
    const exit = await exitsPromptly(t, child, 'the researcher');
    t.deepEqual(exit, { code: 130, signal: null }, child.stderr());
    const folder = path.join(root, 'experiments', 'Experiment_0000');
    const command = `roundlog resume --root ${root} ${folder} --listen ${address} --nodes hospital-a,hospital-b`;
    t.true(
      child.lines.includes(`stopped by SIGINT: 1 round completed; continue with: ${command}`),
      child.lines.join('\n'),
    );

    // The command as printed (the nodes connect again by themselves) runs the experiment to its end.
    const resumed = roundlogChild(t, command.split(' ').slice(1));
    const done = await resumed.waitFor((l) => l.startsWith('done: '));
    t.is(done, 'done: 10 rounds completed');
    t.deepEqual(await exitsPromptly(t, resumed, 'the resumed researcher'), { code: 0, signal: null }, resumed.stderr());
    const remote = { listen: address, nodes: ['hospital-a', 'hospital-b'] };
    t.deepEqual(
      (await runsStarted(root)).map((r) => r.remote),
      [remote, remote],
    );

    // A rewind's and a fork's command to continue name the nodes too.
    const rewind = await roundlog(['rewind', 'Experiment_0000', '--round', '4', '--reason', 'check', '--root', root]);
    t.is(rewind.code, 0, rewind.stderr);
    const nodes = `--listen ${address} --nodes hospital-a,hospital-b`;
    t.true(rewind.stdout.includes(`continue with: roundlog resume --root ${root} ${folder} ${nodes}\n`), rewind.stdout);
    const fork = await roundlog(['fork', 'Experiment_0000', '--round', '2', '--name', 'forked', '--root', root]);
    t.is(fork.code, 0, fork.stderr);
    const forked = path.join(root, 'experiments', 'forked');
    t.true(fork.stdout.includes(`continue with: roundlog resume --root ${root} ${forked} ${nodes}\n`), fork.stdout);
    // The fork goes on with its parent's node processes: not in process without a word.
    const inProcess = await roundlog(['resume', forked, '--root', root]);
    t.is(inProcess.code, 1, inProcess.stdout);
    t.true(inProcess.stderr.includes(`Run 'roundlog resume --root ${root} forked ${nodes}'`), inProcess.stderr);
  },
);

test.serial(
  'a node back with other data: refused with the command, taken with --on-dataset-change record',
  async (t) => {
    const s = await setup(NODES);
    const root = tempDir();
    const { child, address } = await researcher(t, root, ['--nodes', 'hospital-a', '--rounds', '1']);
    const first = node(t, s, 'hospital-a', address);
    t.deepEqual(await exitsPromptly(t, child, 'the researcher'), { code: 0, signal: null }, child.stderr());
    first.process.kill('SIGTERM');
    await first.exited;
    // hospital-a comes back with hospital-b's file.
    const other = { ...s, files: { ...s.files, 'hospital-a': s.files['hospital-b']! } };
    const resumeArgs = ['resume', 'Experiment_0000', '--root', root, '--listen', address, '--nodes', 'hospital-a'];
    const refused = roundlogChild(t, [...resumeArgs, '--rounds', '1']);
    node(t, other, 'hospital-a', address);
    t.deepEqual(await exitsPromptly(t, refused, 'the refusing researcher'), { code: 1, signal: null });
    t.regex(refused.stderr(), /node "hospital-a" holds another dataset than experiment Experiment_0000 recorded/);
    const command =
      `roundlog resume --root ${root} Experiment_0000 --listen ${address} --nodes hospital-a ` +
      '--on-dataset-change record';
    t.true(refused.stderr().includes(`run '${command}'`), refused.stderr());
    const taken = roundlogChild(t, [...resumeArgs, '--rounds', '1', '--on-dataset-change', 'record']);
    t.deepEqual(await exitsPromptly(t, taken, 'the researcher'), { code: 0, signal: null }, taken.stderr());
    t.true(taken.lines.includes('done: 2 rounds completed'), taken.lines.join('\n'));
  },
);

test.serial("a node of --nodes whose tags are not the experiment's is refused before the first round", async (t) => {
  const s = await setup([...NODES, 'hospital-c']);
  const root = tempDir();
  const { child, address } = await researcher(t, root, ['--nodes', [...NODES, 'hospital-c'].join(',')]);
  for (const id of NODES) node(t, s, id, address);
  node(t, s, 'hospital-c', address, '#clinical,#lung');
  const exit = await exitsPromptly(t, child, 'the researcher');
  t.deepEqual(exit, { code: 1, signal: null }, child.stderr());
  t.regex(
    child.stderr(),
    new RegExp(
      'node "hospital-c" is one of the nodes every round needs \\(--nodes\\), but its tags #clinical,#lung ' +
        "do not include all of the experiment's tags #clinical,#heart",
    ),
  );
  t.false(
    child.lines.some((l) => l.startsWith('round ')),
    child.lines.join('\n'),
  );
  // No experiment was created.
  t.deepEqual(await runsStarted(root).catch(() => []), []);
});

test('--node-timeout and --on-dataset-change need --listen', async (t) => {
  const root = tempDir();
  const timeout = await roundlog(['run', DEFINITION, '--root', root, '--node-timeout', '5']);
  t.is(timeout.code, 2, timeout.stderr);
  t.regex(timeout.stderr, /--node-timeout applies to node processes: give it with --listen HOST:PORT/);
  const policy = await roundlog([
    'resume',
    path.join(root, 'Experiment_0000'),
    '--root',
    root,
    '--on-dataset-change',
    'record',
  ]);
  t.is(policy.code, 2, policy.stderr);
  t.regex(policy.stderr, /--on-dataset-change applies to node processes/);
  const bad = await roundlog([
    'run',
    DEFINITION,
    '--root',
    root,
    '--listen',
    '127.0.0.1:0',
    '--nodes',
    'a',
    '--on-dataset-change',
    'maybe',
  ]);
  t.is(bad.code, 2, bad.stderr);
});

test('--listen on a port another process listens on is a typed error naming the address', async (t) => {
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => void busy.close());
  const { port } = busy.address() as AddressInfo;
  const run = await roundlog(['run', DEFINITION, '--root', tempDir(), '--listen', `127.0.0.1:${port}`, '--nodes', 'a']);
  t.is(run.code, 1, run.stderr);
  t.is(
    run.stderr,
    `roundlog: cannot listen for nodes on 127.0.0.1:${port}: another process listens there already (EADDRINUSE): ` +
      'stop it, or listen on another port (--listen HOST:PORT; port 0 takes a free one)\n',
  );
});
