/** The examples the README points to run as documented. */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openFileBlobStore, openFileEventLog, type BlobRef } from '../../src/index.ts';
import { killSpawned, spawnTs } from '../support/child.ts';
import { REPO, roundlog, roundlogJson } from '../support/cli.ts';
import { readmeBlock } from '../support/readme.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

test('examples/quickstart.ts records rounds, reopens, and reads the last round back', async (t) => {
  const root = tempDir();
  const run = spawnTs('../../examples/quickstart.ts', [root]);
  const { code } = await run.exited;
  t.is(code, 0, run.stderr());
  const stdout = run.lines.join('\n');
  t.regex(stdout, /last committed round: 1, loss 0\.27, weights \[0\.5, 1, 1\.5, 2, 2\.5, 3\]/);
  t.regex(stdout, /caught up at log position 1/);
  // The parameters are stored as new rounds store them: a safetensors file, tagged so.
  const log = await openFileEventLog({ dir: path.join(root, 'log'), readOnly: true });
  const blobs = await openFileBlobStore({ dir: path.join(root, 'blobs') });
  try {
    const { events } = await log.readStream('experiment-1');
    t.is(events.length, 2);
    for (const event of events) {
      const ref = (event.data as { params: BlobRef }).params;
      t.is(ref.encoding, 'tensors/safetensors');
      const bytes = await blobs.get(ref);
      const headerLength = Number(bytes.readBigUInt64LE(0));
      const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, unknown>;
      t.deepEqual(header.weights, { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] });
    }
  } finally {
    await blobs.close();
    await log.close();
  }
});

/** The first TypeScript block under `heading` in the README, importing the package from this checkout. */
function readmeTs(heading: string): string {
  return readmeBlock(heading, 'ts').replaceAll(
    "from 'roundlog'",
    `from ${JSON.stringify(path.join(REPO, 'src/index.ts'))}`,
  );
}

/** Runs a TypeScript file through tsx in `cwd`, to its end. */
function runTs(file: string, cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), file], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** Every command that reads every experiment of a root works on it, and verify finds nothing wrong. */
async function assertRootHealthy(t: ExecutionContext, root: string): Promise<void> {
  for (const args of [['ls'], ['audit'], ['audit', 'actions'], ['gc', '--dry-run', '--keep-last', '1'], ['verify']]) {
    const result = await roundlog([...args, '--root', root]);
    t.is(result.code, 0, `${args.join(' ')}: ${result.stderr}${result.stdout}`);
    t.notRegex(result.stderr, /upgrade roundlog|unexpected error/, args.join(' '));
  }
  const history = await roundlog(['history', 'Experiment_0000', '--root', root]);
  t.is(history.code, 0, history.stderr);
}

test("the README's library example runs beside a root in ./var and leaves that root healthy", async (t) => {
  const workspace = tempDir();
  const root = path.join(workspace, 'var');
  const created = await roundlog([
    'run',
    'examples/logistic-regression/experiment.ts',
    '--rounds',
    '2',
    '--root',
    root,
  ]);
  t.is(created.code, 0, created.stderr);
  const example = path.join(workspace, 'library-example.mts');
  writeFileSync(example, readmeTs('## Library'));
  const { code, output } = await runTs(example, workspace);
  t.is(code, 0, output);
  t.regex(output, /caughtUp/);
  t.true(existsSync(path.join(workspace, 'my-log', 'log')), 'the example writes its own folder');
  const log = await openFileEventLog({ dir: path.join(workspace, 'my-log', 'log'), readOnly: true });
  const { events } = await log.readStream('experiment-1');
  await log.close();
  t.is((events[0]!.data as { params: BlobRef }).params.encoding, 'tensors/safetensors');
  await assertRootHealthy(t, root);
  const streams = await roundlog(['streams', '--root', root]);
  t.notRegex(streams.stdout, /^experiment-1\b/m, 'nothing of the example is in the root');
});

test('a stream of other code in the log of a root is ignored by every command and noted by verify', async (t) => {
  const root = tempDir();
  const created = await roundlog([
    'run',
    'examples/logistic-regression/experiment.ts',
    '--rounds',
    '2',
    '--root',
    root,
  ]);
  t.is(created.code, 0, created.stderr);
  // The runnable quickstart writes its `experiment-1` stream (RoundCompleted events of its own shape) into the root.
  const quickstart = spawnTs('../../examples/quickstart.ts', [root]);
  t.is((await quickstart.exited).code, 0, quickstart.stderr());
  const streams = await roundlog(['streams', '--root', root]);
  t.regex(streams.stdout, /^experiment-1\b/m);
  await assertRootHealthy(t, root);
  const verify = await roundlog(['verify', '--root', root]);
  t.regex(verify.stdout, /note: stream experiment-1 is not a registered experiment of this root/);
  const audit = await roundlogJson<{ events: Array<{ stream: string }> }>(['audit', '--root', root]);
  t.true(audit.events.length > 0);
  t.false(audit.events.some((e) => e.stream === 'experiment-1'));
  const gc = await roundlog(['gc', '--keep-last', '1', '--root', root]);
  t.is(gc.code, 0, gc.stderr);
  // gc deleted no blob the other stream references.
  const log = await openFileEventLog({ dir: path.join(root, 'log'), readOnly: true });
  const blobs = await openFileBlobStore({ dir: path.join(root, 'blobs') });
  const { events } = await log.readStream('experiment-1');
  t.is(events.length, 2);
  for (const e of events) t.true(await blobs.has((e.data as { params: { sha256: string } }).params.sha256));
  await blobs.close();
  await log.close();
});
