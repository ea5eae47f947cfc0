/** `roundlog fork`: a new experiment from a round of another, lineage in both streams; forks of forks. */
import test from 'ava';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { EXAMPLE, blobBytes, completions, eventsOf, history, roundlog, roundlogJson, sha256File } from './support.ts';

test.after.always(removeTempDirs);

type Fork = {
  parentId: string;
  parentFolder: string;
  round: number;
  branch: 'current' | 'superseded';
  parentPosition: string;
  childId: string;
  childFolder: string;
  childNumber: number;
  roundCurrent: number;
  params: { sha256: string };
  breakpointSha256: string;
  breakpoint: string;
  by: { user: string; pid: number };
};

test(
  'a fork of a fork: child and grandchild continue with resume, their ' +
    'rounds are the parent’s bit for bit, lineage is in all three streams',
  async (t) => {
    const root = tempDir();
    const experiments = path.join(root, 'experiments');
    t.is((await roundlog(['run', EXAMPLE, '--rounds', '4', '--root', root])).code, 0);
    const parent = await history(root, 'Experiment_0000');

    const child = await roundlogJson<Fork>(['fork', 'Experiment_0000', '--round', '1', '--root', root]);
    t.like(child, {
      parentId: parent.state.created!.experimentId,
      parentFolder: 'Experiment_0000',
      round: 1,
      branch: 'current',
      childFolder: 'Experiment_0001',
      childNumber: 1,
      roundCurrent: 2,
    });
    t.is(child.parentPosition, String(parent.state.rounds[1]!.position));
    t.is(child.breakpoint, path.join(experiments, 'Experiment_0001', 'breakpoint_0001'));
    t.true(blobBytes(root, parent.state.rounds[1]!.params.sha256).equals(blobBytes(root, child.params.sha256)));
    t.is(sha256File(path.join(child.breakpoint, 'params.safetensors')), parent.state.rounds[1]!.params.sha256);
    // The importedFrom hash is that of the manifest `roundlog replay` writes for the parent's round.
    const replay = await roundlogJson<{ manifestSha256: string }>([
      'replay',
      'Experiment_0000',
      '--round',
      '1',
      '--root',
      root,
    ]);
    t.is(child.breakpointSha256, replay.manifestSha256);

    // The child is the last experiment: resume with no path continues it from its first round.
    const resumeChild = await roundlog(['resume', '--rounds', '1', '--root', root]);
    t.is(resumeChild.code, 0, resumeChild.stderr);
    t.regex(
      resumeChild.stdout,
      /resumed Experiment_0001 \(.*\) after round 1 \(round 2 runs next\), 2\/10 rounds done/,
    );

    // Fork the fork, by its id, under a name of our own.
    const grandchild = await roundlogJson<Fork>([
      'fork',
      child.childId,
      '--round',
      '2',
      '--name',
      'lr-sweep',
      '--root',
      root,
    ]);
    t.like(grandchild, {
      parentId: child.childId,
      parentFolder: 'Experiment_0001',
      round: 2,
      childFolder: 'lr-sweep',
      childNumber: 2,
      roundCurrent: 3,
    });
    const resumeGrandchild = await roundlog([
      'resume',
      path.join(experiments, 'lr-sweep'),
      '--rounds',
      '1',
      '--root',
      root,
    ]);
    t.is(resumeGrandchild.code, 0, resumeGrandchild.stderr);
    t.regex(resumeGrandchild.stdout, /resumed lr-sweep \(.*\) after round 2 \(round 3 runs next\), 3\/10 rounds done/);
    t.regex(resumeGrandchild.stdout, /done: 4 rounds completed/);
    const resumeChildAgain = await roundlog([
      'resume',
      path.join(experiments, 'Experiment_0001'),
      '--rounds',
      '1',
      '--root',
      root,
    ]);
    t.is(resumeChildAgain.code, 0, resumeChildAgain.stderr);
    t.regex(
      resumeChildAgain.stdout,
      /resumed Experiment_0001 \(.*\) after round 2 \(round 3 runs next\), 3\/10 rounds done/,
    );

    const p = await history(root, 'Experiment_0000');
    const c = await history(root, 'Experiment_0001');
    const g = await history(root, 'lr-sweep');
    t.deepEqual(readdirSync(path.join(experiments, 'Experiment_0001')).sort(), [
      'breakpoint_0001',
      'breakpoint_0002',
      'breakpoint_0003',
      'tensorboard',
    ]);
    t.deepEqual(readdirSync(path.join(experiments, 'lr-sweep')).sort(), [
      'breakpoint_0002',
      'breakpoint_0003',
      'tensorboard',
    ]);

    // Same seed, setup and settings: the forks' rounds draw what the parent's drew.
    for (const round of [2, 3])
      t.is(c.state.rounds[round]!.params.sha256, p.state.rounds[round]!.params.sha256, `child round ${round}`);
    t.is(g.state.rounds[3]!.params.sha256, p.state.rounds[3]!.params.sha256, 'grandchild round 3');
    t.is(c.state.created!.seed, p.state.created!.seed);
    t.deepEqual(g.state.created!.federated, p.state.created!.federated);
    t.deepEqual(g.state.created!.config, p.state.created!.config);

    // Lineage, in each stream.
    const forkedInParent = eventsOf(p.events, 'Forked');
    t.is(forkedInParent.length, 1);
    t.like(forkedInParent[0]!.data, { childId: child.childId, childFolder: 'Experiment_0001', round: 1, by: child.by });
    t.deepEqual(
      p.state.forks.map((f) => [f.childId, f.round]),
      [[child.childId, 1]],
    );

    t.deepEqual(
      c.events.slice(0, 2).map((e) => e.type),
      ['ExperimentCreated', 'ForkedFrom'],
    );
    t.like(c.events[0]!.data, {
      importedFrom: {
        experimentId: child.parentId,
        folder: 'Experiment_0000',
        round: 1,
        logPosition: child.parentPosition,
        breakpointSha256: child.breakpointSha256,
      },
    });
    t.like(c.events[1]!.data, {
      parentId: child.parentId,
      parentFolder: 'Experiment_0000',
      parentRound: 1,
      parentPosition: child.parentPosition,
    });
    t.like(c.state.forkedFrom, { parentId: child.parentId, parentRound: 1 });
    t.like(eventsOf(c.events, 'Forked')[0]!.data, { childId: grandchild.childId, childFolder: 'lr-sweep', round: 2 });
    t.is(grandchild.parentPosition, String(completions(c.events, 2)[0]!.position));

    t.deepEqual(
      g.events.slice(0, 2).map((e) => e.type),
      ['ExperimentCreated', 'ForkedFrom'],
    );
    t.like(g.events[1]!.data, {
      parentId: child.childId,
      parentFolder: 'Experiment_0001',
      parentRound: 2,
      parentPosition: grandchild.parentPosition,
    });
    t.is(eventsOf(g.events, 'Forked').length, 0);

    const ls = JSON.parse((await roundlog(['ls', '--json', '--root', root])).stdout) as Array<{
      folder: string;
      roundCurrent: number;
    }>;
    t.deepEqual(
      ls.map((e) => [e.folder, e.roundCurrent]),
      [
        ['Experiment_0000', 4],
        ['Experiment_0001', 4],
        ['lr-sweep', 4],
      ],
    );
  },
);

test('a fork from a round a rewind set aside (--superseded) starts from that round’s parameters', async (t) => {
  const root = tempDir();
  t.is((await roundlog(['run', EXAMPLE, '--rounds', '3', '--root', root])).code, 0);
  t.is(
    (await roundlog(['rewind', 'Experiment_0000', '--round', '0', '--reason', 'branch off', '--root', root])).code,
    0,
  );
  const { events } = await history(root, 'Experiment_0000');
  const old2 = completions(events, 2)[0]!;

  const current = await roundlog(['fork', 'Experiment_0000', '--round', '2', '--root', root]);
  t.is(current.code, 1);
  t.regex(current.stderr, /no completed round 2 on its current branch/);

  const fork = await roundlogJson<Fork>(['fork', 'Experiment_0000', '--round', '2', '--superseded', '--root', root]);
  t.like(fork, {
    branch: 'superseded',
    round: 2,
    roundCurrent: 3,
    parentPosition: String(old2.position),
    params: { sha256: old2.data.params!.sha256 },
  });
  const resume = await roundlog([
    'resume',
    path.join(root, 'experiments', fork.childFolder),
    '--rounds',
    '1',
    '--root',
    root,
  ]);
  t.is(resume.code, 0, resume.stderr);
  t.regex(resume.stdout, /after round 2 \(round 3 runs next\), 3\/10 rounds done/);
  const child = await history(root, fork.childFolder);
  t.is(child.state.rounds.length, 4);
  t.like(child.state.forkedFrom, { parentRound: 2, parentPosition: String(old2.position) });
});

test(
  'errors: an existing folder name, an unknown experiment, a ' +
    'round out of range exit 1; bad flags exit 2; nothing is created',
  async (t) => {
    const root = tempDir();
    t.is((await roundlog(['run', EXAMPLE, '--rounds', '2', '--root', root])).code, 0);
    const reserved = await roundlog([
      'fork',
      'Experiment_0000',
      '--round',
      '0',
      '--name',
      'Experiment_0000',
      '--root',
      root,
    ]);
    t.is(reserved.code, 1);
    t.regex(reserved.stderr, /has the form Experiment_<digits>, which roundlog keeps for the folders it numbers/);
    mkdirSync(path.join(root, 'experiments', 'mine'));
    const taken = await roundlog(['fork', 'Experiment_0000', '--round', '0', '--name', 'mine', '--root', root]);
    t.is(taken.code, 1);
    t.regex(taken.stderr, /name must not be a folder that already exists/);
    const unknown = await roundlog(['fork', 'Experiment_0009', '--round', '0', '--root', root]);
    t.is(unknown.code, 1);
    t.regex(unknown.stderr, /no experiment "Experiment_0009" in the roundlog root/);
    const beyond = await roundlog(['fork', 'Experiment_0000', '--round', '2', '--root', root]);
    t.is(beyond.code, 1);
    t.regex(beyond.stderr, /no completed round 2 on its current branch \(2 rounds completed, indexes 0 to 1\)/);
    for (const [args, message] of [
      [['fork', 'Experiment_0000'], /fork needs --round R/],
      [['fork', 'Experiment_0000', '--round', '0', '--name', 'a/b'], /--name must be a plain folder name/],
      [['fork', 'Experiment_0000', '--round', '0', '--out', 'x'], /Unknown option '--out'/],
      [['fork', '--round', '0'], /fork needs exactly one experiment/],
    ] as const) {
      const result = await roundlog([...args, '--root', root]);
      t.is(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      t.regex(result.stderr, message);
    }
    const ls = JSON.parse((await roundlog(['ls', '--json', '--root', root])).stdout) as unknown[];
    t.is(ls.length, 1, 'no experiment was created');
    t.false(existsSync(path.join(root, 'experiments', 'a')));
    t.is(eventsOf((await history(root, 'Experiment_0000')).events, 'Forked').length, 0);
  },
);
