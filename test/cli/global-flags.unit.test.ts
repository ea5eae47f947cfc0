/**
 * Commands a command prints for the user to run next act on the same root and store: the global
 * options given on its command line (and not in the environment) are repeated after their verb.
 */
import test from 'ava';
import { globalOptions, onSameRoot } from '../../src/cli/command.ts';
import { withGlobalFlags } from '../../src/cli/main.ts';
import { resumeCommand } from '../../src/model/events.ts';

const io = (env: NodeJS.ProcessEnv = {}) => ({ out: () => undefined, err: () => undefined, env, cwd: '/work' });

test('the global options given on the command line are the flags printed commands repeat', (t) => {
  t.is(globalOptions({}, io()).flags, '');
  t.is(globalOptions({ root: '/tmp/x/var' }, io()).flags, ' --root /tmp/x/var');
  t.is(globalOptions({ root: 'runs/var' }, io()).flags, ' --root runs/var', 'as typed: relative to the same folder');
  // Given by the environment, or given as the environment gives it: the next command gets it too.
  t.is(globalOptions({}, io({ ROUNDLOG_DIR: '/tmp/x/var' })).flags, '');
  t.is(globalOptions({ root: '/tmp/x/var' }, io({ ROUNDLOG_DIR: '/tmp/x/var' })).flags, '');
  t.is(globalOptions({ root: '/tmp/my runs' }, io()).flags, ' --root "/tmp/my runs"');
  t.is(
    globalOptions({ root: '/r', store: 'esdb://h:2113?tls=false', namespace: 'lab' }, io()).flags,
    ' --root /r --store "esdb://h:2113?tls=false" --namespace lab',
  );
});

test('only the verbs of commands that read a root get the flags', (t) => {
  const text =
    'node "a" failed: run \'roundlog resume Experiment_0000 --listen h:1 --nodes a\' to retry it; ' +
    "roundlog opens only regular files here; approve it with 'roundlog node approve plan.ts'; roundlog ls lists them";
  t.is(
    withGlobalFlags(text, ' --root /r'),
    'node "a" failed: run \'roundlog resume --root /r Experiment_0000 --listen h:1 --nodes a\' to retry it; ' +
      "roundlog opens only regular files here; approve it with 'roundlog node approve plan.ts'; " +
      'roundlog ls --root /r lists them',
  );
  t.is(
    onSameRoot('roundlog resume Experiment_0000', { flags: ' --root /r' }),
    'roundlog resume --root /r Experiment_0000',
  );
  t.is(onSameRoot('roundlog resume Experiment_0000', { flags: '' }), 'roundlog resume Experiment_0000');
});

test('a folder in a printed command is one shell word, quoted when it needs to be', (t) => {
  const remote = { listen: '127.0.0.1:51731', nodes: ['cleveland', 'va'] };
  t.is(resumeCommand('var/experiments/Experiment_0003', null), 'roundlog resume var/experiments/Experiment_0003');
  t.is(
    onSameRoot(resumeCommand('my var/experiments/Experiment_0003', remote), { flags: ' --root "my var"' }),
    'roundlog resume --root "my var" "my var/experiments/Experiment_0003" ' +
      '--listen 127.0.0.1:51731 --nodes cleveland,va',
  );
  t.is(resumeCommand("it's $x/E", null), 'roundlog resume "it\'s \\$x/E"');
});
