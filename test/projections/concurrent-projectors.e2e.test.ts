/**
 * Several processes projecting one root at once, as happens when `roundlog project --follow` (or
 * `roundlog project`) runs beside an experiment, which projects its own round after each commit:
 * every process finishes without an error or a problem, no temp file or folder is left, the
 * breakpoint folders and TensorBoard event files are byte for byte what `project --rebuild` writes,
 * each superseded round is moved aside once, and the projection checkpoint stays readable.
 *
 * Real processes (test/support/projector-child.ts, `roundlog project --follow`), released together
 * by one line each on stdin and waited for by their answer line: no sleeps. The races these tests
 * pin (a rename of a breakpoint folder onto one another process put there first: ENOTEMPTY; a
 * folder moved aside by two processes; an event file's temp file removed by another process) came
 * out in every run of them before projectors took the root's projection lock.
 */
import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadProjectionCheckpoint } from '../../src/engine/project.ts';
import { followProjection, type ProjectionUpdate } from '../../src/projections/index.ts';
import { killSpawned, spawnTs, type Child } from '../support/child.ts';
import { roundlogJson, startRoundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

type Answer = { done: string; errors: string[]; problems: string[] };

/** A process this test started is ended with it, whatever the test's outcome (a failed assertion ends the test). */
function ended<T extends Child>(t: ExecutionContext, child: T): T {
  t.teardown(() => {
    if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
  });
  return child;
}

/** A projector child on `root` (test/support/projector-child.ts), ended with the test. */
function projector(t: ExecutionContext, root: string): Child & { send(command: string): Promise<Answer> } {
  const child = ended(t, spawnTs('projector-child.ts', [root]));
  let answered = 0;
  return Object.assign(child, {
    async send(command: string): Promise<Answer> {
      const index = answered++;
      child.process.stdin!.write(`${command}\n`);
      // The index-th answer line is this command's: commands are answered in order.
      let seen = -1;
      const line = await child.waitFor((l) => l.startsWith('{"done"') && ++seen === index);
      return JSON.parse(line) as Answer;
    },
  });
}

/** Ends the children and waits for them; each must exit 0. */
async function end(t: ExecutionContext, children: Child[]): Promise<void> {
  for (const child of children) child.process.stdin!.end('exit\n');
  for (const child of children) t.is((await child.exited).code, 0, child.stderr());
}

/** Every file under `dir`: path relative to it → SHA-256 of its bytes. */
function tree(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (at: string) => {
    for (const name of readdirSync(at).sort()) {
      const full = path.join(at, name);
      if (statSync(full).isDirectory()) walk(full);
      else files[path.relative(dir, full)] = createHash('sha256').update(readFileSync(full)).digest('hex');
    }
  };
  walk(dir);
  return files;
}

/** Temp files and folders (of breakpoint folders, event files, the checkpoint, the lock) left under `dir`. */
function leftovers(dir: string): string[] {
  const found: string[] = [];
  const walk = (at: string) => {
    for (const name of readdirSync(at)) {
      const full = path.join(at, name);
      if (/^\.tmp-|\.tmp$|^\.roundlog-|^\.projection-lock/.test(name)) found.push(path.relative(dir, full));
      if (statSync(full).isDirectory()) walk(full);
    }
  };
  walk(dir);
  return found;
}

function checkAnswers(t: ExecutionContext, answers: readonly Answer[]): void {
  for (const answer of answers) {
    t.deepEqual(answer.errors, [], `${answer.done}: errors`);
    t.deepEqual(answer.problems, [], `${answer.done}: problems`);
  }
}

/** The folders under `<experiment>/superseded` and `<experiment>/tensorboard/superseded`. */
function superseded(experiment: string): { breakpoints: string[]; runs: string[] } {
  const list = (dir: string) => {
    try {
      return readdirSync(dir).sort();
    } catch {
      return [];
    }
  };
  return {
    breakpoints: list(path.join(experiment, 'superseded')),
    runs: list(path.join(experiment, 'tensorboard', 'superseded')),
  };
}

/** What `project --rebuild` leaves of the experiments folder, to compare with what the racing processes left. */
async function rebuilt(root: string): Promise<Record<string, string>> {
  const report = await roundlogJson<{ ok: boolean }>(['project', '--rebuild', '--root', root]);
  if (!report.ok) throw new Error(`project --rebuild is not ok: ${JSON.stringify(report)}`);
  return tree(path.join(root, 'experiments'));
}

test(
  'an experiment recording and rewinding while project loops and project --follow run beside ' +
    "it: no error, the rebuild's bytes, each superseded round moved once",
  async (t) => {
    const root = tempDir();
    const stop = path.join(tempDir(), 'stop');
    const recorder = projector(t, root);
    checkAnswers(t, [await recorder.send('record 1')]);
    const follower = ended(t, startRoundlog(['project', '--follow', '--json', '--root', root]));
    await follower.waitFor((l) => (JSON.parse(l) as ProjectionUpdate).kind === 'caughtUp');
    const projectors = [projector(t, root), projector(t, root)];
    const looping = projectors.map((p) => p.send(`loop ${stop} 2000`));
    const answers: Answer[] = [];
    for (const command of ['record 12', 'rewind 5', 'record 6', 'rewind 8', 'record 4'])
      answers.push(await recorder.send(command));
    writeFileSync(stop, '');
    answers.push(...(await Promise.all(looping)));
    checkAnswers(t, answers);
    follower.process.kill('SIGINT');
    t.is((await follower.exited).code, 0, follower.stderr());
    const updates = follower.lines.map((l) => JSON.parse(l) as ProjectionUpdate);
    t.deepEqual(
      updates.flatMap((u) => (u.kind === 'projected' ? u.problems : [])),
      [],
      'project --follow met no problem',
    );
    await end(t, [recorder, ...projectors]);

    const experiments = path.join(root, 'experiments');
    t.deepEqual(leftovers(experiments), [], 'no temp file or folder is left');
    const folder = readdirSync(experiments).find((n) => n.startsWith('Experiment_'))!;
    // Rounds 0..12, rewound to 5 (6..12 aside), rounds 6..11, rewound to 8 (9..11 aside), rounds 9..12.
    const bp = (round: number, n: number) => `breakpoint_${String(round).padStart(4, '0')}.${n}`;
    t.deepEqual(superseded(path.join(experiments, folder)), {
      breakpoints: [...[6, 7, 8, 9, 10, 11, 12].map((r) => bp(r, 1)), ...[9, 10, 11].map((r) => bp(r, 2))].sort(),
      runs: ['rewind_1_rounds_6-12', 'rewind_2_rounds_9-11'],
    });
    const raced = tree(experiments);
    t.deepEqual(
      Object.keys(raced).filter((f) => /^[^/]+\/breakpoint_\d+\/breakpoint\.json$/.test(f)).length,
      13,
      'every round of the branch has its folder',
    );
    t.true(
      Object.keys(raced).some((f) => f.includes('tfevents')),
      'the event files are there',
    );
    t.deepEqual(raced, await rebuilt(root), 'what the racing processes wrote is what a rebuild writes');
  },
);

test(
  'breakpoint folders and event files: project --rebuild in several processes at once, again ' +
    'and again, never fails and leaves what one rebuild writes',
  async (t) => {
    const root = tempDir();
    const recorder = projector(t, root);
    checkAnswers(t, [
      await recorder.send('record 16'),
      await recorder.send('rewind 10'),
      await recorder.send('record 3'),
    ]);
    const children = [recorder, projector(t, root), projector(t, root)];
    for (let i = 0; i < 8; i++) {
      checkAnswers(t, await Promise.all(children.map((c) => c.send(i % 2 === 0 ? 'rebuild' : 'project'))));
    }
    await end(t, children);
    const experiments = path.join(root, 'experiments');
    t.deepEqual(leftovers(experiments), [], 'no temp file or folder is left');
    const folder = readdirSync(experiments).find((n) => n.startsWith('Experiment_'))!;
    t.deepEqual(
      superseded(path.join(experiments, folder)).breakpoints,
      [11, 12, 13, 14, 15].map((r) => `breakpoint_00${r}.1`),
      'nothing more was moved aside than the rewind took off the branch',
    );
    const raced = tree(experiments);
    t.deepEqual(raced, await rebuilt(root));
  },
);

test(
  'event files: an experiment saving no breakpoint, and project --rebuild in several processes at once, again ' +
    'and again, never fail and leave what one rebuild writes',
  async (t) => {
    const root = tempDir();
    const recorder = projector(t, root);
    // No breakpoint folder to write: the processes meet on event files only.
    for (const command of ['create false', 'record 16']) checkAnswers(t, [await recorder.send(command)]);
    const children = [recorder, projector(t, root), projector(t, root)];
    for (let i = 0; i < 8; i++) {
      checkAnswers(t, await Promise.all(children.map((c) => c.send(i % 2 === 0 ? 'rebuild' : 'project'))));
    }
    await end(t, children);
    const experiments = path.join(root, 'experiments');
    t.deepEqual(leftovers(experiments), [], 'no temp file is left');
    const folder = readdirSync(experiments).find((n) => n.startsWith('Experiment_'))!;
    const raced = tree(experiments);
    t.deepEqual(
      Object.keys(raced)
        .filter((f) => f.startsWith(`${folder}/`))
        .map((f) => f.replace(/\.\d+\.roundlog\.\d+$/, '')),
      [`${folder}/tensorboard/events.out.tfevents`],
      'one event file, and nothing else',
    );
    t.deepEqual(raced, await rebuilt(root));
  },
);

test(
  'superseded moves: a rewind the folders have not followed, projected by several processes ' +
    'at once, moves each folder aside once',
  async (t) => {
    const root = tempDir();
    const recorder = projector(t, root);
    const children = [recorder, projector(t, root), projector(t, root)];
    let rounds = 0;
    for (let i = 0; i < 6; i++) {
      // Six rounds with their folders, then a rewind the folders do not follow (a crash after its
      // append): five folders to move, by whichever projector comes first.
      checkAnswers(t, [await recorder.send('record 6'), await recorder.send(`rewind-log ${rounds}`)]);
      rounds += 1;
      checkAnswers(t, await Promise.all(children.map((c) => c.send('project'))));
    }
    await end(t, children);
    const experiments = path.join(root, 'experiments');
    t.deepEqual(leftovers(experiments), [], 'no temp file or folder is left');
    const folder = readdirSync(experiments).find((n) => n.startsWith('Experiment_'))!;
    const aside = superseded(path.join(experiments, folder));
    // Iteration i records rounds i..i+5 and rewinds to i: rounds i+1..i+5 go aside, each as its
    // next `.n` (round r is taken off the branch once per iteration that recorded it after round 0).
    const expected: string[] = [];
    const times = new Map<number, number>();
    for (let i = 0; i < 6; i++) {
      for (let r = i + 1; r <= i + 5; r++) {
        times.set(r, (times.get(r) ?? 0) + 1);
        expected.push(`breakpoint_${String(r).padStart(4, '0')}.${times.get(r)}`);
      }
    }
    t.deepEqual(aside.breakpoints, expected.sort(), 'every superseded folder moved aside exactly once');
    t.is(aside.runs.length, 6, 'a run of superseded rounds per rewind');
    const raced = tree(experiments);
    t.deepEqual(raced, await rebuilt(root));
  },
);

test(
  'the projection checkpoint: followers in one process and in another, while rounds are ' +
    'committed, never fail and leave a checkpoint that checks out',
  async (t) => {
    const root = tempDir();
    const recorder = projector(t, root);
    checkAnswers(t, [await recorder.send('record 1')]);
    const other = ended(t, startRoundlog(['project', '--follow', '--json', '--root', root]));
    await other.waitFor((l) => (JSON.parse(l) as ProjectionUpdate).kind === 'caughtUp');
    const controller = new AbortController();
    t.teardown(() => controller.abort());
    const problems: string[] = [];
    const caughtUp: Array<Promise<void>> = [];
    const followers = [0, 1, 2].map(() => {
      let release: () => void = () => undefined;
      caughtUp.push(new Promise<void>((resolve) => (release = resolve)));
      return followProjection({
        root,
        signal: controller.signal,
        pollIntervalMs: 5,
        onUpdate: (update) => {
          if (update.kind === 'caughtUp') release();
          if (update.kind === 'projected') problems.push(...update.problems);
        },
      });
    });
    await Promise.all(caughtUp);
    checkAnswers(t, [await recorder.send('record 30')]);
    controller.abort();
    const settled = await Promise.allSettled(followers);
    t.deepEqual(
      settled.map((s) => (s.status === 'rejected' ? String(s.reason) : 'ok')),
      ['ok', 'ok', 'ok'],
      'every follower of this process ends without an error',
    );
    t.deepEqual(problems, []);
    other.process.kill('SIGINT');
    t.is((await other.exited).code, 0, other.stderr());
    await end(t, [recorder]);
    t.is((await loadProjectionCheckpoint(root)).kind, 'ok', 'the checkpoint checks out');
    t.deepEqual(leftovers(path.join(root, 'experiments')), [], 'no temp file is left');
  },
);
