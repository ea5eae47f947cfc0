/**
 * `roundlog project`, `verify` and `gc` (in process) against real roots built by
 * `roundlog run examples/logistic-regression/experiment.ts`.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RoundPrunedError } from '../../src/model/errors.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { Experiment } from '../../src/federated/experiment.ts';
import type { NodeReplied, RoundsPruned } from '../../src/model/events.ts';
import definition from '../../examples/logistic-regression/experiment.ts';
import { roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const EXAMPLE = 'examples/logistic-regression/experiment.ts';

/** A root with the example run to its limit (10 rounds, a breakpoint after each). */
async function exampleRoot(t: { is: (a: unknown, b: unknown, m?: string) => void }, root = tempDir()): Promise<string> {
  const run = await roundlog(['run', EXAMPLE, '--root', root]);
  t.is(run.code, 0, run.stderr);
  return root;
}

/** Every file under `dir` with its SHA-256, by relative path. */
function checksums(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    files[path.relative(dir, full)] = createHash('sha256').update(readFileSync(full)).digest('hex');
  }
  return files;
}

/** Bytes on disk of the files under `dirs`, each inode once (hard links are not counted twice). */
function diskBytes(...dirs: string[]): number {
  const seen = new Set<string>();
  let bytes = 0;
  for (const dir of dirs) {
    for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const stat = lstatSync(path.join(entry.parentPath, entry.name));
      const key = `${stat.dev}:${stat.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
      bytes += stat.size;
    }
  }
  return bytes;
}

function blobPath(root: string, sha256: string): string {
  return path.join(root, 'blobs', sha256.slice(0, 2), sha256.slice(2));
}

function flipByte(file: string, offset: number): void {
  chmodSync(file, 0o644);
  const bytes = readFileSync(file);
  bytes[offset] = bytes[offset]! ^ 0xff;
  writeFileSync(file, bytes);
}

function breakpointRounds(dir: string): number[] {
  return readdirSync(dir)
    .filter((n) => /^breakpoint_\d{4}$/.test(n))
    .map((n) => Number(n.slice('breakpoint_'.length)));
}

type StreamInfo = { stream: string; lastRevision: string };
async function eventCounts(root: string): Promise<Record<string, number>> {
  const out = await roundlog(['streams', '--json', '--root', root]);
  return Object.fromEntries(
    (JSON.parse(out.stdout) as StreamInfo[]).map((s) => [s.stream, Number(s.lastRevision) + 1]),
  );
}

test(
  'project: an emptied experiments/ folder is rebuilt with identical checksums, ' +
    'lag shown; --rebuild rewrites hand edits and leaves superseded/ alone',
  async (t) => {
    const root = await exampleRoot(t);
    const experiments = path.join(root, 'experiments');
    const before = checksums(experiments);
    t.is(Object.keys(before).length, 31, '10 folders of 3 files, and the event file of the TensorBoard run');

    rmSync(experiments, { recursive: true });
    const project = await roundlog(['project'], { ROUNDLOG_DIR: root });
    t.is(project.code, 0, project.stderr);
    t.regex(project.stdout, /Experiment_0000: projection lag before: 10 breakpoint folders missing \(rounds 0-9\)/);
    t.is(project.stdout.match(/^ {2}wrote {4}.*breakpoint_\d{4}$/gm)?.length, 10);
    t.regex(project.stdout, /10 folders written, 0 removed, 0 moved aside; lag now 0/);
    t.deepEqual(checksums(experiments), before);
    // The parameters are hard links to their blobs again, not copies.
    t.is(statSync(path.join(experiments, 'Experiment_0000', 'breakpoint_0009', 'params.safetensors')).nlink, 2);

    const again = await roundlog(['project', '--root', root]);
    t.is(again.code, 0);
    t.regex(again.stdout, /projection lag before: none/);
    t.regex(again.stdout, /0 folders written/);
    t.deepEqual(checksums(experiments), before);

    // A rewind (resume from an older breakpoint) moves later folders to superseded/.
    const resume = await roundlog([
      'resume',
      path.join(experiments, 'Experiment_0000', 'breakpoint_0004'),
      '--rewind',
      '--rounds',
      '1',
      '--root',
      root,
    ]);
    t.is(resume.code, 0, resume.stderr);
    const area = path.join(experiments, 'Experiment_0000', 'superseded');
    const aside = checksums(area);
    t.deepEqual(
      Object.keys(aside)
        .map((f) => f.split(path.sep)[0])
        .filter((v, i, a) => a.indexOf(v) === i)
        .sort(),
      ['breakpoint_0005.1', 'breakpoint_0006.1', 'breakpoint_0007.1', 'breakpoint_0008.1', 'breakpoint_0009.1'],
    );
    const branch = checksums(experiments);

    const manifestFile = path.join(experiments, 'Experiment_0000', 'breakpoint_0002', 'breakpoint.json');
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
    manifest.roundLimit = 99;
    writeFileSync(manifestFile, JSON.stringify(manifest, null, 2) + '\n');
    const plain = await roundlog(['project', '--root', root]);
    t.regex(plain.stdout, /0 folders written/, 'without --rebuild a folder of the right round is left as it is');

    const rebuild = await roundlog(['project', '--rebuild', '--root', root]);
    t.is(rebuild.code, 0, rebuild.stderr);
    t.is(rebuild.stdout.match(/^ {2}removed {2}/gm)?.length, 6, 'rounds 0-5 of the branch');
    t.regex(rebuild.stdout, /\(rebuild\): 6 folders written, 6 removed, 0 moved aside; lag now 0/);
    t.deepEqual(checksums(experiments), branch, 'hand edit undone, everything else identical');
    t.deepEqual(checksums(area), aside, 'superseded/ untouched');
    t.is((await roundlog(['verify', '--root', root])).code, 0);
  },
);

test(
  'verify: exit 0 on a healthy root; names a flipped byte in a blob, ' +
    'a hand-edited breakpoint.json, a flipped byte in a log segment',
  async (t) => {
    const root = await exampleRoot(t);
    const healthy = await roundlog(['verify', '--root', root]);
    t.is(healthy.code, 0, healthy.stdout + healthy.stderr);
    t.regex(healthy.stdout, /^log: {3}\d+ records, \d+ bytes checked, 0 problems$/m);
    t.regex(healthy.stdout, /^blobs: 42 blobs, \d+ bytes checked, 0 problems$/m);
    t.regex(healthy.stdout, /^breakpoints: 10 folders checked, 0 problems$/m);
    t.regex(healthy.stdout, /^ok: no problem found$/m);

    // A flipped byte in the blob of round 3's parameters: named as a blob, and in the folder that links it.
    const folder3 = path.join(root, 'experiments', 'Experiment_0000', 'breakpoint_0003');
    const sha3 = JSON.parse(readFileSync(path.join(folder3, 'breakpoint.json'), 'utf8')).params.sha256 as string;
    const blob = blobPath(root, sha3);
    flipByte(blob, 20);
    const damagedBlob = await roundlog(['verify', '--root', root]);
    t.is(damagedBlob.code, 1);
    t.true(damagedBlob.stdout.includes(`${blob}: blob ${sha3} now hashes to`), damagedBlob.stdout);
    t.true(
      damagedBlob.stdout.includes(`${folder3}/params.safetensors (Experiment_0000 round 3): has SHA-256`),
      damagedBlob.stdout,
    );
    t.regex(damagedBlob.stdout, /^2 problems found$/m);
    flipByte(blob, 20);
    t.is((await roundlog(['verify', '--root', root])).code, 0, 'flipped back: healthy again');

    // A hand-edited manifest (the round limit): the manifest has no hash of its own, the log says what it must hold.
    const manifestFile = path.join(root, 'experiments', 'Experiment_0000', 'breakpoint_0006', 'breakpoint.json');
    const original = readFileSync(manifestFile);
    const manifest = JSON.parse(original.toString('utf8'));
    manifest.roundLimit = 99;
    writeFileSync(manifestFile, JSON.stringify(manifest, null, 2) + '\n');
    const edited = await roundlog(['verify', '--root', root]);
    t.is(edited.code, 1);
    t.true(
      edited.stdout.includes(`${manifestFile} (Experiment_0000 round 6): roundLimit is 99, the log records 10`),
      edited.stdout,
    );
    t.regex(edited.stdout, /^breakpoints: 10 folders checked, 1 problem$/m);
    const json = JSON.parse((await roundlog(['verify', '--json', '--root', root])).stdout);
    t.false(json.ok);
    t.like(json.breakpoints.problems[0], { experiment: 'Experiment_0000', file: 'breakpoint.json', round: 6 });
    writeFileSync(manifestFile, original);
    t.is((await roundlog(['verify', '--root', root])).code, 0);

    // A flipped byte in the middle of the log's data (in a copy of the root: the log is the truth).
    const copy = path.join(tempDir(), 'root');
    cpSync(root, copy, { recursive: true });
    const segment = path.join(
      copy,
      'log',
      readdirSync(path.join(copy, 'log')).find((n) => n.endsWith('.seg'))!,
    );
    const data = readFileSync(segment);
    let end = data.length;
    while (end > 0 && data[end - 1] === 0) end--;
    flipByte(segment, Math.floor(end / 2));
    const damagedLog = await roundlog(['verify', '--root', copy]);
    t.is(damagedLog.code, 1);
    t.regex(damagedLog.stdout, /^log: {3}\d+ records, \d+ bytes checked, 1 problem$/m);
    t.true(damagedLog.stdout.includes(`  ${segment} at byte `), damagedLog.stdout);
    // The one damaged record is one problem; the history it cuts is a note naming the experiment.
    t.regex(damagedLog.stdout, /^1 problem found$/m);
    t.regex(
      damagedLog.stdout,
      /^note: Experiment_0000: its history cannot be read past the damaged log record reported above \(.*\.seg /m,
    );
  },
);

test(
  'gc: rounds outside the policy lose their parameter bytes and folders, every ' +
    'event stays; pruned rounds refuse to load, kept ones load bit-identical',
  async (t) => {
    const root = await exampleRoot(t);
    const dir = path.join(root, 'experiments', 'Experiment_0000');
    const copyOfRound5 = path.join(tempDir(), 'breakpoint_0005');
    cpSync(path.join(dir, 'breakpoint_0005'), copyOfRound5, { recursive: true });
    const rl = await openRoundLog({ root });
    const before = await rl.openExperiment('Experiment_0000');
    const paramsBefore = await Promise.all(
      before.state.rounds.map((r) => before.loadRound(r.round).then((s) => s.params)),
    );
    const countsBefore = await eventCounts(root);
    const bytesBefore = diskBytes(path.join(root, 'blobs'), path.join(root, 'experiments'));

    const run = await roundlog(['gc', '--keep-last', '3', '--keep-every', '4', '--root', root]);
    t.is(run.code, 0, run.stderr);
    t.regex(
      run.stdout,
      /Experiment_0000: keep the last 3 and every 4th round \(given\): pruned 5 rounds \(rounds 1-3, 5, 6\)/,
    );
    t.regex(run.stdout, /kept rounds 0, 4, 7-9/);
    t.regex(run.stdout, /deleted 20 blobs \(\d+ bytes\)/, '5 rounds x (aggregated + 3 node replies)');
    const freed = Number(/(\d+) bytes freed on disk/.exec(run.stdout)![1]);

    // Disk bytes drop by exactly what gc reports.
    const bytesAfter = diskBytes(path.join(root, 'blobs'), path.join(root, 'experiments'));
    t.true(freed > 0);
    t.is(bytesBefore - bytesAfter, freed);
    t.deepEqual(breakpointRounds(dir), [0, 4, 7, 8, 9]);

    // Every event stays: the experiment stream has one more, a RoundsPruned.
    const countsAfter = await eventCounts(root);
    const stream = before.stream;
    t.is(countsAfter[stream], countsBefore[stream]! + 1);
    t.is(countsAfter['roundlog.experiments'], countsBefore['roundlog.experiments']);
    const events = await rl.withReader(async (log) => (await log.readStream(stream)).events);
    const last = events.at(-1)!;
    t.is(last.type, 'RoundsPruned');
    t.deepEqual(
      (last.data as RoundsPruned).rounds.map((r) => r.round),
      [1, 2, 3, 5, 6],
    );

    // Blobs: aggregated and node parameters of pruned rounds gone, of kept rounds there.
    const replies = events.filter((e) => e.type === 'NodeReplied').map((e) => e.data as NodeReplied);
    for (const record of before.state.rounds) {
      const kept = [0, 4, 7, 8, 9].includes(record.round);
      t.is(existsSync(blobPath(root, record.params.sha256)), kept, `round ${record.round}`);
      for (const reply of replies.filter((r) => r.round === record.round))
        t.is(existsSync(blobPath(root, reply.params.sha256)), kept);
    }

    // Loading a pruned round is refused, saying it was retention and when; kept rounds load bit-identical.
    const after = await rl.openExperiment('Experiment_0000');
    const error = await t.throwsAsync(after.loadRound(2), { instanceOf: RoundPrunedError });
    t.is(error.code, 'ROUND_PRUNED');
    t.is(error.prunedAt.getTime(), last.timestamp.getTime());
    t.regex(error.message, /round 2 of experiment Experiment_0000 was pruned by retention on \d{4}-\d\d-\d\dT/);
    for (const round of [0, 4, 7, 8, 9])
      t.deepEqual((await after.loadRound(round)).params, paramsBefore[round], `round ${round}`);
    const load = (target: string) =>
      Experiment.loadBreakpoint(target, { root, federation: definition.federation, workspace: ROOT });
    await t.throwsAsync(load(path.join(dir, 'breakpoint_0005')), {
      instanceOf: RoundPrunedError,
      message: /round 5 of experiment Experiment_0000 was pruned by retention/,
    });
    await t.throwsAsync(load(copyOfRound5), {
      instanceOf: RoundPrunedError,
      message: /round 5 of experiment Experiment_0000 was pruned/,
    });
    t.is((await eventCounts(root))[stream], countsAfter[stream], 'a refused load appends nothing');
    await rl.close();

    // The root is healthy, and projecting writes no folder for pruned rounds.
    const verify = await roundlog(['verify', '--root', root]);
    t.is(verify.code, 0, verify.stdout);
    t.regex(verify.stdout, /projection lag: none/);
    rmSync(path.join(root, 'experiments'), { recursive: true });
    const project = await roundlog(['project', '--root', root]);
    t.regex(project.stdout, /projection lag before: 5 breakpoint folders missing \(rounds 0, 4, 7-9\)/);
    t.regex(project.stdout, /skipped rounds 1-3, 5, 6: pruned by retention/);
    t.deepEqual(breakpointRounds(dir), [0, 4, 7, 8, 9]);

    // A kept breakpoint still resumes.
    const exp = await load(path.join(dir, 'breakpoint_0009'));
    t.deepEqual(await exp.parameters(), paramsBefore[9]);
    await exp.close();
  },
);

test(
  'gc counts references across the whole root: bytes shared ' +
    'with another experiment stay until no kept round needs them',
  async (t) => {
    const root = await exampleRoot(t);
    await exampleRoot(t, root);
    const rl = await openRoundLog({ root });
    const first = await rl.openExperiment('Experiment_0000');
    const second = await rl.openExperiment('Experiment_0001');
    // Same definition, same seed: the two runs are bit-identical, so they share every blob.
    t.deepEqual(
      first.state.rounds.map((r) => r.params.sha256),
      second.state.rounds.map((r) => r.params.sha256),
    );
    const blobsBefore = readdirSync(path.join(root, 'blobs'), { recursive: true }).length;

    const one = await roundlog(['gc', 'Experiment_0000', '--keep-last', '2', '--root', root]);
    t.is(one.code, 0, one.stderr);
    t.regex(one.stdout, /Experiment_0000: keep the last 2 \(given\): pruned 8 rounds \(rounds 0-7\)/);
    t.notRegex(one.stdout, /Experiment_0001/);
    t.regex(one.stdout, /deleted 0 blobs \(0 bytes\)/);
    t.regex(one.stdout, /32 blobs of pruned rounds kept \(still referenced elsewhere\)/);
    t.is(readdirSync(path.join(root, 'blobs'), { recursive: true }).length, blobsBefore);
    t.deepEqual(breakpointRounds(path.join(root, 'experiments', 'Experiment_0000')), [8, 9]);
    t.deepEqual(breakpointRounds(path.join(root, 'experiments', 'Experiment_0001')), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await t.throwsAsync((await rl.openExperiment('Experiment_0000')).loadRound(0), { instanceOf: RoundPrunedError });
    t.is((await (await rl.openExperiment('Experiment_0001')).loadRound(0)).round, 0);

    const all = await roundlog(['gc', '--keep-last', '2', '--root', root]);
    t.is(all.code, 0, all.stderr);
    t.regex(all.stdout, /Experiment_0000: keep the last 2 \(given\): nothing to prune/);
    t.regex(all.stdout, /Experiment_0001: keep the last 2 \(given\): pruned 8 rounds \(rounds 0-7\)/);
    t.regex(all.stdout, /deleted 32 blobs/);
    for (const record of first.state.rounds) t.is(existsSync(blobPath(root, record.params.sha256)), record.round >= 8);
    t.true(existsSync(blobPath(root, first.created.initialParams!.sha256)), 'initial parameters are never pruned');
    t.is((await roundlog(['verify', '--root', root])).code, 0);
    await rl.close();
  },
);

test(
  'retention set in an experiment definition applies as rounds complete ' +
    "under roundlog run; gc without a policy uses the experiment's own",
  async (t) => {
    const root = tempDir();
    const run = await roundlog(['run', 'test/maintenance/retained-definition.ts', '--root', root]);
    t.is(run.code, 0, run.stderr);
    t.regex(run.stdout, /done: 10 rounds completed/);
    // keepLast 2, keepEvery 5: rounds 0, 5, 8, 9 keep their parameters and folders.
    t.deepEqual(breakpointRounds(path.join(root, 'experiments', 'Experiment_0000')), [0, 5, 8, 9]);
    const listed = JSON.parse((await roundlog(['ls', '--json', '--root', root])).stdout) as Array<{ id: string }>;
    const events = await roundlog(['events', `experiment-${listed[0]!.id}`, '--root', root]);
    t.is(events.stdout.match(/RoundsPruned/g)?.length, 6, 'rounds 1-4 and 6-7, one event each round that pruned');
    t.regex(events.stdout, /SettingsChanged +\{"v":1,"retention":\{"keepLast":2,"keepEvery":5\}/);
    const gc = await roundlog(['gc', '--root', root]);
    t.is(gc.code, 0, gc.stderr);
    t.regex(
      gc.stdout,
      /Experiment_0000: keep the last 2 and every 5th round \(the experiment's own\): nothing to prune/,
    );
    t.regex(gc.stdout, /deleted 0 blobs/);
    t.is((await roundlog(['verify', '--root', root])).code, 0);
    const usage = await roundlog(['gc', '--keep-every', '3', '--root', root]);
    t.is(usage.code, 2);
    t.regex(usage.stderr, /--keep-every needs --keep-last N/);
    const zero = await roundlog(['gc', '--keep-last', '0', '--root', root]);
    t.is(zero.code, 2);
    t.regex(zero.stderr, /--keep-last must be a positive integer \(got "0"\)/);
  },
);

test(
  'gc then roundlog replay of a pruned round: refused, saying it ' +
    'was pruned by retention and when; a kept round still replays',
  async (t) => {
    const root = tempDir();
    t.is((await roundlog(['run', EXAMPLE, '--rounds', '4', '--root', root])).code, 0);
    const gc = await roundlog(['gc', '--keep-last', '1', '--root', root]);
    t.is(gc.code, 0, gc.stderr);
    const refused = await roundlog(['replay', 'Experiment_0000', '--round', '1', '--root', root]);
    t.is(refused.code, 1);
    t.regex(
      refused.stderr,
      /round 1 of experiment Experiment_0000 was pruned by retention on \d{4}-\d\d-\d\dT[\d:.]+Z/,
    );
    const kept = await roundlog(['replay', 'Experiment_0000', '--round', '3', '--root', root]);
    t.is(kept.code, 0, kept.stderr);
  },
);
