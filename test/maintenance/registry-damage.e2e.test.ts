/**
 * A record of the registry stream (`roundlog.experiments`) that cannot be read, through the
 * `roundlog` command on real files: the experiments are found from their own histories, every
 * command on them works, creating an experiment is refused before anything is written, and
 * `verify` names the damage once.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openFileEventLog } from '../../src/log/file/index.ts';
import type { EventData } from '../../src/log/types.ts';
import { RegistryDamagedError } from '../../src/model/errors.ts';
import { REGISTRY_STREAM } from '../../src/model/events.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { REPO, roundlog, roundlogProcess } from '../support/cli.ts';
import { flipByte, recordEnd, recordOffsets, segmentsOf } from '../support/segments.ts';
import { tensors } from '../support/rounds.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const RUN = ['run', 'examples/logistic-regression/experiment.ts', '--rounds', '2'];
const FOLDERS = ['Experiment_0000', 'Experiment_0001'];

/** A root with two experiments of two rounds each, run through the command. */
async function rootWithTwo(t: ExecutionContext): Promise<{ root: string; env: NodeJS.ProcessEnv; segment: string }> {
  const root = tempDir();
  const env = { ROUNDLOG_DIR: root };
  for (let i = 0; i < 2; i++) {
    const run = await roundlog(RUN, env);
    t.is(run.code, 0, run.stderr);
  }
  const [segment] = segmentsOf(path.join(root, 'log')) as [string];
  return { root, env, segment };
}

/** The offsets of the records of the registry stream in `segment` (their bodies name the stream). */
function registryRecords(segment: string): number[] {
  const data = readFileSync(segment);
  return recordOffsets(segment).filter((at) =>
    data.subarray(at, recordEnd(segment, at)).includes(Buffer.from(REGISTRY_STREAM)),
  );
}

/** A workspace whose `experiment.ts` is the example's definition with another seed. */
function seededWorkspace(): string {
  const dir = path.join(tempDir(), 'ws');
  mkdirSync(dir);
  const example = JSON.stringify(path.join(REPO, 'examples/logistic-regression/experiment.ts'));
  writeFileSync(
    path.join(dir, 'experiment.ts'),
    `import { definition } from ${example};\nexport default { ...definition, seed: 7 };\n`,
  );
  return dir;
}

/** What a refused creation must leave as it was: the log's records, the folders, the blobs. */
function footprint(root: string, segment: string) {
  return {
    records: recordOffsets(segment).length,
    folders: readdirSync(path.join(root, 'experiments')).sort(),
    blobs: readdirSync(path.join(root, 'blobs'), { recursive: true }).length,
  };
}

/** Every command a user runs on a root whose registry is damaged at `where` (a regex of the place). */
async function checkDamagedRoot(
  t: ExecutionContext,
  { root, env, segment }: { root: string; env: NodeJS.ProcessEnv; segment: string },
  where: RegExp,
  wholeLogReads: boolean,
): Promise<void> {
  // ls lists both, and warns once, naming the registry, the place and what to do.
  const ls = await roundlogProcess(['ls', '--root', root]);
  t.is(ls.code, 0, ls.stderr);
  for (const folder of FOLDERS) t.regex(ls.stdout, new RegExp(`${folder} `));
  t.is(ls.stderr.split('ROUNDLOG_REGISTRY_DAMAGED').length - 1, 1, ls.stderr);
  t.regex(ls.stderr, /registry of experiments \(stream "roundlog\.experiments"\) is damaged/);
  t.regex(ls.stderr, where);
  t.regex(ls.stderr, /run 'roundlog verify'/);
  const listing = JSON.parse((await roundlog(['ls', '--json'], env)).stdout) as Array<{ folder: string }>;
  t.deepEqual(
    listing.map((e) => path.basename(e.folder)),
    FOLDERS,
  );

  for (const folder of FOLDERS) {
    const history = await roundlog(['history', folder], env);
    t.is(history.code, 0, `history ${folder}: ${history.stderr}`);
    const resume = await roundlog(['resume', folder, '--rounds', '1'], env);
    t.is(resume.code, 0, `resume ${folder}: ${resume.stderr}`);
    t.regex(resume.stdout, /done: 3 rounds completed/);
  }

  const rewind = await roundlog(['rewind', FOLDERS[1]!, '--round', '1', '--reason', 'checked'], env);
  t.is(rewind.code, 0, rewind.stderr);

  // Commands over every experiment read both (the whole log is read: only a whole record can be).
  if (wholeLogReads) {
    const events = await roundlog(['audit', 'events', '--json'], env);
    t.is(events.code, 0, events.stderr);
    const folders = new Set(
      (JSON.parse(events.stdout) as { events: Array<{ folder: string }> }).events.map((e) => e.folder),
    );
    t.deepEqual([...folders].sort(), FOLDERS);
    const gc = await roundlog(['gc', '--keep-last', '1'], env);
    t.is(gc.code, 0, gc.stderr);
    for (const folder of FOLDERS) t.regex(gc.stdout, new RegExp(`${folder}: keep the last 1 \\(given\\): pruned`));
    const project = await roundlog(['project'], env);
    t.is(project.code, 0, project.stderr);
    t.regex(project.stdout, /projected 2 experiments/);
  }

  // A new experiment is refused before anything is written: its initial parameters (another seed)
  // would be a blob of its own.
  const before = footprint(root, segment);
  const run = await roundlog(['run', 'experiment.ts', '--rounds', '1'], env, { cwd: seededWorkspace() });
  t.is(run.code, 1, run.stdout);
  t.regex(run.stderr, /cannot create an experiment: the registry of experiments .* is damaged/);
  t.regex(run.stderr, where);
  t.deepEqual(footprint(root, segment), before, 'no record, folder or blob was written');
  // Through the library too (`Experiment.create` and fork create through it): the typed error.
  const rl = await openRoundLog({ root });
  try {
    const refused = await rl.createExperiment({ initialParams: tensors(1, 2) }).then(
      () => null,
      (error: unknown) => error,
    );
    t.true(refused instanceof RegistryDamagedError, String(refused));
    t.is((refused as RegistryDamagedError).code, 'REGISTRY_DAMAGED');
  } finally {
    await rl.close();
  }
  t.deepEqual(footprint(root, segment), before, 'the initial parameters were not stored');

  // verify names the registry damage, and the experiments as experiments.
  const verify = await roundlog(['verify'], env);
  t.is(verify.code, 1, verify.stdout);
  t.regex(verify.stdout, /registry of experiments \(stream "roundlog\.experiments"\) is damaged/);
  t.regex(verify.stdout, where);
  t.notRegex(verify.stdout, /not a registered experiment/);
  t.regex(verify.stdout, /\n1 problem found\n/, verify.stdout);
  // verify --repair does not rewrite the log: the damage is still there after it.
  const repair = await roundlog(['verify', '--repair'], env);
  t.is(repair.code, 1, repair.stdout);
  t.regex(repair.stdout, /registry of experiments .* is damaged/);
  t.regex(repair.stdout, /\n1 problem found\n/, repair.stdout);
}

test('a flipped byte in the registration of the second experiment hides neither experiment', async (t) => {
  const made = await rootWithTwo(t);
  const records = registryRecords(made.segment);
  t.is(records.length, 2);
  const victim = records[1]!;
  flipByte(made.segment, recordEnd(made.segment, victim) - 3);
  await checkDamagedRoot(t, made, new RegExp(`${path.basename(made.segment)} at byte offset ${victim}\\b`), true);
});

const WHOLE_BUT_UNREADABLE: Array<{ title: string; event: EventData }> = [
  {
    title: 'a registration whose data has the wrong shape',
    event: { type: 'ExperimentRegistered', data: { v: 1, number: 'two', experimentId: 7, folder: null } },
  },
  { title: 'an event of a type this release does not know', event: { type: 'ExperimentRenamed', data: { v: 1 } } },
];

for (const { title, event } of WHOLE_BUT_UNREADABLE) {
  test(`${title} in the registry hides no experiment`, async (t) => {
    const made = await rootWithTwo(t);
    const log = await openFileEventLog({ dir: path.join(made.root, 'log') });
    await log.append(REGISTRY_STREAM, [event]);
    await log.close();
    await checkDamagedRoot(t, made, /event 2 of it/, true);
  });
}
