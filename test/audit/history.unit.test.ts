/**
 * The history projection as a pure function of a stream's events (hand-written `RecordedEvent`s),
 * above all the rule for aborted attempts; and the CLI's CSV and time parsing.
 */
import test from 'ava';
import { HistoryProjector, historyOf, type HistoryEntry } from '../../src/audit/history.ts';
import { parseTime } from '../../src/cli/filters.ts';
import { csvLine } from '../../src/cli/output.ts';
import { UsageError } from '../../src/cli/args.ts';
import type { RecordedEvent } from '../../src/log/types.ts';
import { parseCsv } from './helpers.ts';

const ACTOR = { user: 'alice', host: 'lab-1', pid: 4242 };
const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);

/** A stream written by hand: each call appends one event at the next revision, one second apart. */
function stream() {
  const events: RecordedEvent[] = [];
  const add = (type: string, data: Record<string, unknown>) => {
    const n = events.length;
    events.push({
      type,
      data: { v: 1, ...data },
      stream: 'experiment-x',
      revision: BigInt(n),
      // Other streams write between these events: positions grow faster than revisions.
      position: BigInt(10 * n + 3),
      id: `id-${n}`,
      timestamp: new Date(T0 + 1000 * n),
    });
    return add;
  };
  return { events, add };
}

const created = {
  experimentId: 'x',
  number: 0,
  folder: 'Experiment_0000',
  roundLimit: 5,
  seed: 1,
  saveBreakpoints: true,
  initialParams: null,
  config: null,
  federated: null,
  createdBy: ACTOR,
  roundlogVersion: '0.1.0',
  importedFrom: null,
};
const params = { sha256: 'a'.repeat(64), bytes: 8, encoding: 'tensors/msgpack' };
const completed = (round: number, attempt: number, loss: number) => ({
  round,
  attempt,
  params,
  state: null,
  nodes: [
    { node: 'n1', sampleSize: 10, metrics: { loss: loss + 1 } },
    { node: 'n2', sampleSize: 30, metrics: { loss: loss - 1 } },
  ],
  metrics: { loss },
  breakpoint: true,
  durationMs: 25,
});
const replied = (round: number, attempt: number, node: string, durationMs: number) => ({
  round,
  attempt,
  node,
  sampleSize: node === 'n1' ? 10 : 30,
  params,
  metrics: {},
  durationMs,
});

const brief = (entries: readonly HistoryEntry[]) =>
  entries.map((e) =>
    'round' in e && (e.kind === 'round' || e.kind === 'aborted' || e.kind === 'started')
      ? `${e.kind} ${e.round}/${e.attempt}`
      : e.kind,
  );

test(
  'a round is one entry at its RoundCompleted, with nodes, ' +
    'sample sizes, metrics, per-node durations and its start time',
  (t) => {
    const { events, add } = stream();
    add('ExperimentCreated', created)('RoundStarted', { round: 0, attempt: 1, nodes: ['n1', 'n2'] })(
      'NodeReplied',
      replied(0, 1, 'n1', 7),
    )('NodeReplied', replied(0, 1, 'n2', 9))('RoundCompleted', completed(0, 1, 0.5));
    const entries = historyOf(events);
    t.deepEqual(brief(entries), ['created', 'round 0/1']);
    const round = entries[1]!;
    if (round.kind !== 'round') return t.fail();
    t.is(round.position, 43n);
    t.is(round.revision, 4n);
    t.deepEqual(round.time, new Date(T0 + 4000));
    t.deepEqual(round.startedAt, new Date(T0 + 1000));
    t.deepEqual(round.nodes, [
      { node: 'n1', sampleSize: 10, metrics: { loss: 1.5 }, durationMs: 7 },
      { node: 'n2', sampleSize: 30, metrics: { loss: -0.5 }, durationMs: 9 },
    ]);
    t.deepEqual(round.metrics, { loss: 0.5 });
    t.true(round.breakpoint);
    const first = entries[0]!;
    t.is(first.kind, 'created');
    t.deepEqual(first.kind === 'created' ? first.by : null, ACTOR);
  },
);

test('an attempt is aborted when the next RoundStarted, Resumed or Rewound comes before its RoundCompleted', (t) => {
  const { events, add } = stream();
  add('ExperimentCreated', created)(
    // ended by the next RoundStarted (a retry in the same process)
    'RoundStarted',
    { round: 0, attempt: 1, nodes: ['n1', 'n2'] },
  )('RoundStarted', { round: 0, attempt: 2, nodes: ['n1', 'n2'] })('RoundCompleted', completed(0, 2, 0.4))(
    // ended by a Resumed (the process died; another one loaded the breakpoint)
    'RoundStarted',
    { round: 1, attempt: 1, nodes: ['n1'] },
  )('Resumed', { roundCurrent: 1, breakpoint: 'breakpoint_0000', folder: null, by: ACTOR })(
    // ended by a Rewound
    'RoundStarted',
    { round: 1, attempt: 2, nodes: ['n2'] },
  )('Rewound', { roundCurrent: 0, reason: 'bad data', supersededRounds: [0], by: ACTOR })('Resumed', {
    roundCurrent: 0,
    breakpoint: null,
    folder: null,
    by: ACTOR,
  });
  const entries = historyOf(events);
  t.deepEqual(brief(entries), [
    'created',
    'aborted 0/1',
    'round 0/2',
    'aborted 1/1',
    'resumed',
    'aborted 1/2',
    'rewound',
    'resumed',
  ]);
  const aborted = entries.filter((e) => e.kind === 'aborted');
  t.deepEqual(
    aborted.map((e) => [e.position, e.endedBy.type, e.endedBy.position, e.nodes]),
    [
      [13n, 'RoundStarted', 23n, ['n1', 'n2']],
      [43n, 'Resumed', 53n, ['n1']],
      [63n, 'Rewound', 73n, ['n2']],
    ],
  );
  // Each aborted entry carries the time of its own RoundStarted.
  t.deepEqual(aborted[1]!.time, new Date(T0 + 4000));
});

test(
  'events that do not end an attempt (a fork from another process, ' +
    'settings) leave it running: its RoundCompleted completes it',
  (t) => {
    const { events, add } = stream();
    add('ExperimentCreated', created)('RoundStarted', { round: 0, attempt: 1, nodes: ['n1', 'n2'] })('Forked', {
      childId: 'y',
      childFolder: 'Experiment_0001',
      round: 0,
      by: ACTOR,
    })('SettingsChanged', { roundLimit: 9, by: ACTOR })('RoundCompleted', completed(0, 1, 0.3));
    const entries = historyOf(events);
    t.deepEqual(brief(entries), ['created', 'forked', 'settings', 'round 0/1']);
    const round = entries[3]!;
    t.deepEqual(round.kind === 'round' ? round.startedAt : null, new Date(T0 + 1000));
    const settings = entries[2]!;
    t.deepEqual(settings.kind === 'settings' ? settings.changes : null, { roundLimit: 9 });
  },
);

test('a RoundCompleted of another attempt does not complete the open one', (t) => {
  const { events, add } = stream();
  add('ExperimentCreated', created)('RoundStarted', { round: 1, attempt: 3, nodes: ['n1'] })(
    'RoundCompleted',
    completed(0, 1, 0.3),
  )('Resumed', {
    roundCurrent: 1,
    breakpoint: null,
    folder: null,
    by: ACTOR,
  });
  const entries = historyOf(events);
  t.deepEqual(brief(entries), ['created', 'aborted 1/3', 'round 0/1', 'resumed']);
  const round = entries[2]!;
  t.is(round.kind === 'round' ? round.startedAt : undefined, null, 'recorded without a RoundStarted of its own');
});

test(
  'the last attempt with nothing after it is "started", ' +
    'reported once; a live projector reports every start at once',
  (t) => {
    const { events, add } = stream();
    add('ExperimentCreated', created)('RoundStarted', { round: 0, attempt: 1, nodes: ['n1', 'n2'] });
    t.deepEqual(brief(historyOf(events)), ['created', 'started 0/1']);

    const projector = new HistoryProjector();
    t.deepEqual(brief(projector.push(events[0]!)), ['created']);
    t.deepEqual(brief(projector.push(events[1]!)), [], 'not live: the attempt waits for what follows');
    t.deepEqual(brief(projector.end()), ['started 0/1']);
    t.deepEqual(projector.end(), [], 'reported once');
    projector.live = true;
    add('RoundStarted', { round: 0, attempt: 2, nodes: ['n1'] })('RoundCompleted', completed(0, 2, 0.2));
    t.deepEqual(brief(projector.push(events[2]!)), ['aborted 0/1', 'started 0/2']);
    t.deepEqual(brief(projector.push(events[3]!)), ['round 0/2']);
    t.deepEqual(projector.end(), [], 'nothing open');
  },
);

test('imports, forks, pruning and the end each make one entry, with who did it where the event says', (t) => {
  const { events, add } = stream();
  add('ExperimentCreated', {
    ...created,
    importedFrom: {
      experimentId: 'p',
      folder: 'Experiment_0007',
      round: 3,
      logPosition: '99',
      breakpointSha256: 'b'.repeat(64),
      params,
      state: null,
    },
  })('ForkedFrom', { parentId: 'p', parentFolder: 'Experiment_0007', parentRound: 3, parentPosition: '99' })(
    'RoundsPruned',
    { rounds: [{ round: 0, position: '5' }], retention: { keepLast: 2, keepEvery: null }, by: ACTOR },
  )('ExperimentFinished', { roundCurrent: 4 });
  const entries = historyOf(events);
  t.deepEqual(brief(entries), ['created', 'forked-from', 'pruned', 'finished']);
  const first = entries[0]!;
  t.deepEqual(first.kind === 'created' ? first.importedFrom : null, {
    experimentId: 'p',
    folder: 'Experiment_0007',
    round: 3,
  });
  const fork = entries[1]!;
  t.deepEqual(fork.kind === 'forked-from' ? [fork.parentId, fork.parentRound, fork.parentPosition] : null, [
    'p',
    3,
    '99',
  ]);
  const pruned = entries[2]!;
  t.deepEqual(pruned.kind === 'pruned' ? [pruned.rounds, pruned.retention, pruned.by] : null, [
    [{ round: 0, position: '5' }],
    { keepLast: 2, keepEvery: null },
    ACTOR,
  ]);
  const finished = entries[3]!;
  t.is(finished.kind === 'finished' ? finished.roundCurrent : null, 4);
});

test('csvLine quotes what needs quoting, and parses back', (t) => {
  const line = csvLine(['plain', 'a,b', 'say "hi"', 'two\nlines', null, 7n, 1.5, true, undefined]);
  t.is(line, 'plain,"a,b","say ""hi""","two\nlines",,7,1.5,true,');
  t.deepEqual(parseCsv(`h1,h2,h3,h4,h5,h6,h7,h8,h9\n${line}\n`), [
    { h1: 'plain', h2: 'a,b', h3: 'say "hi"', h4: 'two\nlines', h5: '', h6: '7', h7: '1.5', h8: 'true', h9: '' },
  ]);
});

test('parseTime takes ISO 8601 or a duration before now; anything else is a usage error', (t) => {
  const now = new Date('2025-06-01T12:00:00.000Z');
  t.deepEqual(parseTime('--since', '2025-05-31T10:00:00Z', now), new Date('2025-05-31T10:00:00Z'));
  t.deepEqual(parseTime('--since', '2025-05-31', now), new Date('2025-05-31T00:00:00Z'));
  t.deepEqual(parseTime('--since', '90s', now), new Date('2025-06-01T11:58:30.000Z'));
  t.deepEqual(parseTime('--since', '15m', now), new Date('2025-06-01T11:45:00.000Z'));
  t.deepEqual(parseTime('--since', '2h', now), new Date('2025-06-01T10:00:00.000Z'));
  t.deepEqual(parseTime('--until', '7d', now), new Date('2025-05-25T12:00:00.000Z'));
  for (const bad of ['yesterday', '2h ago', '-5m', '2025-13-45', '', '1700000000']) {
    const error = t.throws(() => parseTime('--since', bad, now), { instanceOf: UsageError });
    t.is(error!.code, 'USAGE');
    t.regex(error!.message, /--since must be an ISO 8601 time/);
  }
});
