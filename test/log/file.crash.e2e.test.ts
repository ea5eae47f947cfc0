/**
 * Crash safety of the file log with real processes: a child appends in a loop and is killed
 * with SIGKILL at random moments; after every kill the log reopens with every acknowledged
 * append intact, nothing partial visible, and appends continue.
 */
import test from 'ava';
import path from 'node:path';
import { openFileEventLog, type FileLogWarning } from '../../src/log/file/index.ts';
import { killSpawned, spawnTs } from '../support/child.ts';
import { eventPayload } from '../support/payloads.ts';
import { removeTempDirs, seededRandom, tempDir } from '../support/tmp.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const KILLS = Math.max(50, Number(process.env.ROUNDLOG_CRASH_KILLS ?? 50));

test(`file log: ${KILLS} SIGKILLs of an appending process lose no acknowledged append`, async (t) => {
  const dir = path.join(tempDir(), 'log');
  const seed = Number(process.env.ROUNDLOG_CRASH_SEED ?? Date.now() % 1_000_000);
  t.log(`seed ${seed} (set ROUNDLOG_CRASH_SEED to replay)`);
  const random = seededRandom(seed);
  const acked = new Map<string, bigint>();
  const checked = new Map<string, number>();
  let tornTails = 0;
  let killedMidFlight = 0;

  for (let kill = 0; kill < KILLS; kill++) {
    const killAfter = 1 + Math.floor(random() * 40);
    let acks = 0;
    const child = spawnTs(
      'file-log-child.ts',
      ['append-loop', dir, String(1 + Math.floor(random() * 4))],
      (line, c) => {
        if (line.startsWith('warning TORN_TAIL_TRUNCATED')) tornTails++;
        if (!line.startsWith('ack ')) return;
        const [, stream, revision] = line.split(' ') as [string, string, string];
        const r = BigInt(revision);
        if ((acked.get(stream) ?? -1n) < r) acked.set(stream, r);
        if (++acks === killAfter) c.process.kill('SIGKILL');
      },
    );
    const status = await child.exited;
    t.is(status.signal, 'SIGKILL', `child ended without being killed: ${child.stderr()}`);

    const warnings: FileLogWarning[] = [];
    const log = await openFileEventLog({ dir, onWarning: (w) => warnings.push(w) });
    tornTails += warnings.filter((w) => w.code === 'TORN_TAIL_TRUNCATED').length;
    const { streams } = await log.listStreams();
    const heads = new Map(streams.map((s) => [s.stream, s.lastRevision]));
    for (const [stream, revision] of acked) {
      const head = heads.get(stream);
      t.true(
        head !== undefined && head >= revision,
        `${stream}: acknowledged revision ${revision} missing after kill ${kill} (log head ${head})`,
      );
      if (head! > revision) killedMidFlight++;
      // Every event, acknowledged or not, must be whole and the one that was written.
      const from = checked.get(stream) ?? 0;
      const { events } = await log.readStream(stream, { fromRevision: BigInt(from) });
      for (const event of events) {
        t.deepEqual(
          event.data,
          eventPayload(stream, event.revision),
          `${stream}@${event.revision} differs after kill ${kill}`,
        );
      }
      checked.set(stream, from + events.length);
    }
    const verified = await log.verify();
    t.true(verified.ok, JSON.stringify(verified.problems));
    // Appends continue after the crash, with exact expected revisions.
    await log.append('after-crash', [{ type: 'Checked', data: { kill } }], {
      expectedRevision: kill === 0 ? 'no_stream' : BigInt(kill - 1),
    });
    await log.close();
  }

  const log = await openFileEventLog({ dir });
  const all = await log.readAll();
  const total = (await log.listStreams()).streams.reduce((sum, s) => sum + Number(s.lastRevision) + 1, 0);
  t.is(all.events.length, total);
  t.deepEqual(
    (await log.readStream('after-crash')).events.map((e) => (e.data as { kill: number }).kill),
    Array.from({ length: KILLS }, (_, i) => i),
  );
  await log.close();
  t.log(
    `${KILLS} kills, ${total} events, ${tornTails} torn tails truncated, ` +
      `${killedMidFlight} times an unacknowledged append had become durable`,
  );
});
