/**
 * Two researchers, one history: three machines (three roots) share one EventStoreDB store and one
 * blob folder. Two processes resume the same experiment from the same revision: one goes on, the
 * other gets CONCURRENT_MODIFICATION before writing anything. A third process, `roundlog audit
 * --follow`, prints every event of the history once, in log order, live ones included.
 */
import test from 'ava';
import path from 'node:path';
import { openRoundLog } from '../../src/projections/index.ts';
import type { RecordedEvent } from '../../src/log/types.ts';
import { startRoundlog } from '../support/cli.ts';
import { killSpawned, spawnTs, type Child } from '../support/child.ts';
import { freshNamespace, inProcessServer, type EsdbTarget } from '../support/esdb.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

let server: EsdbTarget;
test.before(async () => {
  server = await inProcessServer();
});
test.after.always(async () => {
  await server?.close();
  removeTempDirs();
});
// After the server's own close: it is a spawned child too.
test.after.always(killSpawned);

const caughtUp = (line: string) => /caught up at log position \d+/.test(line);
const send = (child: Child, line: string) => child.process.stdin!.write(`${line}\n`);

test(
  'two processes resume one experiment: one proceeds, the other ' +
    'gets the conflict; a follower sees every event once, in order',
  async (t) => {
    const machines = { a: tempDir(), b: tempDir(), c: tempDir() };
    const env = {
      ROUNDLOG_STORE: server.connectionString,
      ROUNDLOG_NAMESPACE: freshNamespace(),
      ROUNDLOG_BLOBS: path.join(tempDir(), 'shared-blobs'),
    };

    // Researcher A creates the experiment and runs its first two rounds.
    const setUp = spawnTs('experiment-child.ts', ['run', machines.a, '3', '2', '50'], undefined, env);
    t.is((await setUp.exited).code, 0, setUp.stderr());
    t.is(setUp.lines.at(-1), 'stopped 2');
    const experimentId = setUp.lines.find((l) => l.startsWith('created '))!.split(' ')[2]!;

    // Machine C follows every experiment event of the store.
    const follower = startRoundlog(['audit', '--follow', '--json', '--root', machines.c], env);
    await follower.waitForErr(caughtUp);

    // A and B both read the history at the same revision, then both try to go on.
    const racers = [
      spawnTs('experiment-child.ts', ['resume-wait', machines.a, 'hold'], undefined, env),
      spawnTs('experiment-child.ts', ['resume-wait', machines.b, 'hold'], undefined, env),
    ];
    await Promise.all(racers.map((c) => c.waitFor((l) => l === 'ready')));
    for (const c of racers) send(c, 'go');
    await Promise.all(racers.map((c) => c.waitFor((l) => l === 'loaded')));
    for (const c of racers) send(c, 'go');
    const statuses = await Promise.all(racers.map((c) => c.exited));
    const story = racers.map((c) => `[${c.lines.join(' | ')}] ${c.stderr()}`).join(' and ');
    t.deepEqual(
      statuses.map((s) => s.code),
      [0, 0],
      story,
    );
    const winners = racers.filter((c) => c.lines.includes('round 2 committed'));
    const losers = racers.filter((c) => c.lines.at(-1) === 'error CONCURRENT_MODIFICATION');
    t.is(winners.length, 1, story);
    t.is(losers.length, 1, story);
    t.deepEqual(
      losers[0]!.lines,
      ['ready', 'loaded', 'error CONCURRENT_MODIFICATION'],
      'the loser wrote nothing after loading',
    );

    // The history: one resume (the winner's), one whole round 2.
    const rl = await openRoundLog({ root: machines.c, env });
    let events: readonly RecordedEvent[];
    try {
      const handle = await rl.openExperiment(experimentId);
      events = (await rl.withReader((log) => log.readStream(handle.stream))).events;
      t.deepEqual(
        handle.state.rounds.map((r) => r.round),
        [0, 1, 2],
      );
    } finally {
      await rl.close();
    }
    const resumes = events.filter((e) => e.type === 'Resumed');
    t.is(resumes.length, 1);
    t.is((resumes[0]!.data as { by: { pid: number } }).by.pid, winners[0]!.process.pid!);

    // The follower printed each event of the experiment once, in log order, then was stopped.
    const last = events.at(-1)!.position.toString();
    await follower.waitFor((l) => (JSON.parse(l) as { position: string }).position === last);
    follower.process.kill('SIGINT');
    t.is((await follower.exited).code, 0, follower.stderr());
    const printed = follower.lines.map((l) => JSON.parse(l) as { position: string; type: string; revision: string });
    t.deepEqual(
      printed.map((e) => [e.position, e.type, e.revision]),
      events.map((e) => [e.position.toString(), e.type, e.revision.toString()]),
      'every event once, in order',
    );
  },
);
