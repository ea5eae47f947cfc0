/** Output shared by the commands: the `--json`/`--csv` choice, CSV records, event timelines, live `--follow`. */
import type { Observable, Subscription } from 'rxjs';
import type { Followed } from '../audit/common.ts';
import type { RecordedEvent } from '../log/types.ts';
import { UsageError, table, type Io } from './args.ts';

export type Format = 'table' | 'json' | 'csv';

/** The `--json` / `--csv` options of the commands that print tables. */
export const FORMAT_OPTIONS = {
  json: { type: 'boolean', default: false, describe: 'print JSON' },
  csv: { type: 'boolean', default: false, describe: 'print CSV (RFC 4180) with a header row' },
} as const;

export function formatOf(values: { json?: boolean; csv?: boolean }): Format {
  if (values.json && values.csv) throw new UsageError('--json and --csv cannot be used together');
  return values.json ? 'json' : values.csv ? 'csv' : 'table';
}

/** One CSV record (RFC 4180): fields with a comma, quote or line break are quoted, quotes doubled. */
export function csvLine(cells: ReadonlyArray<string | number | bigint | boolean | null | undefined>): string {
  return cells
    .map((cell) => {
      const text = cell === null || cell === undefined ? '' : String(cell);
      return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
    })
    .join(',');
}

export const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/** A table of raw log events, for `roundlog events`. */
export function timeline(events: readonly RecordedEvent[]): string[] {
  return table(
    ['rev', 'position', 'time', 'type', 'data'],
    events.map((e) => [String(e.revision), String(e.position), e.timestamp.toISOString(), e.type, summarize(e.data)]),
  );
}

function summarize(data: unknown): string {
  const text = JSON.stringify(data, (_k, v: unknown) =>
    typeof v === 'bigint' ? v.toString() : ArrayBuffer.isView(v) ? `<${v.constructor.name} ${v.byteLength} B>` : v,
  );
  if (text === undefined) return String(data);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/**
 * Prints a live query until SIGINT/SIGTERM (or `io.signal`), then unsubscribes (which closes its
 * log handle) and resolves 0. An error of the query rejects.
 */
export function followUntilStopped<T>(
  source: Observable<Followed<T>>,
  print: (item: T) => void,
  io: Io,
  what: string,
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    // Stays `let`: `finish` reads it before `subscribe` returns (signal already aborted, or a synchronous error).
    // eslint-disable-next-line prefer-const
    let subscription: Subscription | undefined;
    let done = false;
    const finish = (settle: () => void) => {
      if (done) return;
      done = true;
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      io.signal?.removeEventListener('abort', stop);
      subscription?.unsubscribe();
      settle();
    };
    const stop = () => finish(() => resolve(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    io.signal?.addEventListener('abort', stop, { once: true });
    if (io.signal?.aborted) stop();
    subscription = source.subscribe({
      next: (item) => {
        if (item.kind === 'item') print(item.item);
        else {
          const at = item.position ?? '(empty log)';
          io.err(`-- ${what}: caught up at log position ${at}; following new events, Ctrl-C to stop`);
        }
      },
      error: (error: unknown) => finish(() => reject(error)),
      complete: () => finish(() => resolve(0)),
    });
    if (done) subscription.unsubscribe();
  });
}
