/**
 * The TensorBoard projection end to end, read back by an independent reader: a run SIGKILLed
 * mid-way and resumed, rewound twice, then forked, leaves event files whose every scalar series
 * (decoded by test/python/read_tfevents.py: TFRecord framing with CRC-32C checked, protobuf wire
 * format by hand, standard library only) equals `roundlog audit metric` for the current runs and
 * `roundlog audit rounds` for the runs of superseded rounds; `project --rebuild` writes the same
 * bytes, `project` completes a torn file, `verify` names an edited one, and `project --follow`
 * writes them live.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openRoundLog } from '../../src/projections/index.ts';
import { roundlog, roundlogJson, startRoundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { killSpawned } from '../support/child.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const EXAMPLE = 'examples/logistic-regression/experiment.ts';
const PYTHON = process.env.ROUNDLOG_PYTHON ?? '/usr/bin/python3';
const READER = path.join(import.meta.dirname, '..', 'python', 'read_tfevents.py');

type Decoded = {
  runs: Record<
    string,
    { file_version: string; files: string[]; tags: Record<string, Array<[number, number, number]>> }
  >;
  problems: string[];
};

/** The runs under `<root>/experiments`, as the independent reader decodes them. */
function decode(root: string): Decoded {
  if (!existsSync(PYTHON)) throw new Error(`no Python at ${PYTHON} (set ROUNDLOG_PYTHON): the reader needs one`);
  const out = execFileSync(PYTHON, [READER, path.join(root, 'experiments')], { encoding: 'utf8' });
  return JSON.parse(out) as Decoded;
}

/** Every file under the experiments' `tensorboard/` folders: relative path → bytes. */
function tensorboardFiles(root: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const experiments = path.join(root, 'experiments');
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else files.set(path.relative(experiments, full), readFileSync(full));
    }
  };
  for (const experiment of readdirSync(experiments)) {
    const dir = path.join(experiments, experiment, 'tensorboard');
    if (existsSync(dir)) walk(dir);
  }
  return files;
}

async function ok(args: string[]): Promise<string> {
  const result = await roundlog(args);
  if (result.code !== 0) throw new Error(`roundlog ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

type Row = {
  round: number;
  status: string;
  metrics: Record<string, number>;
  nodes: Array<{ node: string; metrics: Record<string, number> }>;
  supersededBy: { position: string } | null;
  completedAt: string | null;
};
type Rounds = { metricNames: string[]; rounds: Row[] };
type Metric = { points: Array<{ round: number; value: number; time: string }> };

/** Tag → [(step, value as float32, wall time)] as the log gives them for `rows`. */
function seriesOfRows(rows: readonly Row[]): Record<string, Array<[number, number, number]>> {
  const tags: Record<string, Array<[number, number, number]>> = {};
  const add = (tag: string, row: Row, value: number) =>
    (tags[tag] ??= []).push([row.round, Math.fround(value), Date.parse(row.completedAt!) / 1000]);
  for (const row of rows) {
    for (const [name, value] of Object.entries(row.metrics)) add(name, row, value);
    for (const node of row.nodes)
      for (const [name, value] of Object.entries(node.metrics)) add(`node/${node.node}/${name}`, row, value);
  }
  return tags;
}

/**
 * Every scalar series of an experiment's current run against `audit metric` (the aggregate and
 * each node's), and the tags against the metrics and nodes the rounds recorded.
 */
async function assertCurrentRun(t: import('ava').ExecutionContext, root: string, folder: string, decoded: Decoded) {
  const run = decoded.runs[`${folder}/tensorboard`];
  t.truthy(run, `${folder} has a current run`);
  t.is(run!.file_version, 'brain.Event:2');
  const table = await roundlogJson<Rounds>(['audit', 'rounds', folder, '--root', root]);
  const nodes = [...new Set(table.rounds.flatMap((r) => r.nodes.map((n) => n.node)))].sort();
  const expectedTags: string[] = [];
  for (const metric of table.metricNames) {
    for (const node of [null, ...nodes]) {
      const args = ['audit', 'metric', folder, metric, '--root', root, ...(node === null ? [] : ['--node', node])];
      const { points } = await roundlogJson<Metric>(args);
      if (points.length === 0) continue;
      const tag = node === null ? metric : `node/${node}/${metric}`;
      expectedTags.push(tag);
      t.deepEqual(
        run!.tags[tag],
        points.map((p) => [p.round, Math.fround(p.value), Date.parse(p.time) / 1000]),
        `${folder}: ${tag} as audit metric gives it`,
      );
    }
  }
  t.deepEqual(Object.keys(run!.tags).sort(), expectedTags.sort(), `${folder}: no other tag`);
  return run!;
}

test(
  'a run SIGKILLed mid-way, resumed, rewound twice and forked: every TensorBoard run decodes to what ' +
    'audit gives, and project --rebuild writes the same bytes',
  async (t) => {
    const root = tempDir();
    const r = ['--root', root];

    // A real process, killed once round 2 is committed (it prints the round after its commit).
    const first = startRoundlog(['run', EXAMPLE, '--rounds', '8', ...r]);
    await first.waitFor((l) => l.startsWith('round 2 '));
    first.process.kill('SIGKILL');
    t.is((await first.exited).signal, 'SIGKILL');
    const killedAt = decode(root).runs['Experiment_0000/tensorboard']!.tags.loss!.map((p) => p[0]);
    t.true(killedAt.length >= 3 && killedAt.length < 8, `rounds before the kill: ${killedAt.join(',')}`);

    await ok(['resume', '--rounds', '3', ...r]);
    let decoded = decode(root);
    const resumed = decoded.runs['Experiment_0000/tensorboard']!.tags.loss!.map((p) => p[0]);
    t.deepEqual(
      resumed,
      Array.from({ length: resumed.length }, (_, i) => i),
      'one continuous curve across the crash: every round once, in order',
    );
    t.true(resumed.length >= 6);
    await assertCurrentRun(t, root, 'Experiment_0000', decoded);

    // Two rewinds, each followed by new rounds: each one's rounds become a run of their own.
    await ok(['rewind', 'Experiment_0000', '--round', '2', '--reason', 'bad extract', ...r]);
    decoded = decode(root);
    t.deepEqual(
      decoded.runs['Experiment_0000/tensorboard']!.tags.loss!.map((p) => p[0]),
      [0, 1, 2],
      'right after the rewind the current run ends at the round rewound to',
    );
    await ok(['resume', '--rounds', '3', ...r]);
    await ok(['rewind', 'Experiment_0000', '--round', '3', '--reason', 'again', ...r]);
    await ok(['resume', '--rounds', '1', ...r]);

    // A fork from round 2, continued.
    await ok(['fork', 'Experiment_0000', '--round', '2', ...r]);
    await ok(['resume', 'Experiment_0001', '--rounds', '2', ...r]);

    decoded = decode(root);
    t.deepEqual(decoded.problems, []);
    const parent = await assertCurrentRun(t, root, 'Experiment_0000', decoded);
    t.deepEqual(
      parent.tags.loss!.map((p) => p[0]),
      [0, 1, 2, 3, 4],
    );
    const fork = await assertCurrentRun(t, root, 'Experiment_0001', decoded);
    t.deepEqual(
      fork.tags.loss!.map((p) => p[0]),
      [3, 4],
      "a fork's run holds its own rounds, numbered on from the parent's",
    );

    // The runs of superseded rounds: one per rewind, each equal to the rounds audit says it took.
    const table = await roundlogJson<Rounds>(['audit', 'rounds', 'Experiment_0000', ...r]);
    const byRewind = new Map<string, Row[]>();
    for (const row of table.rounds.filter((x) => x.status === 'superseded'))
      byRewind.set(row.supersededBy!.position, [...(byRewind.get(row.supersededBy!.position) ?? []), row]);
    const groups = [...byRewind.entries()].sort((a, b) => (BigInt(a[0]) < BigInt(b[0]) ? -1 : 1)).map((e) => e[1]);
    t.is(groups.length, 2);
    const supersededRuns = Object.keys(decoded.runs)
      .filter((run) => run.startsWith('Experiment_0000/tensorboard/superseded/'))
      .sort();
    const names = groups.map((rows, i) => {
      const [first, last] = [Math.min(...rows.map((x) => x.round)), Math.max(...rows.map((x) => x.round))];
      return `Experiment_0000/tensorboard/superseded/rewind_${i + 1}_rounds_${first}-${last}`;
    });
    t.deepEqual(supersededRuns, names);
    groups.forEach((rows, i) => t.deepEqual(decoded.runs[names[i]!]!.tags, seriesOfRows(rows), names[i]));
    t.deepEqual(
      Object.keys(decoded.runs).sort(),
      [...names, 'Experiment_0000/tensorboard', 'Experiment_0001/tensorboard'].sort(),
    );

    // The files are a cache of the log: rebuilt, byte for byte.
    const before = tensorboardFiles(root);
    t.true(before.size >= 4);
    await ok(['project', '--rebuild', ...r]);
    t.deepEqual(tensorboardFiles(root), before, 'project --rebuild writes the same files, the same bytes');

    // A torn trailing record (a crash mid-append) is completed by project.
    const current = [...before.keys()].find((f) => f.startsWith('Experiment_0000/tensorboard/events.'))!;
    const file = path.join(root, 'experiments', current);
    truncateSync(file, before.get(current)!.length - 5);
    t.deepEqual(decode(root).problems, [`${file}: torn record at byte ${lastRecordOffset(before.get(current)!)}`]);
    await ok(['project', ...r]);
    t.deepEqual(tensorboardFiles(root), before, 'the torn file completed');

    // An edited file: verify names it, verify --repair writes it again.
    const edited = Buffer.from(before.get(current)!);
    edited.writeUInt8(edited.readUInt8(edited.length - 1) ^ 0xff, edited.length - 1);
    writeFileSync(file, edited);
    const verified = await roundlog(['verify', '--json', ...r]);
    t.is(verified.code, 1);
    t.regex(verified.stdout, new RegExp(path.basename(file).replace(/\./g, '\\.')));
    t.regex(verified.stdout, /not what the log gives/);
    await ok(['verify', '--repair', ...r]);
    t.deepEqual(tensorboardFiles(root), before, 'repaired from the log');
    t.is((await roundlog(['verify', ...r])).code, 0);

    // Live: project --follow writes them from nothing, then those of an experiment run while it
    // follows (one saving no breakpoint folder: only the event files are written by both processes).
    for (const folder of ['Experiment_0000', 'Experiment_0001'])
      rmSync(path.join(root, 'experiments', folder, 'tensorboard'), { recursive: true });
    const follower = startRoundlog(['project', '--follow', ...r]);
    await follower.waitFor((l) => l.startsWith('caught up'));
    t.deepEqual(tensorboardFiles(root), before, 'caught up: the same files');
    await ok(['run', 'test/lineage/no-breakpoints.experiment.ts', '--rounds', '3', ...r]);
    const end = await logEnd(root);
    await follower.waitFor((l) => {
      const at = /\(position (\d+), lag \d+ ms\)/.exec(l);
      return at !== null && BigInt(at[1]!) >= end;
    });
    follower.process.kill('SIGINT');
    t.is((await follower.exited).code, 0, follower.stderr());
    const live = tensorboardFiles(root);
    await ok(['project', '--rebuild', ...r]);
    t.deepEqual(tensorboardFiles(root), live, 'what follow wrote is what the log gives');
    const after = decode(root);
    t.deepEqual(
      after.runs['Experiment_0002/tensorboard']!.tags.loss!.map((p) => p[0]),
      [0, 1, 2],
    );
    await assertCurrentRun(t, root, 'Experiment_0002', after);
  },
);

/** Position of the last event of the root's log. */
async function logEnd(root: string): Promise<bigint> {
  const rl = await openRoundLog({ root });
  try {
    const { lastPosition } = await rl.withReader((log) => log.readAll({ maxCount: 1 }));
    return lastPosition!;
  } finally {
    await rl.close();
  }
}

/** Byte offset of the last record of a well-formed event file. */
function lastRecordOffset(bytes: Buffer): number {
  let offset = 0;
  let last = 0;
  while (offset < bytes.length) {
    last = offset;
    offset += 16 + Number(bytes.readBigUInt64LE(offset));
  }
  return last;
}
