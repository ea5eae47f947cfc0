/**
 * The fixture root `test/fixtures/formats/0.1.0-safetensors-tensorboard/root` (its README says what
 * it holds and how it was made): rounds stored as `tensors/safetensors` of several dtypes, a rewind,
 * a fork, breakpoint folders, TensorBoard event files, snapshots of state shape 4 and a projection
 * checkpoint. This release verifies it clean, exports every round (current, superseded, inherited)
 * to the values written out below, resumes it, and rebuilds its views byte for byte. Each test works
 * on its own copy; the fixture is never changed.
 */
import test, { type ExecutionContext } from 'ava';
import { cpSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeSafetensorsFile } from '../../src/codec/safetensors.ts';
import type { TensorDType, TensorSet } from '../../src/codec/tensors.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { readEventFile } from '../../src/projections/tensorboard/index.ts';
import { roundlog, roundlogJson, startRoundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { killSpawned } from '../support/child.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const FIXTURE = fileURLToPath(new URL('../fixtures/formats/0.1.0-safetensors-tensorboard/root/', import.meta.url));

/** A round's parameters as numbers: float32, float16 and bfloat16 bits, bool, int8, int64. */
type Values = {
  weight: number[];
  half: number[];
  brain: number[];
  mask: number[];
  codes: number[];
  step: bigint;
};

/** The parameters the fixture's script recorded, written out by hand (test/support/make-safetensors-fixture.ts). */
const V = {
  r0b0: {
    weight: [0, -0, 0, 0],
    half: [0x3c00, 0x8000],
    brain: [0x3f80, 0xc000],
    mask: [1, 0, 0],
    codes: [-128, 0],
    step: 0n,
  },
  r1b0: {
    weight: [1, -1, 0.5, 0],
    half: [0x3c01, 0x8000],
    brain: [0x3f81, 0xc000],
    mask: [1, 1, 0],
    codes: [-127, -1],
    step: 1n,
  },
  r2b0: {
    weight: [2, -2, 1, 0],
    half: [0x3c02, 0x8000],
    brain: [0x3f82, 0xc000],
    mask: [1, 0, 0],
    codes: [-126, -2],
    step: 2n,
  },
  r3b0: {
    weight: [3, -3, 1.5, 0],
    half: [0x3c03, 0x8000],
    brain: [0x3f83, 0xc000],
    mask: [1, 1, 0],
    codes: [-125, -3],
    step: 3n,
  },
  r2b1: {
    weight: [2, -2, 1, 1],
    half: [0x3c02, 0x8001],
    brain: [0x3f82, 0xc001],
    mask: [1, 0, 1],
    codes: [-126, 8],
    step: 102n,
  },
  r3b1: {
    weight: [3, -3, 1.5, 1],
    half: [0x3c03, 0x8001],
    brain: [0x3f83, 0xc001],
    mask: [1, 1, 1],
    codes: [-125, 7],
    step: 103n,
  },
  r3b2: {
    weight: [3, -3, 1.5, 2],
    half: [0x3c03, 0x8002],
    brain: [0x3f83, 0xc002],
    mask: [1, 1, 0],
    codes: [-125, 17],
    step: 203n,
  },
} satisfies Record<string, Values>;

/** Every recorded round: where it is, how `export` chooses it, and its parameters. */
const ROUNDS: readonly { folder: string; round: number; choice: string[]; values: Values; bp: string | null }[] = [
  { folder: 'Experiment_0000', round: 0, choice: ['--round', '0'], values: V.r0b0, bp: 'breakpoint_0000' },
  { folder: 'Experiment_0000', round: 1, choice: ['--round', '1'], values: V.r1b0, bp: 'breakpoint_0001' },
  {
    folder: 'Experiment_0000',
    round: 2,
    choice: ['--round', '2', '--position', '4'],
    values: V.r2b0,
    bp: 'superseded/breakpoint_0002.1',
  },
  {
    folder: 'Experiment_0000',
    round: 3,
    choice: ['--round', '3', '--position', '5'],
    values: V.r3b0,
    bp: 'superseded/breakpoint_0003.1',
  },
  { folder: 'Experiment_0000', round: 2, choice: ['--round', '2'], values: V.r2b1, bp: 'breakpoint_0002' },
  { folder: 'Experiment_0000', round: 3, choice: ['--round', '3'], values: V.r3b1, bp: 'breakpoint_0003' },
  { folder: 'Experiment_0000', round: 2, choice: ['--superseded', '--round', '2'], values: V.r2b0, bp: null },
  { folder: 'fork-a', round: 2, choice: ['--round', '2'], values: V.r2b1, bp: 'breakpoint_0002' },
  { folder: 'fork-a', round: 3, choice: ['--round', '3'], values: V.r3b2, bp: 'breakpoint_0003' },
];

/** The TensorBoard event files of the fixture (relative to `experiments/`) and the steps each holds. */
const EVENT_FILES: Record<string, number[]> = {
  'Experiment_0000/tensorboard/events.out.tfevents.1796083202.roundlog.1': [0, 1, 2, 3],
  'Experiment_0000/tensorboard/superseded/rewind_1_rounds_2-3/events.out.tfevents.1796083204.roundlog': [2, 3],
  'fork-a/tensorboard/events.out.tfevents.1796083212.roundlog.0': [3],
};

/** The aggregate loss of each step of each event file, as recorded (exact in float32). */
const LOSSES: Record<string, number[]> = {
  'Experiment_0000/tensorboard/events.out.tfevents.1796083202.roundlog.1': [0.5, 0.375, 0.3125, 0.1875],
  'Experiment_0000/tensorboard/superseded/rewind_1_rounds_2-3/events.out.tfevents.1796083204.roundlog': [0.25, 0.125],
  'fork-a/tensorboard/events.out.tfevents.1796083212.roundlog.0': [0.25],
};

function copyOfFixture(): string {
  const root = path.join(tempDir(), 'root');
  cpSync(FIXTURE, root, { recursive: true });
  return root;
}

/** Asserts `tensors` hold `expected`, dtype by dtype. */
function sameValues(t: ExecutionContext, tensors: TensorSet, expected: Values, where: string): void {
  t.deepEqual(
    Object.keys(tensors).sort(),
    ['layer.brain', 'layer.codes', 'layer.half', 'layer.mask', 'layer.weight', 'step'],
    where,
  );
  const seen = (name: string, dtype: TensorDType, shape: number[]) => {
    const tensor = tensors[name]!;
    t.is(tensor.dtype, dtype, `${where} ${name}`);
    t.deepEqual(tensor.shape, shape, `${where} ${name}`);
    return [...(tensor.data as ArrayLike<number | bigint> & Iterable<number | bigint>)];
  };
  t.deepEqual(seen('layer.weight', 'float32', [2, 2]), expected.weight, `${where} float32`);
  t.deepEqual(seen('layer.half', 'float16', [2]), expected.half, `${where} float16`);
  t.deepEqual(seen('layer.brain', 'bfloat16', [2]), expected.brain, `${where} bfloat16`);
  t.deepEqual(seen('layer.mask', 'bool', [3]), expected.mask, `${where} bool`);
  t.deepEqual(seen('layer.codes', 'int8', [2]), expected.codes, `${where} int8`);
  t.deepEqual(seen('step', 'int64', []), [expected.step], `${where} int64`);
}

/** Every file under `dir` (relative paths) with its bytes, hidden files and `skip` left out. */
function filesUnder(dir: string, skip: (relative: string) => boolean = () => false): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const walk = (relative: string) => {
    for (const name of readdirSync(path.join(dir, relative)).sort()) {
      const child = path.join(relative, name);
      if (name.startsWith('.') || skip(child)) continue;
      if (statSync(path.join(dir, child)).isDirectory()) walk(child);
      else files.set(child, readFileSync(path.join(dir, child)));
    }
  };
  walk('');
  return files;
}

type Report = {
  ok: boolean;
  log: { eventsChecked: number; problems: unknown[] };
  blobs: { problems: unknown[] };
  history: { problems: unknown[] };
  references: { problems: unknown[] };
  breakpoints: { foldersChecked: number; problems: unknown[] };
  caches: { filesChecked: number; problems: unknown[] };
  views: { name: string; checked: number; problems: unknown[] }[];
  lag: unknown[];
  notes: string[];
};

function assertClean(t: ExecutionContext, report: Report): void {
  t.true(report.ok);
  for (const section of ['log', 'blobs', 'history', 'references', 'breakpoints', 'caches'] as const)
    t.deepEqual(report[section].problems, [], section);
  t.deepEqual(report.lag, []);
  t.deepEqual(report.notes, []);
}

test('verify: clean, no lag, no note (snapshots of this state shape, a checkpoint of this format)', async (t) => {
  const root = copyOfFixture();
  const report = await roundlogJson<Report>(['verify', '--root', root]);
  assertClean(t, report);
  t.is(report.log.eventsChecked, 14, 'the registry events and both streams');
  t.is(report.breakpoints.foldersChecked, 8);
  t.is(report.caches.filesChecked, 3, 'two snapshots and the projection checkpoint');
  t.like(
    report.views.find((v) => v.name === 'tensorboard'),
    { checked: 3, problems: [] },
  );
});

test('every round (current, superseded, inherited) exports to the recorded values, as stored', async (t) => {
  const root = copyOfFixture();
  const out = tempDir();
  for (const [i, r] of ROUNDS.entries()) {
    const where = `${r.folder} ${r.choice.join(' ')}`;
    const file = path.join(out, `${i}.safetensors`);
    const result = await roundlog(['export', r.folder, ...r.choice, '--out', file, '--root', root]);
    t.is(result.code, 0, `${where}: ${result.stderr}`);
    const bytes = readFileSync(file);
    sameValues(t, decodeSafetensorsFile(bytes, { source: file }).tensors, r.values, where);
    // A round stored as safetensors is exported as the very bytes stored (its breakpoint folder's file).
    if (r.bp !== null) {
      t.deepEqual(bytes, readFileSync(path.join(root, 'experiments', r.folder, r.bp, 'params.safetensors')), where);
    }
    const npz = path.join(out, `${i}.npz`);
    const exported = await roundlog(['export', r.folder, ...r.choice, '--out', npz, '--root', root]);
    t.is(exported.code, 0, `${where} npz: ${exported.stderr}`);
  }
  // The breakpoint manifests say which encoding each folder's file is in.
  for (const r of ROUNDS.filter((x) => x.bp !== null)) {
    const manifest = JSON.parse(
      readFileSync(path.join(root, 'experiments', r.folder, r.bp!, 'breakpoint.json'), 'utf8'),
    ) as { formatVersion: number; round: number; params: { encoding: string; file: string } };
    t.like(manifest, {
      formatVersion: 2,
      round: r.round,
      params: { encoding: 'tensors/safetensors', file: 'params.safetensors' },
    });
  }
});

test('the TensorBoard event files hold each branch’s rounds with the recorded losses', (t) => {
  for (const [relative, steps] of Object.entries(EVENT_FILES)) {
    const { events, tornAt } = readEventFile(readFileSync(path.join(FIXTURE, 'experiments', relative)), relative);
    t.is(tornAt, null);
    t.is(events[0]!.fileVersion, 'brain.Event:2');
    t.deepEqual(
      events.slice(1).map((e) => e.step),
      steps,
      relative,
    );
    t.deepEqual(
      events.slice(1).map((e) => e.scalars.find((s) => s.tag === 'loss')!.value),
      LOSSES[relative],
      relative,
    );
    for (const event of events.slice(1)) {
      const loss = event.scalars.find((s) => s.tag === 'loss')!.value;
      t.deepEqual(
        event.scalars.map((s) => s.tag),
        ['loss', 'node/site-a/loss', 'node/site-b/loss'],
      );
      t.deepEqual(
        event.scalars.slice(1).map((s) => s.value),
        [loss / 2, loss * 2],
      );
    }
  }
});

test('resumed: both experiments continue after their last round, the curve and folders continue', async (t) => {
  const root = copyOfFixture();
  const current = path.join(root, 'experiments', Object.keys(EVENT_FILES)[0]!);
  const before = readFileSync(current);
  const rl = await openRoundLog({ root });
  try {
    const main = await rl.openExperiment('Experiment_0000');
    t.is(main.roundCurrent(), 4);
    const last = await main.loadRound('last');
    t.is(last.round, 3);
    sameValues(t, last.params, V.r3b1, 'Experiment_0000 last round');
    await main.recordRound({ params: last.params, metrics: { loss: 0.0625 } });
    const fork = await rl.openExperiment('fork-a');
    t.is(fork.roundCurrent(), 4);
    const forkLast = await fork.loadRound('last');
    sameValues(t, forkLast.params, V.r3b2, 'fork-a last round');
    const forkInherited = await fork.loadRound(2);
    sameValues(t, forkInherited.params, V.r2b1, 'fork-a inherited round 2');
  } finally {
    await rl.close();
  }
  // Same generation (no rewind since): the file is the committed one and the new step after it.
  const after = readFileSync(current);
  t.deepEqual(after.subarray(0, before.length), before);
  t.deepEqual(
    readEventFile(after).events.map((e) => e.step),
    [0, 0, 1, 2, 3, 4],
  );
  const folder = path.join(root, 'experiments', 'Experiment_0000', 'breakpoint_0004');
  sameValues(
    t,
    decodeSafetensorsFile(readFileSync(path.join(folder, 'params.safetensors'))).tensors,
    V.r3b1,
    'breakpoint_0004',
  );
  // A round replayed as a folder of its own has the committed file's bytes.
  const replayed = await roundlogJson<{ path: string }>([
    'replay',
    'Experiment_0000',
    '--round',
    '2',
    '--out',
    path.join(tempDir(), 'replayed'),
    '--root',
    root,
  ]);
  t.deepEqual(
    readFileSync(path.join(replayed.path, 'params.safetensors')),
    readFileSync(path.join(FIXTURE, 'experiments', 'Experiment_0000', 'breakpoint_0002', 'params.safetensors')),
  );
  assertClean(t, await roundlogJson<Report>(['verify', '--root', root]));
});

test('project --rebuild writes the TensorBoard files and breakpoint folders byte for byte as committed', async (t) => {
  const root = copyOfFixture();
  const experiments = path.join(root, 'experiments');
  for (const folder of ['Experiment_0000', 'fork-a'])
    rmSync(path.join(experiments, folder, 'tensorboard'), { recursive: true });
  const result = await roundlog(['project', '--rebuild', '--root', root]);
  t.is(result.code, 0, result.stderr);
  const committed = filesUnder(path.join(FIXTURE, 'experiments'));
  const rebuilt = filesUnder(experiments);
  t.deepEqual([...rebuilt.keys()], [...committed.keys()]);
  t.deepEqual(
    [...committed.keys()].filter((f) => f.includes('tfevents')),
    Object.keys(EVENT_FILES),
  );
  t.is([...committed.keys()].filter((f) => f.endsWith('params.safetensors')).length, 8);
  for (const [file, bytes] of committed) t.deepEqual(rebuilt.get(file), bytes, file);
  assertClean(t, await roundlogJson<Report>(['verify', '--root', root]));
});

test('project --follow starts after the committed projection checkpoint', async (t) => {
  const root = copyOfFixture();
  const checkpoint = JSON.parse(readFileSync(path.join(root, 'experiments', '.projection-checkpoint.json'), 'utf8'));
  t.like(checkpoint, { v: 2, store: 'file log', position: '13', eventId: '00000000-0000-4000-8000-000000000016' });
  const follower = startRoundlog(['project', '--follow', '--root', root]);
  const started = await follower.waitFor((line) => line.startsWith('following '));
  await follower.waitFor((line) => line.startsWith('caught up'));
  follower.process.kill('SIGINT');
  const { code } = await follower.exited;
  t.is(code, 0, follower.stderr());
  t.is(
    started,
    `following file log ${path.join(root, 'log')} from checkpoint 13: projection lag 0 events (log end 13)`,
  );
});
