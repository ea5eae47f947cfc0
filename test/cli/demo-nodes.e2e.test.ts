/**
 * `roundlog demo` (what `npm start` runs) as a real process: the heart-disease example on a
 * researcher and four node processes, the researcher and then a node killed with SIGKILL, resumed,
 * checked bit for bit against a run that never stopped, with the timeline and the held-out
 * accuracy the nodes reported. Every process it started (it prints their pids) is gone when it
 * ends, and when it is interrupted with SIGINT part-way.
 */
import test from 'ava';
import { readdirSync } from 'node:fs';
import { spawnProcess } from '../support/child.ts';
import { roundlogProcess, startRoundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pids the demo's output names (`[<name> pid N]`, `(pid N)`, `pid N`). */
function pidsIn(text: string): number[] {
  return [...new Set([...text.matchAll(/\bpid (\d+)/g)].map((m) => Number(m[1])))];
}

const FULL_RUN = 'the demo runs to the end on processes: identical bits, the timeline, accuracies, no process left';
test.serial(FULL_RUN, async (t) => {
  const root = tempDir();
  const demo = await roundlogProcess(['demo', '--crash-after', '3'], { ROUNDLOG_DIR: root });
  t.is(demo.code, 0, demo.stderr + demo.stdout);
  const out = demo.stdout;
  t.regex(out, /killed \+ resumed, on processes [0-9a-f]{64} {2}identical, bit for bit/);
  // The timeline: rounds committed, the researcher's SIGKILL after 3, resumes, the node's SIGKILL
  // in round 5 (a failed round: nothing committed), its restart, the end.
  const timeline = out.split('\n7. timeline\n')[1]!.split('\n\n')[0]!.split('\n');
  const events = timeline.map((line) => line.replace(/^ +\+ *\d+\.\ds {2}/, '').replace(/\d+/g, 'N'));
  const at = (pattern: RegExp) => events.findIndex((e) => pattern.test(e));
  const order = [
    /^round N committed \(N\/N done, N\/N nodes replied\)$/,
    /^SIGKILL researcher \(pid N\) after N committed rounds$/,
    /^researcher pid N resumed Experiment_N after round N$/,
    /^SIGKILL node va \(pid N\) while it holds round N's request$/,
    /^round N failed, nothing of it committed; the researcher exited N: node "va" failed in round N/,
    /^node va restarted \(pid N\)$/,
    /^researcher pid N: done: N rounds completed$/,
  ].map(at);
  t.false(order.includes(-1), timeline.join('\n'));
  t.deepEqual(
    order,
    [...order].sort((a, b) => a - b),
    timeline.join('\n'),
  );
  t.regex(out, /SIGKILL researcher \(pid \d+\) after 3 committed rounds/);
  t.regex(out, /SIGKILL node va \(pid \d+\) while it holds round 5's request/);
  t.is(timeline.filter((line) => / committed \(/.test(line)).length, 10);
  // Per hospital and pooled, as the nodes reported them.
  for (const hospital of ['cleveland', 'hungarian', 'switzerland', 'va'])
    t.regex(out, new RegExp(`^ {2}${hospital} +0\\.\\d{4} {2}\\(\\d+/\\d+\\)$`, 'm'));
  const pooled = /^ {2}pooled +(\d\.\d{4}) {2}\((\d+)\/(\d+)\)$/m.exec(out);
  t.truthy(pooled, out);
  t.true(Number(pooled![1]) > 0.7, pooled![0]);
  t.is(pooled![3], '185');
  // Those of the final model, as the example's evaluation script prints them.
  const evaluate = spawnProcess(process.execPath, ['--import', 'tsx', 'examples/heart-disease/evaluate.ts']);
  t.is((await evaluate.exited).code, 0, evaluate.stderr());
  const scores = (lines: readonly string[]) =>
    lines.flatMap((line) => /^ {2}(\w+) +(\d\.\d{4}) {2}\(\d+\/\d+\)/.exec(line)?.[0] ?? []);
  const section = out.split('\n8. ')[1]!.split('\n\n')[0]!.split('\n');
  t.regex(section[0]!, /^held-out accuracy of the final model \(after round 9\)/);
  t.deepEqual(scores(section), scores(evaluate.lines));
  t.is(scores(section).length, 5);
  // 4 approvals, 3 researchers, 5 nodes; all gone.
  const started = /^processes started: ([\d ]+); none left running$/m.exec(out);
  t.truthy(started, out);
  const pids = started![1]!.split(' ').map(Number);
  t.is(pids.length, 12);
  t.deepEqual(pidsIn(out).sort(), [...pids].sort());
  t.deepEqual(pids.filter(alive), []);
});

/** The demo's temporary folders left in `tmp` (its TMPDIR). */
const demoTemps = (tmp: string) => readdirSync(tmp).filter((name) => name.startsWith('roundlog-demo-'));

test.serial('SIGINT part-way: the demo kills every process it started, removes its folders, exits 130', async (t) => {
  const root = tempDir();
  const tmp = tempDir();
  const demo = startRoundlog(['demo'], { ROUNDLOG_DIR: root, TMPDIR: tmp });
  t.teardown(() => {
    if (demo.process.exitCode === null && demo.process.signalCode === null) demo.process.kill('SIGKILL');
  });
  // The researcher is down and its successor is being started: researchers and nodes are running.
  await demo.waitFor((line) => line.includes('SIGKILL sent to the researcher'));
  demo.process.kill('SIGINT');
  const { code } = await demo.exited;
  t.is(code, 130, demo.stderr());
  const pids = pidsIn(`${demo.lines.join('\n')}\n${demo.stderr()}`);
  t.true(pids.length >= 9, demo.lines.join('\n'));
  t.regex(demo.stderr(), /SIGINT: killing the processes it started/);
  // The steps its kills broke are not reported as the demo's failure.
  t.notRegex(demo.stderr(), /^roundlog: the demo's/m);
  t.deepEqual(pids.filter(alive), []);
  t.deepEqual(demoTemps(tmp), []);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  // Ctrl-C in a terminal under `npm start` reaches the demo twice (from the terminal, and relayed by tsx).
  test.serial(`${signal} twice at once: the demo exits at once and still removes its temporary folders`, async (t) => {
    const root = tempDir();
    const tmp = tempDir();
    const demo = startRoundlog(['demo'], { ROUNDLOG_DIR: root, TMPDIR: tmp });
    t.teardown(() => {
      if (demo.process.exitCode === null && demo.process.signalCode === null) demo.process.kill('SIGKILL');
    });
    await demo.waitFor((line) => line.includes('SIGKILL sent to the researcher'));
    t.true(demoTemps(tmp).length > 0, 'the demo made its folders in TMPDIR');
    demo.process.kill(signal);
    await demo.waitForErr((line) => line.includes(`${signal}: killing the processes it started`));
    demo.process.kill(signal);
    const { code } = await demo.exited;
    t.is(code, signal === 'SIGINT' ? 130 : 143, demo.stderr());
    t.deepEqual(demoTemps(tmp), []);
  });
}
