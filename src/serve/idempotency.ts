/**
 * Idempotent retries by request id, kept in the log itself (no table beside it). The events a
 * request appends get ids derived from it: a UUID whose first half hashes the stream and the
 * request id (the key) and whose second half hashes the request's content and the event's index.
 * A request with a request id first looks for its key among the stream's events (at least the
 * last `IDEMPOTENCY_WINDOW` requests with an id; `RequestIndex`): none means it was never done;
 * the same ids mean it was done (a retry: its response is rebuilt from the recorded events and
 * the state after them, and nothing is appended); the key with other ids means the request id
 * was used for other content (`IdempotencyKeyReusedError`). Since the ids are written in the same atomic append as the
 * events, a retry after a crash of the server (or of the client between send and response) is
 * recognized too, and two racing copies of one request append once (the second fails its expected
 * revision, looks again and finds the first).
 */
import { createHash } from 'node:crypto';
import type { EventLog, RecordedEvent } from '../log/types.ts';

/**
 * Requests of a stream searched for a request's key when the server first touches it: the events
 * of the last `IDEMPOTENCY_WINDOW` requests with a request id. Only those count: the events
 * appended without one (a run's heartbeats every few seconds, whatever another process appends)
 * can never be a retry's, so however many there are they push no request out of the window.
 */
export const IDEMPOTENCY_WINDOW = 1024;

/** Whether an event's id was derived from a request id (`requestIds`: a version-8 UUID), not drawn at random. */
export function isRequestDerived(id: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.test(id);
}

/** The request-id rule of the API: 1 to 128 of `A-Z a-z 0-9 . _ : -`. */
export const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Canonical JSON: object keys sorted, so equal content hashes equally whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const object = value as Record<string, unknown>;
  const keys = Object.keys(object)
    .filter((k) => object[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(object[k])}`).join(',')}}`;
}

function hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** As a UUID (version 8, RFC 9562's custom layout; variant 10). */
function uuidOf(digits: string): string {
  const d = digits.split('');
  d[12] = '8';
  d[16] = ((parseInt(d[16]!, 16) & 0x3) | 0x8).toString(16);
  const s = d.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20, 32)}`;
}

/** The part of an event id that names the request (its first 16 hex digits). */
export function keyOfId(id: string): string {
  return id.replaceAll('-', '').toLowerCase().slice(0, 16);
}

/** A request's identity: its key, and the ids of the `count` events it appends for `content`. */
export type RequestIds = Readonly<{ key: string; ids: (count: number) => string[] }>;

/**
 * The ids for request `requestId` on `scope` (a stream, or `registry` for creations) of `route`
 * with `content` (the request body without its request id and preconditions).
 */
export function requestIds(scope: string, route: string, requestId: string, content: unknown): RequestIds {
  const keyHex = hex(`${scope}\0${requestId}`).slice(0, 16);
  const key = keyOfId(uuidOf(keyHex + '0'.repeat(16)));
  const body = canonicalJson({ route, content });
  return {
    key,
    ids: (count) => Array.from({ length: count }, (_, i) => uuidOf(keyHex + hex(`${body}\0${i}`).slice(0, 16))),
  };
}

/** What a request id found: nothing, the request's own events (a retry), or another request's. */
export type Found =
  | Readonly<{ kind: 'none' }>
  | Readonly<{ kind: 'retry'; events: readonly RecordedEvent[] }>
  | Readonly<{ kind: 'reused' }>;

/** Request keys remembered per experiment, beyond the window read at first (oldest forgotten first). */
export const REMEMBERED_KEYS = 16_384;

/** Events read per page when looking back for the window's requests. */
const PAGE = 1024;

/**
 * `findRequest` without reading the log on every request: the keys of one experiment's requests,
 * read once (back from the stream's end until `IDEMPOTENCY_WINDOW` requests with an id are found,
 * or the start), then kept up to date with the events this server appends (`recorded`) and, when
 * the stream moved past what is known (another process appended), with the events in between.
 * Events whose id is not derived from a request id (`isRequestDerived`) are neither remembered nor
 * counted: they cannot evict a request's key. A hit (a retry) reads its events back from the log;
 * a miss reads nothing.
 */
export class RequestIndex {
  /** The last revision whose event is known; -1n before the first read. */
  private upTo = -1n;
  private seeded = false;
  private readonly byKey = new Map<string, { id: string; revision: bigint }[]>();

  constructor(private readonly stream: string) {}

  /** What `ids` found, the stream being at revision `now` (the handle's, just refreshed). */
  async find(read: <T>(fn: (log: EventLog) => Promise<T>) => Promise<T>, now: bigint, ids: RequestIds): Promise<Found> {
    if (!this.seeded || now > this.upTo) await read((log) => this.catchUp(log));
    const mine = this.byKey.get(ids.key);
    if (mine === undefined) return { kind: 'none' };
    const expected = ids.ids(mine.length);
    if (!mine.every((e, i) => e.id === expected[i])) return { kind: 'reused' };
    const first = mine[0]!.revision;
    const count = Number(mine.at(-1)!.revision - first) + 1;
    const { events } = await read((log) => log.readStream(this.stream, { fromRevision: first, maxCount: count }));
    return { kind: 'retry', events: events.filter((e) => keyOfId(e.id) === ids.key) };
  }

  /** Events this server appended: known at once when they follow what is known. */
  recorded(events: readonly RecordedEvent[]): void {
    const first = events[0];
    if (!this.seeded || first === undefined || first.revision !== this.upTo + 1n) return;
    for (const event of events) this.add(event);
  }

  private async catchUp(log: EventLog): Promise<void> {
    if (this.seeded) {
      const { events } = await log.readStream(this.stream, { fromRevision: this.upTo + 1n });
      for (const event of events) if (event.revision > this.upTo) this.add(event);
      return;
    }
    // Back from the end, a page at a time, until the window's requests (or the start) are read.
    const found: RecordedEvent[] = [];
    const keys = new Set<string>();
    let from: bigint | 'end' = 'end';
    let last = -1n;
    for (;;) {
      const { events } = await log.readStream(this.stream, {
        direction: 'backwards',
        fromRevision: from,
        maxCount: PAGE,
      });
      if (last === -1n && events[0] !== undefined) last = events[0].revision;
      for (const event of events) {
        if (!isRequestDerived(event.id)) continue;
        found.push(event);
        keys.add(keyOfId(event.id));
      }
      const oldest = events.at(-1);
      if (events.length < PAGE || oldest === undefined || oldest.revision === 0n || keys.size >= IDEMPOTENCY_WINDOW) {
        break;
      }
      from = oldest.revision - 1n;
    }
    this.seeded = true;
    for (const event of found.reverse()) this.add(event);
    if (last > this.upTo) this.upTo = last;
  }

  private add(event: RecordedEvent): void {
    this.upTo = event.revision;
    if (!isRequestDerived(event.id)) return;
    const key = keyOfId(event.id);
    const list = this.byKey.get(key);
    const entry = { id: event.id.toLowerCase(), revision: event.revision };
    if (list === undefined) this.byKey.set(key, [entry]);
    else list.push(entry);
    if (this.byKey.size > REMEMBERED_KEYS) this.byKey.delete(this.byKey.keys().next().value!);
  }
}
