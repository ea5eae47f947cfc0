/**
 * Decider tests as tables: `given(events).when(command).then(events)` or
 * `.thenThrows(ErrorClass, fields)`. The given events are recorded (envelopes with increasing
 * revision and position, a fixed timestamp) and folded with the model's `replay`; the command is
 * decided on that state, frozen so a decider that changes it fails. Framework-agnostic: a
 * mismatch throws node's `AssertionError` (with a diff).
 */
import assert from 'node:assert/strict';
import type { RecordedEvent } from '../log/types.ts';
import {
  decide,
  experimentStream,
  replay,
  type DecideContext,
  type ExperimentCommand,
  type ExperimentEvent,
  type ExperimentState,
} from '../model/index.ts';

/** The timestamp of every given event the helper records. */
export const GIVEN_TIMESTAMP = new Date('2026-01-01T00:00:00.000Z');

/** A given event: a domain event (recorded by the helper) or one already recorded (e.g. from a fixture). */
export type GivenEvent = ExperimentEvent | RecordedEvent;

/** A command, or a function deciding on the state (for a decider outside `decide`, e.g. with options). */
export type When = ExperimentCommand | ((state: ExperimentState) => readonly ExperimentEvent[]);

export type GivenOptions = {
  /**
   * The stream of the events the helper records; default the stream of the first recorded one,
   * else `experiment-<id>` of the first `ExperimentCreated`, else `experiment-given`.
   */
  stream?: string;
};

export interface DeciderSpecification {
  /** The state the given events fold to (frozen). */
  readonly state: ExperimentState;
  /** The given events as recorded. */
  readonly recorded: readonly RecordedEvent[];
  when(command: When, context?: DecideContext): DecisionSpecification;
}

export interface DecisionSpecification {
  /**
   * Asserts the decided events equal `expected`, keys in the same order (the encoded bytes depend
   * on it), and that they fold onto the state; returns them.
   */
  then(expected: readonly ExperimentEvent[]): readonly ExperimentEvent[];
  /** Asserts the decision throws an `ErrorClass` whose fields equal `fields`; returns the error. */
  thenThrows<E extends Error>(ErrorClass: abstract new (...args: never[]) => E, fields?: Partial<E>): E;
  /** The decided events, unchecked. */
  events(): readonly ExperimentEvent[];
}

/** Starts a specification from the history `events` (none: an experiment not created yet). */
export function given(events: Iterable<GivenEvent> = [], options: GivenOptions = {}): DeciderSpecification {
  const recorded = record([...events], options.stream);
  const state = deepFreeze(replay(recorded));
  return {
    state,
    recorded,
    when(command: When, context?: DecideContext): DecisionSpecification {
      const run = () => (typeof command === 'function' ? command(state) : decide(state, command, context));
      return {
        events: run,
        then(expected) {
          const actual = run();
          assert.deepStrictEqual(actual, expected);
          assertSameKeyOrder(actual, expected, 'events');
          replay(record([...recorded, ...actual], options.stream).slice(recorded.length), state);
          return actual;
        },
        thenThrows(ErrorClass, fields) {
          let actual: readonly ExperimentEvent[];
          try {
            actual = run();
          } catch (error) {
            const { name, message } = (error ?? {}) as Partial<Error>;
            const threw = `expected a ${ErrorClass.name}, the decider threw ${name}: ${message}`;
            assert.ok(error instanceof ErrorClass, threw);
            for (const [key, value] of Object.entries(fields ?? {})) {
              assert.deepStrictEqual((error as unknown as Record<string, unknown>)[key], value, `field ${key}`);
            }
            return error;
          }
          const types = JSON.stringify(actual.map((e) => e.type));
          assert.fail(`expected a ${ErrorClass.name}, the decider decided ${types}`);
        },
      };
    },
  };
}

/** Envelopes for the given events: revisions and positions go on from the last recorded one. */
function record(events: readonly GivenEvent[], stream?: string): RecordedEvent[] {
  const created = events.find((e) => e.type === 'ExperimentCreated') as ExperimentEvent | undefined;
  const name =
    stream ??
    events.find(isRecorded)?.stream ??
    (created?.type === 'ExperimentCreated' ? experimentStream(created.data.experimentId) : 'experiment-given');
  const out: RecordedEvent[] = [];
  let revision = -1n;
  let position = -1n;
  for (const event of events) {
    if (isRecorded(event)) {
      out.push(event);
    } else {
      out.push({
        type: event.type,
        data: event.data,
        stream: name,
        revision: revision + 1n,
        position: position + 1n,
        id: `given-${revision + 1n}`,
        timestamp: GIVEN_TIMESTAMP,
      });
    }
    revision = out.at(-1)!.revision;
    position = out.at(-1)!.position;
  }
  return out;
}

function isRecorded(event: GivenEvent): event is RecordedEvent {
  return 'revision' in event && typeof event.revision === 'bigint';
}

function assertSameKeyOrder(actual: unknown, expected: unknown, at: string): void {
  if (actual === null || expected === null || typeof actual !== 'object' || typeof expected !== 'object') return;
  if (actual instanceof Date || ArrayBuffer.isView(actual)) return;
  const ka = Object.keys(actual);
  const ke = Object.keys(expected);
  assert.deepStrictEqual(ka, ke, `keys of ${at} in another order`);
  for (const key of ka) {
    const [a, e] = [actual as Record<string, unknown>, expected as Record<string, unknown>];
    assertSameKeyOrder(a[key], e[key], `${at}.${key}`);
  }
}

function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value) || ArrayBuffer.isView(value)) return value;
  Object.freeze(value);
  for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  return value;
}
