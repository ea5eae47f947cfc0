/** Conformance: every call rejects invalid arguments with InvalidArgumentError and stores nothing. */
import { InvalidArgumentError } from '../../errors.ts';
import type { EventData, ExpectedRevision, SubscribeOptions } from '../../log/types.ts';
import { recordSubscription } from './subscriptions.ts';
import { event, typesOf, type Suite } from './support.ts';

export function invalidArgumentTests<Context>(suite: Suite<Context>): void {
  const { test, title, openLog } = suite;

  test(title('append rejects invalid arguments with InvalidArgumentError'), async (t) => {
    const log = await openLog(t);
    await log.append('s', [event('a')]);
    const invalid = async (call: () => Promise<unknown>, message: string) => {
      const error = await t.throwsAsync(call, { instanceOf: InvalidArgumentError, code: 'INVALID_ARGUMENT' }, message);
      t.is(typeof error.argument, 'string', message);
    };
    await invalid(() => log.append('', [event('a')]), 'empty stream name');
    await invalid(() => log.append('$all', [event('a')]), 'reserved stream name');
    await invalid(() => log.append(42 as unknown as string, [event('a')]), 'stream name not a string');
    await invalid(() => log.append('s', []), 'no event');
    await invalid(() => log.append('s', undefined as unknown as EventData[]), 'events missing');
    await invalid(() => log.append('s', [{ type: '', data: 1 }]), 'empty type');
    await invalid(() => log.append('s', [{ type: 'x' } as unknown as EventData]), 'data undefined');
    await invalid(() => log.append('s', [{ type: 'x', data: 1, id: '' }]), 'empty id');
    await invalid(() => log.append('s', [event('a')], { expectedRevision: -1n }), 'negative expected revision');
    await invalid(
      () => log.append('s', [event('a')], { expectedRevision: 'latest' as unknown as ExpectedRevision }),
      'unknown expected revision',
    );
    await invalid(
      () => log.append('s', [event('a')], { expectedRevision: 0 as unknown as ExpectedRevision }),
      'number instead of bigint',
    );
    t.deepEqual(typesOf((await log.readAll()).events), ['a'], 'nothing was stored');
  });

  test(title('reads reject invalid arguments with InvalidArgumentError'), async (t) => {
    const log = await openLog(t);
    await log.append('s', [event('a')]);
    const invalid = (call: () => Promise<unknown>, message: string) =>
      t.throwsAsync(call, { instanceOf: InvalidArgumentError, code: 'INVALID_ARGUMENT' }, message);
    await invalid(() => log.readStream(''), 'empty stream name');
    await invalid(() => log.readStream('s', { fromRevision: -1n }), 'negative fromRevision');
    await invalid(() => log.readStream('s', { fromRevision: 1 as unknown as bigint }), 'number fromRevision');
    await invalid(() => log.readStream('s', { maxCount: -1 }), 'negative maxCount');
    await invalid(() => log.readStream('s', { maxCount: 1.5 }), 'fractional maxCount');
    await invalid(() => log.readStream('s', { direction: 'sideways' as unknown as 'forwards' }), 'unknown direction');
    await invalid(() => log.readAll({ fromPosition: -1n }), 'negative fromPosition');
    await invalid(() => log.readAll({ maxCount: -1 }), 'negative maxCount (readAll)');
    await invalid(() => log.readAll({ direction: 'up' as unknown as 'forwards' }), 'unknown direction (readAll)');
  });

  test(title('subscribe errors with InvalidArgumentError on invalid arguments'), async (t) => {
    const log = await openLog(t);
    await log.append('s', [event('a')]);
    const invalid = (options: SubscribeOptions, message: string) =>
      t.throwsAsync(
        recordSubscription(log.subscribe(options)).done,
        { instanceOf: InvalidArgumentError, code: 'INVALID_ARGUMENT' },
        message,
      );
    await invalid({ stream: '' }, 'empty stream name');
    await invalid({ stream: '$all' }, 'reserved stream name');
    await invalid({ from: -1n }, 'negative position');
    await invalid({ stream: 's', from: -1n }, 'negative revision');
    await invalid({ from: 'middle' as unknown as 'start' }, 'unknown from');
  });
}
