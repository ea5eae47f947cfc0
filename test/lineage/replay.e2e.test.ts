/** `roundlog replay`: the state after a round, rebuilt from the log, as a breakpoint folder. */
import test from 'ava';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { RoundPrunedError } from '../../src/model/errors.ts';
import { replayRound } from '../../src/projections/index.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import {
  EXAMPLE,
  NO_BREAKPOINTS,
  blobBytes,
  completions,
  eventsOf,
  history,
  roundlog,
  roundlogJson,
  sha256,
  sha256File,
} from './support.ts';

test.after.always(removeTempDirs);

type Replay = {
  experimentId: string;
  folder: string;
  round: number;
  roundCurrent: number;
  branch: 'current' | 'superseded';
  logPosition: string;
  streamRevision: string;
  params: { sha256: string; bytes: number };
  path: string;
  created: boolean;
  manifestSha256: string;
};

test(
  'a round that never had a breakpoint folder: replayed from the ' +
    'log, its parameters are the bytes its RoundCompleted recorded',
  async (t) => {
    const root = tempDir();
    const run = await roundlog(['run', NO_BREAKPOINTS, '--rounds', '3', '--root', root]);
    t.is(run.code, 0, run.stderr);
    const experimentDir = path.join(root, 'experiments', 'Experiment_0000');
    // Only the TensorBoard runs of its metrics: no breakpoint folder was saved.
    t.deepEqual(readdirSync(experimentDir), ['tensorboard'], 'no breakpoint folder was saved');

    const replay = await roundlogJson<Replay>(['replay', 'Experiment_0000', '--round', '1', '--root', root]);
    t.is(
      replay.path,
      path.join(root, 'replays', 'Experiment_0000', 'breakpoint_0001'),
      'the default place, outside the experiment folder',
    );
    t.like(replay, { folder: 'Experiment_0000', round: 1, roundCurrent: 2, branch: 'current', created: true });
    t.deepEqual(readdirSync(experimentDir), ['tensorboard'], 'the experiment folder is left alone');

    const { events } = await history(root, 'Experiment_0000');
    const [completed, ...others] = completions(events, 1);
    t.is(others.length, 0);
    const recorded = completed!.data.params!.sha256;
    t.is(replay.logPosition, String(completed!.position));
    t.is(replay.params.sha256, recorded);
    // Bit for bit: the folder's file, hashed here, and compared with the blob store's file.
    const paramsFile = readFileSync(path.join(replay.path, 'params.safetensors'));
    t.is(sha256(paramsFile), recorded);
    t.true(paramsFile.equals(blobBytes(root, recorded)));
    const manifest = JSON.parse(readFileSync(path.join(replay.path, 'breakpoint.json'), 'utf8'));
    t.like(manifest, {
      round: 1,
      roundCurrent: 2,
      experimentId: replay.experimentId,
      logPosition: String(completed!.position),
    });
    t.deepEqual(
      manifest.state,
      JSON.parse(JSON.stringify(completed!.data.state)),
      'the aggregator and strategy state of the round',
    );
    t.false(manifest.settings.saveBreakpoints);
    t.is(sha256File(path.join(replay.path, 'breakpoint.json')), replay.manifestSha256);

    // The same experiment with breakpoints saved (same seed, same settings) in another root wrote these very bytes.
    const other = tempDir();
    const saved = await roundlog(['run', EXAMPLE, '--rounds', '2', '--root', other]);
    t.is(saved.code, 0, saved.stderr);
    t.true(
      paramsFile.equals(
        readFileSync(path.join(other, 'experiments', 'Experiment_0000', 'breakpoint_0001', 'params.safetensors')),
      ),
    );

    // Again: nothing new is written, the folder is checked and kept.
    const again = await roundlogJson<Replay>(['replay', 'Experiment_0000', '--round', '1', '--root', root]);
    t.false(again.created);
    t.is(again.manifestSha256, replay.manifestSha256);

    // --out: any new folder outside the root's own areas; the same manifest.
    const out = path.join(tempDir(), 'nested', 'round-1');
    const elsewhere = await roundlogJson<Replay>([
      'replay',
      replay.experimentId,
      '--round',
      '1',
      '--out',
      out,
      '--root',
      root,
    ]);
    t.is(elsewhere.path, out);
    t.is(sha256File(path.join(out, 'breakpoint.json')), replay.manifestSha256);
    t.deepEqual(readdirSync(path.dirname(out)), ['round-1'], 'no temp folder left beside it');

    const inside = await roundlog([
      'replay',
      'Experiment_0000',
      '--round',
      '1',
      '--out',
      path.join(experimentDir, 'breakpoint_0001'),
      '--root',
      root,
    ]);
    t.is(inside.code, 1);
    t.regex(inside.stderr, /out must not be inside .*experiments/);
    t.false(existsSync(path.join(experimentDir, 'breakpoint_0001')));

    const occupied = path.join(tempDir(), 'occupied');
    mkdirSync(occupied);
    writeFileSync(path.join(occupied, 'notes.txt'), 'mine');
    const refused = await roundlog(['replay', 'Experiment_0000', '--round', '2', '--out', occupied, '--root', root]);
    t.is(refused.code, 1);
    t.regex(refused.stderr, /must be a folder that does not exist yet/);
    t.deepEqual(readdirSync(occupied), ['notes.txt']);
  },
);

test(
  'rounds a rewind set aside: refused on the current branch, ' +
    'replayed with --superseded or --position; experiments by id or path',
  async (t) => {
    const root = tempDir();
    t.is((await roundlog(['run', EXAMPLE, '--rounds', '3', '--root', root])).code, 0);
    const rewind = await roundlog([
      'rewind',
      'Experiment_0000',
      '--round',
      '0',
      '--reason',
      'learning rate too high',
      '--root',
      root,
    ]);
    t.is(rewind.code, 0, rewind.stderr);
    const { events, state } = await history(root, 'Experiment_0000');
    const id = state.created!.experimentId;
    const old2 = completions(events, 2)[0]!;
    const old1 = completions(events, 1)[0]!;

    const gone = await roundlog(['replay', id, '--round', '2', '--root', root]);
    t.is(gone.code, 1);
    t.regex(
      gone.stderr,
      /experiment Experiment_0000 has no completed round 2 on its current branch \(1 round completed/,
    );

    const experimentDir = path.join(root, 'experiments', 'Experiment_0000');
    const superseded = await roundlogJson<Replay>([
      'replay',
      experimentDir,
      '--round',
      '2',
      '--superseded',
      '--root',
      root,
    ]);
    t.like(superseded, { round: 2, branch: 'superseded', logPosition: String(old2.position) });
    t.is(
      superseded.path,
      path.join(root, 'replays', 'Experiment_0000', 'superseded', `breakpoint_0002-${old2.position}`),
    );
    t.is(sha256File(path.join(superseded.path, 'params.safetensors')), old2.data.params!.sha256);
    // The replay equals the folder the rewind moved aside: the same manifest, byte for byte.
    t.is(
      readFileSync(path.join(superseded.path, 'breakpoint.json'), 'utf8'),
      readFileSync(path.join(experimentDir, 'superseded', 'breakpoint_0002.1', 'breakpoint.json'), 'utf8'),
    );

    const byPosition = await roundlogJson<Replay>([
      'replay',
      'Experiment_0000',
      '--round',
      '1',
      '--position',
      String(old1.position),
      '--root',
      root,
    ]);
    t.like(byPosition, { round: 1, branch: 'superseded', params: { sha256: old1.data.params!.sha256 } });

    const mismatch = await roundlog([
      'replay',
      'Experiment_0000',
      '--round',
      '2',
      '--position',
      String(old1.position),
      '--root',
      root,
    ]);
    t.is(mismatch.code, 1);
    t.regex(
      mismatch.stderr,
      new RegExp(
        `has no round 2 completed at log position ${old1.position}; ` +
          `its superseded rounds are 1 \\(position ${old1.position}\\), 2 \\(position ${old2.position}\\)`,
      ),
    );
    const none = await roundlog(['replay', 'Experiment_0000', '--round', '0', '--superseded', '--root', root]);
    t.is(none.code, 1);
    t.regex(none.stderr, /has no superseded round 0/);
  },
);

test('a round pruned by retention is refused, saying when it was pruned', async (t) => {
  const root = tempDir();
  t.is((await roundlog(['run', EXAMPLE, '--rounds', '3', '--root', root])).code, 0);
  const { events } = await history(root, 'Experiment_0000');
  const round1 = completions(events, 1)[0]!;
  // Retention's record, appended through the library as retention does.
  const rl = await openRoundLog({ root });
  const handle = await rl.openExperiment('Experiment_0000');
  const [pruned] = await handle.append([
    {
      type: 'RoundsPruned',
      data: {
        v: 1,
        rounds: [{ round: 1, position: String(round1.position) }],
        retention: { keepLast: 1, keepEvery: null },
        by: rl.actor,
      },
    },
  ]);
  const error = await t.throwsAsync(replayRound(rl, 'Experiment_0000', { round: 1 }), { instanceOf: RoundPrunedError });
  t.is(error!.code, 'ROUND_PRUNED');
  t.is(error!.prunedAt.getTime(), pruned!.timestamp.getTime());
  await rl.close();

  const cli = await roundlog(['replay', 'Experiment_0000', '--round', '1', '--root', root]);
  t.is(cli.code, 1);
  t.true(
    cli.stderr.includes(
      `round 1 of experiment Experiment_0000 was pruned by retention on ${pruned!.timestamp.toISOString()}`,
    ),
    cli.stderr,
  );
  t.false(existsSync(path.join(root, 'replays', 'Experiment_0000', 'breakpoint_0001')));
  // The rounds retention kept replay as before.
  t.is((await roundlog(['replay', 'Experiment_0000', '--round', '2', '--root', root])).code, 0);
  t.is(eventsOf((await history(root, 'Experiment_0000')).events, 'RoundsPruned').length, 1);
});

test(
  'errors: an unknown experiment and a round out of ' + 'range exit 1 with a clear message; bad flags exit 2',
  async (t) => {
    const root = tempDir();
    t.is((await roundlog(['run', EXAMPLE, '--rounds', '2', '--root', root])).code, 0);

    const unknown = await roundlog(['replay', 'Experiment_0042', '--round', '0', '--root', root]);
    t.is(unknown.code, 1);
    t.regex(
      unknown.stderr,
      /^roundlog: no experiment "Experiment_0042" in the roundlog root .*; run 'roundlog ls --root \S+'/,
    );
    const fromEnv = await roundlog(['replay', 'Experiment_0042', '--round', '0'], { ROUNDLOG_DIR: root });
    t.is(fromEnv.code, 1);
    t.true(fromEnv.stderr.includes(`in the roundlog root ${root}`), 'ROUNDLOG_DIR names the root');

    const outOfRange = await roundlog(['replay', 'Experiment_0000', '--round', '2', '--root', root]);
    t.is(outOfRange.code, 1);
    t.regex(outOfRange.stderr, /no completed round 2 on its current branch \(2 rounds completed, indexes 0 to 1\)/);

    for (const [args, message] of [
      [['replay', 'Experiment_0000'], /replay needs --round R/],
      [['replay', '--round', '0'], /replay needs exactly one experiment/],
      [['replay', 'Experiment_0000', 'Experiment_0001', '--round', '0'], /got "Experiment_0000", "Experiment_0001"/],
      [['replay', 'Experiment_0000', '--round', 'two'], /--round must be a non-negative integer, .*\(got "two"\)/],
      [['replay', 'Experiment_0000', '--round=-1'], /--round must be a non-negative integer, .*\(got "-1"\)/],
      [['replay', 'Experiment_0000', '--round', '0', '--position', 'x'], /--position must be the log position/],
      [
        ['replay', 'Experiment_0000', '--round', '0', '--position', '3', '--superseded'],
        /--superseded and --position are exclusive/,
      ],
      [['replay', 'Experiment_0000', '--round', '0', '--frobnicate'], /Unknown option '--frobnicate'/],
    ] as const) {
      const result = await roundlog([...args, '--root', root]);
      t.is(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      t.regex(result.stderr, message);
      t.regex(result.stderr, /roundlog help/);
    }
    t.false(existsSync(path.join(root, 'replays', 'Experiment_0000')), 'no failed command wrote a replay');
  },
);
