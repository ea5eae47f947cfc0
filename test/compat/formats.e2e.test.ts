/**
 * Roots and copied breakpoint folders written by earlier code, one fixture per on-disk format this
 * release reads (test/fixtures/formats/<name>/, a README in each says how it was made):
 *
 * - `0.1.0-before-manifest-v2`: manifests of format 1, the projection checkpoint of the first
 *   format (no checksum, an absolute log path), a snapshot of state shape 2, no root marker, no
 *   run lease events; and a log of sealed segments (segment indexes, heads checkpoint);
 * - `0.1.0-manifest-v2`: manifests of format 2, checkpoint 2, snapshot shape 3, root marker 1.
 *
 * This release's CLI lists, verifies, tells, re-projects and resumes each root, and imports each
 * copied folder into a new root. Each test works on its own copy; the fixtures are never changed.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeTensors, encodeTensors, type TensorSet } from '../../src/codec/tensors.ts';
import { openFileEventLog } from '../../src/log/file/index.ts';
import { ROOT_MARKER_FILE } from '../../src/root.ts';
import { STATE_SHAPE_VERSION } from '../../src/model/state.ts';
import { roundlog, roundlogJson, startRoundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { killSpawned } from '../support/child.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const FORMATS = fileURLToPath(new URL('../fixtures/formats/', import.meta.url));

/**
 * The parameters after rounds 0, 1 and 2 of the example (seeded, so every fixture has the same),
 * and of round 3 as roundlog 0.1.0 computes it (README of 0.1.0-before-manifest-v2).
 */
const PARAMS = [
  '3ab1f987f9b63a615f75a1907def91bc268e004a10481782eeaaee60bc906493',
  '41fcbb4c61f59753615594f8d9957dd5ec1655bc723c1b8763a9d6216d259877',
  'd39e4603b9c06ff814e307f3f5d2be33ba071f6998f801d08e8b9ae56f88a06a',
];
const ROUND_3_PARAMS = '3db7ea3ff1bee54ff626b8de5f2fcef542fb701c11e9cd5600991197666bda1f';

/**
 * The SHA-256 of `tensors` as 0.1.0 would have stored them: encoded by the msgpack encoder (the
 * same code then and now), tensors in the order of `order` (the aggregate's order, which a
 * safetensors file does not keep). Equal to a recorded hash only if every bit of every tensor is.
 */
function msgpackSha256(tensors: TensorSet, order: readonly string[]): string {
  const ordered = Object.fromEntries(order.map((name) => [name, tensors[name]!]));
  return createHash('sha256').update(encodeTensors(ordered).bytes).digest('hex');
}

/** The tensor names, in stored order, of a round's parameters in a fixture folder (msgpack header). */
function fixtureOrder(fixture: string): string[] {
  const folder = path.join(FORMATS, fixture, 'copied', 'breakpoint_0002');
  const { params } = manifest(folder) as { params: { encoding: string; file: string } };
  return Object.keys(decodeTensors(params.encoding, readFileSync(path.join(folder, params.file))));
}

/** The parameters of the round whose breakpoint folder is `folder`, decoded from its file. */
function paramsOfFolder(folder: string): TensorSet {
  const { params } = manifest(folder) as { params: { encoding: string; file: string; bytes: number } };
  return decodeTensors(params.encoding, readFileSync(path.join(folder, params.file)), { storedBytes: params.bytes });
}

/** One fixture: a root with experiment Experiment_0000 after rounds 0-2 of 10, and its round 2 copied. */
type Fixture = Readonly<{
  name: string;
  experimentId: string;
  manifestVersion: number;
  /** Whether the root has its marker (roots written before markers existed have none). */
  marked: boolean;
  /** The events of the experiment's stream, by type. */
  events: readonly string[];
  /** History entries: kind and round. */
  history: readonly (readonly [string, number | null])[];
  /** What `verify` notes on the root as written (paths relative to it). */
  notes: readonly string[];
  /** The projection checkpoint file as written. */
  checkpoint: Record<string, unknown>;
}>;

const ROUNDS = ['RoundStarted', 'NodeReplied', 'NodeReplied', 'NodeReplied', 'RoundCompleted'];

const FIXTURES: readonly Fixture[] = [
  {
    name: '0.1.0-before-manifest-v2',
    experimentId: '3292cac1-63b5-4377-9f45-178cbca7ee2d',
    manifestVersion: 1,
    marked: false,
    events: ['ExperimentCreated', ...ROUNDS, ...ROUNDS, ...ROUNDS],
    history: [
      ['created', null],
      ['round', 0],
      ['round', 1],
      ['round', 2],
    ],
    notes: [
      'snapshots/3292cac1-63b5-4377-9f45-178cbca7ee2d.snap: a snapshot written by another release ' +
        `(it is of format 2, state shape 2 (this release: 2, ${STATE_SHAPE_VERSION})); not used`,
    ],
    checkpoint: { store: 'file log /tmp/oldroot/log', position: '16' },
  },
  {
    name: '0.1.0-manifest-v2',
    experimentId: 'ca7df044-afe8-4e9a-8493-42cb0ceaa6a2',
    manifestVersion: 2,
    marked: true,
    events: ['ExperimentCreated', 'RunStarted', ...ROUNDS, ...ROUNDS, ...ROUNDS, 'RunEnded'],
    history: [
      ['created', null],
      ['run-started', null],
      ['round', 0],
      ['round', 1],
      ['round', 2],
      ['run-ended', null],
    ],
    notes: [
      'snapshots/ca7df044-afe8-4e9a-8493-42cb0ceaa6a2.snap: a snapshot written by another release ' +
        `(it is of format 2, state shape 3 (this release: 2, ${STATE_SHAPE_VERSION})); not used`,
    ],
    checkpoint: { v: 2, store: 'file log', position: '18' },
  },
];

type Listed = {
  folder: string;
  id: string;
  roundCurrent: number;
  roundLimit: number | null;
  status: string;
  damage: unknown;
  missingBreakpoints: unknown[];
  breakpoints: { round: number; path: string; paramsSha256: string }[];
};
type Report = {
  ok: boolean;
  log: { eventsChecked: number; problems: unknown[] };
  blobs: { problems: unknown[] };
  history: { problems: unknown[] };
  references: { problems: unknown[] };
  breakpoints: { foldersChecked: number; problems: unknown[] };
  caches: { filesChecked: number; problems: unknown[] };
  lag: unknown[];
  notes: string[];
};
type BlobLike = { sha256: string; bytes: number; encoding: string };
type LoggedEvent = { type: string; data: Record<string, unknown> };
type Asserts = { deepEqual(actual: unknown, expected: unknown, message?: string): void };

/** A copy of `<fixture>/<what>` in a temp folder of its own. */
function copyOf(fixture: string, what: string): string {
  const copy = path.join(tempDir(), what);
  cpSync(path.join(FORMATS, fixture, what), copy, { recursive: true });
  return copy;
}

function manifest(folder: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path.join(folder, 'breakpoint.json'), 'utf8')) as Record<string, unknown>;
}

function withoutVersion(m: Record<string, unknown>): Record<string, unknown> {
  const { formatVersion: _v, manifestSha256: _sha, ...rest } = m;
  return rest;
}

/**
 * Asserts no section of the report has a problem and nothing lags but `lag`; returns the notes,
 * paths relative to `root`.
 */
function notesOfCleanReport(t: Asserts, report: Report, root: string, lag: unknown[] = []): string[] {
  for (const section of ['log', 'blobs', 'history', 'references', 'breakpoints', 'caches'] as const)
    t.deepEqual(report[section].problems, [], section);
  t.deepEqual(report.lag, lag);
  return report.notes.map((note) => note.split(`${root}${path.sep}`).join(''));
}

for (const f of FIXTURES) {
  test(`${f.name}: ls lists the experiment with its rounds, its breakpoints and the status stopped`, async (t) => {
    const root = copyOf(f.name, 'root');
    const [listed, ...others] = await roundlogJson<Listed[]>(['ls', '--root', root]);
    t.deepEqual(others, []);
    t.like(listed, { folder: 'Experiment_0000', id: f.experimentId, roundCurrent: 3, roundLimit: 10, damage: null });
    // No run is open: the run ended after --rounds 3 (a log from before the run lease cannot tell
    // a clean stop from a crash, and says stopped).
    t.is(listed!.status, 'stopped');
    t.deepEqual(listed!.missingBreakpoints, []);
    t.deepEqual(
      listed!.breakpoints.map((b) => [b.round, path.relative(root, b.path), b.paramsSha256]),
      PARAMS.map((sha, round) => [round, path.join('experiments', 'Experiment_0000', `breakpoint_000${round}`), sha]),
    );
    t.is(existsSync(path.join(root, ROOT_MARKER_FILE)), f.marked, 'a read command writes no marker');
  });

  test(`${f.name}: verify finds no problem, with exactly the notes right for it`, async (t) => {
    const root = copyOf(f.name, 'root');
    const result = await roundlog(['verify', '--root', root, '--json']);
    t.is(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as Report;
    t.true(report.ok);
    t.is(report.log.eventsChecked, f.events.length + 1, 'the registry event and the stream');
    t.is(report.breakpoints.foldersChecked, 3);
    // The snapshot and the projection checkpoint (of the first format: upcast, no checksum to check).
    t.is(report.caches.filesChecked, 2);
    // A root of 0.1.0 has no TensorBoard event files: lag, until `project` writes them.
    const lag = [{ experiment: 'Experiment_0000', view: 'tensorboard', rounds: [0, 1, 2] }];
    t.deepEqual(notesOfCleanReport(t, report, root, lag), f.notes);
    t.is(existsSync(path.join(root, ROOT_MARKER_FILE)), f.marked);
  });

  test(`${f.name}: history and events tell what was recorded`, async (t) => {
    const root = copyOf(f.name, 'root');
    const history = await roundlogJson<{
      roundCurrent: number;
      entries: { kind: string; round?: number | null; roundlogVersion?: string; importedFrom?: unknown }[];
    }>(['history', 'Experiment_0000', '--root', root]);
    t.is(history.roundCurrent, 3);
    t.deepEqual(
      history.entries.map((e) => [e.kind, e.round ?? null]),
      f.history.map((entry) => [...entry]),
    );
    t.like(history.entries[0], { roundlogVersion: '0.1.0', importedFrom: null });
    const text = await roundlog(['history', 'Experiment_0000', '--root', root]);
    t.is(text.code, 0, text.stderr);
    t.regex(text.stdout, /: 3 rounds completed on the current branch\n/);
    const events = await roundlogJson<LoggedEvent[]>(['events', 'Experiment_0000', '--root', root]);
    t.deepEqual(
      events.map((e) => e.type),
      [...f.events],
    );
    t.deepEqual(
      events.filter((e) => e.type === 'RoundCompleted').map((e) => (e.data.params as { sha256: string }).sha256),
      PARAMS,
    );
  });

  test(`${f.name}: project --rebuild writes the folders in the current format, with the same content`, async (t) => {
    const root = copyOf(f.name, 'root');
    const experiment = path.join(root, 'experiments', 'Experiment_0000');
    const before = [0, 1, 2].map((r) => manifest(path.join(experiment, `breakpoint_000${r}`)));
    t.true(before.every((m) => m.formatVersion === f.manifestVersion));
    t.true(before.every((m) => 'manifestSha256' in m === f.manifestVersion >= 2));
    const result = await roundlog(['project', '--rebuild', '--root', root]);
    t.is(result.code, 0, result.stderr);
    t.regex(result.stdout, /3 folders written, 3 removed/);
    for (const round of [0, 1, 2]) {
      const after = manifest(path.join(experiment, `breakpoint_000${round}`));
      t.is(after.formatVersion, 2);
      t.regex(String(after.manifestSha256), /^[0-9a-f]{64}$/);
      t.deepEqual(withoutVersion(after), withoutVersion(before[round]!), 'the fields and values written before');
    }
    const report = await roundlogJson<Report>(['verify', '--root', root]);
    t.true(report.ok);
    t.deepEqual(notesOfCleanReport(t, report, root), f.notes);
  });

  test(`${f.name}: resume --rounds +1 continues after round 2 and computes what 0.1.0 computes`, async (t) => {
    const root = copyOf(f.name, 'root');
    const result = await roundlog(['resume', '--rounds', '+1', '--root', root]);
    t.is(result.code, 0, result.stderr);
    t.regex(result.stdout, /resumed Experiment_0000 .* after round 2 \(round 3 runs next\), 3\/10 rounds done/);
    const events = await roundlogJson<LoggedEvent[]>(['events', 'Experiment_0000', '--root', root]);
    t.deepEqual(
      events.slice(0, f.events.length).map((e) => e.type),
      [...f.events],
      'the recorded history is kept as it was',
    );
    const added = events.slice(f.events.length);
    t.deepEqual(
      added.map((e) => e.type),
      ['Resumed', 'RunStarted', ...ROUNDS, 'RunEnded'],
    );
    t.like(added[0], { data: { roundCurrent: 3, breakpoint: 'breakpoint_0002' } });
    // Round 3 is stored as safetensors now; its tensors are bit for bit those 0.1.0 computes.
    const completed = added.find((e) => e.type === 'RoundCompleted')!.data as { round: number; params: BlobLike };
    t.like(completed, { round: 3, params: { encoding: 'tensors/safetensors' } });
    const [listed] = await roundlogJson<Listed[]>(['ls', '--root', root]);
    t.like(listed, { roundCurrent: 4, status: 'stopped' });
    const last = listed!.breakpoints.at(-1)!;
    t.is(last.paramsSha256, completed.params.sha256);
    t.true(existsSync(path.join(last.path, 'params.safetensors')));
    t.is(msgpackSha256(paramsOfFolder(last.path), fixtureOrder(f.name)), ROUND_3_PARAMS);
    t.is(manifest(listed!.breakpoints.at(-1)!.path).formatVersion, 2);
    // The writer adopts a root without a marker and writes the snapshot in the current shape.
    t.true(existsSync(path.join(root, ROOT_MARKER_FILE)));
    const report = await roundlogJson<Report>(['verify', '--root', root]);
    t.true(report.ok);
    t.deepEqual(notesOfCleanReport(t, report, root), []);
  });

  test(`${f.name}: the copied breakpoint folder is imported into a new root and resumed from its round`, async (t) => {
    const carried = copyOf(f.name, 'copied');
    const folder = path.join(carried, 'breakpoint_0002');
    const written = readFileSync(path.join(folder, 'breakpoint.json'));
    t.is(manifest(folder).formatVersion, f.manifestVersion);
    const root = path.join(tempDir(), 'new-root');
    const result = await roundlog(['resume', folder, '--rounds', '+1', '--root', root]);
    t.is(result.code, 0, result.stderr);
    t.regex(result.stdout, /after round 2 \(round 3 runs next\), 3\/10 rounds done/);
    const [listed, ...others] = await roundlogJson<Listed[]>(['ls', '--root', root]);
    t.deepEqual(others, []);
    t.not(listed!.id, f.experimentId, 'an import is a new experiment');
    t.like(listed, { folder: 'Experiment_0000', roundCurrent: 4, roundLimit: 10, status: 'stopped' });
    t.deepEqual(
      listed!.breakpoints.map((b) => b.round),
      [2, 3],
    );
    // The imported round keeps its bytes and encoding; round 3 is computed as 0.1.0 computes it.
    t.is(listed!.breakpoints[0]!.paramsSha256, PARAMS[2]!);
    t.true(existsSync(path.join(listed!.breakpoints[0]!.path, 'aggregated_params.tensors')));
    t.true(existsSync(path.join(listed!.breakpoints[1]!.path, 'params.safetensors')));
    t.is(msgpackSha256(paramsOfFolder(listed!.breakpoints[1]!.path), fixtureOrder(f.name)), ROUND_3_PARAMS);
    const history = await roundlogJson<{ entries: { kind: string; importedFrom?: Record<string, unknown> }[] }>([
      'history',
      'Experiment_0000',
      '--root',
      root,
    ]);
    t.like(history.entries[0]!.importedFrom, { experimentId: f.experimentId, round: 2 });
    const report = await roundlogJson<Report>(['verify', '--root', root]);
    t.true(report.ok);
    t.deepEqual(notesOfCleanReport(t, report, root), []);
    t.deepEqual(readFileSync(path.join(folder, 'breakpoint.json')), written, 'the carried folder is left as it was');
  });

  test(`${f.name}: rounds in both old encodings replay and decode bit for bit to what the log records`, async (t) => {
    const root = copyOf(f.name, 'root');
    const order = fixtureOrder(f.name);
    for (const round of [0, 1, 2]) {
      const out = path.join(tempDir(), 'replayed');
      const replay = await roundlogJson<{ path: string; params: { sha256: string } }>([
        'replay',
        'Experiment_0000',
        '--round',
        String(round),
        '--out',
        out,
        '--root',
        root,
      ]);
      t.is(replay.params.sha256, PARAMS[round]!);
      const written = manifest(replay.path) as { params: { encoding: string; file: string } };
      t.is(written.params.encoding, 'tensors/msgpack', `round ${round}`);
      t.is(written.params.file, 'aggregated_params.tensors', 'an old encoding keeps its file name');
      const bytes = readFileSync(path.join(replay.path, 'aggregated_params.tensors'));
      t.is(createHash('sha256').update(bytes).digest('hex'), PARAMS[round]!);
      t.is(msgpackSha256(paramsOfFolder(replay.path), order), PARAMS[round]!, `round ${round} decodes bit for bit`);
    }
    // The nodes' replies (tensors/msgpack) and the initial parameters (tensors/msgpack+lz4): each
    // decodes to tensors that encode back to the very bytes recorded.
    const events = await roundlogJson<LoggedEvent[]>(['events', 'Experiment_0000', '--root', root]);
    const created = events.find((e) => e.type === 'ExperimentCreated')!.data.initialParams as BlobLike;
    const replies = events.filter((e) => e.type === 'NodeReplied').map((e) => e.data.params as BlobLike);
    t.is(replies.length, 9);
    const encodings = new Set<string>();
    for (const ref of [created, ...replies]) {
      encodings.add(ref.encoding);
      const bytes = readFileSync(path.join(root, 'blobs', ref.sha256.slice(0, 2), ref.sha256.slice(2)));
      const tensors = decodeTensors(ref.encoding, bytes, { storedBytes: ref.bytes, source: `blob ${ref.sha256}` });
      t.is(msgpackSha256(tensors, Object.keys(tensors)), ref.sha256);
    }
    t.deepEqual([...encodings].sort(), ['tensors/msgpack', 'tensors/msgpack+lz4']);
  });

  test(`${f.name}: project --follow starts after its projection checkpoint, in the copied root`, async (t) => {
    const root = copyOf(f.name, 'root');
    const file = path.join(root, 'experiments', '.projection-checkpoint.json');
    const checkpoint = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    t.like(checkpoint, f.checkpoint);
    t.is('v' in checkpoint, 'v' in f.checkpoint);
    const follower = startRoundlog(['project', '--follow', '--root', root]);
    const started = await follower.waitFor((line) => line.startsWith('following '));
    await follower.waitFor((line) => line.startsWith('caught up'));
    follower.process.kill('SIGINT');
    const { code } = await follower.exited;
    t.is(code, 0, follower.stderr());
    t.is(
      started,
      `following file log ${path.join(root, 'log')} from checkpoint ${String(f.checkpoint.position)}: ` +
        `projection lag 0 events (log end ${String(f.checkpoint.position)})`,
    );
  });
}

// ---- a log of sealed segments: the segment indexes and the heads checkpoint of 0.1.0 ------------

/** The 40 events the fixture's script appended: event i in stream fixture-b when i % 3 is 0, else fixture-a. */
function writtenEvent(i: number) {
  const inB = (j: number) => j % 3 === 0;
  return {
    type: 'Written',
    data: { i, text: 'x'.repeat(200 + i) },
    stream: inB(i) ? 'fixture-b' : 'fixture-a',
    revision: String(Array.from({ length: i }, (_, j) => j).filter((j) => inB(j) === inB(i)).length),
    position: String(i),
    id: `00000000-0000-4000-8000-${String(i + 1).padStart(12, '0')}`,
    timestamp: new Date(Date.UTC(2026, 10, 1, 0, 0, i)).toISOString(),
  };
}

const SEALED = '0.1.0-before-manifest-v2';

test(`${SEALED}: a log of sealed segments: verify checks its indexes and heads, and events reads it`, async (t) => {
  const root = copyOf(SEALED, 'sealed-log-root');
  t.true(existsSync(path.join(root, 'log', 'heads.ckpt')));
  const report = await roundlogJson<Report>(['verify', '--root', root]);
  t.true(report.ok);
  t.is(report.log.eventsChecked, 40);
  t.deepEqual(notesOfCleanReport(t, report, root), [
    'stream fixture-b is not a registered experiment of this root (written by other code); ignored',
    'stream fixture-a is not a registered experiment of this root (written by other code); ignored',
  ]);
  for (const stream of ['fixture-a', 'fixture-b']) {
    const events = await roundlogJson<unknown[]>(['events', stream, '--root', root]);
    const expected = Array.from({ length: 40 }, (_, i) => writtenEvent(i)).filter((e) => e.stream === stream);
    t.deepEqual(events, expected, stream);
  }
});

test(`${SEALED}: sealed segments open for writing with their indexes and heads, and take appends`, async (t) => {
  const root = copyOf(SEALED, 'sealed-log-root');
  const warnings: string[] = [];
  const log = await openFileEventLog({ dir: path.join(root, 'log'), onWarning: (w) => warnings.push(w.code) });
  try {
    const appended = await log.append('fixture-a', [{ type: 'Written', data: { i: 40 } }], { expectedRevision: 25n });
    t.is(appended.nextExpectedRevision, 26n);
    t.is(appended.lastPosition, 40n);
  } finally {
    await log.close();
  }
  t.deepEqual(warnings, [], 'no index rebuilt, no tail truncated');
  const report = await roundlogJson<Report>(['verify', '--root', root]);
  t.true(report.ok);
  t.deepEqual(report.log.problems, []);
});
