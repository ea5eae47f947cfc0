/** Conformance: readAll in both directions and from any position, and listStreams. */
import type { EventLog } from '../../log/types.ts';
import { assertIncreasing, numbered, typesOf, type Suite } from './support.ts';

export function readAllTests<Context>(suite: Suite<Context>): void {
  const { test, title, openLog } = suite;

  // --- readAll ----------------------------------------------------------------------------

  test(title('readAll returns the events of every stream in append order, both directions'), async (t) => {
    const log = await openLog(t);
    const order: string[] = [];
    for (const [i, stream] of ['a', 'b', 'a', 'c', 'b', 'a'].entries()) {
      const events = numbered(`${stream}${i}-`, 1 + (i % 2));
      await log.append(stream, events);
      order.push(...events.map((e) => e.type));
    }
    const forwards = await log.readAll();
    t.deepEqual(typesOf(forwards.events), order);
    assertIncreasing(
      t,
      forwards.events.map((e) => e.position),
    );
    t.is(forwards.lastPosition, forwards.events[forwards.events.length - 1]!.position);

    const backwards = await log.readAll({ direction: 'backwards' });
    t.deepEqual(backwards.events, [...forwards.events].reverse());
    t.is(backwards.lastPosition, forwards.lastPosition);

    for (const stream of ['a', 'b', 'c']) {
      t.deepEqual(
        (await log.readStream(stream)).events,
        forwards.events.filter((e) => e.stream === stream),
        `readStream(${stream}) agrees with readAll`,
      );
    }
  });

  test(title('readAll from a position in the middle, both directions, with maxCount'), async (t) => {
    const log = await openLog(t);
    await log.append('a', numbered('a', 3));
    await log.append('b', numbered('b', 3));
    await log.append('a', numbered('c', 2));
    const all = (await log.readAll()).events;
    const positions = all.map((e) => e.position);
    const mid = positions[3]!;
    const read = async (options: Parameters<EventLog['readAll']>[0]) =>
      (await log.readAll(options)).events.map((e) => e.position);

    t.deepEqual(await read({ fromPosition: mid }), positions.slice(3));
    t.deepEqual(await read({ fromPosition: mid, maxCount: 2 }), positions.slice(3, 5));
    t.deepEqual(await read({ fromPosition: 'start', maxCount: 2 }), positions.slice(0, 2));
    t.deepEqual(await read({ direction: 'backwards', fromPosition: mid }), positions.slice(0, 4).reverse());
    t.deepEqual(await read({ direction: 'backwards', fromPosition: mid, maxCount: 2 }), [positions[3], positions[2]]);
    t.deepEqual(await read({ direction: 'backwards', maxCount: 3 }), positions.slice(-3).reverse());
    t.deepEqual(await read({ fromPosition: positions[0]! }), positions);
    t.deepEqual(await read({ maxCount: 0 }), []);
  });

  test(title('readAll from a position beyond the end, and on an empty log'), async (t) => {
    const log = await openLog(t);
    const empty = await log.readAll();
    t.deepEqual(empty.events, []);
    t.is(empty.lastPosition, null);
    t.deepEqual((await log.readAll({ direction: 'backwards' })).events, []);

    await log.append('s', numbered('e', 3));
    const all = await log.readAll();
    const beyond = all.lastPosition! + 1n;
    t.deepEqual((await log.readAll({ fromPosition: beyond })).events, []);
    t.deepEqual((await log.readAll({ fromPosition: 'end' })).events, []);
    const backwards = await log.readAll({ direction: 'backwards', fromPosition: beyond });
    t.deepEqual(backwards.events, [...all.events].reverse());
  });

  // --- listStreams -------------------------------------------------------------------------

  test(title('listStreams lists every stream with its last revision and positions'), async (t) => {
    const log = await openLog(t);
    t.deepEqual((await log.listStreams()).streams, []);
    await log.append('a', numbered('a', 2));
    await log.append('b', numbered('b', 1));
    await log.append('a', numbered('c', 1));
    const all = (await log.readAll()).events;
    const listed = [...(await log.listStreams()).streams].sort((x, y) => x.stream.localeCompare(y.stream));
    t.deepEqual(listed, [
      { stream: 'a', lastRevision: 2n, firstPosition: all[0]!.position, lastPosition: all[3]!.position },
      { stream: 'b', lastRevision: 0n, firstPosition: all[2]!.position, lastPosition: all[2]!.position },
    ]);
  });
}
