/**
 * Property tests of the boundaries: random and mutated manifests thrown at the import path, the
 * resume path (log present) and the check that `verify` and `ls` share; mutated argument lists
 * thrown at the `roundlog` command. Every failure must be a typed `RoundlogError` (the command
 * prints `roundlog: <message>`, never `unexpected error`) and memory must stay bounded.
 */
import test from 'ava';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { RoundlogError } from '../../src/errors.ts';
import { checkBreakpointFolder, readBreakpoint } from '../../src/projections/breakpoints/index.ts';
import { roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

type Json = unknown;
type Path = ReadonlyArray<string | number>;

/** A finished root of 2 rounds (breakpoint_0000 and breakpoint_0001), shared and never changed. */
let source = '';
let valid: Record<string, Json> = {};
let paths: Path[] = [];
test.before(async () => {
  source = tempDir();
  const run = await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '2', '--root', source]);
  if (run.code !== 0) throw new Error(run.stderr);
  valid = JSON.parse(readFileSync(path.join(breakpoint(source, 1), 'breakpoint.json'), 'utf8')) as Record<string, Json>;
  paths = allPaths(valid);
});

const breakpoint = (root: string, round: number) =>
  path.join(root, 'experiments', 'Experiment_0000', `breakpoint_000${round}`);

function allPaths(value: Json, at: Path = []): Path[] {
  const found: Path[] = [at];
  if (value !== null && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) {
      found.push(...allPaths(inner, [...at, Array.isArray(value) ? Number(key) : key]));
    }
  }
  return found;
}

function canonical(value: Json): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const object = value as Record<string, Json>;
  return `{${Object.keys(object)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(object[k])}`)
    .join(',')}}`;
}

/** A manifest with the checksum of its content, so the mutation meets the schema and the log, not the checksum. */
function seal(manifest: Json): Json {
  if (manifest === null || typeof manifest !== 'object' || Array.isArray(manifest)) return manifest;
  const { manifestSha256: _old, ...rest } = manifest as Record<string, Json>;
  return { ...rest, manifestSha256: createHash('sha256').update(canonical(rest)).digest('hex') };
}

/** Stands for arrays nested `n` deep until the manifest is text (the test's own code never recurses into them). */
const deepMarker = (n: number) => `\u0000deep:${n}\u0000`;
const deepText = (text: string) =>
  text.replace(/"\\u0000deep:(\d+)\\u0000"/g, (_m, n: string) => `${'['.repeat(Number(n))}${']'.repeat(Number(n))}`);

/** Values of every JSON type, deep nesting and long text included. */
const anyValue: fc.Arbitrary<Json> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(null, true, false, 0, -1, 1.5, 1e308, -0, '', 'x', [], {}, '0', '-1', '1e3', 2 ** 53, '../x'),
  fc.integer({ min: 1, max: 3_000 }).map(deepMarker),
  fc.integer({ min: 1, max: 3_000 }).map((n) => 'x'.repeat(n * 1000)),
);

type Mutation =
  | { kind: 'set'; at: number; value: Json }
  | { kind: 'delete'; at: number }
  | { kind: 'copy'; from: number; to: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: anyValue }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('copy' as const), from: fc.nat(), to: fc.nat() }),
);

function get(value: Json, at: Path): Json {
  return at.reduce<Json>(
    (v, k) => (v !== null && typeof v === 'object' ? (v as Record<string, Json>)[k] : undefined),
    value,
  );
}

function apply(manifest: Json, m: Mutation): Json {
  const copy = structuredClone(manifest);
  const target = paths[(m.kind === 'copy' ? m.to : m.at) % paths.length]!;
  const value =
    m.kind === 'set' ? m.value : m.kind === 'copy' ? get(manifest, paths[m.from % paths.length]!) : undefined;
  if (target.length === 0) return m.kind === 'delete' ? {} : structuredClone(value);
  const parent = get(copy, target.slice(0, -1)) as Record<string | number, Json>;
  if (parent === null || typeof parent !== 'object') return copy; // an earlier mutation took the place away
  if (m.kind === 'delete') delete parent[target.at(-1)!];
  else parent[target.at(-1)!] = structuredClone(value);
  return copy;
}

/** What the carried folder's breakpoint.json becomes: a mutated manifest (sealed or not), or any text. */
const manifestText: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.tuple(fc.array(mutation, { minLength: 1, maxLength: 3 }), fc.boolean()).map(([ms, sealed]) => {
      const mutated = ms.reduce<Json>((m, x) => apply(m, x), valid);
      return deepText(JSON.stringify(sealed ? seal(mutated) : mutated) ?? 'undefined');
    }),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 20_000 }).map((d) => `${'{"a":'.repeat(d)}1${'}'.repeat(d)}`) },
);

/** Whether manifest text is the valid manifest, whatever its key order and spacing. */
function sameAsValid(text: string): boolean {
  try {
    return canonical(JSON.parse(text)) === canonical(valid);
  } catch {
    return false;
  }
}

/** Peak heap, sampled after each run: a bounded boundary never holds more than a few manifests. */
const HEAP_LIMIT = 768 * 1024 * 1024;

function assertTyped(where: string, error: unknown): void {
  if (!(error instanceof RoundlogError))
    throw new Error(`${where}: untyped ${(error as Error)?.stack ?? String(error)}`);
}

test('mutated manifests: the folder checks, alone and against the log, fail only with typed errors', async (t) => {
  const carried = tempDir();
  const folder = path.join(carried, 'breakpoint_0001');
  cpSync(breakpoint(source, 1), folder, { recursive: true });
  const { openRoundLog } = await import('../../src/projections/index.ts');
  const rl = await openRoundLog({ root: source });
  const { state } = await rl.openExperiment('Experiment_0000');
  let peak = 0;
  try {
    await fc.assert(
      fc.asyncProperty(manifestText, async (text) => {
        writeFileSync(path.join(folder, 'breakpoint.json'), text);
        await readBreakpoint(folder).catch((error: unknown) => assertTyped('readBreakpoint', error));
        const alone = await checkBreakpointFolder(folder);
        const withLog = await checkBreakpointFolder(folder, { state, root: source });
        peak = Math.max(peak, process.memoryUsage().heapUsed);
        // A manifest changed in any way is never taken for the one the log wrote.
        return alone.problems.length + withLog.problems.length > 0 || sameAsValid(text);
      }),
      { numRuns: 400, seed: 1010 },
    );
  } finally {
    await rl.close();
  }
  t.true(peak < HEAP_LIMIT, `peak heap ${peak}`);
});

test('mutated manifests carried to a new root: resume imports them or fails typed, never unexpectedly', async (t) => {
  let peak = 0;
  let imported = 0;
  await fc.assert(
    fc.asyncProperty(manifestText, async (text) => {
      const carried = tempDir();
      const folder = path.join(carried, 'breakpoint_0001');
      cpSync(breakpoint(source, 1), folder, { recursive: true });
      writeFileSync(path.join(folder, 'breakpoint.json'), text);
      const result = await roundlog(['resume', folder, '--rounds', '1', '--root', tempDir()]);
      peak = Math.max(peak, process.memoryUsage().heapUsed);
      if (result.code === 0) imported++;
      return result.code === 0 || (/^roundlog: /.test(result.stderr) && !/unexpected error/.test(result.stderr));
    }),
    { numRuns: 60, seed: 2020 },
  );
  t.true(peak < HEAP_LIMIT, `peak heap ${peak}`);
  t.log(`${imported} of 60 mutated folders imported`);
});

test('mutated manifests, log present: resume fails typed, or the folder agreed with the log', async (t) => {
  let peak = 0;
  await fc.assert(
    fc.asyncProperty(manifestText, async (text) => {
      const root = tempDir();
      cpSync(source, root, { recursive: true });
      writeFileSync(path.join(breakpoint(root, 1), 'breakpoint.json'), text);
      const result = await roundlog(['resume', breakpoint(root, 1), '--rounds', '1', '--root', root]);
      peak = Math.max(peak, process.memoryUsage().heapUsed);
      if (result.code === 0) return sameAsValid(text);
      return /^roundlog: /.test(result.stderr) && !/unexpected error/.test(result.stderr);
    }),
    { numRuns: 40, seed: 3030 },
  );
  t.true(peak < HEAP_LIMIT, `peak heap ${peak}`);
});

const COMMANDS = [
  'ls',
  'verify',
  'events',
  'streams',
  'history',
  'audit',
  'replay',
  'rewind',
  'fork',
  'project',
  'help',
];
const OPTIONS = [
  '--round',
  '--name',
  '--reason',
  '--from',
  '--limit',
  '--out',
  '--position',
  '--type',
  '--since',
  '--workspace',
  '--store',
  '--namespace',
];
const FLAGS = ['--json', '--superseded', '--rebuild', '--help'];
const VALUES = [
  'Experiment_0000',
  'Experiment_9999',
  'breakpoint_0001',
  '0',
  '1',
  '-1',
  '1.5',
  '1e3',
  'x',
  '',
  '9'.repeat(30),
  'a'.repeat(300),
  'a'.repeat(5000),
  'b'.repeat(1 << 20),
  `/tmp/${'a'.repeat(300)}/x`,
  'a\u0000b',
  '\u0000',
  '../',
  '../../../../etc/passwd',
  '/etc',
  '/dev/zero',
  '/',
  'a/b',
  '.hidden',
  'rounds',
  'metrics',
  'lineage',
  'actions',
];
/** Words of a command line: option-value pairs, flags, bare values and random text. */
const word = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.tuple(
      fc.constantFrom(...OPTIONS),
      fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...VALUES) }, fc.string({ maxLength: 12 })),
    ),
  },
  fc.constantFrom(...FLAGS).map((flag) => [flag]),
  fc.constantFrom(...VALUES).map((value) => [value]),
  fc.string({ maxLength: 12 }).map((text) => [text]),
);

test('mutated argument lists: every command fails with a usage or typed error, never unexpectedly', async (t) => {
  let peak = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...COMMANDS),
      fc.boolean(),
      fc.array(word, { maxLength: 5 }).map((words) => words.flat()),
      async (command, named, words) => {
        const root = tempDir();
        cpSync(source, root, { recursive: true });
        const experiment = named ? ['Experiment_0000'] : [];
        const args = [command, ...experiment, ...words.filter((w) => w !== '--follow'), '--root', root];
        const result = await roundlog(args, {}, { cwd: root });
        peak = Math.max(peak, process.memoryUsage().heapUsed);
        return result.code === 0 || (/^roundlog: /.test(result.stderr) && !/unexpected error/.test(result.stderr));
      },
    ),
    { numRuns: 250, seed: 4040 },
  );
  t.true(peak < HEAP_LIMIT, `peak heap ${peak}`);
});

/** Words that name paths badly: too long as a whole or in one name, with a NUL byte, out of the folder, absolute. */
const PATHISH = [
  'a'.repeat(300),
  `x/${'a'.repeat(256)}`,
  `${'abcdefgh/'.repeat(455)}x`,
  'b'.repeat(1 << 20),
  'a\u0000b',
  '\u0000',
  '../',
  '../../../../etc/passwd',
  '/etc',
  '/dev/zero',
  '/',
  '',
];

test('path options and the root given badly (long, NUL, ../, absolute): typed errors only', async (t) => {
  let peak = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(
        ['replay', 'Experiment_0000', '--round', '1', '--out'],
        ['fork', 'Experiment_0000', '--round', '1', '--name'],
        ['history'],
        ['audit', 'metric', 'Experiment_0000'],
        ['ls', '--root'],
        ['verify', '--blobs'],
        ['events'],
      ),
      fc.constantFrom(...PATHISH),
      fc.constantFrom(undefined, ...PATHISH),
      async (line, word, rootFromEnv) => {
        const root = tempDir();
        cpSync(source, root, { recursive: true });
        const args = [
          ...line,
          word,
          ...((line as readonly string[]).includes('--root') || rootFromEnv !== undefined ? [] : ['--root', root]),
        ];
        const env = rootFromEnv === undefined ? {} : { ROUNDLOG_DIR: rootFromEnv };
        const result = await roundlog(args, env, { cwd: root });
        peak = Math.max(peak, process.memoryUsage().heapUsed);
        return result.code === 0 || (/^roundlog: /.test(result.stderr) && !/unexpected error/.test(result.stderr));
      },
    ),
    { numRuns: 120, seed: 5050 },
  );
  t.true(peak < HEAP_LIMIT, `peak heap ${peak}`);
});
