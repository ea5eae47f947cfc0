/** Argument checks shared by every EventLog adapter, so all report bad input the same way. */
import { InvalidArgumentError } from '../errors.ts';
import type { AppendOptions, EventData, ExpectedRevision, ReadAllOptions, ReadStreamOptions } from './types.ts';

export function checkStreamName(stream: unknown): asserts stream is string {
  if (typeof stream !== 'string' || stream.length === 0 || stream.length > 1024) {
    throw new InvalidArgumentError('stream', 'must be a non-empty string of at most 1024 characters', stream);
  }
  if (stream.startsWith('$')) {
    throw new InvalidArgumentError('stream', 'must not start with "$" (reserved for system streams)', stream);
  }
}

export function checkEvents(events: unknown): asserts events is readonly EventData[] {
  if (!Array.isArray(events) || events.length === 0) {
    throw new InvalidArgumentError('events', 'must be a non-empty array of { type, data }', events);
  }
  for (const [i, event] of events.entries()) {
    if (typeof event !== 'object' || event === null || typeof event.type !== 'string' || event.type.length === 0) {
      throw new InvalidArgumentError(`events[${i}].type`, 'must be a non-empty string', event?.type);
    }
    if (event.data === undefined) {
      throw new InvalidArgumentError(`events[${i}].data`, 'must be defined (use null for no data)', event.data);
    }
    if (event.id !== undefined && (typeof event.id !== 'string' || event.id.length === 0)) {
      throw new InvalidArgumentError(`events[${i}].id`, 'must be a non-empty string when given', event.id);
    }
  }
}

export function expectedRevisionOf(options: AppendOptions | undefined): ExpectedRevision {
  const expected = options?.expectedRevision ?? 'any';
  if (typeof expected === 'bigint') {
    if (expected < 0n) throw new InvalidArgumentError('expectedRevision', 'must be a non-negative revision', expected);
    return expected;
  }
  if (expected === 'any' || expected === 'no_stream' || expected === 'stream_exists') return expected;
  throw new InvalidArgumentError(
    'expectedRevision',
    'must be a bigint revision, "no_stream", "stream_exists" or "any"',
    expected,
  );
}

export function checkMaxCount(maxCount: unknown): number {
  if (maxCount === undefined) return Number.POSITIVE_INFINITY;
  if (typeof maxCount !== 'number' || !(maxCount >= 0) || (Number.isFinite(maxCount) && !Number.isInteger(maxCount))) {
    throw new InvalidArgumentError('maxCount', 'must be a non-negative integer', maxCount);
  }
  return maxCount;
}

function checkFrom(name: string, from: unknown): bigint | 'start' | 'end' | undefined {
  if (from === undefined || from === 'start' || from === 'end') return from;
  if (typeof from === 'bigint' && from >= 0n) return from;
  throw new InvalidArgumentError(name, 'must be a non-negative bigint, "start" or "end"', from);
}

export type NormalizedRead = { forwards: boolean; from: bigint | 'start' | 'end'; maxCount: number };

export function normalizeReadStream(options: ReadStreamOptions | undefined): NormalizedRead {
  return normalizeRead('fromRevision', options?.direction, options?.fromRevision, options?.maxCount);
}

export function normalizeReadAll(options: ReadAllOptions | undefined): NormalizedRead {
  return normalizeRead('fromPosition', options?.direction, options?.fromPosition, options?.maxCount);
}

function normalizeRead(fromName: string, direction: unknown, from: unknown, maxCount: unknown): NormalizedRead {
  if (direction !== undefined && direction !== 'forwards' && direction !== 'backwards') {
    throw new InvalidArgumentError('direction', 'must be "forwards" or "backwards"', direction);
  }
  const forwards = direction !== 'backwards';
  return {
    forwards,
    from: checkFrom(fromName, from) ?? (forwards ? 'start' : 'end'),
    maxCount: checkMaxCount(maxCount),
  };
}

/**
 * Indices `[i, ...]` into a dense array of `length` items to serve a read, given a
 * normalized read whose `from` is an index into that array.
 */
export function selectRange(length: number, read: NormalizedRead): { start: number; end: number; step: 1 | -1 } {
  const { forwards, from, maxCount } = read;
  if (forwards) {
    const start = from === 'start' ? 0 : from === 'end' ? length : clampIndex(from, length);
    const end = Math.min(length, start + Math.min(maxCount, length));
    return { start, end, step: 1 };
  }
  const start =
    from === 'end'
      ? length - 1
      : from === 'start'
        ? Math.min(0, length - 1)
        : Math.min(clampIndex(from, length), length - 1);
  const end = Math.max(-1, start - Math.min(maxCount, length));
  return { start, end, step: -1 };
}

function clampIndex(value: bigint, length: number): number {
  return value > BigInt(length) ? length : Number(value);
}
