/**
 * Shared by the decider tables: the committed v1 history (3 rounds, a resume from breakpoint_0000
 * superseding rounds 1 and 2, the limit raised to 6, rounds run to 6, finished), an actor, and
 * the ava macro that runs one row of a table through `given / when / then`.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import type { BlobRef } from '../../src/blobs/types.ts';
import type { RecordedEvent } from '../../src/log/types.ts';
import type { Actor, ExperimentCreated, ExperimentEvent, TrainingPlanRef } from '../../src/model/index.ts';
import { given, type GivenEvent, type When } from '../../src/testing/index.ts';

type Stored = {
  type: string;
  data: unknown;
  stream: string;
  revision: string;
  position: string;
  id: string;
  timestamp: string;
};

/** The committed history; `history[r]` has revision `r` and position `r + 1`. */
export const history: readonly RecordedEvent[] = (
  JSON.parse(readFileSync(new URL('../fixtures/experiment-history-v1.json', import.meta.url), 'utf8')) as Stored[]
).map((e) => ({ ...e, revision: BigInt(e.revision), position: BigInt(e.position), timestamp: new Date(e.timestamp) }));

/** The history up to and including revision `revision`. */
export function upTo(revision: number): readonly RecordedEvent[] {
  return history.slice(0, revision + 1);
}

/** A recorded event as the domain event a decider returns. */
export function domain(revision: number): ExperimentEvent {
  const event = history[revision]!;
  return { type: event.type, data: event.data } as ExperimentEvent;
}

/** The data of the recorded event at `revision`. */
export function dataAt<T>(revision: number): T {
  return history[revision]!.data as T;
}

/** Who recorded the fixture. */
export const FIXTURE_ACTOR: Actor = dataAt<ExperimentCreated>(0).createdBy;
export const ACTOR: Actor = { user: 'ada', host: 'lab-7', pid: 4242 };
export const CONTEXT = { actor: ACTOR } as const;

export function blob(digit: string, bytes = 128): BlobRef {
  return { sha256: digit.repeat(64), bytes, encoding: 'tensors/msgpack' };
}

export function plan(digit: string): TrainingPlanRef {
  return {
    module: 'plan.ts',
    export: 'default',
    sha256: digit.repeat(64),
    source: { ...blob(digit, 10), encoding: 'text/source' },
  };
}

/** A small experiment of its own (not federated unless `federated` is given). */
export function created(overrides: Partial<ExperimentCreated> = {}): ExperimentEvent {
  return {
    type: 'ExperimentCreated',
    data: {
      v: 1,
      experimentId: 'e-1',
      number: 0,
      folder: 'Experiment_0000',
      roundLimit: null,
      seed: 1,
      saveBreakpoints: false,
      initialParams: blob('0'),
      config: null,
      federated: null,
      createdBy: ACTOR,
      roundlogVersion: '0.1.0',
      importedFrom: null,
      ...overrides,
    },
  };
}

/** A `RoundCompleted` of `round` (attempt 1) with parameters `blob(digit)`. */
export function completed(round: number, digit = String(round + 1)): ExperimentEvent {
  return {
    type: 'RoundCompleted',
    data: {
      v: 1,
      round,
      attempt: 1,
      params: blob(digit),
      state: null,
      nodes: [],
      metrics: {},
      breakpoint: false,
      durationMs: 0,
    },
  };
}

/** One row of a decider table: the history, the command, and the events or the error expected. */
export type Row = {
  title: string;
  given: readonly GivenEvent[];
  when: When;
  context?: { actor: Actor };
} & (
  | { then: readonly ExperimentEvent[] }
  | { throws: abstract new (...args: never[]) => Error; fields?: Record<string, unknown>; message?: RegExp }
);

/** Runs a row; the title is the row's. */
export const decides = test.macro({
  exec(t, row: Row) {
    const spec = given(row.given).when(row.when, row.context ?? CONTEXT);
    if ('then' in row) {
      t.notThrows(() => spec.then(row.then));
    } else {
      const error = spec.thenThrows(row.throws, row.fields as never);
      t.true(error instanceof row.throws);
      if (row.message) t.regex(error.message, row.message);
    }
  },
  title: (provided, row: Row) => provided ?? row.title,
});

/** Declares one test per row. */
export function table(rows: readonly Row[]): void {
  for (const row of rows) test(decides, row);
}
