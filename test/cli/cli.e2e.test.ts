/** The `roundlog` command, run as a real process against a real root. */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function roundlog(args: string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function blobFiles(root: string): string[] {
  const dir = path.join(root, 'blobs');
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /^[0-9a-f]{62}$/.test(e.name))
    .map((e) => path.join(e.parentPath, e.name));
}

test('demo: crash with SIGKILL, resume, and a result identical to an uninterrupted run; then streams, events and verify', async (t) => {
  const root = tempDir();
  const demo = roundlog(['demo', '--rounds', '5', '--crash-after', '2'], { ROUNDLOG_DIR: root });
  t.is(demo.code, 0, demo.stderr + demo.stdout);
  t.regex(demo.stdout, /SIGKILL sent to worker \d+ after 2 committed rounds/);
  t.regex(demo.stdout, /2 committed rounds in the log/);
  t.regex(demo.stdout, /resumed at round 2\/5 from the log/);
  t.regex(demo.stdout, /crashed \+ resumed {2}sha256 [0-9a-f]{64} {2}identical/);
  t.regex(demo.stdout, /log verify: ok/);

  const streams = roundlog(['streams', '--json', '--root', root]);
  t.is(streams.code, 0, streams.stderr);
  const listed = JSON.parse(streams.stdout) as Array<{ stream: string; lastRevision: string }>;
  t.is(listed.length, 1);
  // DemoStarted, 2 rounds, DemoResumed, 3 rounds, DemoFinished.
  t.is(listed[0]!.lastRevision, '7');

  const events = roundlog(['events', listed[0]!.stream, '--json', '--root', root]);
  t.is(events.code, 0, events.stderr);
  const types = (JSON.parse(events.stdout) as Array<{ type: string }>).map((e) => e.type);
  t.deepEqual(types, ['DemoStarted', 'RoundCompleted', 'RoundCompleted', 'DemoResumed', 'RoundCompleted', 'RoundCompleted', 'RoundCompleted', 'DemoFinished']);

  const healthy = roundlog(['verify', '--root', root]);
  t.is(healthy.code, 0, healthy.stdout + healthy.stderr);
  t.regex(healthy.stdout, /log: {3}8 records, \d+ bytes checked, 0 problems/);
  t.regex(healthy.stdout, /blobs: 5 blobs, \d+ bytes checked, 0 problems/);

  // A flipped byte in a blob is named by verify, which exits non-zero.
  const victim = blobFiles(root)[0]!;
  chmodSync(victim, 0o644);
  const bytes = readFileSync(victim);
  bytes[1000] = bytes[1000]! ^ 0xff;
  writeFileSync(victim, bytes);
  const damaged = roundlog(['verify', '--root', root]);
  t.is(damaged.code, 1);
  t.true(damaged.stdout.includes(victim), damaged.stdout);
  t.regex(damaged.stdout, /1 problems/);
});

test('usage errors exit 2 and say what to do; a missing stream is a clear error', (t) => {
  const root = tempDir();
  const unknown = roundlog(['frobnicate', '--root', root]);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /unknown command "frobnicate"/);
  t.regex(unknown.stderr, /roundlog help/);
  const badRounds = roundlog(['demo', '--rounds', 'many', '--root', root]);
  t.is(badRounds.code, 2);
  t.regex(badRounds.stderr, /--rounds must be a positive integer \(got "many"\)/);
  const missing = roundlog(['events', 'nope', '--root', root]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /stream "nope" does not exist/);
  const help = roundlog(['help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /Usage: roundlog <command>/);
});
