/**
 * A breakpoint folder carried into a root with no log of it is data: the files its manifest names,
 * the symlinks inside it and the module paths it records never lead roundlog to read or run
 * anything outside the folder or the workspace. Each attack below reads or runs a canary when the
 * confinement is missing, and the tests check the canary's bytes are nowhere in the root.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { CorruptPayloadError, DecodeLimitError } from '../../src/codec/errors.ts';
import { setDecodeLimits } from '../../src/codec/limits.ts';
import { NotARegularFileError, PathOutsideError } from '../../src/confine.ts';
import { BreakpointCorruptError } from '../../src/model/errors.ts';
import { Experiment } from '../../src/federated/experiment.ts';
import { WORKSPACE, federation, runExample } from '../support/example-experiment.ts';
import { editManifest } from '../support/manifests.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const PLAN_FILE = 'training_plan.ts';
const PARAMS_FILE = 'params.safetensors';

/** One real breakpoint folder (round 1), made once and copied by every test. */
let source = '';
test.before(async () => {
  const root = tempDir();
  source = path.join(await runExample(root, 2), 'breakpoint_0001');
});

type Setup = { work: string; carried: string; root: string; canary: string; canaryBytes: Buffer };

/** A workspace with a copy of the folder (`carried`), an empty root, and a canary file beside the folder. */
function setUp(): Setup {
  const work = tempDir('roundlog-confine-');
  const carried = path.join(work, 'carried');
  cpSync(source, carried, { recursive: true });
  const canaryBytes = Buffer.from(`export const secret = 'canary ${Math.random()}';\n`);
  const canary = path.join(work, 'canary.ts');
  writeFileSync(canary, canaryBytes);
  return { work, carried, root: path.join(work, 'root'), canary, canaryBytes };
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Every regular file under `dir` whose bytes equal `bytes`. */
function filesHolding(dir: string, bytes: Buffer): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((name) => path.join(dir, name))
    .filter((file) => statSync(file).isFile() && readFileSync(file).equals(bytes));
}

const load = (setup: Setup, workspace = WORKSPACE) =>
  Experiment.loadBreakpoint(setup.carried, { root: setup.root, federation, workspace });

/**
 * The import is refused, typed, naming `field` (a PathOutsideError, or the manifest's own check
 * when its schema already refuses the value), and the canary is nowhere in the root.
 */
async function refusedOutside(t: import('ava').ExecutionContext, setup: Setup, field: string, workspace?: string) {
  const error = (await t.throwsAsync(load(setup, workspace))) as PathOutsideError | BreakpointCorruptError;
  if (error instanceof PathOutsideError) {
    t.is(error.field, field);
    t.regex(error.message, /nothing was read from it/);
  } else {
    t.true(error instanceof BreakpointCorruptError, String(error));
    t.true(error.message.includes(field), error.message);
  }
  t.deepEqual(filesHolding(setup.root, setup.canaryBytes), [], 'the canary is nowhere in the root');
  return error!;
}

test('the control: an untouched carried folder is imported', async (t) => {
  const setup = setUp();
  const imported = await load(setup);
  t.is(imported.roundCurrent(), 2);
  await imported.close();
});

test('trainingPlan.file with ../ is refused before anything is read, naming the field and the value', async (t) => {
  const setup = setUp();
  editManifest(setup.carried, (m) => (m.trainingPlan.file = '../canary.ts'));
  const error = await refusedOutside(t, setup, 'trainingPlan.file');
  t.true(error.message.includes('../canary.ts'), error.message);
});

test('trainingPlan.file as an absolute path is refused', async (t) => {
  const setup = setUp();
  editManifest(setup.carried, (m) => (m.trainingPlan.file = setup.canary));
  await refusedOutside(t, setup, 'trainingPlan.file');
});

test('params.file with ../ is refused', async (t) => {
  const setup = setUp();
  editManifest(setup.carried, (m) => (m.params.file = '../canary.ts'));
  await refusedOutside(t, setup, 'params.file');
});

test('a symlink in the folder leading out (its hash listed) is never followed', async (t) => {
  const setup = setUp();
  rmSync(path.join(setup.carried, PLAN_FILE));
  symlinkSync(setup.canary, path.join(setup.carried, PLAN_FILE));
  editManifest(setup.carried, (m) => (m.files[PLAN_FILE] = sha256(setup.canaryBytes)));
  await refusedOutside(t, setup, PLAN_FILE);
});

test('parameters through a symlink to a file outside, with the very bytes listed, are refused', async (t) => {
  const setup = setUp();
  const outside = path.join(setup.work, 'params-outside.tensors');
  cpSync(path.join(setup.carried, PARAMS_FILE), outside);
  rmSync(path.join(setup.carried, PARAMS_FILE));
  symlinkSync(outside, path.join(setup.carried, PARAMS_FILE));
  const error = await t.throwsAsync(load(setup), { instanceOf: PathOutsideError });
  t.is(error!.field, PARAMS_FILE);
  // The folder is refused before the root is created: no blob, no root.
  t.false(existsSync(setup.root), 'no root was created');
});

test('parameters through a symlink to /dev/zero are refused, not read', async (t) => {
  const setup = setUp();
  rmSync(path.join(setup.carried, PARAMS_FILE));
  symlinkSync('/dev/zero', path.join(setup.carried, PARAMS_FILE));
  const error = await t.throwsAsync(load(setup), { instanceOf: PathOutsideError });
  t.is(error!.resolved, '/dev/zero');
});

test('a breakpoint.json that is a symlink to a manifest outside the folder is refused', async (t) => {
  const setup = setUp();
  const outside = path.join(setup.work, 'outside.json');
  cpSync(path.join(setup.carried, 'breakpoint.json'), outside);
  rmSync(path.join(setup.carried, 'breakpoint.json'));
  symlinkSync(outside, path.join(setup.carried, 'breakpoint.json'));
  const error = await t.throwsAsync(load(setup), { instanceOf: PathOutsideError });
  t.is(error!.field, 'breakpoint.json');
});

test('a folder in place of the parameters file is refused as not a regular file', async (t) => {
  const setup = setUp();
  rmSync(path.join(setup.carried, PARAMS_FILE));
  mkdirSync(path.join(setup.carried, PARAMS_FILE));
  const error = await t.throwsAsync(load(setup), { instanceOf: NotARegularFileError });
  t.is(error!.kind, 'directory');
});

/** A training plan that leaves a mark beside itself when its module is run. */
const MARKING_PLAN = `import { writeFileSync } from 'node:fs';
writeFileSync(new URL('./RAN', import.meta.url), 'the carried code ran');
export { logisticRegressionPlan } from ${JSON.stringify(path.join(WORKSPACE, 'examples/logistic-regression/plan.ts'))};
`;

test('a training plan module recorded inside the carried folder is never imported (its hash matching)', async (t) => {
  const setup = setUp();
  const bytes = Buffer.from(MARKING_PLAN);
  writeFileSync(path.join(setup.carried, PLAN_FILE), bytes);
  editManifest(setup.carried, (m) => {
    const hash = sha256(bytes);
    m.files[PLAN_FILE] = hash;
    m.trainingPlan.sha256 = hash;
    m.trainingPlan.module = 'carried/training_plan.ts';
    m.settings.trainingPlan.sha256 = hash;
    m.settings.trainingPlan.module = 'carried/training_plan.ts';
    m.experiment.federated.trainingPlan.sha256 = hash;
    m.experiment.federated.trainingPlan.module = 'carried/training_plan.ts';
    // Consistent everywhere, as a careful forger makes it: the manifest's own checks pass.
    for (const plan of [m.settings.trainingPlan, m.experiment.federated.trainingPlan]) {
      if (plan.source) plan.source = { ...plan.source, sha256: hash, bytes: bytes.length };
    }
  });
  const error = await t.throwsAsync(load(setup, setup.work), { instanceOf: PathOutsideError });
  t.is(error!.field, 'trainingPlan.module');
  t.false(existsSync(path.join(setup.carried, 'RAN')), 'the module in the carried folder never ran');
});

test('a training plan module recorded as ../ out of the workspace is refused', async (t) => {
  const setup = setUp();
  editManifest(setup.carried, (m) => {
    m.trainingPlan.module = '../canary.ts';
    m.settings.trainingPlan.module = '../canary.ts';
    m.experiment.federated.trainingPlan.module = '../canary.ts';
  });
  const error = await t.throwsAsync(load(setup, path.join(setup.work, 'root')), { instanceOf: PathOutsideError });
  t.is(error!.field, 'trainingPlan.module');
});

/** Replaces the carried folder's params.safetensors with `bytes`, and its manifest lists them (hash, size). */
function hostileParams(setup: Setup, bytes: Buffer): string {
  const file = path.join(setup.carried, PARAMS_FILE);
  rmSync(file);
  writeFileSync(file, bytes);
  editManifest(setup.carried, (m) => {
    m.files[PARAMS_FILE] = sha256(bytes);
    m.params.sha256 = sha256(bytes);
    m.params.bytes = bytes.length;
  });
  return file;
}

/** A safetensors file whose header is `header` (JSON) and buffer `buffer`. */
function safetensorsFile(header: unknown, buffer: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, buffer]);
}

test('a params.safetensors with overlapping tensors, listed as it is, is refused typed, naming the file', async (t) => {
  const setup = setUp();
  const file = hostileParams(
    setup,
    safetensorsFile(
      {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
      },
      Buffer.alloc(12),
    ),
  );
  const error = await t.throwsAsync(load(setup), { instanceOf: CorruptPayloadError });
  t.is(error!.code, 'CORRUPT_PAYLOAD');
  t.is(error!.source, file);
  t.regex(error!.message, /tensors "a" .* and "b" .* overlap/);
  t.true(error!.message.includes(file), error!.message);
  t.false(existsSync(path.join(setup.root, 'experiments', 'Experiment_0000')), 'no experiment was imported');
});

test('a params.safetensors whose header length claims 100 MB is refused before anything is allocated', async (t) => {
  const setup = setUp();
  const bytes = safetensorsFile({}, Buffer.alloc(0));
  bytes.writeBigUInt64LE(100n * 1024n * 1024n);
  const file = hostileParams(setup, bytes);
  const error = await t.throwsAsync(load(setup), { instanceOf: CorruptPayloadError });
  t.is(error!.source, file);
  t.regex(error!.message, /header length 104857600 .* runs past the end of the 10-byte file/);
});

test.serial(
  'a params.safetensors whose header is over the value limit is a DecodeLimitError naming the file',
  async (t) => {
    const setup = setUp();
    const previous = setDecodeLimits({ maxValueBytes: 64 });
    try {
      const file = hostileParams(setup, safetensorsFile({ __metadata__: { note: 'x'.repeat(100) } }, Buffer.alloc(0)));
      const error = await t.throwsAsync(load(setup), { instanceOf: DecodeLimitError });
      t.true(error!.message.includes(file), error!.message);
    } finally {
      setDecodeLimits(previous);
    }
  },
);

test('a manifest that says safetensors over a file of another format is refused, naming the file', async (t) => {
  const setup = setUp();
  const file = hostileParams(setup, Buffer.from('\x80\x04\x95 pickled data, not safetensors'));
  const error = await t.throwsAsync(load(setup), { instanceOf: CorruptPayloadError });
  t.is(error!.source, file);
  t.is(error!.encoding, 'tensors/safetensors');
});
