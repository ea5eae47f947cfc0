/**
 * `--follow`: a `roundlog history` or `roundlog audit` process follows the log read-only while
 * other processes append to it, prints their events as they land, and stops on SIGINT (exit 0).
 * Synchronisation is by output lines only: the follower says on stderr when it has caught up, the
 * writers say what they committed, and the follower is interrupted once it has printed the lines
 * awaited.
 */
import test from 'ava';
import os from 'node:os';
import path from 'node:path';
import { killSpawned, spawnTs, type Child } from '../support/child.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { roundlog, roundlogProcess, startRoundlog } from '../support/cli.ts';
import { parseCsv } from './helpers.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const USER = os.userInfo().username;
const HOST = os.hostname();
const caughtUp = (line: string) =>
  /^-- .*: caught up at log position \d+; following new events, Ctrl-C to stop$/.test(line);

async function interrupt(t: { is: (a: unknown, b: unknown, m?: string) => void }, follower: Child): Promise<void> {
  follower.process.kill('SIGINT');
  const exit = await follower.exited;
  t.is(exit.code, 0, `the follower exits 0 on SIGINT; stderr:\n${follower.stderr()}`);
  t.is(exit.signal, null);
}

async function runExample(root: string, rounds: number): Promise<void> {
  const run = await roundlog([
    'run',
    'examples/logistic-regression/experiment.ts',
    '--rounds',
    String(rounds),
    '--root',
    root,
  ]);
  if (run.code !== 0) throw new Error(`run failed: ${run.stderr}`);
}

test(
  'history --follow prints a resume and its round appended by ' +
    'another process; --csv follows the same way; SIGINT ends both',
  async (t) => {
    const root = tempDir();
    await runExample(root, 1);
    const follower = startRoundlog(['history', 'Experiment_0000', '--follow', '--root', root]);
    const csvFollower = startRoundlog(['history', 'Experiment_0000', '--follow', '--csv', '--root', root]);
    await Promise.all([follower.waitForErr(caughtUp), csvFollower.waitForErr(caughtUp)]);
    // stdout and stderr are separate pipes: wait for the history's last line itself.
    await Promise.all([
      follower.waitFor((l) => / round +round 0 attempt 1 completed/.test(l)),
      csvFollower.waitFor((l) => /,round,0,1,/.test(l)),
    ]);
    t.regex(follower.lines[0]!, /^time +rev +event +details$/);
    t.deepEqual(
      follower.lines.slice(1).map((l) => l.split(/ +/)[2]),
      ['created', 'run-started', 'round', 'run-ended'],
      'the history so far, before the caught-up line',
    );

    const resume = await roundlogProcess([
      'resume',
      path.join(root, 'experiments', 'Experiment_0000'),
      '--rounds',
      '1',
      '--root',
      root,
    ]);
    t.is(resume.code, 0, resume.stderr);
    const resumed = await follower.waitFor((l) =>
      / resumed +resumed after round 0 \(round 1 runs next\) from breakpoint_0000 by /.test(l),
    );
    t.true(resumed.endsWith(`by ${USER}@${HOST} (pid ${resume.pid})`), resumed);
    const completed = await follower.waitFor((l) => / round +round 1 attempt 1 completed in /.test(l));
    t.regex(
      completed,
      new RegExp(
        /nodes hospital-a \(600 samples\), hospital-b \(150 samples\), hospital-c \(350 samples\); /.source +
          /loss \d\.\d{4}, accuracy \d\.\d{4}; breakpoint$/.source,
      ),
    );
    await csvFollower.waitFor((l) => /,round,1,1,/.test(l));
    await Promise.all([interrupt(t, follower), interrupt(t, csvFollower)]);

    // Live, a round shows when it starts and again when it completes.
    // (The run lease's entries are left out: whether the resumer's run-ended came before the interrupt is a race.)
    const live = follower.lines
      .slice(5)
      .map((l) => l.split(/ +/)[2])
      .filter((kind) => !kind!.startsWith('run-'));
    t.deepEqual(live, ['resumed', 'started', 'round']);
    // The followed CSV is the history's CSV, plus the live "started" row.
    const batch = parseCsv((await roundlog(['history', 'Experiment_0000', '--csv', '--root', root])).stdout);
    const followed = parseCsv(csvFollower.lines.join('\n') + '\n');
    const lease = (r: { kind?: string }) => r.kind!.startsWith('run-');
    t.deepEqual(
      followed.filter((r) => r.kind !== 'started' && !lease(r)),
      batch.filter((r) => !lease(r)),
    );
    t.deepEqual(
      followed.filter((r) => r.kind === 'started').map((r) => [r.round, r.attempt]),
      [['1', '1']],
    );
  },
);

test(
  'history --follow --json: an open round while its process is blocked, ' +
    'marked aborted live when another process resumes after a SIGKILL',
  async (t) => {
    const root = tempDir();
    // Round 0 passes the gate; the process then blocks inside round 1 (its RoundStarted durable).
    const runner = spawnTs('experiment-child.ts', ['run', root, '5', 'all', '4', 'gate'], (line, child) => {
      if (line.startsWith('training 0 ')) child.process.stdin!.write('\n');
    });
    await runner.waitFor((l) => l.startsWith('training 1 '));

    const follower = startRoundlog(['history', 'Experiment_0000', '--follow', '--json', '--root', root]);
    await follower.waitForErr(caughtUp);
    await follower.waitFor((l) => l.includes('"kind":"started"'));
    type Entry = {
      kind: string;
      round?: number;
      attempt?: number;
      endedBy?: { type: string };
      by?: { user: string; host: string; pid: number };
    };
    const entries = () => follower.lines.map((l) => JSON.parse(l) as Entry);
    t.deepEqual(
      entries().map((e) => `${e.kind}${e.round === undefined ? '' : ` ${e.round}/${e.attempt}`}`),
      ['created', 'run-started', 'round 0/1', 'started 1/1'],
    );

    runner.process.kill('SIGKILL');
    t.is((await runner.exited).signal, 'SIGKILL');
    const resumer = spawnTs('experiment-child.ts', ['run', root, '5', '1', '4']);
    await resumer.waitFor((l) => l === 'stopped 2');
    t.is((await resumer.exited).code, 0);
    await follower.waitFor((l) => (JSON.parse(l) as Entry).kind === 'round' && (JSON.parse(l) as Entry).round === 1);
    await interrupt(t, follower);

    const after = entries()
      .slice(4)
      .filter((e) => !e.kind.startsWith('run-'));
    t.deepEqual(
      after.map((e) => `${e.kind}${e.round === undefined || e.kind === 'resumed' ? '' : ` ${e.round}/${e.attempt}`}`),
      ['aborted 1/1', 'resumed', 'started 1/2', 'round 1/2'],
    );
    t.is(after[0]!.endedBy!.type, 'Resumed');
    t.deepEqual(after[1]!.by, { user: USER, host: HOST, pid: resumer.process.pid });
  },
);

test(
  'audit --follow --type Resumed --json prints only resumes, ' + 'from any experiment, as other processes append them',
  async (t) => {
    const root = tempDir();
    await runExample(root, 1);
    await runExample(root, 1);
    const follower = startRoundlog(['audit', '--type', 'Resumed', '--follow', '--json', '--root', root]);
    await follower.waitForErr(caughtUp);

    const first = await roundlogProcess([
      'resume',
      path.join(root, 'experiments', 'Experiment_0000'),
      '--rounds',
      '1',
      '--root',
      root,
    ]);
    t.is(first.code, 0, first.stderr);
    const second = await roundlogProcess([
      'resume',
      path.join(root, 'experiments', 'Experiment_0001'),
      '--rounds',
      '1',
      '--root',
      root,
    ]);
    t.is(second.code, 0, second.stderr);
    // Events arrive in log order: once the second resume is printed, the rounds run after the first were seen and left
    // out.
    await follower.waitFor((l) => l.includes('"folder":"Experiment_0001"'));
    await interrupt(t, follower);

    type Event = {
      type: string;
      folder: string;
      data: { roundCurrent: number; by: { user: string; host: string; pid: number } };
    };
    const printed = follower.lines.map((l) => JSON.parse(l) as Event);
    t.deepEqual(
      printed.map((e) => [e.type, e.folder, e.data.roundCurrent, e.data.by.pid, e.data.by.host]),
      [
        ['Resumed', 'Experiment_0000', 1, first.pid, HOST],
        ['Resumed', 'Experiment_0001', 1, second.pid, HOST],
      ],
    );
  },
);
