/** Arguments the history and audit commands share: the experiment positional, times, event types. */
import { UsageError, shownValue } from './args.ts';

/** The `<experiment>` positional. */
export const EXPERIMENT = {
  type: 'string',
  demandOption: true,
  describe: 'a folder name (Experiment_0003), an id, or a path',
} as const;

/** What a command taking one experiment says when it has none. */
export const NEEDS_EXPERIMENT = 'an experiment: a folder name (Experiment_0003), an id, or a path';

/** Refuses positional words after the one experiment a command takes. */
export function oneExperiment(command: string, experiment: string, extra: readonly string[]): string {
  if (extra.length > 0) {
    const given = [experiment, ...extra].map((word) => shownValue(word)).join(' ');
    throw new UsageError(`${command} takes one experiment, got ${extra.length + 1}: ${given}`);
  }
  return experiment;
}

/**
 * A time: ISO 8601 (`2025-06-01`, `2025-06-01T14:00:00Z`), or a duration before now
 * (`90s`, `15m`, `2h`, `7d`).
 */
export function parseTime(flag: string, value: string, now: Date = new Date()): Date {
  const relative = /^(\d+)(ms|s|m|h|d)$/.exec(value);
  if (relative !== null) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
      relative[2] as 'ms' | 's' | 'm' | 'h' | 'd'
    ];
    const time = new Date(now.getTime() - Number(relative[1]) * unit);
    // A duration beyond the dates JavaScript can hold is refused here, not as a RangeError later.
    if (!Number.isNaN(time.getTime())) return time;
  }
  const time = relative === null && /^\d{4}-\d{2}-\d{2}/.test(value) ? new Date(value) : new Date(Number.NaN);
  if (Number.isNaN(time.getTime())) {
    throw new UsageError(
      `${flag} must be an ISO 8601 time (2025-06-01, 2025-06-01T14:00:00Z) or a duration before now ` +
        `(90s, 15m, 2h, 7d); got ${shownValue(value)}`,
    );
  }
  return time;
}

/** The `--since` / `--until` options. */
export const TIME_OPTIONS = {
  since: { type: 'string', describe: 'from this time: ISO 8601, or a duration ago (15m, 2h, 7d); inclusive' },
  until: { type: 'string', describe: 'before this time: ISO 8601, or a duration ago; exclusive' },
} as const;

export function timeRange(values: { since?: string | undefined; until?: string | undefined }): {
  since?: Date;
  until?: Date;
} {
  const now = new Date();
  const since = values.since === undefined ? undefined : parseTime('--since', values.since, now);
  const until = values.until === undefined ? undefined : parseTime('--until', values.until, now);
  if (since !== undefined && until !== undefined && since.getTime() > until.getTime()) {
    throw new UsageError(`--since (${since.toISOString()}) is after --until (${until.toISOString()})`);
  }
  return { ...(since === undefined ? {} : { since }), ...(until === undefined ? {} : { until }) };
}

/** `--type` values (repeatable, or comma-separated), matched to the catalogue case-insensitively. */
export function eventTypes<T extends string>(
  values: string[] | undefined,
  allowed: readonly T[],
  what: string,
): T[] | undefined {
  if (values === undefined) return undefined;
  const out: T[] = [];
  for (const raw of values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v.length > 0)) {
    const type = allowed.find((t) => t.toLowerCase() === raw.toLowerCase());
    if (type === undefined)
      throw new UsageError(`--type ${JSON.stringify(raw)} is not ${what}; use one of ${allowed.join(', ')}`);
    if (!out.includes(type)) out.push(type);
  }
  if (out.length === 0) throw new UsageError('--type needs a value');
  return out;
}
