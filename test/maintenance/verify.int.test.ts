/** verifyRoot on real roots: each kind of damage named with its folder, file and round; lag is not damage. */
import test from 'ava';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openRoundLog, type ExperimentHandle, type RoundLog } from '../../src/projections/index.ts';
import { verifyRoot } from '../../src/projections/index.ts';
import { tensors } from '../support/rounds.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

/** A root with one experiment of `rounds` rounds, each with a breakpoint and a node reply blob. */
async function root(rounds = 4): Promise<{ root: string; rl: RoundLog; handle: ExperimentHandle; dir: string }> {
  const dir = tempDir();
  const rl = await openRoundLog({ root: dir });
  const handle = await rl.createExperiment({ saveBreakpoints: true, roundLimit: 10, initialParams: tensors(0, 0) });
  for (let r = 0; r < rounds; r++) {
    const reply = await rl.putTensors(tensors(r, 100));
    await handle.recordRound({
      params: tensors(r, 1),
      replies: [{ round: r, attempt: 1, node: 'n1', sampleSize: 3, params: reply, metrics: {}, durationMs: 1 }],
      nodes: [{ node: 'n1', sampleSize: 3, metrics: {} }],
    });
  }
  return { root: dir, rl, handle, dir: path.join(dir, 'experiments', handle.state.folder) };
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** The parts of a parsed breakpoint.json that the tests edit. */
type EditableManifest = { files: Record<string, unknown>; params: Record<string, unknown> };

function editManifest(folder: string, edit: (m: EditableManifest) => void): void {
  const file = path.join(folder, 'breakpoint.json');
  const manifest: unknown = JSON.parse(readFileSync(file, 'utf8'));
  edit(manifest as EditableManifest);
  writeFileSync(file, JSON.stringify(manifest, null, 2) + '\n');
}

test('a healthy root: ok, every folder checked, every kept reference found', async (t) => {
  const { root: dir, rl } = await root();
  const report = await verifyRoot({ root: dir });
  t.true(report.ok, JSON.stringify(report, null, 2));
  t.is(report.breakpoints.foldersChecked, 4);
  t.is(report.history.experimentsChecked, 1);
  t.is(
    report.references.blobsChecked,
    1 + 4 * 2,
    'initial parameters, and per round the aggregated and the reply parameters',
  );
  t.deepEqual(report.lag, []);
  await rl.close();
});

test(
  "a parameters file swapped for another round's, with the " +
    'manifest made consistent: the log says it is the wrong round',
  async (t) => {
    const { root: dir, rl, handle, dir: exp } = await root();
    const folder = path.join(exp, 'breakpoint_0002');
    const params = path.join(folder, 'params.safetensors');
    unlinkSync(params);
    copyFileSync(path.join(exp, 'breakpoint_0001', 'params.safetensors'), params);
    const other = sha256(readFileSync(params));
    editManifest(folder, (m) => {
      m.files['params.safetensors'] = other;
      m.params.sha256 = other;
    });
    const report = await verifyRoot({ root: dir });
    t.false(report.ok);
    const reasons = report.breakpoints.problems.map((p) => `${p.file} ${p.round}: ${p.reason}`);
    const logged = handle.state.rounds[2]!.params.sha256;
    t.deepEqual(reasons.sort(), [
      `breakpoint.json 2: files.params.safetensors is "${other}", the log records "${logged}"`,
      `breakpoint.json 2: params.sha256 is "${other}", the log records "${logged}"`,
      `params.safetensors 2: has SHA-256 ${other}; the log records ${logged} for round 2`,
    ]);
    t.true(report.breakpoints.problems.every((p) => p.folder === folder && p.experiment === 'Experiment_0000'));
    await rl.close();
  },
);

test(
  'missing and unlisted files, absolute paths, a manifest ' + 'that is not JSON, a foreign folder in superseded/',
  async (t) => {
    const { root: dir, rl, dir: exp } = await root();
    rmSync(path.join(exp, 'breakpoint_0000', 'params.safetensors'));
    writeFileSync(path.join(exp, 'breakpoint_0001', 'notes.txt'), 'mine');
    editManifest(path.join(exp, 'breakpoint_0002'), (m) => {
      m.params.file = path.join(exp, 'breakpoint_0002', 'params.safetensors');
    });
    writeFileSync(path.join(exp, 'breakpoint_0003', 'breakpoint.json'), '{ "format": "roundlog-breakpoint", ');
    mkdirSync(path.join(exp, 'superseded', 'breakpoint_0007.1'), { recursive: true });
    writeFileSync(path.join(exp, 'superseded', 'breakpoint_0007.1', 'breakpoint.json'), '{}');
    const report = await verifyRoot({ root: dir });
    t.false(report.ok);
    const byFolder = (name: string) =>
      report.breakpoints.problems
        .filter((p) => path.relative(exp, p.folder) === name)
        .map((p) => `${p.file}: ${p.reason}`);
    t.deepEqual(byFolder('breakpoint_0000'), [
      'params.safetensors: is listed in the manifest but cannot be read (ENOENT)',
    ]);
    t.deepEqual(byFolder('breakpoint_0001'), [
      'notes.txt: is not listed in the manifest (a breakpoint folder holds only the files its manifest lists)',
    ]);
    // A path where a file name belongs is refused by the manifest's schema, naming the field.
    const abs = byFolder('breakpoint_0002');
    t.is(abs.length, 1, abs.join('\n'));
    t.regex(
      abs[0]!,
      /^breakpoint\.json: params\.file is ".*: expected the name of a file inside the breakpoint folder/,
    );
    const broken = byFolder('breakpoint_0003');
    t.is(broken.length, 1);
    t.true(broken[0]!.startsWith('breakpoint.json: is not valid JSON: '), broken[0]);
    t.deepEqual(byFolder(path.join('superseded', 'breakpoint_0007.1')), [
      'breakpoint.json: format is missing, not "roundlog-breakpoint": not a roundlog breakpoint manifest',
    ]);
    t.is(report.breakpoints.foldersChecked, 5);
    await rl.close();
  },
);

test(
  'a blob of a kept round missing from the store is named with its round; ' +
    'a folder left for a pruned round is flagged; lag is reported but healthy',
  async (t) => {
    const { root: dir, rl, handle, dir: exp } = await root();
    // The reply blob of round 1 (no folder holds it).
    const events = await rl.withReader(async (log) => (await log.readStream(handle.stream)).events);
    const reply = events.find((e) => e.type === 'NodeReplied' && (e.data as { round: number }).round === 1)!.data as {
      params: { sha256: string };
    };
    const file = rl.blobs.fileOf(reply.params.sha256)!;
    chmodSync(path.dirname(file), 0o755);
    unlinkSync(file);
    let report = await verifyRoot({ root: dir });
    t.false(report.ok);
    t.is(report.references.problems.length, 1);
    t.like(report.references.problems[0], { experiment: 'Experiment_0000', round: 1, sha256: reply.params.sha256 });
    t.regex(report.references.problems[0]!.reason, /is missing from the blob store/);

    // Put back (the same bytes stored again), it is healthy again.
    await rl.putTensors(tensors(1, 100));
    report = await verifyRoot({ root: dir });
    t.true(report.ok, JSON.stringify(report.references.problems));

    // Round 0 pruned on the record while its folder is still there (a crash before the folder went).
    await handle.append([
      {
        type: 'RoundsPruned',
        data: {
          v: 1,
          rounds: [{ round: 0, position: String(handle.state.rounds[0]!.position) }],
          retention: { keepLast: 3, keepEvery: null },
          by: rl.actor,
        },
      },
    ]);
    rmSync(path.join(exp, 'breakpoint_0003'), { recursive: true });
    report = await verifyRoot({ root: dir });
    t.false(report.ok);
    t.is(report.breakpoints.problems.length, 1);
    t.like(report.breakpoints.problems[0], { folder: path.join(exp, 'breakpoint_0000'), file: '.', round: 0 });
    t.regex(report.breakpoints.problems[0]!.reason, /round 0 was pruned by retention on .*: run roundlog gc/);
    t.deepEqual(
      report.lag,
      [{ experiment: 'Experiment_0000', view: 'breakpoints', rounds: [3] }],
      'a missing folder is lag, not damage',
    );
    t.is(report.references.problems.length, 0, 'the blobs of a pruned round may be gone');
    await rl.close();
  },
);
