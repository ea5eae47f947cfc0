/**
 * README samples of command output are what the commands print: each sample is checked against a
 * real run on the root the synthetic demo (`roundlog demo --synthetic`) makes, so a change of output or of the demo
 * that makes a sample stale fails here.
 */
import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { roundlog } from '../support/cli.ts';
import { readmeBlock } from '../support/readme.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

/** The lines a README block shows after `$ <command>`, up to the next `$ ` line. */
function sampleOutput(block: string, command: string): string[] {
  const lines = block.split('\n');
  const start = lines.indexOf(`$ ${command}`);
  if (start === -1) throw new Error(`no "$ ${command}" in the README block`);
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((line) => line.startsWith('$ ') || line === '');
  return end === -1 ? rest : rest.slice(0, end);
}

test('the replay and verify samples are the output of those commands on the demo root', async (t) => {
  const cwd = tempDir();
  const demo = await roundlog(['demo', '--synthetic'], {}, { cwd });
  t.is(demo.code, 0, demo.stderr);

  // The verify sample shows a hand edit of breakpoint_0006's manifest.
  const manifest = path.join(cwd, 'var', 'experiments', 'Experiment_0000', 'breakpoint_0006', 'breakpoint.json');
  writeFileSync(manifest, JSON.stringify({ ...JSON.parse(readFileSync(manifest, 'utf8')), roundLimit: 99 }, null, 2));
  const verify = await roundlog(['verify'], {}, { cwd });
  t.is(verify.code, 1);
  const verifySample = sampleOutput(
    readmeBlock('## Maintenance: project, verify, gc', 'sh', '$ roundlog verify\n'),
    'roundlog verify',
  );
  // The log's byte count depends on the length of the root's path, which the log records.
  const bytes = (lines: string[]) => lines.map((line) => line.replace(/^(log: .*?)\d+ bytes/, '$1N bytes'));
  t.deepEqual(bytes(verify.stdout.trimEnd().replaceAll(cwd, '/…').split('\n')), bytes(verifySample));

  const replay = await roundlog(['replay', 'Experiment_0000', '--round', '3'], {}, { cwd });
  t.is(replay.code, 0, replay.stderr);
  const replaySample = sampleOutput(
    readmeBlock('## Replay, rewind, fork', 'sh', 'roundlog replay'),
    'roundlog replay Experiment_0000 --round 3',
  );
  t.deepEqual(replay.stdout.trimEnd().split('\n'), replaySample);
});
