/**
 * A breakpoint folder's manifest is validated before it is used, checked against itself when no
 * log knows it, and checked against the log (never believed) when one does: through the
 * `roundlog` command on real roots, with folders carried, edited and copied as users do.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { roundlog, roundlogJson } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

type Json = Record<string, unknown>;

/** One finished source root of 5 rounds, shared by the tests (each copies what it changes). */
let source = '';
test.before(async () => {
  source = tempDir();
  const run = await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '5', '--root', source]);
  if (run.code !== 0) throw new Error(run.stderr);
});

const experimentDir = (root: string) => path.join(root, 'experiments', 'Experiment_0000');

/** The canonical form the manifest's checksum covers: JSON, keys sorted, no whitespace. */
function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const object = value as Json;
  const keys = Object.keys(object).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(object[k])}`).join(',')}}`;
}

/** Gives a manifest the checksum of its (edited) content, as someone who edits it with care would. */
function seal(manifest: Json): Json {
  const { manifestSha256: _old, ...rest } = manifest;
  return { ...rest, manifestSha256: createHash('sha256').update(canonical(rest)).digest('hex') };
}

/** Writes the manifest as a release that knew only format version 1 did: no checksum of itself. */
function asVersion1(manifest: Json): Json {
  const { manifestSha256: _old, ...rest } = manifest;
  return { ...rest, formatVersion: 1 };
}

/** Copies breakpoint_RRRR of the source into `<dir>/<name>`, edits its manifest, returns the folder. */
function carry(round: number, edit: (m: Json) => Json, dir = tempDir(), name = `breakpoint_000${round}`): string {
  const folder = path.join(dir, name);
  cpSync(path.join(experimentDir(source), `breakpoint_000${round}`), folder, { recursive: true });
  const file = path.join(folder, 'breakpoint.json');
  writeFileSync(file, JSON.stringify(edit(JSON.parse(readFileSync(file, 'utf8')) as Json), null, 2));
  return folder;
}

/** `roundlog resume <folder> --rounds 1` into a new root: the import, then one round. */
async function importInto(folder: string, root = tempDir()) {
  return { root, ...(await roundlog(['resume', folder, '--rounds', '1', '--root', root])) };
}

// ---- fault 19: wrong types and shapes end as typed errors naming the field ------------------------

const wrongTypes: Array<[string, (m: Json) => void, RegExp]> = [
  ['experimentId: null', (m) => (m.experimentId = null), /experimentId/],
  ['round: "x"', (m) => (m.round = 'x'), /\bround\b/],
  ['round: 1.5', (m) => (m.round = 1.5), /\bround\b/],
  ['state: 42', (m) => (m.state = 42), /\bstate\b/],
  ['trainingPlan: []', (m) => (m.trainingPlan = []), /trainingPlan/],
  ['settings: null', (m) => (m.settings = null), /settings/],
  ['params.bytes: -1', (m) => ((m.params as Json).bytes = -1), /params\.bytes/],
  ['experiment.federated.tags: 7', (m) => (((m.experiment as Json).federated as Json).tags = 7), /federated\.tags/],
  ['files: "x"', (m) => (m.files = 'x'), /files/],
];
for (const [title, edit, field] of wrongTypes) {
  test(`a carried breakpoint.json with ${title} is refused, typed, naming the file and the field`, async (t) => {
    for (const sealed of [false, true]) {
      const folder = carry(4, (m) => {
        edit(m);
        return sealed ? seal(m) : m;
      });
      const result = await importInto(folder);
      t.is(result.code, 1, result.stdout);
      t.notRegex(result.stderr, /unexpected error/);
      t.regex(result.stderr, /^roundlog: breakpoint .* is not usable: breakpoint\.json: /);
      t.regex(result.stderr, field);
      t.false(existsSync(path.join(result.root, 'experiments', 'Experiment_0000')), 'nothing was imported');
    }
  });
}

test('a re-sealed params.bytes that is not the size of the parameters file is refused', async (t) => {
  const folder = carry(4, (m) => seal({ ...m, params: { ...(m.params as Json), bytes: 1e12 } }));
  const result = await importInto(folder);
  t.is(result.code, 1, result.stdout);
  t.regex(result.stderr, /params\.bytes is 1000000000000, but params\.safetensors holds \d+ bytes/);
  t.false(existsSync(path.join(result.root, 'experiments', 'Experiment_0000')), 'nothing was imported');
});

test('JSON nested 10,000 deep and a manifest of 40 MB are refused before they are parsed', async (t) => {
  const deep = carry(4, (m) => m);
  writeFileSync(path.join(deep, 'breakpoint.json'), `${'['.repeat(10_000)}${']'.repeat(10_000)}`);
  const nested = carry(4, (m) => ({ ...m, state: JSON.parse(`${'{"a":'.repeat(2_000)}1${'}'.repeat(2_000)}`) }));
  const huge = carry(4, (m) => ({ ...m, metrics: { pad: 'x'.repeat(40 * 1024 * 1024) } }));
  for (const folder of [deep, nested, huge]) {
    const result = await importInto(folder);
    t.is(result.code, 1);
    t.notRegex(result.stderr, /unexpected error|Maximum call stack/);
    t.regex(
      result.stderr,
      /breakpoint\.json\b.*(nested deeper than \d+|larger than \d+ bytes|more than the \d+ that may be read)/,
    );
  }
});

test('fork --name of 300 characters, or with a character a folder name cannot hold: a typed usage error', async (t) => {
  const root = tempDir();
  cpSync(source, root, { recursive: true });
  for (const name of ['x'.repeat(300), 'a\nb', 'a:b*c', '-n']) {
    const result = await roundlog(['fork', 'Experiment_0000', '--round', '2', `--name=${name}`, '--root', root]);
    t.is(result.code, 2, `${JSON.stringify(name)}: ${result.stderr}`);
    t.notRegex(result.stderr, /unexpected error|ENAMETOOLONG/);
    t.regex(result.stderr, /--name must be/);
  }
  const ok = await roundlog(['fork', 'Experiment_0000', '--round', '2', '--name', 'my-fork_2.a', '--root', root]);
  t.is(ok.code, 0, ok.stderr);
});

// ---- fault 13: a folder imported without a log is checked against itself --------------------------

test('a manifest carries the SHA-256 of its own canonical content, and an edit without it is refused', async (t) => {
  const written = JSON.parse(
    readFileSync(path.join(experimentDir(source), 'breakpoint_0004', 'breakpoint.json'), 'utf8'),
  );
  t.is(written.formatVersion, 2);
  t.deepEqual(seal(written), written, 'manifestSha256 is the SHA-256 of the canonical JSON of every other field');

  // Only `round` edited, in a folder whose name says no round: refused, naming the file and the field.
  const onlyRound = carry(4, (m) => ({ ...m, round: 2 }), tempDir(), 'carried');
  const result = await importInto(onlyRound);
  t.is(result.code, 1);
  t.regex(result.stderr, /carried is not usable: breakpoint\.json: round is 2 but roundCurrent is 5/);
  // Every round field edited consistently (round 2's parameters passed off as round 0): the checksum refuses it.
  const consistent = carry(2, (m) => ({ ...m, round: 0, roundCurrent: 1 }), tempDir(), 'breakpoint_0000');
  const forged = await importInto(consistent);
  t.is(forged.code, 1);
  t.regex(forged.stderr, /breakpoint\.json: manifestSha256 is [0-9a-f]{64}, but the content hashes to [0-9a-f]{64}/);
  t.false(existsSync(path.join(forged.root, 'experiments', 'Experiment_0000')));
});

test('format versions are integers it knows; version 1 (no checksum) imports, checked for agreement', async (t) => {
  for (const version of [0, 0.5, 1.5, '1', 3, null]) {
    const result = await importInto(carry(4, (m) => ({ ...m, formatVersion: version })));
    t.is(result.code, 1, `formatVersion ${JSON.stringify(version)}`);
    t.regex(result.stderr, /breakpoint\.json: formatVersion /, `formatVersion ${JSON.stringify(version)}`);
    t.notRegex(result.stderr, /unexpected error/);
  }
  const old = await importInto(carry(4, asVersion1));
  t.is(old.code, 0, old.stderr);
  t.regex(old.stdout, /resumed Experiment_0000 .* after round 4 \(round 5 runs next\), 5\/10 rounds done/);
  const verify = await roundlog(['verify', '--root', old.root]);
  t.is(verify.code, 0, verify.stdout);

  // A version 1 manifest whose fields disagree with each other: each refused, naming the field.
  const disagreements: Array<[(m: Json) => Json, RegExp]> = [
    [(m) => ({ ...m, round: 3 }), /round is 3 but roundCurrent is 5/],
    [(m) => ({ ...m, roundLimit: 7 }), /roundLimit is 7 but settings\.roundLimit is 10/],
    [(m) => ({ ...m, experimentId: '00000000-0000-4000-8000-000000000000' }), /experiment\.experimentId/],
    [(m) => ({ ...m, stream: 'experiment-x' }), /stream is "experiment-x"/],
    [(m) => ({ ...m, trainingPlan: { ...(m.trainingPlan as Json), export: 'other' } }), /trainingPlan\.export/],
  ];
  for (const [edit, reason] of disagreements) {
    const result = await importInto(carry(4, (m) => edit(asVersion1(m)), tempDir(), 'carried'));
    t.is(result.code, 1);
    t.regex(result.stderr, /breakpoint\.json: /);
    t.regex(result.stderr, reason);
  }
});

test('a folder copied under experiments/ of another root imports, and verify then finds nothing wrong', async (t) => {
  const root = tempDir();
  const placed = path.join(root, 'experiments', 'Experiment_0000');
  mkdirSync(placed, { recursive: true });
  const folder = carry(4, (m) => m, placed);
  const result = await importInto(folder, root);
  t.is(result.code, 0, result.stderr);
  const verify = await roundlog(['verify', '--root', root]);
  t.is(verify.code, 0, verify.stdout);
  t.regex(verify.stdout, /0 problems/);
});

// ---- fault 20: where the log exists, the folder is checked against it, never believed --------------

test('resume with the log present refuses a folder that disagrees with it, naming file and field', async (t) => {
  const root = tempDir();
  cpSync(source, root, { recursive: true });
  const file = path.join(experimentDir(root), 'breakpoint_0004', 'breakpoint.json');
  const manifest = JSON.parse(readFileSync(file, 'utf8')) as Json;
  const settings = manifest.settings as { trainingArgs: Json };
  settings.trainingArgs.learningRate = 0.3;
  // Even with its checksum made right, the log's value wins.
  writeFileSync(file, JSON.stringify(seal(manifest), null, 2));
  for (const target of [[], [path.join(experimentDir(root), 'breakpoint_0004')], [experimentDir(root)]]) {
    const result = await roundlog(['resume', ...target, '--rounds', '1', '--root', root]);
    t.is(result.code, 1, result.stdout);
    t.regex(
      result.stderr,
      /breakpoint_0004 is not usable: breakpoint\.json: settings\.trainingArgs\.learningRate is 0\.3/,
    );
  }
});

test('ls takes rounds and parameter hashes from the log: a folder disagreeing with it is damaged', async (t) => {
  const root = tempDir();
  cpSync(source, root, { recursive: true });
  // Round 2's folder put in place of round 4's, its manifest edited consistently in the old format.
  const four = path.join(experimentDir(root), 'breakpoint_0004');
  renameSync(four, path.join(root, 'old4'));
  carry(2, (m) => asVersion1({ ...m, round: 4, roundCurrent: 5 }), experimentDir(root), 'breakpoint_0004');
  type Listing = Array<{
    breakpoints: Array<{ round: number; path: string; paramsSha256: string | null; damaged: { file: string } | null }>;
  }>;
  const [listing] = await roundlogJson<Listing>(['ls', '--root', root]);
  const log = await roundlogJson<Array<{ type: string; data: { round?: number; params?: { sha256: string } } }>>([
    'events',
    'Experiment_0000',
    '--root',
    root,
  ]);
  const completed = log.filter((e) => e.type === 'RoundCompleted');
  t.deepEqual(
    listing!.breakpoints.map((b) => b.round),
    [0, 1, 2, 3, 4],
  );
  for (const round of [0, 1, 2, 3])
    t.is(listing!.breakpoints[round]!.paramsSha256, completed[round]!.data.params!.sha256);
  // The damaged folder: no hash (a string there would read as one), and what is wrong with it.
  t.is(listing!.breakpoints[4]!.paramsSha256, null);
  const damaged = listing!.breakpoints[4]!.damaged;
  t.true(
    damaged !== null && damaged.file.startsWith(listing!.breakpoints[4]!.path + path.sep),
    JSON.stringify(damaged),
  );
  t.true(listing!.breakpoints.slice(0, 4).every((b) => b.damaged === null));
});
