/**
 * An experiment whose process was SIGKILLed before its first round committed (its `RoundStarted`
 * durable, nothing else of the round) has no breakpoint, yet it is resumed, from the initial
 * parameters it recorded: through `Experiment.loadBreakpoint()` with no path or with its experiment
 * folder, and through `roundlog resume` with no path or with its experiment folder. It continues as
 * the same experiment at round 0 and ends on parameters bit-identical to an uninterrupted run.
 */
import test from 'ava';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { openRoundLog } from '../../src/projections/index.ts';
import { Experiment } from '../../src/federated/experiment.ts';
import { ExperimentRunningError } from '../../src/model/errors.ts';
import { syntheticClinicalFederation } from '../../examples/logistic-regression/data.ts';
import type { Resumed } from '../../src/model/events.ts';
import type { RecordedEvent } from '../../src/log/types.ts';
import { killSpawned, spawnTs } from '../support/child.ts';
import { roundlog, startRoundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const SEED = 7;
const ROUNDS = 4;
const GATED = 'test/experiment/gated.experiment.ts';

/** Runs `experiment-child run` on `root` to its end; its output lines. */
async function runChild(root: string, ...flags: string[]): Promise<string[]> {
  const child = spawnTs('experiment-child.ts', ['run', root, String(SEED), 'all', String(ROUNDS), ...flags]);
  const { code } = await child.exited;
  if (code !== 0) throw new Error(`child exited ${code}: ${child.lines.join(' | ')}\n${child.stderr()}`);
  return child.lines;
}

/** Starts an experiment in `root` and SIGKILLs its process at the training gate of round 0. */
async function killInFirstRound(root: string): Promise<string> {
  const child = spawnTs(
    'experiment-child.ts',
    ['run', root, String(SEED), 'all', String(ROUNDS), 'gate'],
    (line, c) => {
      if (line.startsWith('training 0 ')) c.process.kill('SIGKILL');
    },
  );
  const { signal } = await child.exited;
  if (signal !== 'SIGKILL') throw new Error(`child was not killed: ${child.lines.join(' | ')}\n${child.stderr()}`);
  const created = child.lines.find((l) => l.startsWith('created '));
  if (created === undefined) throw new Error(`child created nothing: ${child.lines.join(' | ')}`);
  return created.split(' ')[2]!;
}

/** The experiment's events and folded state, read from the root's files. */
async function stream(root: string, experiment: string) {
  const rl = await openRoundLog({ root });
  try {
    const handle = await rl.openExperiment(experiment);
    const { events } = await rl.withReader((log) => log.readStream(handle.stream));
    const registered = await rl.listExperiments();
    return { events: [...events] as RecordedEvent[], state: handle.state, registered: registered.length };
  } finally {
    await rl.close();
  }
}

/** Event types in order, with the round of the round events. */
function types(events: readonly RecordedEvent[]): string[] {
  return events.map((e) => {
    const round = (e.data as { round?: unknown }).round;
    return typeof round === 'number' ? `${e.type} ${round}` : e.type;
  });
}

function breakpointFolders(root: string): string[] {
  const dir = path.join(root, 'experiments', 'Experiment_0000');
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith('breakpoint_')) : [];
}

for (const via of ['no path', 'the experiment folder'] as const) {
  const call = via === 'no path' ? 'undefined' : 'experiment folder';
  const title =
    `Experiment.loadBreakpoint(${call}) resumes an experiment SIGKILLed before its first round ` +
    'at round 0, bit-identical to an uninterrupted run';
  test(title, async (t) => {
    const straightRoot = tempDir();
    const crashedRoot = tempDir();
    const straight = runChild(straightRoot);
    const id = await killInFirstRound(crashedRoot);

    // What the kill left: the experiment and its run, round 0 started, nothing committed, no breakpoint.
    const before = await stream(crashedRoot, id);
    t.deepEqual(types(before.events), ['ExperimentCreated', 'RunStarted', 'RoundStarted 0']);
    t.deepEqual(breakpointFolders(crashedRoot), []);

    const folder = path.join(crashedRoot, 'experiments', 'Experiment_0000');
    const lines = await runChild(crashedRoot, ...(via === 'no path' ? [] : [`from:${folder}`]));
    t.is(
      lines.find((l) => l.startsWith('resumed ') || l.startsWith('created ')),
      `resumed 0 Experiment_0000 ${id}`,
    );
    t.deepEqual(
      lines.filter((l) => l.startsWith('round ')),
      Array.from({ length: ROUNDS }, (_, i) => `round ${i} committed`),
    );

    const after = await stream(crashedRoot, id);
    t.is(after.registered, 1, 'the same experiment continued; none was created again');
    const resumed = after.events.filter((e) => e.type === 'Resumed').map((e) => e.data as Resumed);
    t.deepEqual(
      resumed.map((r) => [r.roundCurrent, r.breakpoint]),
      [[0, null]],
    );
    // The resume and the run lease in one append, right after the aborted attempt.
    t.deepEqual(types(after.events).slice(0, 5), [
      'ExperimentCreated',
      'RunStarted',
      'RoundStarted 0',
      'Resumed',
      'RunStarted',
    ]);
    t.true(after.state.finished);

    const hashStraight = (await straight).find((l) => l.startsWith('done '));
    t.regex(hashStraight ?? '', /^done [0-9a-f]{64}$/);
    t.is(
      lines.find((l) => l.startsWith('done ')),
      hashStraight,
      'final parameters differ from the uninterrupted run',
    );
  });
}

for (const via of ['no path', 'the experiment folder'] as const) {
  const title =
    `roundlog resume ${via === 'no path' ? '' : '<experiment folder> '}resumes a run SIGKILLed before its ` +
    'first round from its initial parameters, bit-identical to an uninterrupted run';
  test(title, async (t) => {
    const straightRoot = tempDir();
    const crashedRoot = tempDir();
    const child = startRoundlog(['run', GATED, '--root', crashedRoot], { ROUNDLOG_TEST_GATE: '1' });
    await child.waitFor((l) => l.startsWith('gate '));
    child.process.kill('SIGKILL');
    t.is((await child.exited).signal, 'SIGKILL');
    const before = await stream(crashedRoot, 'Experiment_0000');
    t.deepEqual(types(before.events), ['ExperimentCreated', 'RunStarted', 'RoundStarted 0']);

    const folder = path.join(crashedRoot, 'experiments', 'Experiment_0000');
    const resume = await roundlog(['resume', ...(via === 'no path' ? [] : [folder]), '--root', crashedRoot]);
    t.is(resume.code, 0, resume.stderr);
    t.regex(
      resume.stdout,
      new RegExp(
        /^resumed Experiment_0000 \(.+\) before round 0 \(round 0 runs next\), /.source +
          /0\/10 rounds done from its initial parameters$/.source,
        'm',
      ),
    );
    t.regex(resume.stdout, /done: 10 rounds completed/);
    const history = await roundlog(['history', 'Experiment_0000', '--root', crashedRoot]);
    t.regex(
      history.stdout,
      /resumed before round 0 \(round 0 runs next\) from its initial parameters \(no breakpoint\)/,
    );

    const run = await roundlog(['run', GATED, '--root', straightRoot]);
    t.is(run.code, 0, run.stderr);
    const expected = (await stream(straightRoot, 'Experiment_0000')).state;
    const actual = (await stream(crashedRoot, 'Experiment_0000')).state;
    t.is(actual.rounds.length, 10);
    t.is(actual.rounds.at(-1)!.params.sha256, expected.rounds.at(-1)!.params.sha256);
    t.is(actual.created!.initialParams!.sha256, expected.created!.initialParams!.sha256);
  });
}

test('a run still alive in its first round is not resumed from its start: refused, naming its owner', async (t) => {
  const root = tempDir();
  let release!: () => void;
  const atGate = new Promise<void>((resolve) => (release = resolve));
  const child = spawnTs('experiment-child.ts', ['run', root, String(SEED), '1', String(ROUNDS), 'gate'], (line) => {
    if (line.startsWith('training 0 ')) release();
  });
  try {
    await atGate;
    const refused = await t.throwsAsync(
      Experiment.loadBreakpoint(undefined, {
        root,
        federation: syntheticClinicalFederation({ seed: 11 }),
        workspace: path.resolve('.'),
      }),
      { instanceOf: ExperimentRunningError },
    );
    t.is(refused!.owner.pid, child.process.pid!);
    t.deepEqual(types((await stream(root, 'Experiment_0000')).events), [
      'ExperimentCreated',
      'RunStarted',
      'RoundStarted 0',
    ]);
  } finally {
    child.process.kill('SIGKILL');
    await child.exited;
  }
});

test('resume still says plainly when there is nothing to resume from', async (t) => {
  const root = tempDir();
  await (await openRoundLog({ root })).close(); // a root with no experiment
  const empty = await roundlog(['resume', '--root', root]);
  t.is(empty.code, 1);
  t.regex(empty.stderr, /no breakpoint to resume: the root .+ has no experiment; start one with roundlog run/);
  // Rounds completed without a breakpoint: starting again from the initial parameters would drop them.
  t.is((await roundlog(['run', 'test/lineage/no-breakpoints.experiment.ts', '--rounds', '1', '--root', root])).code, 0);
  const rounds = await roundlog(['resume', '--root', root]);
  t.is(rounds.code, 1);
  t.regex(rounds.stderr, /experiment Experiment_0000 has no breakpoint: it completed rounds without saving one/);
  // Named, by its name or its folder: the same, never 'no experiment folder of this root's log'.
  for (const named of ['Experiment_0000', path.join(root, 'experiments', 'Experiment_0000')]) {
    const byName = await roundlog(['resume', named, '--root', root]);
    t.is(byName.code, 1, named);
    t.regex(byName.stderr, /experiment Experiment_0000 has no breakpoint: it completed rounds without saving one/);
    t.notRegex(byName.stderr, /is no experiment folder/);
  }
  t.deepEqual(
    types((await stream(root, 'Experiment_0000')).events).filter((e) => e === 'Resumed'),
    [],
    'nothing was appended',
  );
});
