/** The one-line descriptions of history entries and events name rounds the way the commands do. */
import test from 'ava';
import { describeEvent, formatDuration } from '../../src/audit/describe.ts';

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
