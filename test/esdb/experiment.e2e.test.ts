/**
 * The experiment lifecycle on EventStoreDB, through the real `roundlog` command in subprocesses:
 * create, run, crash (SIGKILL), resume, rewind, fork, audit, verify; then a second machine (another
 * root, the same store and blob folder) materializes the breakpoint folders with `project` and
 * `project --follow`, byte for byte the folders of the machine that ran the experiment.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { PROJECTION_CHECKPOINT_FILE } from '../../src/projections/index.ts';
import { roundlogProcess, startRoundlog } from '../support/cli.ts';
import { childServer, freshNamespace, type EsdbTarget } from '../support/esdb.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { killSpawned } from '../support/child.ts';

let server: EsdbTarget;
test.before(async () => {
  server = await childServer();
});
test.after.always(async () => {
  await server?.close();
  removeTempDirs();
});
// After the server's own close: it is a spawned child too.
test.after.always(killSpawned);

type Env = NodeJS.ProcessEnv;

function storeEnv(): Env {
  return {
    ROUNDLOG_STORE: server.connectionString,
    ROUNDLOG_NAMESPACE: freshNamespace(),
    ROUNDLOG_BLOBS: path.join(tempDir(), 'shared-blobs'),
  };
}

async function ok(args: string[], env: Env): Promise<string> {
  const run = await roundlogProcess(args, env);
  if (run.code !== 0) throw new Error(`roundlog ${args.join(' ')} exited ${run.code}:\n${run.stderr}\n${run.stdout}`);
  return run.stdout;
}

async function json<T>(args: string[], env: Env): Promise<T> {
  return JSON.parse(await ok([...args, '--json'], env)) as T;
}

/** Every file under `dir` (relative path → SHA-256), superseded/ and dot files left out. */
function checksums(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (at: string) => {
    for (const name of readdirSync(at).sort()) {
      if (name.startsWith('.') || name === 'superseded') continue;
      const file = path.join(at, name);
      if (statSync(file).isDirectory()) walk(file);
      else out[path.relative(dir, file)] = createHash('sha256').update(readFileSync(file)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

type Ls = Array<{ folder: string; roundCurrent: number; status: string }>;

test('create, run, crash, resume, rewind, fork, audit and verify on EventStoreDB', async (t) => {
  const env = storeEnv();
  const root = tempDir();
  // demo: runs the example, SIGKILLs it after 3 committed rounds, resumes, checks the final
  // parameters bit for bit against an uninterrupted run, and exits 1 if they differ.
  const demo = await ok(['demo', '--synthetic', '--crash-after', '3', '--root', root], env);
  t.regex(demo, /SIGKILL sent to pid \d+ after 3 committed rounds/);
  t.regex(demo, /identical/i);

  const listed = await json<Ls>(['ls', '--root', root], env);
  t.deepEqual(
    listed.map((e) => [e.folder, e.roundCurrent]),
    [['Experiment_0000', 10]],
  );
  // The history lives in the store: the local root holds no log.
  t.false(existsSync(path.join(root, 'log')));

  const rewound = await json<{ supersededRounds: number[] }>(
    ['rewind', 'Experiment_0000', '--round', '6', '--reason', 'bad data after round 6', '--root', root],
    env,
  );
  t.deepEqual(rewound.supersededRounds, [7, 8, 9]);
  await ok(['resume', path.join(root, 'experiments', 'Experiment_0000'), '--rounds', '1', '--root', root], env);
  const afterRewind = await json<Ls>(['ls', '--root', root], env);
  t.is(afterRewind[0]!.roundCurrent, 8);

  const fork = await json<{ childFolder: string; parentFolder: string }>(
    ['fork', 'Experiment_0000', '--round', '2', '--name', 'Fork_A', '--root', root],
    env,
  );
  t.deepEqual([fork.parentFolder, fork.childFolder], ['Experiment_0000', 'Fork_A']);
  const lineage = await json<{ ancestors: Array<{ folder: string }> }>(
    ['audit', 'lineage', 'Fork_A', '--root', root],
    env,
  );
  t.deepEqual(
    lineage.ancestors.map((a) => a.folder),
    ['Experiment_0000'],
  );

  const { actions } = await json<{ actions: Array<{ type: string; folder: string }> }>(
    ['audit', 'actions', '--root', root],
    env,
  );
  const kinds = actions.map((a) => `${a.type} ${a.folder}`);
  for (const expected of [
    'ExperimentCreated Experiment_0000',
    'Resumed Experiment_0000',
    'Rewound Experiment_0000',
    'Forked Experiment_0000',
    'ExperimentCreated Fork_A',
  ]) {
    t.true(kinds.includes(expected), `${expected} in ${kinds.join(', ')}`);
  }
  const { rounds } = await json<{ rounds: Array<{ round: number; status: string }> }>(
    ['audit', 'rounds', 'Experiment_0000', '--root', root],
    env,
  );
  t.deepEqual(
    rounds.filter((r) => r.status === 'superseded').map((r) => r.round),
    [7, 8, 9],
  );

  const verify = await roundlogProcess(['verify', '--root', root], env);
  t.is(verify.code, 0, verify.stdout + verify.stderr);

  // Another machine: same store, same shared blob folder, an empty root of its own.
  const elsewhere = tempDir();
  await ok(['project', '--root', elsewhere], env);
  t.deepEqual(checksums(path.join(elsewhere, 'experiments')), checksums(path.join(root, 'experiments')));
});

test(
  'project --follow on another machine: catches up, ' + 'projects live rounds, keeps its checkpoint, shows its lag',
  async (t) => {
    const env = storeEnv();
    const here = tempDir();
    const there = tempDir();
    await ok(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '2', '--root', here], env);

    const follower = startRoundlog(['project', '--follow', '--root', there], env);
    const started = await follower.waitFor((l) => l.startsWith('following '));
    t.regex(started, /from the beginning \(no checkpoint\): projection lag \d+ events/);
    await follower.waitFor((l) => l.startsWith('caught up at position '));
    t.true(existsSync(path.join(there, 'experiments', 'Experiment_0000', 'breakpoint_0001')));

    // A round committed on the first machine appears on the second, live.
    await ok(['resume', path.join(here, 'experiments', 'Experiment_0000'), '--rounds', '1', '--root', here], env);
    const live = await follower.waitFor((l) => l.includes('wrote breakpoint_0002'));
    // The round's breakpoint folder, and the event file of its TensorBoard run completed with it.
    t.regex(
      live,
      /^Experiment_0000: wrote breakpoint_0002, events\.out\.tfevents\.\d+\.roundlog\.0 \(position \d+, lag \d+ ms\)$/,
    );
    follower.process.kill('SIGTERM');
    t.is((await follower.exited).code, 0, follower.stderr());
    t.deepEqual(checksums(path.join(there, 'experiments')), checksums(path.join(here, 'experiments')));

    const checkpoint = JSON.parse(
      readFileSync(path.join(there, 'experiments', PROJECTION_CHECKPOINT_FILE), 'utf8'),
    ) as {
      position: string;
      store: string;
    };
    t.regex(checkpoint.position, /^\d+$/);
    t.true(checkpoint.store.includes('EventStoreDB'));

    // While it is stopped, two more rounds; restarted, it resumes after its checkpoint with that lag.
    await ok(['resume', path.join(here, 'experiments', 'Experiment_0000'), '--rounds', '2', '--root', here], env);
    const again = startRoundlog(['project', '--follow', '--root', there], env);
    const restarted = await again.waitFor((l) => l.startsWith('following '));
    t.regex(restarted, new RegExp(`from checkpoint ${checkpoint.position}: projection lag [1-9]\\d* events`));
    await again.waitFor((l) => l.startsWith('caught up at position '));
    again.process.kill('SIGTERM');
    t.is((await again.exited).code, 0, again.stderr());
    t.deepEqual(checksums(path.join(there, 'experiments')), checksums(path.join(here, 'experiments')));
    t.true(existsSync(path.join(there, 'experiments', 'Experiment_0000', 'breakpoint_0004')));
  },
);
