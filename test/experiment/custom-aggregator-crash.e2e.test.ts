/**
 * A stateful custom aggregator (SCAFFOLD-like, a control variate per node) survives a SIGKILL:
 * a real process killed mid-run and resumed in a new process ends with the parameters and the
 * per-round states of an uninterrupted run, bit for bit.
 */
import test from 'ava';
import { openRoundLog } from '../../src/projections/index.ts';
import type { FederatedRoundState } from '../../src/federated/components.ts';
import { killSpawned, spawnTs } from '../support/child.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const SEED = 7;
const ROUNDS = 6;

async function statesOf(root: string): Promise<unknown[]> {
  const rl = await openRoundLog({ root });
  try {
    const [entry] = await rl.listExperiments();
    const handle = await rl.openExperiment(entry!.experimentId);
    return handle.state.rounds.map((r) => r.state);
  } finally {
    await rl.close();
  }
}

test(
  'a SCAFFOLD-like custom aggregator killed with SIGKILL mid-run and resumed in a new process ' +
    'ends bit-identical to an uninterrupted run (params and every round state)',
  async (t) => {
    const uninterrupted = tempDir();
    const whole = spawnTs('scaffold-child.ts', ['run', uninterrupted, String(SEED), String(ROUNDS)]);
    const expected = await whole.waitFor((l) => l.startsWith('done ') || l.startsWith('error '));
    t.is((await whole.exited).code, 0, whole.stderr());
    t.regex(expected, /^done [0-9a-f]{64} [0-9a-f]{64}$/);

    const crashed = tempDir();
    const first = spawnTs('scaffold-child.ts', ['run', crashed, String(SEED), String(ROUNDS)], (line, child) => {
      // Killed as soon as round 2 is committed: the process is then in round 3.
      if (line === 'round 2 committed') child.process.kill('SIGKILL');
    });
    const killed = await first.exited;
    t.is(killed.signal, 'SIGKILL', first.lines.join('\n') + first.stderr());
    t.false(first.lines.some((l) => l.startsWith('done ')));

    const second = spawnTs('scaffold-child.ts', ['run', crashed, String(SEED), String(ROUNDS)]);
    const resumedLine = await second.waitFor((l) => l.startsWith('resumed ') || l.startsWith('error '));
    const done = await second.waitFor((l) => l.startsWith('done ') || l.startsWith('error '));
    t.is((await second.exited).code, 0, second.stderr());
    const resumedAt = Number(resumedLine.split(' ')[1]);
    t.true(resumedAt >= 3 && resumedAt < ROUNDS, resumedLine);
    t.is(done, expected, 'same final parameters and same recorded states');

    const [a, b] = [await statesOf(uninterrupted), await statesOf(crashed)];
    t.is(b.length, ROUNDS);
    t.deepEqual(b, a);
    const last = b.at(-1) as FederatedRoundState;
    t.deepEqual(last.stateVersions, { aggregator: 2, strategy: 1 });
    t.is(last.aggregator.rounds, ROUNDS);
    t.true(Object.keys(last.aggregator.nodes as object).length > 1, 'a control variate per node');
  },
);
