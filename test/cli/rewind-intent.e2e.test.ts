/**
 * Going back is an explicit intent: `roundlog resume` of a breakpoint older than the experiment's
 * last round is refused (exit 1, nothing appended, nothing moved), saying which rounds it would
 * supersede and how to ask for it; with `--rewind` it goes back and says what it superseded.
 */
import test from 'ava';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

type Listing = Array<{ folder: string; roundCurrent: number; roundLimit: number; status: string }>;

test(
  'resume of an older breakpoint of a finished experiment is refused without --rewind, ' + 'rewinds with it',
  async (t) => {
    const root = tempDir();
    const run = await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--root', root]);
    t.is(run.code, 0, run.stderr);
    const dir = path.join(root, 'experiments', 'Experiment_0000');
    const folders = readdirSync(dir).sort();
    t.is(folders.filter((f) => f.startsWith('breakpoint_')).length, 10);
    const eventsBefore = await roundlog(['events', 'Experiment_0000', '--json', '--root', root]);

    const refused = await roundlog(['resume', path.join(dir, 'breakpoint_0002'), '--root', root]);
    t.is(refused.code, 1, refused.stdout);
    t.regex(refused.stderr, /REWIND_NOT_REQUESTED|would supersede/);
    t.regex(refused.stderr, /would supersede 7 rounds \(rounds 3-9; 10 rounds are completed/);
    // The commands it names act on the root this one ran on.
    t.true(refused.stderr.includes(`roundlog resume --root ${root} <path> --rewind`), refused.stderr);
    t.true(refused.stderr.includes(`roundlog rewind --root ${root} Experiment_0000 --round 2 --reason TEXT`));
    t.deepEqual(readdirSync(dir).sort(), folders, 'no folder moved');
    const eventsAfter = await roundlog(['events', 'Experiment_0000', '--json', '--root', root]);
    t.is(eventsAfter.stdout, eventsBefore.stdout, 'nothing appended');
    const ls = await roundlog(['ls', '--json', '--root', root]);
    t.like((JSON.parse(ls.stdout) as Listing)[0], { roundCurrent: 10, roundLimit: 10, status: 'finished' });

    const rewound = await roundlog(['resume', path.join(dir, 'breakpoint_0002'), '--rewind', '--root', root]);
    t.is(rewound.code, 0, rewound.stderr);
    t.regex(
      rewound.stdout,
      new RegExp(
        /resumed Experiment_0000 \(.*\) after round 2 \(round 3 runs next\), 3\/10 rounds done, /.source +
          /rewound: rounds 3, 4, 5, 6, 7, 8, 9 superseded/.source,
      ),
    );
    t.regex(rewound.stdout, /done: 10 rounds completed/);
    t.deepEqual(readdirSync(path.join(dir, 'superseded')).length, 7);
  },
);
