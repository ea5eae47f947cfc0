/**
 * Event data read back is checked before it is folded: random and mutated data for every
 * experiment event type, given to `upcast` and to `replay` after a recorded history, either passes
 * or throws a typed `RoundlogError`, never a `TypeError` or `RangeError` from the fold; what passes
 * folds into a state the readers of a state can use. And what the engine appends is checked by the
 * same schemas, so it reads back.
 */
import test from 'ava';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, RoundlogError } from '../../src/errors.ts';
import type { RecordedEvent } from '../../src/log/types.ts';
import { InvalidEventDataError } from '../../src/model/errors.ts';
import type { ExperimentEventType } from '../../src/model/events.ts';
import { breakpointManifest } from '../../src/model/manifest.ts';
import { checkEventsToAppend, EVENT_SCHEMAS, MAX_ROUND } from '../../src/model/schemas.ts';
import {
  currentParams,
  EXPERIMENT_EVENT_TYPES,
  hasBreakpoint,
  replay,
  roundCurrent,
  upcast,
} from '../../src/model/state.ts';

type Stored = Omit<RecordedEvent, 'revision' | 'position' | 'timestamp'> & {
  revision: string;
  position: string;
  timestamp: string;
};

const history: RecordedEvent[] = (
  JSON.parse(readFileSync(new URL('../fixtures/experiment-history-v1.json', import.meta.url), 'utf8')) as Stored[]
).map((e) => ({
  ...e,
  revision: BigInt(e.revision),
  position: BigInt(e.position),
  timestamp: new Date(e.timestamp),
}));

const actor = { user: 'u', host: 'h', pid: 1 };
const owner = { ...actor, processStart: null };
const retention = { keepLast: 2, keepEvery: null };
/** Valid data of every type: the fixture's, and written here for the types it lacks. */
const samples: Record<ExperimentEventType, unknown> = {
  ...(Object.fromEntries(history.map((e) => [e.type, e.data])) as Record<ExperimentEventType, unknown>),
  ForkedFrom: { v: 1, parentId: 'p', parentFolder: 'Experiment_0001', parentRound: 1, parentPosition: '12' },
  Forked: { v: 1, childId: 'c', childFolder: 'Experiment_0002', round: 1, by: actor },
  RoundsPruned: { v: 1, rounds: [{ round: 0, position: '5' }], retention, by: actor },
  RunStarted: { v: 1, runId: 'r', owner, heartbeatMs: 1000, tookOver: null },
  RunHeartbeat: { v: 1, runId: 'r' },
  RunFailed: { v: 1, runId: 'r', round: 1, attempt: 1, code: 'X', message: 'failed' },
  RunEnded: { v: 1, runId: 'r', roundCurrent: 6 },
};

test('every event type has a sample that fits its schema', (t) => {
  t.deepEqual(Object.keys(EVENT_SCHEMAS).sort(), [...EXPERIMENT_EVENT_TYPES].sort());
  for (const type of EXPERIMENT_EVENT_TYPES) t.notThrows(() => upcast(recorded(type, samples[type])), type);
});

function recorded(type: string, data: unknown, revision = BigInt(history.length)): RecordedEvent {
  return {
    type,
    data,
    stream: history[0]!.stream,
    revision,
    position: revision + 100n,
    id: `e${revision}`,
    timestamp: new Date(0),
  };
}

type Path = ReadonlyArray<string | number>;
function allPaths(value: unknown, at: Path = []): Path[] {
  const found: Path[] = [at];
  if (value !== null && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) {
      found.push(...allPaths(inner, [...at, Array.isArray(value) ? Number(key) : key]));
    }
  }
  return found;
}

function nested(depth: number, object: boolean): unknown {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = object ? { a: value } : [value];
  return value;
}

/** Values a foreign log or a damaged one could hold: wrong types, deep nesting, long text, huge numbers. */
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(
    null,
    undefined,
    true,
    0,
    -1,
    1.5,
    NaN,
    Infinity,
    -0,
    2 ** 53,
    1e15,
    4294967295,
    '',
    'x',
    '../../etc',
    '/abs',
    'a\u0000b',
    [],
    {},
    1n,
    new Date(0),
    new Uint8Array(4),
  ),
  // Built when the mutation is applied (see the property).
  fc.tuple(fc.integer({ min: 1, max: 10_000 }), fc.boolean()).map(([d, o]) => `\u0000deep:${d}:${o}`),
  fc.integer({ min: 1, max: 2_000 }).map((n) => 'x'.repeat(n * 1000)),
  fc.integer({ min: 0, max: 5_000_000 }),
);

function materialize(value: unknown): unknown {
  const deep = typeof value === 'string' ? /^\u0000deep:(\d+):(true|false)$/.exec(value) : null;
  return deep === null ? value : nested(Number(deep[1]), deep[2] === 'true');
}

type Mutation = { kind: 'set'; at: number; value: unknown } | { kind: 'delete'; at: number };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: anyValue }) },
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
);

/** `data` with one change at a path of its type's sample, copying only the containers on the path. */
function mutate(type: ExperimentEventType, data: unknown, m: Mutation): unknown {
  const paths = samplePaths[type];
  const target = paths[m.at % paths.length]!;
  if (target.length === 0) return m.kind === 'delete' ? {} : materialize(m.value);
  const shallow = (v: unknown) =>
    Array.isArray(v) ? [...(v as unknown[])] : v !== null && typeof v === 'object' ? { ...v } : v;
  const root = shallow(data);
  let parent = root as Record<string | number, unknown>;
  for (const key of target.slice(0, -1)) {
    if (parent === null || typeof parent !== 'object') return root; // an earlier change took the place away
    parent = parent[key] = shallow(parent[key]) as Record<string | number, unknown>;
  }
  if (parent === null || typeof parent !== 'object') return root;
  if (m.kind === 'delete') delete parent[target.at(-1)!];
  else parent[target.at(-1)!] = materialize(m.value);
  return root;
}

const samplePaths = Object.fromEntries(EXPERIMENT_EVENT_TYPES.map((type) => [type, allPaths(samples[type])])) as Record<
  ExperimentEventType,
  Path[]
>;

const mutatedEvent = fc.tuple(
  fc.constantFrom(...EXPERIMENT_EVENT_TYPES),
  fc.array(mutation, { minLength: 1, maxLength: 3 }),
);

/** Uses what a reader of the state uses: the rounds, their records, the manifest of each. */
function readState(state: ReturnType<typeof replay>): void {
  for (let i = 0; i < roundCurrent(state); i++) {
    const record = state.rounds[i];
    if (record === undefined) continue;
    hasBreakpoint(state, i);
    if (state.created !== null) JSON.stringify(breakpointManifest(state.created, record).manifest);
  }
  currentParams(state);
}

test('mutated event data: upcast and replay pass, or throw a typed RoundlogError', (t) => {
  let refused = 0;
  fc.assert(
    fc.property(mutatedEvent, ([type, ms]) => {
      // Applied here, not in the arbitrary: fast-check would recurse into a deep value to print it.
      const data = ms.reduce<unknown>((d, m) => mutate(type, d, m), samples[type]);
      const event = recorded(type, data);
      for (const run of [
        () => upcast(event),
        () => readState(replay([...history, event])),
        // As the first event of a stream (a creation, or anything else in its place).
        () => readState(replay([recorded(type, data, 0n)])),
      ]) {
        try {
          run();
        } catch (error) {
          if (!(error instanceof RoundlogError)) throw error;
          refused++;
        }
      }
    }),
    { numRuns: 600, seed: 1919 },
  );
  t.true(refused > 0);
});

test('the error names the stream, the revision, the type, the field and what is wrong', (t) => {
  const event = recorded('RoundCompleted', { ...(samples.RoundCompleted as object), round: 'x' });
  const error = t.throws(() => replay([...history, event]), { instanceOf: InvalidEventDataError })!;
  t.is(error.code, 'INVALID_EVENT_DATA');
  t.like(error, { stream: history[0]!.stream, revision: BigInt(history.length), eventType: 'RoundCompleted' });
  t.is(error.field, 'data.round');
  t.regex(error.message, /event 45 of stream "experiment-.*" \(a RoundCompleted\) cannot be read: data\.round is "x"/);
  t.regex(error.message, /roundlog verify/);
  const long = recorded('RoundStarted', { v: 1, round: 0, attempt: 1, nodes: ['n'.repeat(1_000_000)] });
  const named = t.throws(() => upcast(long), { instanceOf: InvalidEventDataError })!;
  t.is(named.field, 'data.nodes[0]');
  t.true(named.message.length < 1000, 'a huge value is not copied into the message');
});

test('RunEnded records a signal by its name only: any other text is refused', (t) => {
  const ended = (signal: unknown) => recorded('RunEnded', { v: 1, runId: 'r', roundCurrent: 1, signal });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGUSR2', null]) t.notThrows(() => upcast(ended(signal)), String(signal));
  for (const signal of ['SIGTERM; rm -rf ~', 'sigterm', '', 'SIG'.padEnd(1000, 'X'), 15]) {
    const error = t.throws(() => upcast(ended(signal)), { instanceOf: InvalidEventDataError }, String(signal));
    t.is(error!.field, 'data.signal');
  }
});

test('a round index past MAX_ROUND is refused before the fold makes an array of it', (t) => {
  const event = recorded('RoundCompleted', { ...(samples.RoundCompleted as object), round: MAX_ROUND + 1 });
  const error = t.throws(() => replay([...history, event]), { instanceOf: InvalidEventDataError })!;
  t.is(error.field, 'data.round');
  t.notThrows(() =>
    replay([...history, recorded('RoundCompleted', { ...(samples.RoundCompleted as object), round: 7 })]),
  );
});

test('appends are checked by the schemas the reads use: what is written reads back', (t) => {
  t.notThrows(() => checkEventsToAppend(EXPERIMENT_EVENT_TYPES.map((type) => ({ type, data: samples[type] }))));
  const error = t.throws(
    () =>
      checkEventsToAppend([
        { type: 'RunHeartbeat', data: samples.RunHeartbeat },
        { type: 'RoundCompleted', data: { ...(samples.RoundCompleted as object), attempt: 1.5 } },
      ]),
    { instanceOf: InvalidArgumentError },
  )!;
  t.is(error.code, 'INVALID_ARGUMENT');
  t.regex(error.message, /^events\[1\]\.data\.attempt /);
  t.throws(() => checkEventsToAppend([{ type: 'Nonsense', data: { v: 1 } }]), { message: /events\[0\]\.type/ });
});
