/** The one-line descriptions of history entries and events name rounds the way the commands do. */
import test from 'ava';
import { describeEntry, describeEvent, formatDuration } from '../../src/audit/describe.ts';

const by = { user: 'ada', host: 'lab', pid: 42 };

test('a Rewound names the last round kept, as `roundlog rewind` does, and the round that runs next', (t) => {
  const line = describeEvent({
    type: 'Rewound',
    data: { v: 1, roundCurrent: 4, reason: 'bad data', supersededRounds: [4, 5], by },
  });
  t.regex(line, /^to round 3 \(round 4 runs next\) by ada@lab \(pid 42\): bad data; superseded rounds /);
});

test('durations read in ms below a second and in seconds above', (t) => {
  t.is(formatDuration(999), '999 ms');
  t.is(formatDuration(1290), '1.29 s');
});

test('a pruning that took a round of the branch and a superseded round of the same index tells them apart', (t) => {
  const line = describeEntry({
    kind: 'pruned',
    rounds: [
      { round: 3, position: '120' },
      { round: 3, position: '87' },
      { round: 4, position: '130' },
    ],
    retention: { keepLast: 2, keepEvery: null },
    by,
    position: 200n,
    revision: 20n,
    time: new Date(0),
  } as Parameters<typeof describeEntry>[0]);
  t.regex(line, /^parameters of rounds 3 \(position 120\), 3 \(position 87\), 4 deleted by retention/);
});
