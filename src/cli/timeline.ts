/** A table of raw log events, for `roundlog events`. */
import type { RecordedEvent } from '../log/types.ts';
import { table } from './args.ts';

export function timeline(events: readonly RecordedEvent[]): string[] {
  return table(
    ['rev', 'position', 'time', 'type', 'data'],
    events.map((e) => [String(e.revision), String(e.position), e.timestamp.toISOString(), e.type, summarize(e.data)]),
  );
}

function summarize(data: unknown): string {
  const text = JSON.stringify(data, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : ArrayBuffer.isView(v) ? `<${v.constructor.name} ${v.byteLength} B>` : v));
  if (text === undefined) return String(data);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
