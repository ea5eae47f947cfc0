/** The Experiment facade on a real root: rounds, breakpoint folders, loadBreakpoint, relocation, rewind. */
import test from 'ava';
import {
  cpSync,
  existsSync,
  mkdirSync,
  rmSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  writeFileSync,
  chmodSync,
} from 'node:fs';
import path from 'node:path';
import {
  BreakpointCorruptError,
  NoBreakpointError,
  RewindNotRequestedError,
  TrainingPlanChangedError,
} from '../../src/model/errors.ts';
import { Experiment } from '../../src/federated/experiment.ts';
import { InvalidArgumentError } from '../../src/errors.ts';
import { PathOutsideError } from '../../src/confine.ts';
import { WORKSPACE, exampleOptions as options, federation, runExample } from '../support/example-experiment.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

/** A self-contained plan (no imports), for tests that edit its source in a temp workspace. */
const TINY_PLAN =
  `export const plan = {
  init: () => ({ w: { dtype: 'float32', shape: [2], data: new Float32Array(2) } }),
  train: (params) => ({ params: { w: { dtype: 'float32', shape: [2], data: params.w.data.map((x) => x + 1) } }, ` +
  `sampleSize: 3, metrics: { loss: 1 } }),
};
`;

const load = (root: string, target?: string, extra: { acceptPlanChange?: boolean; rewind?: boolean } = {}) =>
  Experiment.loadBreakpoint(target, { root, federation, workspace: WORKSPACE, ...extra });

test(
  'runs rounds into breakpoint folders; loadBreakpoint() in a fresh ' +
    'instance restores everything and run() continues to the limit',
  async (t) => {
    const root = tempDir();
    const exp = await Experiment.create(options(root));
    t.is(exp.experimentationFolder(), 'Experiment_0000');
    await exp.run({ rounds: 2 });
    t.is(exp.roundCurrent(), 2);
    const dir = exp.experimentationPath();
    t.deepEqual(readdirSync(dir).sort(), ['breakpoint_0000', 'breakpoint_0001', 'tensorboard']);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'breakpoint_0001', 'breakpoint.json'), 'utf8'));
    t.is(manifest.round, 1);
    t.is(manifest.roundCurrent, 2);
    t.is(manifest.roundLimit, 4);
    t.false(JSON.stringify(manifest).includes(root), 'no absolute path in breakpoint.json');
    // Parameters are hard-linked from the blob store: one copy of the bytes.
    t.is(statSync(path.join(dir, 'breakpoint_0001', 'params.safetensors')).nlink, 2);
    t.true(existsSync(path.join(dir, 'breakpoint_0001', 'training_plan.ts')));
    const expectedParams = await exp.parameters();
    await exp.setRoundLimit(5);
    await exp.close();

    const loaded = await load(root);
    t.is(loaded.roundCurrent(), 2);
    t.is(loaded.roundLimit(), 4, 'the round limit of the breakpoint, not a later setting');
    t.deepEqual(await loaded.parameters(), expectedParams);
    t.is(await loaded.run(), 2);
    t.is(loaded.roundCurrent(), 4);
    t.deepEqual(readdirSync(dir).sort(), [
      'breakpoint_0000',
      'breakpoint_0001',
      'breakpoint_0002',
      'breakpoint_0003',
      'tensorboard',
    ]);
    await loaded.close();
  },
);

test(
  'resuming from an older breakpoint is refused unless asked to rewind; then it supersedes the ' +
    'newer ones: moved aside, recorded, never overwritten',
  async (t) => {
    const root = tempDir();
    const exp = await Experiment.create(options(root));
    await exp.run();
    const dir = exp.experimentationPath();
    const round3 = readFileSync(path.join(dir, 'breakpoint_0003', 'breakpoint.json'), 'utf8');
    const revision = exp.state.revision;
    await exp.close();

    const refused = await t.throwsAsync(load(root, path.join(dir, 'breakpoint_0001')), {
      instanceOf: RewindNotRequestedError,
    });
    t.like(refused, { round: 1, roundCurrent: 4, supersededRounds: [2, 3], breakpoint: 'breakpoint_0001' });
    t.regex(refused!.message, /would supersede 2 rounds \(rounds 2-3;.*rewind: true/s);
    t.deepEqual(readdirSync(dir).sort(), [
      'breakpoint_0000',
      'breakpoint_0001',
      'breakpoint_0002',
      'breakpoint_0003',
      'tensorboard',
    ]);
    const untouched = await load(root, dir);
    // The closed run's RunEnded, then this load's Resumed and RunStarted: nothing superseded.
    t.is(untouched.state.revision, revision + 3n, 'only the end of the run and this load were appended');
    t.deepEqual(untouched.supersededOnLoad(), [], 'nothing superseded');
    t.is(untouched.roundCurrent(), 4);
    await untouched.close();

    const loaded = await load(root, path.join(dir, 'breakpoint_0001'), { rewind: true });
    t.deepEqual(loaded.supersededOnLoad(), [2, 3]);
    t.is(loaded.roundCurrent(), 2);
    t.deepEqual(readdirSync(dir).sort(), ['breakpoint_0000', 'breakpoint_0001', 'superseded', 'tensorboard']);
    t.deepEqual(readdirSync(path.join(dir, 'superseded')).sort(), ['breakpoint_0002.1', 'breakpoint_0003.1']);
    t.is(readFileSync(path.join(dir, 'superseded', 'breakpoint_0003.1', 'breakpoint.json'), 'utf8'), round3);
    t.deepEqual(
      loaded.state.superseded.map((r) => r.round),
      [2, 3],
    );
    await loaded.run();
    t.is(loaded.roundCurrent(), 4);
    t.deepEqual(readdirSync(dir).sort(), [
      'breakpoint_0000',
      'breakpoint_0001',
      'breakpoint_0002',
      'breakpoint_0003',
      'superseded',
      'tensorboard',
    ]);
    await loaded.close();
  },
);

test(
  'a renamed experiment folder loads, and a folder copied to a ' +
    'root with no log starts a new experiment that records its origin',
  async (t) => {
    const root = tempDir();
    const exp = await Experiment.create(options(root));
    await exp.run({ rounds: 2 });
    const expected = await exp.parameters();
    const id = exp.id;
    await exp.close();
    const experiments = path.join(root, 'experiments');
    renameSync(path.join(experiments, 'Experiment_0000'), path.join(experiments, 'mydir'));

    const moved = await load(root, path.join(experiments, 'mydir'));
    t.is(moved.id, id);
    t.is(moved.experimentationFolder(), 'mydir');
    t.deepEqual(await moved.parameters(), expected);
    await moved.runOnce();
    t.true(existsSync(path.join(experiments, 'mydir', 'breakpoint_0002')));
    await moved.close();

    const otherRoot = tempDir();
    const carried = path.join(otherRoot, 'carried');
    cpSync(path.join(experiments, 'mydir', 'breakpoint_0001'), carried, { recursive: true });
    const imported = await load(otherRoot, carried);
    t.not(imported.id, id);
    t.is(imported.roundCurrent(), 2);
    t.deepEqual(await imported.parameters(), expected);
    t.is(imported.state.created!.importedFrom!.experimentId, id);
    t.is(imported.state.created!.importedFrom!.round, 1);
    await imported.run();
    t.is(imported.roundCurrent(), 4);
    await imported.close();
  },
);

test('a damaged breakpoint folder is refused with an error naming the file', async (t) => {
  const root = tempDir();
  const folder = path.join(await runExample(root, 1), 'breakpoint_0000');
  const paramsFile = path.join(folder, 'params.safetensors');
  chmodSync(paramsFile, 0o644);
  const bytes = readFileSync(paramsFile);
  bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
  // Write a copy rather than through the hard link, so the blob itself stays intact.
  renameSync(paramsFile, paramsFile + '.orig');
  writeFileSync(paramsFile, bytes);
  const error = await t.throwsAsync(load(root, folder), { instanceOf: BreakpointCorruptError });
  t.is(error!.file, 'params.safetensors');
  t.regex(error!.message, /has SHA-256/);
});

test(
  'loadBreakpoint() names the last experiment when it has ' + 'no breakpoint, and the newest breakpoint that exists',
  async (t) => {
    const root = tempDir();
    const first = await Experiment.create(options(root));
    await first.run({ rounds: 1 });
    await first.close();
    const second = await Experiment.create(options(root, { saveBreakpoints: false }));
    await second.run({ rounds: 1 });
    await second.close();
    const error = await t.throwsAsync(load(root), { instanceOf: NoBreakpointError });
    t.is(error!.experiment, 'Experiment_0001');
    t.is(error!.newest, path.join(root, 'experiments', 'Experiment_0000', 'breakpoint_0000'));
  },
);

test('a training plan whose source changed is refused unless accepted, and the acceptance is recorded', async (t) => {
  const root = tempDir();
  const workspace = tempDir();
  mkdirSync(path.join(workspace, 'plan'));
  writeFileSync(path.join(workspace, 'plan/plan.ts'), TINY_PLAN);
  const exp = await Experiment.create(
    options(root, { workspace, trainingPlan: { module: 'plan/plan.ts', export: 'plan' } }),
  );
  await exp.run({ rounds: 1 });
  await exp.close();
  writeFileSync(
    path.join(workspace, 'plan/plan.ts'),
    readFileSync(path.join(workspace, 'plan/plan.ts'), 'utf8') + '\n// changed\n',
  );
  const refused = await t.throwsAsync(Experiment.loadBreakpoint(undefined, { root, federation, workspace }), {
    instanceOf: TrainingPlanChangedError,
  });
  t.is(refused!.module, 'plan/plan.ts');
  const accepted = await Experiment.loadBreakpoint(undefined, { root, federation, workspace, acceptPlanChange: true });
  t.not(accepted.state.settings.trainingPlan!.sha256, refused!.recorded);
  t.is(accepted.state.settings.trainingPlan!.sha256, refused!.actual);
  await accepted.close();
});

test(
  'a breakpoint committed in the log but whose folder was never ' +
    'written (crash in between) is written on resume, not superseded',
  async (t) => {
    const root = tempDir();
    const dir = await runExample(root, 3);
    // As if the process died after committing round 2 and before its folder was renamed into place.
    rmSync(path.join(dir, 'breakpoint_0002'), { recursive: true });
    const { listExperiments } = await import('../../src/cli/experiments.ts');
    t.deepEqual((await listExperiments(root))[0]!.missingBreakpoints, [2]);

    const loaded = await load(root);
    t.is(loaded.roundCurrent(), 3, 'resumes after round 2, the last committed round');
    t.deepEqual(loaded.state.superseded, []);
    t.deepEqual(readdirSync(dir).sort(), ['breakpoint_0000', 'breakpoint_0001', 'breakpoint_0002', 'tensorboard']);
    t.deepEqual((await listExperiments(root))[0]!.missingBreakpoints, []);
    await loaded.close();
  },
);

test(
  'a seeded random-fraction strategy selects the same nodes after ' +
    'a resume as in an uninterrupted run, and its history is saved',
  async (t) => {
    const { randomFraction } = await import('../../src/federated/strategies.ts');
    const run = async (root: string, stopAfter: number | null) => {
      let exp = await Experiment.create(options(root, { strategy: randomFraction({ fraction: 0.5 }), roundLimit: 5 }));
      if (stopAfter !== null) {
        await exp.run({ rounds: stopAfter });
        await exp.close();
        exp = await load(root);
      }
      await exp.run();
      const result = {
        params: await exp.parameters(),
        selections: exp.state.rounds.map(
          (r) => (r.state as { strategy: { last: { nodes: string[] } } }).strategy.last.nodes,
        ),
      };
      await exp.close();
      return result;
    };
    const straight = await run(tempDir(), null);
    const resumed = await run(tempDir(), 2);
    t.deepEqual(resumed, straight);
    t.true(
      straight.selections.every((nodes) => nodes.length === 2),
      'half of three nodes, rounded up',
    );
    t.true(new Set(straight.selections.map((n) => n.join())).size > 1, 'the selection varies from round to round');
  },
);

test('a training plan inside the experiments folder is refused: code is never imported from there', async (t) => {
  const root = tempDir();
  mkdirSync(path.join(root, 'experiments'), { recursive: true });
  writeFileSync(path.join(root, 'experiments', 'plan.ts'), TINY_PLAN);
  const error = await t.throwsAsync(
    Experiment.create(
      options(root, { workspace: root, trainingPlan: { module: 'experiments/plan.ts', export: 'plan' } }),
    ),
    { instanceOf: PathOutsideError },
  );
  t.is(error!.field, 'trainingPlan.module');
  t.regex(error!.message, /not inside an experiment or breakpoint folder/);
});

test('resume removes the temp folder a crash left while writing a breakpoint', async (t) => {
  const root = tempDir();
  const dir = await runExample(root, 1);
  const temp = path.join(dir, '.tmp-breakpoint_0001-999999999-00000000-0000-0000-0000-000000000000');
  mkdirSync(temp);
  const loaded = await load(root);
  t.false(existsSync(temp));
  t.deepEqual(readdirSync(dir).sort(), ['breakpoint_0000', 'tensorboard']);
  await loaded.close();
});

test('loadBreakpoint on a breakpoint of a plain training loop says to use the low-level API', async (t) => {
  const root = tempDir();
  const { openRoundLog } = await import('../../src/engine/round-log.ts');
  const rl = await openRoundLog({ root });
  const loop = await rl.createExperiment({ saveBreakpoints: true });
  await loop.recordRound({ params: { w: { dtype: 'float32', shape: [1], data: new Float32Array([1]) } } });
  await rl.close();
  const error = await t.throwsAsync(load(root), { instanceOf: InvalidArgumentError });
  t.regex(
    error!.message,
    /recorded by a training loop of its own: open it with openRoundLog\(\)\.openExperiment\("Experiment_0000"\)/,
  );
});

test(
  'loadBreakpoint(<experiment folder>) continues from the last ' +
    'committed round even if a crash left its folder unwritten',
  async (t) => {
    const root = tempDir();
    const dir = await runExample(root, 3);
    rmSync(path.join(dir, 'breakpoint_0002'), { recursive: true });
    const loaded = await load(root, dir);
    t.is(loaded.roundCurrent(), 3);
    t.deepEqual(loaded.state.superseded, []);
    t.true(existsSync(path.join(dir, 'breakpoint_0002', 'breakpoint.json')));
    await loaded.close();
  },
);

test('stop takes a signal’s name only (it is recorded): other text is refused, the run goes on', async (t) => {
  const exp = await Experiment.create(options(tempDir()));
  try {
    for (const bad of ['stop please', 'SIGTERM\n', '']) {
      const error = t.throws(() => exp.stop(bad), { instanceOf: InvalidArgumentError });
      t.is(error!.argument, 'signal');
    }
    t.is(exp.stoppedBy(), null);
    exp.stop('SIGHUP');
    t.is(await exp.run({ rounds: 2 }), 0, 'a stop asked for before the run: no round starts');
  } finally {
    await exp.close();
  }
});
