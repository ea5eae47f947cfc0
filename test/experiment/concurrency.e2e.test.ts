/**
 * Two processes resuming the same experiment at once, with real processes. When both have read the
 * history before either writes (each child holds after its read until both are there), exactly one
 * goes on and the other fails with `CONCURRENT_MODIFICATION` before writing anything: the stream
 * shows one resume, then one whole round of the winner. Released with a bare `go`, the two loads
 * may or may not overlap; whichever way they fall, no round is run by two processes and the stream
 * is a sequence of whole steps.
 */
import test, { type ExecutionContext } from 'ava';
import path from 'node:path';
import type { NodeReplied, Resumed, RoundCompleted, RoundStarted } from '../../src/model/events.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { replay } from '../../src/model/state.ts';
import { openFileEventLog } from '../../src/log/file/index.ts';
import type { RecordedEvent } from '../../src/log/types.ts';
import { killSpawned, spawnTs, type Child } from '../support/child.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const REPEATS = Math.max(3, Number(process.env.ROUNDLOG_RACE_REPEATS ?? 3));

/** Creates the experiment in `root` and runs its first two rounds (breakpoints saved) in a child. */
async function setUp(t: ExecutionContext, root: string): Promise<string> {
  const child = spawnTs('experiment-child.ts', ['run', root, '3', '2', '50']);
  const status = await child.exited;
  t.is(status.code, 0, `set-up child failed: ${child.lines.join(' | ')}\n${child.stderr()}`);
  t.is(child.lines.at(-1), 'stopped 2');
  return child.lines.find((l) => l.startsWith('created '))!.split(' ')[2]!;
}

async function streamOf(root: string, experimentId: string): Promise<readonly RecordedEvent[]> {
  const log = await openFileEventLog({ dir: path.join(root, 'log'), readOnly: true });
  try {
    return (await log.readStream(`experiment-${experimentId}`)).events;
  } finally {
    await log.close();
  }
}

const send = (child: Child, line: string) => child.process.stdin!.write(`${line}\n`);

type Outcome = { winner: Child; loser: Child };

/** Tells winner from loser by what they printed; fails the test unless there is exactly one of each. */
function judge(t: ExecutionContext, children: Child[], round: number, after: readonly RecordedEvent[]): Outcome | null {
  const winners = children.filter((c) => c.lines.includes(`round ${round} committed`));
  const losers = children.filter((c) => c.lines.at(-1) === 'error CONCURRENT_MODIFICATION');
  const report = children
    .map((c) => `[${c.lines.join(' | ')}]${c.stderr() ? ` stderr: ${c.stderr()}` : ''}`)
    .join(' and ');
  if (winners.length !== 1 || losers.length !== 1 || winners[0] === losers[0]) {
    t.fail(
      `expected one process to commit round ${round} and the other to fail with CONCURRENT_MODIFICATION, ` +
        `got ${report}; ` +
        `the stream since the release: ${describeEvents(after, children)}`,
    );
    return null;
  }
  t.is(winners[0]!.lines.filter((l) => l.startsWith('error')).length, 0, report);
  return { winner: winners[0]!, loser: losers[0]! };
}

function describeEvents(events: readonly RecordedEvent[], children: Child[]): string {
  const who = (pid: number) => String.fromCharCode(65 + children.findIndex((c) => c.process.pid === pid));
  return events
    .map((e) => {
      const d = e.data as { by?: { pid: number }; round?: number; attempt?: number; supersededRounds?: number[] };
      if (e.type === 'Resumed') return `Resumed(${who(d.by!.pid)})`;
      if (e.type === 'Rewound') return `Rewound(${who(d.by!.pid)}, superseding ${d.supersededRounds!.join(',')})`;
      if (d.round !== undefined) return `${e.type}(${d.round}/${d.attempt})`;
      return e.type;
    })
    .join(' ');
}

/** The events without the run lease's (`RunStarted`, `RunHeartbeat`, `RunEnded`, `RunFailed`). */
function withoutLease(events: readonly RecordedEvent[]): RecordedEvent[] {
  return events.filter((e) => !['RunStarted', 'RunHeartbeat', 'RunEnded', 'RunFailed'].includes(e.type));
}

/** The events of one whole round `round`, attempt `attempt`, by three nodes. */
function assertWholeRound(t: ExecutionContext, events: readonly RecordedEvent[], round: number, attempt: number): void {
  t.deepEqual(
    events.map((e) => e.type),
    ['RoundStarted', 'NodeReplied', 'NodeReplied', 'NodeReplied', 'RoundCompleted'],
  );
  t.deepEqual(
    events.map((e) => [
      (e.data as RoundStarted | NodeReplied | RoundCompleted).round,
      (e.data as RoundStarted | NodeReplied | RoundCompleted).attempt,
    ]),
    events.map(() => [round, attempt]),
  );
}

test.serial(
  `released after both read the history, ${REPEATS} times: ` +
    `one resumes, the other gets CONCURRENT_MODIFICATION before writing anything`,
  async (t) => {
    const root = tempDir();
    const experimentId = await setUp(t, root);
    for (let repeat = 0; repeat < REPEATS; repeat++) {
      const round = 2 + repeat;
      const before = await streamOf(root, experimentId);
      const children = [
        spawnTs('experiment-child.ts', ['resume-wait', root, 'hold']),
        spawnTs('experiment-child.ts', ['resume-wait', root, 'hold']),
      ];
      await Promise.all(children.map((c) => c.waitFor((l) => l === 'ready')));
      for (const c of children) send(c, 'go');
      // Both have read the experiment at the same revision and appended nothing yet.
      await Promise.all(children.map((c) => c.waitFor((l) => l === 'loaded')));
      for (const c of children) send(c, 'go');
      const statuses = await Promise.all(children.map((c) => c.exited));
      t.deepEqual(
        statuses.map((s) => s.code),
        [0, 0],
        children.map((c) => c.stderr()).join('\n'),
      );
      const appended = (await streamOf(root, experimentId)).slice(before.length);
      // Every Resumed is appended with its run's RunStarted; the rounds are judged without the lease's events.
      appended.forEach((e, i) => e.type === 'Resumed' && t.is(appended[i + 1]?.type, 'RunStarted'));
      const after = withoutLease(appended);
      const outcome = judge(t, children, round, after);
      if (outcome === null) return;
      t.deepEqual(outcome.winner.lines, ['ready', 'loaded', `resumed ${round}`, `round ${round} committed`]);
      t.deepEqual(outcome.loser.lines, ['ready', 'loaded', 'error CONCURRENT_MODIFICATION']);

      t.is(after[0]?.type, 'Resumed');
      const resumed = after[0]!.data as Resumed;
      t.is(resumed.roundCurrent, round);
      t.is<number | undefined, number | undefined>(
        resumed.by.pid,
        outcome.winner.process.pid,
        'the Resumed event is the winner’s',
      );
      t.is(after.filter((e) => e.type === 'Resumed').length, 1, 'exactly one resume since the release');
      assertWholeRound(t, after.slice(1), round, 1);
    }
    const state = replay(await streamOf(root, experimentId));
    t.deepEqual(
      state.rounds.map((r) => [r.round, r.attempt]),
      Array.from({ length: 2 + REPEATS }, (_, i) => [i, 1]),
    );
    t.is(state.openAttempt, null);
  },
);

test.serial(
  `released with go at the same moment, ${REPEATS} times: never two processes in one round, nothing interleaves`,
  async (t) => {
    const root = tempDir();
    const experimentId = await setUp(t, root);
    const seen: string[] = [];
    for (let repeat = 0; repeat < REPEATS; repeat++) {
      const before = await streamOf(root, experimentId);
      const round = replay(before).rounds.length;
      const children = [
        spawnTs('experiment-child.ts', ['resume-wait', root]),
        spawnTs('experiment-child.ts', ['resume-wait', root]),
      ];
      await Promise.all(children.map((c) => c.waitFor((l) => l === 'ready')));
      for (const c of children) send(c, 'go');
      const statuses = await Promise.all(children.map((c) => c.exited));
      t.deepEqual(
        statuses.map((s) => s.code),
        [0, 0],
        children.map((c) => c.stderr()).join('\n'),
      );
      const appended = (await streamOf(root, experimentId)).slice(before.length);
      // Every Resumed is appended with its run's RunStarted; the rounds are judged without the lease's events.
      appended.forEach((e, i) => e.type === 'Resumed' && t.is(appended[i + 1]?.type, 'RunStarted'));
      const after = withoutLease(appended);
      const story =
        `${children.map((c) => `[${c.lines.join(' | ')}]`).join(' and ')}; ` +
        `stream since the release: ${describeEvents(after, children)}`;
      const committed = children.filter((c) => c.lines.some((l) => /^round \d+ committed$/.test(l)));
      // Refused at the append (the other wrote first), or before it by the run lease (the other's
      // run had started and its process is alive): either way before writing anything of a round.
      const refused = children.filter((c) =>
        ['error CONCURRENT_MODIFICATION', 'error EXPERIMENT_RUNNING'].includes(c.lines.at(-1) ?? ''),
      );
      t.is(committed.length + refused.length, 2, story);
      const resumedBy = after.filter((e) => e.type === 'Resumed').map((e) => (e.data as Resumed).by.pid);

      if (committed.length === 1) {
        // The two loads overlapped: the loser was refused at its resume, or (if the winner's resume
        // came after its own) at its first write of the round. Only the winner's round is whole.
        const [winner, loser] = [committed[0]!, refused[0]!];
        t.deepEqual(winner.lines, ['ready', `resumed ${round}`, `round ${round} committed`], story);
        const last = after.findIndex(
          (e, i) => e.type === 'Resumed' && !after.slice(i + 1).some((x) => x.type === 'Resumed'),
        );
        t.is<number | undefined, number | undefined>(
          resumedBy.at(-1),
          winner.process.pid,
          `the last resume is the winner's: ${story}`,
        );
        t.is((after[last]!.data as Resumed).roundCurrent, round);
        const earlier = after.slice(0, last);
        t.true(earlier.length <= 2, story);
        t.deepEqual(
          earlier.map((e) =>
            e.type === 'Resumed'
              ? `Resumed by ${(e.data as Resumed).by.pid === loser.process.pid ? 'loser' : 'winner'}`
              : e.type,
          ),
          ['Resumed by loser', 'RoundStarted'].slice(0, earlier.length),
          `before the winning resume, at most the loser's resume and its aborted start: ${story}`,
        );
        assertWholeRound(t, after.slice(last + 1), round, 1 + earlier.filter((e) => e.type === 'RoundStarted').length);
        seen.push(
          earlier.length === 0 ? 'overlapping, loser refused at its resume' : 'overlapping, loser refused at its round',
        );
      } else if (!after.some((e) => e.type === 'Rewound')) {
        // The second load began after the first process had committed its round: it went on from it.
        t.is(resumedBy.length, 2, story);
        const [first, second] = resumedBy.map((pid) => children.find((c) => c.process.pid === pid)!);
        t.not(first, second, story);
        t.deepEqual(first!.lines, ['ready', `resumed ${round}`, `round ${round} committed`], story);
        t.deepEqual(second!.lines, ['ready', `resumed ${round + 1}`, `round ${round + 1} committed`], story);
        t.is(after[0]!.type, 'Resumed');
        assertWholeRound(t, after.slice(1, 6), round, 1);
        t.is(after[6]!.type, 'Resumed');
        assertWholeRound(t, after.slice(7), round + 1, 1);
        seen.push('one after the other');
      } else {
        // A resume that chose its breakpoint before another process committed a round must be
        // refused, not supersede that round (it did before e47d66d; failures.int.test.ts pins it).
        t.fail(`a resume superseded a round another process had just committed: ${story}`);
      }
    }
    t.log(`serializations: ${seen.join('; ')}`);
    const rl = await openRoundLog({ root });
    try {
      const { state } = await rl.openExperiment(experimentId);
      t.true(
        state.rounds.every((r, i) => r.round === i),
        'rounds contiguous from 0',
      );
      t.true(state.rounds.length >= 2 + REPEATS);
      t.is(state.openAttempt, null);
    } finally {
      await rl.close();
    }
  },
);
