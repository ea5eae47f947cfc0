/** `roundlog rewind`: the experiment continues from round R in the same stream; later rounds are superseded. */
import test from 'ava';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { syntheticClinicalFederation } from '../../examples/logistic-regression/data.ts';
import { SEED } from '../../examples/logistic-regression/experiment.ts';
import { Experiment } from '../../src/federated/experiment.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import {
  EXAMPLE,
  NO_BREAKPOINTS,
  REPO,
  completions,
  eventsOf,
  history,
  roundlog,
  roundlogJson,
  sha256File,
} from './support.ts';

test.after.always(removeTempDirs);

type Rewind = {
  folder: string;
  round: number;
  roundCurrent: number;
  supersededRounds: number[];
  reason: string;
  by: { user: string; host: string; pid: number };
  settingsRestored: boolean;
  logPosition: string;
  breakpoint: string;
  moved: string[];
};

const folders = (dir: string) => readdirSync(dir).sort();
const breakpoints = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `breakpoint_${String(from + i).padStart(4, '0')}`);

test(
  'rewind, then resume with no path: rounds after R run again, the old ' +
    'ones are superseded (folders and state), all of it stays in the log',
  async (t) => {
    const root = tempDir();
    t.is((await roundlog(['run', EXAMPLE, '--rounds', '5', '--root', root])).code, 0);
    const before = await history(root, 'Experiment_0000');
    const dir = path.join(root, 'experiments', 'Experiment_0000');
    const manifest4 = readFileSync(path.join(dir, 'breakpoint_0004', 'breakpoint.json'), 'utf8');
    const replayBefore = await roundlogJson<{ path: string; logPosition: string }>([
      'replay',
      'Experiment_0000',
      '--round',
      '3',
      '--root',
      root,
    ]);

    const rewind = await roundlogJson<Rewind>([
      'rewind',
      'Experiment_0000',
      '--round',
      '2',
      '--reason',
      'hospital-b sent a corrupted extract',
      '--root',
      root,
    ]);
    t.like(rewind, {
      folder: 'Experiment_0000',
      round: 2,
      roundCurrent: 3,
      supersededRounds: [3, 4],
      reason: 'hospital-b sent a corrupted extract',
      settingsRestored: false,
    });
    t.is(rewind.by.user, os.userInfo().username);
    t.is(rewind.by.host, os.hostname());
    t.is(rewind.by.pid, process.pid, 'the pid of the process that ran roundlog (this one: main runs in process)');
    t.is(rewind.breakpoint, path.join(dir, 'breakpoint_0002'));
    t.deepEqual(folders(dir), [...breakpoints(0, 2), 'superseded', 'tensorboard']);
    t.deepEqual(folders(path.join(dir, 'superseded')), ['breakpoint_0003.1', 'breakpoint_0004.1']);
    t.deepEqual(rewind.moved.sort(), [
      path.join(dir, 'superseded', 'breakpoint_0003.1'),
      path.join(dir, 'superseded', 'breakpoint_0004.1'),
    ]);
    t.is(
      readFileSync(path.join(dir, 'superseded', 'breakpoint_0004.1', 'breakpoint.json'), 'utf8'),
      manifest4,
      'moved, not rewritten',
    );

    const ls = JSON.parse((await roundlog(['ls', '--json', '--root', root])).stdout) as Array<{
      roundCurrent: number;
      status: string;
    }>;
    t.like(ls[0], { roundCurrent: 3, status: 'stopped' });

    const resume = await roundlog(['resume', '--root', root]);
    t.is(resume.code, 0, resume.stderr);
    t.regex(resume.stdout, /resumed Experiment_0000 \(.*\) after round 2 \(round 3 runs next\), 3\/10 rounds done/);
    t.regex(resume.stdout, /done: 10 rounds completed/);

    const { events, state } = await history(root, 'Experiment_0000');
    const [rewound, ...moreRewinds] = eventsOf(events, 'Rewound');
    t.is(moreRewinds.length, 0, 'the resume continued from round 2: nothing more to rewind');
    t.like(rewound!.data, {
      roundCurrent: 3,
      reason: 'hospital-b sent a corrupted extract',
      supersededRounds: [3, 4],
      by: rewind.by,
    });
    t.is(String(rewound!.position), rewind.logPosition);
    t.like(eventsOf(events, 'Resumed')[0]!.data, { roundCurrent: 3, breakpoint: 'breakpoint_0002' });

    t.is(state.rounds.length, 10);
    t.false(state.rounds.some((r) => r === undefined));
    t.deepEqual(
      state.superseded.map((r) => r.round),
      [3, 4],
    );
    for (const round of [3, 4]) {
      const [first, second, ...more] = completions(events, round);
      t.is(more.length, 0);
      t.true(first!.position < rewound!.position && rewound!.position < second!.position);
      t.like(first!.data, { attempt: 1 });
      t.like(second!.data, { attempt: 2 });
      t.is(state.rounds[round]!.position, second!.position, 'the current branch holds the new round');
      t.is(state.superseded.find((r) => r.round === round)!.position, first!.position);
      // The same seed, state and settings: the re-run round draws what the first one drew.
      t.is(second!.data.params!.sha256, first!.data.params!.sha256);
    }
    for (const round of [0, 1, 2])
      t.is(state.rounds[round]!.position, before.state.rounds[round]!.position, `round ${round} kept`);
    t.deepEqual(folders(dir), [...breakpoints(0, 9), 'superseded', 'tensorboard']);
    t.deepEqual(folders(path.join(dir, 'superseded')), ['breakpoint_0003.1', 'breakpoint_0004.1']);
    const old3 = JSON.parse(readFileSync(path.join(dir, 'superseded', 'breakpoint_0003.1', 'breakpoint.json'), 'utf8'));
    t.is(old3.logPosition, String(completions(events, 3)[0]!.position));
    const new3 = JSON.parse(readFileSync(path.join(dir, 'breakpoint_0003', 'breakpoint.json'), 'utf8'));
    t.is(new3.logPosition, String(completions(events, 3)[1]!.position));
    t.true(state.finished);

    // The replay of round 3 made before the rewind is of the round now superseded: a new replay of
    // round 3 takes the default place and the old one moves to the superseded round's place.
    const replayAfter = await roundlogJson<{ path: string; logPosition: string }>([
      'replay',
      'Experiment_0000',
      '--round',
      '3',
      '--root',
      root,
    ]);
    t.is(replayAfter.path, replayBefore.path);
    t.is(replayAfter.logPosition, String(completions(events, 3)[1]!.position));
    const replays = path.join(root, 'replays', 'Experiment_0000');
    t.deepEqual(folders(replays), ['breakpoint_0003', 'superseded']);
    t.deepEqual(folders(path.join(replays, 'superseded')), [`breakpoint_0003-${replayBefore.logPosition}`]);
    t.is(
      JSON.parse(
        readFileSync(
          path.join(replays, 'superseded', `breakpoint_0003-${replayBefore.logPosition}`, 'breakpoint.json'),
          'utf8',
        ),
      ).logPosition,
      replayBefore.logPosition,
    );
  },
);

test(
  'rewind to a round that saved no breakpoint folder writes ' + 'it from the log, and resume continues from that round',
  async (t) => {
    const root = tempDir();
    t.is((await roundlog(['run', NO_BREAKPOINTS, '--rounds', '4', '--root', root])).code, 0);
    const dir = path.join(root, 'experiments', 'Experiment_0000');
    t.false(existsSync(path.join(dir, 'breakpoint_0001')));
    const { state: before } = await history(root, 'Experiment_0000');

    // The experiment by its id.
    const rewind = await roundlogJson<Rewind>([
      'rewind',
      before.created!.experimentId,
      '--round',
      '1',
      '--reason',
      'try again from round 1',
      '--root',
      root,
    ]);
    t.like(rewind, { round: 1, roundCurrent: 2, supersededRounds: [2, 3], moved: [] });
    t.deepEqual(folders(dir), ['breakpoint_0001', 'tensorboard']);
    t.is(sha256File(path.join(dir, 'breakpoint_0001', 'params.safetensors')), before.rounds[1]!.params.sha256);

    const resume = await roundlog(['resume', '--rounds', '1', '--root', root]);
    t.is(resume.code, 0, resume.stderr);
    t.regex(resume.stdout, /resumed Experiment_0000 \(.*\) after round 1 \(round 2 runs next\), 2\/10 rounds done/);
    t.regex(resume.stdout, /done: 3 rounds completed/);
    const { state, events } = await history(root, 'Experiment_0000');
    t.is(state.rounds.length, 3);
    t.deepEqual(
      state.superseded.map((r) => r.round),
      [2, 3],
    );
    t.is(eventsOf(events, 'Rewound').length, 1);
    t.is(
      state.rounds[2]!.params.sha256,
      before.rounds[2]!.params.sha256,
      'round 2 run again, from round 1, bit for bit',
    );
    t.deepEqual(
      folders(dir),
      ['breakpoint_0001', 'tensorboard'],
      'the experiment still saves no breakpoint of its own',
    );

    // A crash after that round (no breakpoint saved): the last breakpoint, round 1, is older than the
    // last round completed, so going back to it supersedes round 2 again, and only when asked.
    const refused = await roundlog(['resume', '--rounds', '1', '--root', root]);
    t.is(refused.code, 1);
    t.regex(refused.stderr, /would supersede 1 round \(round 2;.*--rewind/);
    const again = await roundlog(['resume', '--rewind', '--rounds', '1', '--root', root]);
    t.is(again.code, 0, again.stderr);
    t.regex(again.stdout, /after round 1 \(round 2 runs next\), 2\/10 rounds done/);
  },
);

test('settings changed after round R come back with the rewind, recorded', async (t) => {
  const root = tempDir();
  t.is((await roundlog(['run', EXAMPLE, '--rounds', '3', '--root', root])).code, 0);
  const exp = await Experiment.loadBreakpoint(undefined, {
    root,
    federation: syntheticClinicalFederation({ seed: SEED }),
    workspace: REPO,
  });
  await exp.setRoundLimit(20);
  await exp.setTrainingArgs({ epochs: 1, batchSize: 32, learningRate: 0.9, l2: 0 });
  await exp.close();

  const rewind = await roundlogJson<Rewind>([
    'rewind',
    path.join(root, 'experiments', 'Experiment_0000'),
    '--round',
    '1',
    '--reason',
    'undo the new learning rate',
    '--root',
    root,
  ]);
  t.true(rewind.settingsRestored);
  const { state, events } = await history(root, 'Experiment_0000');
  t.is(state.settings.roundLimit, 10);
  t.deepEqual(state.settings.trainingArgs, { epochs: 2, batchSize: 32, learningRate: 0.2, l2: 1e-3 });
  const last = events.at(-1)!;
  t.is(last.type, 'SettingsChanged');
  t.like(last.data, { roundLimit: 10, by: rewind.by });
  t.is(events.at(-2)!.type, 'Rewound', 'in the same append, right after the Rewound');
});

test(
  'errors: no reason or no round exit 2; the last round, ' + 'a round out of range, an unknown experiment exit 1',
  async (t) => {
    const root = tempDir();
    t.is((await roundlog(['run', EXAMPLE, '--rounds', '3', '--root', root])).code, 0);
    for (const [args, message] of [
      [['rewind', 'Experiment_0000', '--round', '1'], /rewind needs --reason TEXT/],
      [['rewind', 'Experiment_0000', '--round', '1', '--reason', ' '], /rewind needs --reason TEXT/],
      [['rewind', 'Experiment_0000', '--reason', 'why'], /rewind needs --round R/],
      [['rewind', '--round', '1', '--reason', 'why'], /rewind needs exactly one experiment/],
      [['rewind', 'Experiment_0000', '--round', '1.5', '--reason', 'why'], /--round must be a non-negative integer/],
      [
        ['rewind', 'Experiment_0000', '--round', '1', '--reason', 'why', '--superseded'],
        /Unknown option '--superseded'/,
      ],
    ] as const) {
      const result = await roundlog([...args, '--root', root]);
      t.is(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      t.regex(result.stderr, message);
    }
    const last = await roundlog(['rewind', 'Experiment_0000', '--round', '2', '--reason', 'why', '--root', root]);
    t.is(last.code, 1);
    t.regex(
      last.stderr,
      /round must be before the last completed round of Experiment_0000 \(2\): rewinding to it would supersede nothing/,
    );
    const beyond = await roundlog(['rewind', 'Experiment_0000', '--round', '3', '--reason', 'why', '--root', root]);
    t.is(beyond.code, 1);
    const noSuchRound = new RegExp(
      /experiment Experiment_0000 has no completed round 3 on its current branch /.source +
        /\(3 rounds completed, indexes 0 to 2\)/.source,
    );
    t.regex(beyond.stderr, noSuchRound);
    const unknown = await roundlog(['rewind', 'nope', '--round', '0', '--reason', 'why', '--root', root]);
    t.is(unknown.code, 1);
    t.regex(unknown.stderr, /no experiment "nope" in the roundlog root/);
    // Nothing was recorded or moved by the refused rewinds.
    return history(root, 'Experiment_0000').then(({ events, state }) => {
      t.is(eventsOf(events, 'Rewound').length, 0);
      t.is(state.rounds.length, 3);
      t.deepEqual(folders(path.join(root, 'experiments', 'Experiment_0000')), [...breakpoints(0, 2), 'tensorboard']);
    });
  },
);
