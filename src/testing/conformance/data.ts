/** Conformance: the event envelope (ids, timestamps) and event data that round-trips exactly. */
import { event, type Suite } from './support.ts';

export function dataTests<Context>(suite: Suite<Context>): void {
  const { test, title, openLog, adapter } = suite;

  test(title('the log assigns unique ids and timestamps; a given id is preserved'), async (t) => {
    const log = await openLog(t);
    const id = '6f1c8f0e-3a57-4a0b-9a39-0f8a3c2b9d11';
    await log.append('s', [event('a'), { type: 'b', data: null, id }, event('c')]);
    await log.append('t', [event('d')]);
    const events = (await log.readAll()).events;
    t.is(events[1]!.id, id);
    for (const e of events) {
      t.is(typeof e.id, 'string');
      t.true(e.id.length > 0);
      t.true(e.timestamp instanceof Date);
      t.false(Number.isNaN(e.timestamp.getTime()));
    }
    t.is(new Set(events.map((e) => e.id)).size, events.length, 'ids are unique');
    t.true(events[0]!.timestamp.getTime() <= events[3]!.timestamp.getTime(), 'timestamps do not go back');
    t.deepEqual((await log.readStream('s')).events[1], events[1]);
  });

  test(title('event data round-trips: nested objects, numbers, strings, booleans, null, arrays, bigint'), async (t) => {
    const log = await openLog(t);
    const data = {
      round: 3,
      negative: -17,
      float: 0.1 + 0.2,
      large: 2 ** 40,
      maxSafe: Number.MAX_SAFE_INTEGER,
      text: 'héllo, wörld ✓ — 実験',
      empty: '',
      yes: true,
      no: false,
      nothing: null,
      list: [1, 'two', { three: [3] }, null],
      nested: { a: { b: { c: { d: 'deep' } } } },
      bigints: { small: 5n, zero: 0n, negative: -42n, huge: 2n ** 70n, i64: 9_223_372_036_854_775_807n },
    };
    await log.append('s', [
      { type: 'object', data },
      { type: 'null', data: null },
      { type: 'string', data: 'just a string' },
      { type: 'number', data: 1.5 },
      { type: 'bigint', data: 123n },
      { type: 'array', data: [] },
    ]);
    const events = (await log.readStream('s')).events;
    t.deepEqual(
      events.map((e) => e.data),
      [data, null, 'just a string', 1.5, 123n, []],
    );
  });

  if (adapter.typedArrays ?? true) {
    test(title('typed arrays in event data round-trip with their type'), async (t) => {
      const log = await openLog(t);
      const bytes = new Uint8Array([0, 1, 2, 254, 255]);
      const floats = new Float32Array([0.5, -1.25, 3.4028234663852886e38, Number.NaN]);
      await log.append('s', [{ type: 'tensors', data: { bytes, floats, empty: new Uint8Array(0) } }]);
      const data = (await log.readStream('s')).events[0]!.data as Record<string, unknown>;
      t.true(data.bytes instanceof Uint8Array, 'Uint8Array stays a Uint8Array');
      t.deepEqual(Array.from(data.bytes as Uint8Array), Array.from(bytes));
      t.true(data.floats instanceof Float32Array, 'Float32Array stays a Float32Array');
      t.deepEqual(Array.from(data.floats as Float32Array), Array.from(floats));
      t.is((data.empty as Uint8Array).length, 0);
    });
  }

  test(title('stored events do not change when the caller mutates its input or a read result'), async (t) => {
    const log = await openLog(t);
    const input = { type: 'x', data: { nested: { value: 1 }, list: [1, 2] } };
    await log.append('s', [input]);
    input.data.nested.value = 2;
    input.data.list.push(3);
    const first = (await log.readStream('s')).events[0]!;
    t.deepEqual(first.data, { nested: { value: 1 }, list: [1, 2] });

    try {
      (first.data as { nested: { value: number } }).nested.value = 3;
    } catch {
      // a frozen result is fine too
    }
    t.deepEqual((await log.readAll()).events[0]!.data, { nested: { value: 1 }, list: [1, 2] });
  });
}
