/**
 * A message that tells the user to do something names the real command, and that command does
 * it: each is taken from the message and run.
 */
import test from 'ava';
import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TensorSet } from '../../src/codec/tensors.ts';
import { writeSnapshot } from '../../src/engine/snapshots.ts';
import { Experiment } from '../../src/federated/experiment.ts';
import { BreakpointCorruptError, NodeFailedError } from '../../src/model/errors.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { roundlog } from '../support/cli.ts';
import { WORKSPACE, exampleOptions, federation } from '../support/example-experiment.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

/** The commands a message names, quoted: `'roundlog …'`. */
function commandsIn(message: string): string[][] {
  return [...message.matchAll(/'roundlog ([^']+)'/g)].map((m) => m[1]!.split(' '));
}

test('a folder that disagrees with the log names roundlog project --rebuild, which rewrites it', async (t) => {
  const root = tempDir();
  const exp = await Experiment.create(exampleOptions(root));
  await exp.run({ rounds: 2 });
  const name = exp.state.folder;
  const folder = path.join(exp.experimentationPath(), 'breakpoint_0001');
  await exp.close();
  // A copy with one byte changed, not a write through the hard link: the blob stays intact.
  const paramsFile = path.join(folder, 'params.safetensors');
  const bytes = readFileSync(paramsFile);
  bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
  chmodSync(paramsFile, 0o644);
  renameSync(paramsFile, `${paramsFile}.orig`);
  writeFileSync(paramsFile, bytes);
  const load = () => Experiment.loadBreakpoint(folder, { root, federation, workspace: WORKSPACE });

  const error = await t.throwsAsync(load, { instanceOf: BreakpointCorruptError });
  t.is(error!.experiment, name);
  const commands = commandsIn(error!.message);
  t.deepEqual(commands, [['project', '--rebuild', name]], error!.message);

  const run = await roundlog([...commands[0]!, '--root', root]);
  t.is(run.code, 0, run.stdout + run.stderr);
  const loaded = await load();
  t.is(loaded.roundCurrent(), 2);
  await loaded.close();
});

test('a breakpoint folder no log knows names roundlog resume of another folder, not a rebuild', (t) => {
  const error = new BreakpointCorruptError('/carried/breakpoint_0001', 'breakpoint.json', 'round is "x"');
  t.regex(error.message, /Resume from another breakpoint folder \(roundlog resume <folder>\)/);
  t.notRegex(error.message, /project --rebuild|from the log/);
});

test('a failed node names roundlog resume of its experiment', (t) => {
  const error = new NodeFailedError('Experiment_0007', 'node-a', 3, 'no reply within 300 ms');
  t.deepEqual(commandsIn(error.message), [['resume', 'Experiment_0007']]);
});

const tensors = (...values: number[]): TensorSet => ({
  w: { dtype: 'float32', shape: [values.length], data: new Float32Array(values) },
});

test('a snapshot used with another state names roundlog verify --repair, which rewrites it', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const handle = await rl.createExperiment({ saveBreakpoints: true, roundLimit: 10, initialParams: tensors(0, 0) });
  for (let r = 0; r < 3; r++) await handle.recordRound({ params: tensors(r, 1) });
  const { id, stream, state } = handle;
  await rl.close();
  // The right stream, revision and position, so opening would use it: a state one round short.
  const wrong = { ...state, rounds: state.rounds.slice(0, 2) };
  await writeSnapshot(root, id, { stream, revision: state.revision, position: state.position, state: wrong });

  const found = await roundlog(['verify', '--root', root]);
  t.is(found.code, 1);
  const line = found.stdout.split('\n').find((l) => l.includes('.snap'))!;
  t.deepEqual(commandsIn(line), [['verify', '--repair']], line);
  const repair = await roundlog(['verify', '--repair', '--root', root]);
  t.is(repair.code, 0, repair.stdout);
  t.regex(repair.stdout, /wrote snapshot .*\.snap again from the log/);
  t.is((await roundlog(['verify', '--root', root])).code, 0);
  const reopened = await openRoundLog({ root });
  t.is((await reopened.openExperiment(id)).state.rounds.length, 3);
  await reopened.close();
});
