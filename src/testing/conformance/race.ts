/** Conformance: concurrent writers with the same expected revision, in-process or the adapter's own way. */
import type { EventLog } from '../../log/types.ts';
import { event, numbered, typesOf, type Suite } from './support.ts';
import type { AppendRace, AppendRaceResult, RaceOutcome } from './types.ts';

export function raceTests<Context>(suite: Suite<Context>): void {
  const { test, title, openLog, adapter } = suite;

  test(title('racing appenders with the same expected revision: exactly one wins, nothing interleaves'), async (t) => {
    let log = await openLog(t);
    const race = adapter.raceAppenders?.bind(adapter) ?? raceInProcess;
    const conflictCodes = ['WRONG_EXPECTED_REVISION', ...(adapter.raceConflictCodes ?? [])];
    const rounds = adapter.raceRounds ?? 20;

    for (let round = 0; round < rounds; round++) {
      const stream = `race-${round}`;
      const seeded = round % 2 === 1;
      if (seeded) await log.append(stream, [event('seed')]);
      const batches = [0, 1].map((racer) => numbered(`round${round}-racer${racer}-`, 3));
      const result = await race(log, { stream, expectedRevision: seeded ? 0n : 'no_stream', batches });
      if (result.log !== undefined && result.log !== log) {
        const next = result.log;
        t.teardown(() => next.close());
        log = next;
      }

      const winners = result.outcomes.flatMap((outcome, racer) => (outcome.ok ? [racer] : []));
      t.is(result.outcomes.length, batches.length, `round ${round}: one outcome per racer`);
      t.is(winners.length, 1, `round ${round}: exactly one winner, got ${JSON.stringify(result.outcomes)}`);
      for (const outcome of result.outcomes) {
        if (!outcome.ok) {
          t.true(
            conflictCodes.includes(outcome.code),
            `round ${round}: the loser failed with ${outcome.code}, expected one of ${conflictCodes.join(', ')}`,
          );
        }
      }
      const winner = batches[winners[0]!]!;
      const events = (await log.readStream(stream)).events;
      t.deepEqual(
        typesOf(events),
        [...(seeded ? ['seed'] : []), ...winner.map((e) => e.type)],
        `round ${round}: the stream holds the winner's events only`,
      );
      t.deepEqual(
        events.map((e) => e.revision),
        events.map((_, k) => BigInt(k)),
      );
      const all = (await log.readAll()).events;
      const at = all.findIndex((e) => e.type === winner[0]!.type);
      t.deepEqual(typesOf(all.slice(at, at + winner.length)), typesOf(winner), `round ${round}: contiguous in the log`);
    }
  });
}

async function raceInProcess(log: EventLog, race: AppendRace): Promise<AppendRaceResult> {
  const settled = await Promise.allSettled(
    race.batches.map((batch) => log.append(race.stream, batch, { expectedRevision: race.expectedRevision })),
  );
  return {
    outcomes: settled.map((outcome): RaceOutcome => {
      if (outcome.status === 'fulfilled') return { ok: true };
      const code = (outcome.reason as { code?: unknown } | null)?.code;
      return { ok: false, code: typeof code === 'string' ? code : String(outcome.reason) };
    }),
  };
}
