/**
 * Every word of a command line is bounded before anything reads it (at most 4096 characters, no
 * NUL byte), and every path option is checked as the file system will check it (no name over 255
 * bytes, the whole under 4096): a usage error naming the option, exit 2, never `ENAMETOOLONG` or
 * `ERR_INVALID_ARG_VALUE` as `unexpected error`, and nothing written.
 */
import test from 'ava';
import { cpSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

let source = '';
test.before(async () => {
  source = tempDir();
  const run = await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '2', '--root', source]);
  if (run.code !== 0) throw new Error(run.stderr);
});

const long = 'a'.repeat(300);
const megabyte = 'b'.repeat(1024 * 1024);

const CASES: ReadonlyArray<[title: string, args: (out: string) => string[], message: RegExp]> = [
  [
    'fork --name of 300 characters',
    () => ['fork', 'Experiment_0000', '--round', '1', '--name', long],
    /--name must be a plain folder name of at most 100 characters \(it has 300\)/,
  ],
  [
    'fork --name of a megabyte',
    () => ['fork', 'Experiment_0000', '--round', '1', '--name', megabyte],
    /word 6 of the command line \(after --name\) is longer than 4096 characters: "b{57}"\.\.\. \(1048576 characters\)/,
  ],
  [
    'replay --out with a folder name of 300 characters',
    (out) => ['replay', 'Experiment_0000', '--round', '1', '--out', path.join(out, long, 'x')],
    /--out has a file or folder name of 300 bytes; names are at most 255 bytes/,
  ],
  [
    'replay --out with a NUL byte',
    (out) => ['replay', 'Experiment_0000', '--round', '1', '--out', path.join(out, 'x\u0000y')],
    /\(after --out\) holds a NUL byte/,
  ],
  [
    'export --out with a NUL byte',
    (out) => ['export', 'Experiment_0000', '--round', '1', '--out', path.join(out, 'x\u0000y.npz')],
    /\(after --out\) holds a NUL byte/,
  ],
  [
    'export --out with a file name of 300 characters',
    (out) => ['export', 'Experiment_0000', '--round', '1', '--out', path.join(out, `${long}.npz`)],
    /--out has a file or folder name of 304 bytes; names are at most 255 bytes/,
  ],
  ['--root with a folder name of 300 characters', (out) => ['ls', '--root', path.join(out, long)], /--root has a/],
  ['--root of a megabyte', () => ['ls', '--root', megabyte], /\(after --root\) is longer than 4096 characters/],
  [
    'resume --workspace with a NUL byte',
    () => ['resume', 'Experiment_0000', '--workspace', 'a\u0000b'],
    /\(after --workspace\) holds a NUL byte/,
  ],
  [
    'resume --workspace with a folder name of 300 characters',
    (out) => ['resume', 'Experiment_0000', '--workspace', path.join(out, long)],
    /--workspace has a file or folder name of 300 bytes/,
  ],
  ['resume of a path with a name of 300 characters', (out) => ['resume', path.join(out, long)], /<path> has a file/],
  ['a metric name of a megabyte', () => ['audit', 'metric', 'Experiment_0000', megabyte], /word 4 .* longer than 4096/],
  ['an experiment name with a NUL byte', () => ['history', 'Experiment\u00000000'], /word 2 .* holds a NUL byte/],
  ['a definition module with a name of 300 characters', () => ['run', `${long}.ts`], /<definition-module> has a file/],
];

for (const [title, args, message] of CASES) {
  test(`${title} is a usage error naming it, and nothing is written`, async (t) => {
    const root = tempDir();
    cpSync(source, root, { recursive: true });
    const out = tempDir();
    const line = args(out);
    const experiments = () => readdirSync(path.join(root, 'experiments')).sort();
    const before = experiments();
    const result = await roundlog(line.includes('--root') ? line : [...line, '--root', root], {}, { cwd: root });
    const shown = `exit ${result.code}: ${result.stderr.slice(0, 1000)}`;
    t.is(result.code, 2, shown);
    t.notRegex(result.stderr, /unexpected error|ENAMETOOLONG|ERR_INVALID_ARG_VALUE/, shown);
    t.regex(result.stderr, message, shown);
    t.true(result.stderr.length < 2000, 'a long argument is not echoed whole');
    t.deepEqual(readdirSync(out), [], 'nothing was written where the argument pointed');
    t.deepEqual(experiments(), before, 'no experiment folder was made');
  });
}

test('a path from the environment is checked as the option is: $ROUNDLOG_DIR with a 300-character name', async (t) => {
  const result = await roundlog(['ls'], { ROUNDLOG_DIR: path.join(tempDir(), long) });
  t.is(result.code, 2, result.stderr);
  t.regex(result.stderr, /^roundlog: \$ROUNDLOG_DIR has a file or folder name of 300 bytes/);
});

const huge = '99999999999999999999';

test('an integer beyond the safe range is a usage error naming the option, exit 2', async (t) => {
  const root = tempDir();
  cpSync(source, root, { recursive: true });
  const lines: ReadonlyArray<[args: string[], option: string]> = [
    [['gc', '--keep-last', huge], '--keep-last'],
    [['gc', '--dry-run', '--keep-every', huge], '--keep-every'],
    [['events', 'Experiment_0000', '--from', huge], '--from'],
    [['events', 'Experiment_0000', '--limit', huge], '--limit'],
    [['resume', '--rounds', huge], '--rounds'],
    [['demo', '--crash-after', huge], '--crash-after'],
    [['replay', 'Experiment_0000', '--round', huge], '--round'],
    [['audit', '--since', `${huge}d`], '--since'],
  ];
  const before = readdirSync(path.join(root, 'experiments')).sort();
  for (const [args, option] of lines) {
    const result = await roundlog([...args, '--root', root]);
    t.is(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    t.true(result.stderr.startsWith(`roundlog: ${option} must be`), `${args.join(' ')}: ${result.stderr}`);
  }
  t.deepEqual(readdirSync(path.join(root, 'experiments')).sort(), before);
});

test('a value starting with - after an option is a usage error naming the option, not the help', async (t) => {
  for (const args of [
    ['audit', '--until', '-1h'],
    ['history', 'Experiment_0000', '--since', '-2h'],
    ['gc', '--dry-run', '--keep-last', '-1'],
  ]) {
    const result = await roundlog([...args, '--root', source]);
    t.is(result.code, 2, `${args.join(' ')}: ${result.stdout}`);
    t.is(result.stdout, '', 'no help is printed');
    t.regex(
      result.stderr,
      new RegExp(`^roundlog: ${args.at(-2)} needs a value; .*write ${args.at(-2)}=${args.at(-1)}`),
    );
  }
  const equals = await roundlog(['audit', '--until=-1h', '--root', source]);
  t.is(equals.code, 2);
  t.regex(equals.stderr, /--until must be an ISO 8601 time/);
});

test('a name of 300 characters is echoed cut at 60 characters, with its length', async (t) => {
  for (const [args, code] of [
    [['history', long], 1],
    [['events', long], 1],
    [['audit', 'metric', 'Experiment_0000', long], 1],
    [['audit', 'rounds', long], 1],
    [['fork', long, '--round', '0'], 1],
    [['history', 'Experiment_0000', long], 2],
    [['audit', long], 2],
    [[long], 2],
    [['ls', `--${long}`], 2],
  ] as const) {
    const result = await roundlog([...args, '--root', source]);
    const shown = `${args.join(' ').slice(0, 40)}: exit ${result.code}: ${result.stderr}`;
    t.is(result.code, code, shown);
    t.regex(result.stderr, /\.\.\. \((300|302) characters\)/, shown);
    t.false(result.stderr.includes('a'.repeat(61)), shown);
  }
});
