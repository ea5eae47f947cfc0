/**
 * The command line generated from the declarations: every command and subcommand answers `--help`
 * (exit 0, its name and options), typos get a suggestion, `completion` prints a script, and the
 * global options work before and after the command without touching `process.env`.
 */
import test from 'ava';
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from '../../src/cli/command.ts';
import { COMMANDS } from '../../src/cli/commands/index.ts';
import { roundlog, roundlogProcess, startRoundlog } from '../support/cli.ts';
import { openRoundLog } from '../../src/index.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { killSpawned } from '../support/child.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

/** Every declared command with the words that name it: `['ls']`, `['audit', 'rounds']`, ... */
function declared(commands: readonly Command[], parents: string[] = []): Array<{ words: string[]; command: Command }> {
  return commands.flatMap((command) => {
    const words = [...parents, command.name];
    return [{ words, command }, ...declared(command.subcommands ?? [], words)];
  });
}

const ALL = declared(COMMANDS);

test('the declarations hold every command and audit query', (t) => {
  t.deepEqual(
    ALL.map((c) => c.words.join(' ')),
    [
      ...['run', 'resume', 'ls', 'demo', 'streams', 'events', 'history', 'audit', 'audit events', 'audit rounds'],
      ...['audit metric', 'audit lineage', 'audit actions', 'replay', 'rewind', 'fork', 'export', 'serve'],
      ...['node', 'node start', 'node approve', 'project', 'gc', 'verify'],
    ],
  );
  const readsRoot = ALL.filter((c) => c.command.readsRoot).map((c) => c.words.join(' '));
  t.deepEqual(readsRoot, [
    ...['resume', 'ls', 'streams', 'events', 'history', 'audit'],
    ...['replay', 'rewind', 'fork', 'export', 'project', 'gc', 'verify'],
  ]);
});

for (const { words, command } of ALL) {
  test(`roundlog ${words.join(' ')} --help (-h, help ${words.join(' ')}): exit 0, usage and options`, async (t) => {
    for (const argv of [
      [...words, '--help'],
      ['help', ...words],
      [...words, '-h'],
    ]) {
      const run = await roundlog(argv, { ROUNDLOG_DIR: path.join(tempDir(), 'never-created') });
      t.is(run.code, 0, `${argv.join(' ')}: ${run.stderr}`);
      t.is(run.stderr, '', argv.join(' '));
      t.regex(run.stdout, new RegExp(`^roundlog ${words.join(' ')}\\b`, 'm'), argv.join(' '));
      t.true(run.stdout.includes(command.describe.slice(0, 40)), `${argv.join(' ')} describes the command`);
      // `node` and its subcommands read no root: their help leaves the global options out.
      const globals = words[0] === 'node' ? [] : ['root', 'store', 'blobs', 'namespace'];
      for (const name of [...Object.keys(command.options ?? {}), ...globals]) {
        t.regex(run.stdout, new RegExp(`--${name}\\b`), `${argv.join(' ')} lists --${name}`);
      }
      if (globals.length === 0)
        t.notRegex(run.stdout, /--root|--store|--blobs|--namespace|Global options/, argv.join(' '));
      for (const name of Object.keys(command.positionals ?? {}))
        t.true(run.stdout.includes(name), `${argv.join(' ')}: ${name}`);
      for (const sub of command.subcommands ?? []) {
        t.regex(
          run.stdout,
          new RegExp(`roundlog ${words.join(' ')} ${sub.name}\\b`),
          `${argv.join(' ')} lists ${sub.name}`,
        );
      }
    }
  });
}

test('roundlog, roundlog help and roundlog --help list every command; --version prints the version', async (t) => {
  for (const argv of [[], ['help'], ['--help']]) {
    const run = await roundlog(argv);
    t.is(run.code, 0, run.stderr);
    t.regex(run.stdout, /^Usage: roundlog <command> \[options\]$/m);
    for (const command of COMMANDS)
      t.regex(run.stdout, new RegExp(`^ {2}roundlog ${command.name}\\b`, 'm'), command.name);
    t.regex(run.stdout, /^ {2}roundlog completion\b/m);
  }
  const version = await roundlog(['--version']);
  t.is(version.code, 0);
  t.regex(version.stdout, /^\d+\.\d+\.\d+/);
});

test('a typo gets "did you mean" and exit 2; unknown commands and queries exit 2 naming the word', async (t) => {
  const typo = await roundlog(['rewnd']);
  t.is(typo.code, 2);
  t.is(typo.stdout, '');
  t.regex(typo.stderr, /^roundlog: unknown command "rewnd"; did you mean rewind\?$/m);
  t.regex(typo.stderr, /Run 'roundlog help'/);
  const before = await roundlog(['--root', tempDir(), 'hstory', 'Experiment_0000']);
  t.is(before.code, 2);
  t.regex(before.stderr, /unknown command "hstory"; did you mean history\?/);
  const query = await roundlog(['audit', 'roundz', '--root', tempDir()]);
  t.is(query.code, 2);
  t.regex(query.stderr, /unknown audit query "roundz"; use one of events, rounds, metric, lineage, actions/);
  t.regex(query.stderr, /; did you mean rounds\?$/m);
  const far = await roundlog(['audit', 'bogus', '--root', tempDir()]);
  t.is(far.code, 2);
  t.notRegex(far.stderr, /did you mean/);
  const option = await roundlog(['ls', '--jsn', '--root', tempDir()]);
  t.is(option.code, 2);
  t.regex(option.stderr, /Unknown option '--jsn'/);
  const value = await roundlog(['ls', '--root']);
  t.is(value.code, 2);
  t.regex(value.stderr, /--root needs a value/);
  // Words a command does not take are refused, never ignored.
  const root = tempDir();
  await (await openRoundLog({ root })).close();
  const lsExtra = await roundlog(['ls', 'foo', '--root', root]);
  t.is(lsExtra.code, 2);
  t.regex(lsExtra.stderr, /takes no argument \(got foo\)/);
  const resumeExtra = await roundlog(['resume', 'Experiment_0000', '/nonexistent', '--root', root]);
  t.is(resumeExtra.code, 2);
  t.regex(resumeExtra.stderr, /got also \/nonexistent/);
});

test('roundlog completion prints a completion script; completions come from the declarations', async (t) => {
  // In process the script is for this process's $SHELL (bash or zsh); both ask roundlog for the words.
  const script = await roundlog(['completion']);
  for (const line of [
    ['completion', '--help'],
    ['help', 'completion'],
    ['completion', '-h'],
  ]) {
    const usage = await roundlog(line);
    t.is(usage.code, 0, line.join(' '));
    t.regex(usage.stdout, /^roundlog completion\n/, line.join(' '));
    t.notRegex(usage.stdout, /yargs command completion script/, line.join(' '));
  }
  t.is(script.code, 0, script.stderr);
  t.regex(script.stdout, /roundlog --get-yargs-completions/);
  const bash = await roundlogProcess(['completion'], { SHELL: '/bin/bash' });
  t.is(bash.code, 0, bash.stderr);
  t.regex(bash.stdout, /complete .*-F _roundlog_yargs_completions roundlog/);
  // A real process: yargs reads $SHELL from the process to pick the zsh script.
  const zsh = await roundlogProcess(['completion'], { SHELL: '/bin/zsh' });
  t.is(zsh.code, 0, zsh.stderr);
  t.regex(zsh.stdout, /compdef _roundlog_yargs_completions roundlog/);
  const words = await roundlog(['--get-yargs-completions', 'roundlog', 'audit', '']);
  t.is(words.code, 0, words.stderr);
  for (const query of ['events', 'rounds', 'metric', 'lineage', 'actions'])
    t.true(words.stdout.split('\n').includes(query), query);
});

test('global options before and after the command, or from the environment; process.env untouched', async (t) => {
  const root = tempDir();
  const envBefore = { ...process.env };
  const run = await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '1', '--root', root]);
  t.is(run.code, 0, run.stderr);
  const blobs = path.join(tempDir(), 'blobs-elsewhere');
  const lines = [
    ['ls', '--json', '--root', root],
    ['--root', root, 'ls', '--json'],
    [`--root=${root}`, 'ls', '--json'],
    ['ls', '--json', '--store', 'file', '--root', root],
    ['--namespace', 'ignored-on-the-file-log', 'ls', '--json', '--root', root],
  ];
  const outputs = [];
  for (const argv of lines) {
    const ls = await roundlog(argv);
    t.is(ls.code, 0, `${argv.join(' ')}: ${ls.stderr}`);
    outputs.push(JSON.parse(ls.stdout));
  }
  const fromEnv = await roundlog(['ls', '--json'], { ROUNDLOG_DIR: root });
  t.is(fromEnv.code, 0, fromEnv.stderr);
  outputs.push(JSON.parse(fromEnv.stdout));
  for (const output of outputs) t.deepEqual(output, outputs[0]);
  t.is((outputs[0] as unknown[]).length, 1);
  // --blobs given before the command reaches the store: a verify with blobs elsewhere finds none of them.
  const verify = await roundlog(['--blobs', blobs, 'verify', '--json', '--root', root]);
  t.is(JSON.parse(verify.stdout).blobs.blobsChecked, 0, verify.stderr);
  // An invalid --store after the command is refused, wherever it is given.
  for (const argv of [
    ['ls', '--store', 'http://nope', '--root', root],
    ['--store', 'http://nope', 'ls', '--root', root],
  ]) {
    const bad = await roundlog(argv);
    t.is(bad.code, 1, argv.join(' '));
    t.regex(bad.stderr, /store/);
  }
  t.deepEqual({ ...process.env }, envBefore, 'no option was written into process.env');
});

test('a command that reads a root refuses one that does not exist, before and after the command name', async (t) => {
  const nowhere = path.join(tempDir(), 'no-such-root');
  for (const argv of [
    ['ls', '--root', nowhere],
    ['--root', nowhere, 'audit', 'rounds', 'Experiment_0000'],
  ]) {
    const run = await roundlog(argv);
    t.is(run.code, 1, argv.join(' '));
    t.regex(run.stderr, /there is no roundlog root at .*no-such-root/);
  }
  t.false(existsSync(nowhere));
});

test('resume of a path where nothing exists says so; a file is not a breakpoint folder', async (t) => {
  const root = tempDir();
  await (await openRoundLog({ root })).close(); // an empty root: its marker, no experiment
  const missing = await roundlog(['resume', path.join(root, 'no-such-breakpoint'), '--root', root]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /nothing exists at this path/);
  const file = path.join(root, 'notes.txt');
  writeFileSync(file, 'not a folder');
  const notFolder = await roundlog(['resume', file, '--root', root]);
  t.is(notFolder.code, 1);
  t.regex(notFolder.stderr, /must be a breakpoint folder or an experiment folder, not a file/);
});

test('output piped to a reader that closes early (roundlog help | head -1) ends quietly with exit 0', async (t) => {
  const child = startRoundlog(['help']);
  const closed = once(child.process, 'close');
  child.process.stdout!.destroy();
  const [code] = (await closed) as [number | null];
  t.is(code, 0, child.stderr());
  t.notRegex(child.stderr(), /EPIPE|Unhandled/);
});
