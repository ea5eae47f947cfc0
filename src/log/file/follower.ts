/**
 * Subscriptions of a file log: catch-up from history, then live events. A writer hands its
 * commits to the listeners; a read-only handle polls the files for records a writer in another
 * process added, and declares a damaged-looking tail corrupt only once a second look agrees.
 */
import { createHash } from 'node:crypto';
import { Observable } from 'rxjs';
import { InvalidArgumentError } from '../../errors.ts';
import { CorruptLogError } from '../errors.ts';
import type { RecordedEvent, SubscribeOptions, SubscriptionItem } from '../types.ts';
import { checkStreamName } from '../validate.ts';
import { exists } from '../../durable.ts';
import { FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES, checkFrame, classifyTail, isZero } from './format.ts';
import { readAll, readSpan, readStream } from './reader.ts';
import {
  checkOpen,
  decodeAt,
  ingest,
  newSegment,
  pathOf,
  readFully,
  readerOf,
  type FileLogState,
  type Listener,
  type Segment,
} from './state.ts';

/** Events per page when a subscription catches up from history. */
const CATCH_UP_PAGE = 1024;

export function subscribe(log: FileLogState, options?: SubscribeOptions): Observable<SubscriptionItem> {
  return new Observable<SubscriptionItem>((subscriber) => {
    const stream = options?.stream;
    const from = options?.from ?? 'start';
    try {
      checkOpen(log);
      if (stream !== undefined) checkStreamName(stream);
      if (!(from === 'start' || from === 'end' || (typeof from === 'bigint' && from >= 0n))) {
        throw new InvalidArgumentError('from', 'must be a non-negative bigint, "start" or "end"', from);
      }
    } catch (error) {
      subscriber.error(error);
      return;
    }
    // Next revision (stream) or position (all) to deliver; everything below it was delivered.
    let next: number;
    if (stream !== undefined) {
      const count = log.streams.get(stream)?.count ?? 0;
      next = from === 'start' ? 0 : from === 'end' ? count : Number(from);
    } else {
      next = from === 'start' ? 0 : from === 'end' ? log.committed : Number(from);
    }
    let live = false;
    const buffered: RecordedEvent[] = [];
    const deliver = (events: readonly RecordedEvent[]) => {
      for (const event of events) {
        if (subscriber.closed) return;
        if (stream !== undefined && event.stream !== stream) continue;
        const key = Number(stream !== undefined ? event.revision : event.position);
        if (key < next) continue;
        next = key + 1;
        subscriber.next({ kind: 'event', event });
      }
    };
    const listener: Listener = {
      onEvents: (events) => (live ? deliver(events) : buffered.push(...events)),
      onError: (error) => subscriber.error(error),
      onClose: () => subscriber.complete(),
    };
    log.listeners.add(listener);
    startPolling(log);
    const catchUp = async () => {
      for (;;) {
        if (subscriber.closed) return;
        let page: readonly RecordedEvent[];
        if (stream !== undefined) {
          const state = log.streams.get(stream);
          if (state === undefined || next >= state.count) break;
          page = (await readStream(log, stream, { fromRevision: BigInt(next), maxCount: CATCH_UP_PAGE })).events;
        } else {
          if (next >= log.committed) break;
          page = (await readAll(log, { fromPosition: BigInt(next), maxCount: CATCH_UP_PAGE })).events;
        }
        deliver(page);
        if (page.length === 0) break;
      }
      live = true;
      deliver(buffered.splice(0));
      if (!subscriber.closed) {
        subscriber.next({ kind: 'caughtUp', position: log.committed === 0 ? null : BigInt(log.committed - 1) });
      }
    };
    catchUp().catch((error: unknown) => subscriber.error(error));
    return () => {
      log.listeners.delete(listener);
      if (log.listeners.size === 0) stopPolling(log);
    };
  });
}

/** A read-only log learns of new records by looking at the files; a writer knows already. */
function startPolling(log: FileLogState): void {
  if (!log.readOnly || log.pollTimer !== null) return;
  const tick = () => {
    log.polling = poll(log)
      .catch((error: unknown) => {
        for (const listener of [...log.listeners]) listener.onError(error);
        log.listeners.clear();
      })
      .finally(() => {
        log.polling = null;
        if (log.pollTimer !== null && log.listeners.size > 0) log.pollTimer = setTimeout(tick, log.pollIntervalMs);
        else log.pollTimer = null;
      });
  };
  log.pollTimer = setTimeout(tick, log.pollIntervalMs);
}

export function stopPolling(log: FileLogState): void {
  if (log.pollTimer !== null) clearTimeout(log.pollTimer);
  log.pollTimer = null;
}

/** Reads records a writer in another process has added since the last look. */
async function poll(log: FileLogState): Promise<void> {
  const before = log.committed;
  for (;;) {
    let segment = log.segments.at(-1);
    if (segment === undefined) {
      if (!(await exists(pathOf(log, 0)))) break;
      segment = newSegment(log, 0, 0, false);
      segment.size = SEGMENT_HEADER_BYTES;
      log.segments.push(segment);
    }
    await readNew(log, segment);
    const nextFile = pathOf(log, log.committed);
    if (log.committed === segment.base + segment.count && log.committed > segment.base && (await exists(nextFile))) {
      // The writer sealed this segment: take what it finished writing, then move on.
      await readNew(log, segment);
      segment.sealed = true;
      const nextSegment = newSegment(log, log.committed, 0, false);
      nextSegment.size = SEGMENT_HEADER_BYTES;
      log.segments.push(nextSegment);
      continue;
    }
    break;
  }
  if (log.committed > before) {
    const events = await readSpan(log, before, log.committed);
    for (const listener of log.listeners) listener.onEvents(events);
  }
}

async function readNew(log: FileLogState, segment: Segment): Promise<void> {
  const handle = await readerOf(segment);
  const fileSize = (await handle.stat()).size;
  if (fileSize <= segment.size) return;
  // The writer zero-fills ahead of its data: a zero header means nothing new yet.
  const probe = Buffer.alloc(Math.min(FRAME_HEADER_BYTES, fileSize - segment.size));
  await readFully(handle, probe, segment.size);
  if (isZero(probe, 0, probe.length)) return;
  const buf = Buffer.allocUnsafe(fileSize - segment.size);
  await readFully(handle, buf, segment.size);
  let offset = 0;
  while (offset < buf.length) {
    const check = checkFrame(buf, offset);
    if (check.kind !== 'ok') {
      const verdict = classifyTail(buf, offset, check);
      if (verdict.kind === 'corrupt') {
        // A read racing the writer's copy into the page cache can see a later page already
        // written and an earlier one not yet: bytes that look damaged. Damage is declared only
        // when the next look finds the same bytes at the same place.
        const seen = {
          at: `${segment.file}:${segment.size + offset}`,
          bytes: createHash('sha256').update(buf.subarray(offset)).digest('hex'),
        };
        if (log.suspect === null || log.suspect.at !== seen.at || log.suspect.bytes !== seen.bytes) {
          log.suspect = seen;
          break;
        }
        throw new CorruptLogError(segment.file, segment.size + offset, verdict.reason);
      }
      break;
    }
    log.suspect = null;
    const record = decodeAt(segment.file, segment.size + offset, buf, check.bodyStart, check.end);
    ingest(log, segment, record, segment.size + offset);
    offset = check.end;
  }
  segment.size += offset;
}
