/**
 * The user's path: `npm pack`, install the tarball into an empty folder, and there run the
 * README's commands through `npx roundlog` with nothing but the package's own dependencies: the
 * demo, `run` of a TypeScript definition written in that folder, `resume`, `ls`, `--help`, and an
 * EventStoreDB store without its (optional) driver.
 *
 * The install runs with --ignore-scripts: no native build (the C `lz4` is optional and falls back
 * to prebuilt lz4-napi), as for a user without a C compiler or with install scripts disallowed.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

type Run = { code: number; stdout: string; stderr: string };

/** The environment of a user's shell: none of npm's script variables, no roundlog settings. */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(npm_|ROUNDLOG_|NODE_OPTIONS$)/i.test(key)) env[key] = value;
  }
  return { ...env, ...extra };
}

function run(command: string, args: string[], cwd: string, extraEnv: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env: userEnv(extraEnv), maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code =
        error === null
          ? 0
          : typeof (error as { code?: unknown }).code === 'number'
            ? (error as { code: number }).code
            : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

const roundlog = (cwd: string, args: string[], extraEnv?: Record<string, string>) =>
  run('npx', ['--no', 'roundlog', ...args], cwd, extraEnv);

let app = '';

test.before(async (t) => {
  t.timeout(240_000);
  const packs = tempDir('roundlog-pack-');
  // npm pack runs the `prepare` script (the build) first.
  const packed = await run('npm', ['pack', '--pack-destination', packs], REPO);
  t.is(packed.code, 0, packed.stderr);
  const tarball = readdirSync(packs).find((name) => name.endsWith('.tgz'));
  if (tarball === undefined) throw new Error(`npm pack wrote no tarball: ${packed.stderr}`);
  app = tempDir('roundlog-installed-');
  // An empty project as `npm init -y` makes it ("type": "commonjs").
  writeFileSync(
    path.join(app, 'package.json'),
    JSON.stringify({ name: 'my-study', version: '1.0.0', private: true, type: 'commonjs' }, null, 2),
  );
  const installed = await run(
    'npm',
    ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', path.join(packs, tarball)],
    app,
  );
  if (installed.code !== 0) throw new Error(`npm install of the tarball failed:\n${installed.stderr}`);
});

test.after.always(() => removeTempDirs());

test.serial('the package ships its license, no source maps, and none of the dev or optional peer packages', (t) => {
  const pkg = path.join(app, 'node_modules', 'roundlog');
  t.true(existsSync(path.join(pkg, 'LICENSE')));
  t.true(existsSync(path.join(pkg, 'dist', 'examples', 'logistic-regression', 'experiment.js')));
  const maps: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(path.join(dir, entry.name));
      else if (entry.name.endsWith('.map')) maps.push(path.join(dir, entry.name));
    }
  };
  walk(pkg);
  t.deepEqual(maps, []);
  for (const absent of ['@eventstore/db-client', 'better-sqlite3', 'ava', 'typescript']) {
    t.false(existsSync(path.join(app, 'node_modules', absent)), `${absent} is installed`);
  }
  // Remote nodes (`roundlog node`) speak gRPC: its library and the protocol file ship.
  t.true(existsSync(path.join(app, 'node_modules', '@grpc', 'grpc-js')));
  t.true(existsSync(path.join(pkg, 'src', 'federated', 'remote', 'protocol.proto')));
});

test.serial('npx roundlog help', async (t) => {
  const help = await roundlog(app, ['help']);
  t.is(help.code, 0, help.stderr);
  for (const command of ['demo', 'run', 'resume', 'ls']) t.regex(help.stdout, new RegExp(`\\b${command}\\b`));
});

test.serial('npx roundlog demo --synthetic: crash, resume, identical to an uninterrupted run', async (t) => {
  t.timeout(120_000);
  const demo = await roundlog(app, ['demo', '--synthetic']);
  t.is(demo.code, 0, `${demo.stdout}\n${demo.stderr}`);
  t.regex(demo.stdout, /SIGKILL sent/);
  t.regex(demo.stdout, /identical, bit for bit/);

  // The demo's experiment records the package's own example definition and plan; rewound and
  // resumed from the user's folder, they are found in the installed package.
  const rewound = await roundlog(app, ['rewind', 'Experiment_0000', '--round', '5', '--reason', 'again']);
  t.is(rewound.code, 0, rewound.stderr);
  const resumed = await roundlog(app, ['resume', 'var/experiments/Experiment_0000']);
  t.is(resumed.code, 0, resumed.stderr);
  t.regex(resumed.stdout, /resumed Experiment_0000 .* after round 5 \(round 6 runs next\), 6\/10 rounds done/);
  t.regex(resumed.stdout, /done: 10 rounds completed/);
});

test.serial('npx roundlog run <definition.ts>, then resume and ls', async (t) => {
  t.timeout(120_000);
  writeFileSync(
    path.join(app, 'my-experiment.ts'),
    `import type { ExperimentDefinition, TensorSet, TrainingPlan } from 'roundlog';

const decay: number = 0.5;

export const plan: TrainingPlan = {
  init: (): TensorSet => ({ w: { dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) } }),
  train: (params: TensorSet) => ({
    params: { w: { dtype: 'float32', shape: [2], data: (params.w!.data as Float32Array).map((x) => x * decay + 1) } },
    sampleSize: 10,
    metrics: { loss: 0.25 },
  }),
};

const definition: ExperimentDefinition = {
  tags: ['#toy'],
  trainingPlan: { module: 'my-experiment.ts', export: 'plan' },
  federation: () => ({ nodes: [{ id: 'node-a', datasets: [{ id: 'toy', tags: ['#toy'], data: null }] }] }),
  roundLimit: 3,
  saveBreakpoints: true,
  seed: 7,
};

export default definition;
`,
  );
  const first = await roundlog(app, ['run', 'my-experiment.ts', '--rounds', '2']);
  t.is(first.code, 0, first.stderr);
  t.regex(first.stdout, /done: 2 rounds completed/);

  const resumed = await roundlog(app, ['resume']);
  t.is(resumed.code, 0, resumed.stderr);
  t.regex(resumed.stdout, /resumed Experiment_0001 .* after round 1 \(round 2 runs next\), 2\/3 rounds done/);
  t.regex(resumed.stdout, /done: 3 rounds completed/);

  const listed = await roundlog(app, ['ls']);
  t.is(listed.code, 0, listed.stderr);
  t.regex(listed.stdout, /Experiment_0000 .*10\/10 +finished/);
  t.regex(listed.stdout, /Experiment_0001 .*3\/3 +finished/);
});

test.serial('a definition that does not load: the file and the reason', async (t) => {
  writeFileSync(path.join(app, 'broken.ts'), 'export default {\n');
  const broken = await roundlog(app, ['run', 'broken.ts']);
  // Not a usage error (exit 2): a fact of the file system, exit 1, naming the file and what to do.
  t.is(broken.code, 1);
  t.regex(broken.stderr, /cannot load .*broken\.ts: /);
  const missing = await roundlog(app, ['run', 'missing.ts']);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /missing\.ts cannot be imported \(no such file\); check that it exists/);
});

test.serial('an EventStoreDB store without the driver says which package to install', async (t) => {
  const esdb = await roundlog(app, ['ls'], { ROUNDLOG_STORE: 'esdb://127.0.0.1:1?tls=false' });
  t.not(esdb.code, 0);
  t.regex(esdb.stderr, /npm install @eventstore\/db-client/);
});
