/** The EventLog conformance suite on the embedded file log, racing writers in separate processes. */
import test from 'ava';
import { openFileEventLog, type FileEventLog } from '../../src/log/file/index.ts';
import type { EventLog } from '../../src/log/types.ts';
import { eventLogConformance, type RaceOutcome } from '../../src/testing/index.ts';
import { killSpawned, spawnTs } from '../support/child.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

eventLogConformance(test, {
  name: 'file log',
  open: () => openFileEventLog({ dir: tempDir() }),
  async reopen(log: EventLog) {
    const { dir } = log as FileEventLog;
    await log.close();
    return openFileEventLog({ dir });
  },
  raceRounds: 10,
  // Two processes open the same log, each waiting for the writer lock, then append with the
  // same expected revision: the lock serializes them and the second must get the conflict.
  async raceAppenders(log, race) {
    const { dir } = log as FileEventLog;
    await log.close();
    const expected =
      typeof race.expectedRevision === 'bigint' ? race.expectedRevision.toString() : race.expectedRevision;
    const racers = race.batches.map((batch) =>
      spawnTs('file-log-child.ts', ['race-append', dir, race.stream, expected, JSON.stringify(batch)]),
    );
    await Promise.all(racers.map((racer) => racer.waitFor((line) => line === 'ready')));
    for (const racer of racers) racer.process.stdin!.write('go\n');
    const outcomes = await Promise.all(
      racers.map(async (racer): Promise<RaceOutcome> => {
        const line = await racer.waitFor((l) => l === 'ok' || l.startsWith('error '));
        await racer.exited;
        return line === 'ok' ? { ok: true } : { ok: false, code: line.slice('error '.length) };
      }),
    );
    return { outcomes, log: await openFileEventLog({ dir }) };
  },
});
