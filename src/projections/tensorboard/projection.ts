/**
 * The TensorBoard projection behind the engine's `Projection` port: every experiment's metrics as
 * TensorBoard event files under `<root>/experiments/<folder>/tensorboard/`, so that
 * `tensorboard --logdir <root>/experiments` shows every experiment as runs:
 *
 * - `<folder>/tensorboard/events.out.tfevents.<s>.roundlog.<g>`: the current branch, one step per
 *   round (its index), tags `<metric>` and `node/<id>/<metric>`;
 * - `<folder>/tensorboard/superseded/rewind_<n>_rounds_<a>-<b>/events.out.tfevents.<s>.roundlog`:
 *   the rounds the n-th rewind took off the branch, as a run of their own.
 *
 * The files are a cache of the log (`tensorboardRuns`): after each append, `project` and `verify
 * --repair` bring them in step, writing what is missing when a file is a prefix of what the log
 * gives (a torn trailing record from a crash included: its bytes are a prefix too), and writing it
 * again (temp file, rename) otherwise. Only files named as this projection names them are ever
 * replaced or removed.
 */
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { NotARealFolderError, checkPlainName, checkRealFolders } from '../../confine.ts';
import { syncDir, writeStep } from '../../durable.ts';
import { RoundlogError, StorageWriteError } from '../../errors.ts';
import { withProjectionLock } from '../../engine/projection-lock.ts';
import type { RecordedEvent } from '../../log/types.ts';
import type {
  ExperimentProjection,
  Projection,
  ProjectionEnv,
  ViewProblem,
  ViewRepairResult,
  ViewVerifyResult,
  VerifiedExperiment,
} from '../../engine/projection.ts';
import type { ExperimentState } from '../../model/state.ts';
import { readRecords } from './tfrecord.ts';
import { OWN_EVENT_FILE, SUPERSEDED_RUNS_DIR, tensorboardRuns, type TensorboardRun } from './events.ts';

export const TENSORBOARD_PROJECTION = 'tensorboard';
/** The folder of an experiment's runs, inside its experiment folder. */
export const TENSORBOARD_DIR = 'tensorboard';

/** The TensorBoard projection of a root. */
export function tensorboardProjection(env: ProjectionEnv): Projection {
  const experimentsDir = env.layout.experiments;
  return {
    name: TENSORBOARD_PROJECTION,
    async apply(state: ExperimentState, appended: readonly RecordedEvent[]): Promise<void> {
      if (!appended.some((e) => e.type === 'RoundCompleted' || e.type === 'Rewound')) return;
      // A cache: a failure to write it never fails the round that is committed already; the files
      // stay behind the log (projection lag) until the next append, `project` or `verify --repair`.
      await syncRuns(experimentsDir, state, 'catchUp').catch(() => undefined);
    },
    project: (state, options) => projectOne(experimentsDir, state, options.rebuild ? 'rewrite' : 'catchUp'),
    verify: (experiments) => verifyRuns(experimentsDir, experiments),
    // The event files hold no parameters: retention has nothing to remove here.
    viewsOfRounds: () => Promise.resolve([]),
    removeView: () => Promise.resolve(),
    repair: (experiments) => repairRuns(experimentsDir, experiments),
  };
}

/**
 * The `tensorboard/` folder of an experiment (absolute). `PathOutsideError` when `folder` is not a
 * plain name (a separator, `..`): nothing is ever written outside the experiments folder.
 */
export function tensorboardDir(experimentsDir: string, folder: string): string {
  return path.join(experimentsDir, checkPlainName(folder, 'experiment folder', experimentsDir), TENSORBOARD_DIR);
}

type SyncResult = { written: string[]; removed: string[] };

/**
 * Brings an experiment's event files in step with its state. `rewrite`: every file is written
 * again whole (the rebuild). Otherwise a file that is a prefix of what the log gives (a torn
 * trailing record included) is completed in place, one that is neither is written again whole,
 * and `catchUp`: a file that is ahead of `state` (what it gives, then more records: another process
 * projected rounds committed since `state` was read) is left as it is, never cut back; `exact`
 * (repair) writes it again too. Event files of this projection that `state` does not give are
 * removed afterwards.
 *
 * Processes projecting the same experiment (a run and `project --follow`) take turns under the
 * projection lock (`withProjectionLock`), so one never removes the temp file another is about to
 * rename; and they agree: the bytes are a function of the log, and a completion writes them at
 * their own offset (not appended at the end), so two writers of one round write the same bytes at
 * the same place.
 */
function syncRuns(
  experimentsDir: string,
  state: ExperimentState,
  mode: 'catchUp' | 'exact' | 'rewrite',
): Promise<SyncResult> {
  return withProjectionLock(experimentsDir, async () => {
    try {
      return await syncRunsLocked(experimentsDir, state, mode);
    } catch (error) {
      // The folder was removed while it was written (`rm -rf tensorboard/` to have it written
      // again, which nobody locks against): written once more, from what is there now.
      if (!(error instanceof StorageWriteError && error.errno === 'ENOENT')) throw error;
      return syncRunsLocked(experimentsDir, state, mode);
    }
  });
}

async function syncRunsLocked(
  experimentsDir: string,
  state: ExperimentState,
  mode: 'catchUp' | 'exact' | 'rewrite',
): Promise<SyncResult> {
  const rewrite = mode === 'rewrite';
  const base = tensorboardDir(experimentsDir, state.folder);
  const runs = tensorboardRuns(state);
  await checkRunFolders(experimentsDir, state.folder, runs, mode !== 'catchUp');
  const written: string[] = [];
  const removed: string[] = [];
  const wanted = new Set(runs.map((r) => path.join(base, r.dir, r.file)));
  for (const run of runs) {
    const dir = path.join(base, run.dir);
    const file = path.join(dir, run.file);
    const existing = await compareFile(file, run.bytes);
    if (!rewrite && existing.kind === 'same') continue;
    if (mode === 'catchUp' && existing.kind === 'ahead') continue;
    await writeStep(dir, 'making the folder of a TensorBoard run', () => fs.mkdir(dir, { recursive: true }));
    if (!rewrite && existing.kind === 'behind') {
      await completeInPlace(file, run.bytes, existing.head.length);
    } else {
      await replaceDurably(file, run.bytes);
    }
    written.push(file);
  }
  for (const file of await ownEventFiles(base)) {
    if (wanted.has(file)) continue;
    await writeStep(file, 'removing an event file the log no longer gives', async () => {
      await fs.rm(file, { force: true });
      await syncDir(path.dirname(file));
    });
    removed.push(file);
  }
  return { written, removed };
}

/**
 * The folders this projection writes into or removes from (`tensorboard/`, `superseded/`, each
 * run's folder) must be real folders inside the root: a symbolic link among them would carry the
 * writes, and the removal of stale event files, wherever it points (`NotARealFolderError`, nothing
 * written). With `replaceLinks` (`project --rebuild`, `verify --repair`) a symbolic link at or below
 * `tensorboard/` is removed (the link itself, never what it points to) and a real folder made in
 * its place; a regular file or anything else there is never removed (it may be the user's).
 */
async function checkRunFolders(
  experimentsDir: string,
  folder: string,
  runs: readonly TensorboardRun[],
  replaceLinks: boolean,
): Promise<void> {
  const base = tensorboardDir(experimentsDir, folder);
  const what = `the TensorBoard runs of ${folder}`;
  const dirs = [base, path.join(base, SUPERSEDED_RUNS_DIR), ...runs.map((r) => path.join(base, r.dir))];
  for (const dir of new Set(dirs)) {
    for (;;) {
      try {
        await checkRealFolders(experimentsDir, dir, what);
        break;
      } catch (error) {
        const link =
          error instanceof NotARealFolderError &&
          error.kind === 'symbolic link' &&
          (error.folder === base || error.folder.startsWith(`${base}${path.sep}`));
        if (!replaceLinks || !link) throw error;
        await writeStep(error.folder, 'removing a symbolic link where a TensorBoard folder goes', async () => {
          await fs.unlink(error.folder);
          await syncDir(path.dirname(error.folder));
        });
      }
    }
  }
}

/**
 * An event file on disk against the bytes the log gives: `missing` (no regular file there: a
 * symlink or folder is never followed), `same`, `behind` (a strict prefix: `head` holds its bytes),
 * `ahead` (the bytes, then more) or `different`. At most `wanted.length` bytes are read, whatever
 * the file's size.
 */
type FileState =
  Readonly<{ kind: 'missing' | 'same' | 'ahead' | 'different' }> | Readonly<{ kind: 'behind'; head: Buffer }>;

async function compareFile(file: string, wanted: Buffer): Promise<FileState> {
  // Opened first, then looked at: a file removed meanwhile (`rm -rf tensorboard/` while a run
  // goes on) is missing, never an error; a last symlink is not followed, a FIFO never waited on.
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException)?.code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return { kind: 'missing' };
    throw error;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return { kind: 'missing' };
    const head = Buffer.alloc(Math.min(stat.size, wanted.length));
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    if (bytesRead !== head.length || !wanted.subarray(0, head.length).equals(head)) return { kind: 'different' };
    if (stat.size === wanted.length) return { kind: 'same' };
    return stat.size < wanted.length ? { kind: 'behind', head } : { kind: 'ahead' };
  } finally {
    await handle.close();
  }
}

/**
 * Writes the bytes of `whole` from `from` on into `file` at that offset. Not fsynced: the file is
 * a cache of the durable log, and whatever a power cut leaves of the tail (nothing, a torn record,
 * zeros) is a prefix completed, or a file written again, by the next projection.
 */
async function completeInPlace(file: string, whole: Buffer, from: number): Promise<void> {
  await writeStep(file, 'completing an event file', async () => {
    const handle = await fs.open(file, 'r+');
    try {
      await handle.write(whole, from, whole.length - from, from);
    } finally {
      await handle.close();
    }
  });
}

/**
 * Writes `file` whole through a temp file renamed over it, so a reader sees the old bytes or the
 * new ones. The temp name holds no `tfevents`: TensorBoard never takes it for an event file.
 */
async function replaceDurably(file: string, bytes: Uint8Array): Promise<void> {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.roundlog-tensorboard-${process.pid}.tmp`);
  await writeStep(file, 'writing an event file', async () => {
    await fs.rm(temp, { recursive: true, force: true });
    try {
      const handle = await fs.open(temp, 'wx');
      try {
        await handle.write(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      // Something other than a file where the event file goes (a folder made by hand) is put away first.
      const stat = await fs.lstat(file).catch(() => null);
      if (stat !== null && !stat.isFile()) await fs.rm(file, { recursive: true, force: true });
      await fs.rename(temp, file);
    } catch (error) {
      await fs.rm(temp, { force: true });
      throw error;
    }
    await syncDir(dir);
  });
}

/** This projection's event files in `tensorboard/` and its superseded runs (absolute paths), and its temp files. */
async function ownEventFiles(base: string): Promise<string[]> {
  const files: string[] = [];
  // Only real folders are listed: a symbolic link is never followed to files outside the root.
  const isFolder = async (dir: string) => (await fs.lstat(dir).catch(() => null))?.isDirectory() === true;
  const scan = async (dir: string) => {
    if (!(await isFolder(dir))) return;
    for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
      if (OWN_EVENT_FILE.test(name) || /^\.roundlog-tensorboard-\d+\.tmp$/.test(name)) files.push(path.join(dir, name));
    }
  };
  if (!(await isFolder(base))) return files;
  await scan(base);
  const area = path.join(base, SUPERSEDED_RUNS_DIR);
  if (!(await isFolder(area))) return files.sort();
  for (const name of await fs.readdir(area).catch(() => [] as string[])) await scan(path.join(area, name));
  return files.sort();
}

async function projectOne(
  experimentsDir: string,
  state: ExperimentState,
  mode: 'catchUp' | 'exact' | 'rewrite',
): Promise<ExperimentProjection> {
  // A file that cannot be read (removed by hand meanwhile, no permission) counts as lag, never
  // fails the projection (nor kills a follower).
  const lag = () =>
    lagOf(experimentsDir, state).catch(() => tensorboardRuns(state).find((r) => r.dir === '.')?.steps ?? []);
  const lagBefore = [...(await lag())];
  const problems: string[] = [];
  let result: SyncResult = { written: [], removed: [] };
  try {
    result = await syncRuns(experimentsDir, state, mode);
  } catch (error) {
    problems.push(
      error instanceof RoundlogError
        ? error.message
        : `the TensorBoard event files of ${state.folder} could not be written: ` +
            `${(error as Error)?.message ?? String(error)}`,
    );
  }
  return {
    experimentId: state.created!.experimentId,
    folder: state.folder,
    lagBefore,
    removed: result.removed,
    written: result.written,
    movedAside: [],
    pruned: [],
    rescued: [],
    problems,
    lagAfter: [...(await lag())],
  };
}

/** Rounds of the current branch whose scalars are not in its event file yet. */
async function lagOf(experimentsDir: string, state: ExperimentState): Promise<number[]> {
  const base = tensorboardDir(experimentsDir, state.folder);
  const current = tensorboardRuns(state).find((r) => r.dir === '.');
  if (current === undefined) return [];
  // A file behind a symbolic link or in place of the folder holds none of the experiment's scalars.
  const real = await checkRealFolders(experimentsDir, base, 'the TensorBoard runs').then(
    () => true,
    () => false,
  );
  if (!real) return [...current.steps];
  const existing = await compareFile(path.join(base, current.dir, current.file), current.bytes);
  // A file ahead of `state` (another process projected rounds committed since) lacks nothing.
  if (existing.kind === 'same' || existing.kind === 'ahead') return [];
  return existing.kind === 'behind' ? stepsAfter(existing.head, current) : [...current.steps];
}

/** The steps of `run` whose records are not whole in `head` (a prefix of its bytes, maybe torn). */
function stepsAfter(head: Buffer, run: TensorboardRun): number[] {
  // One record per step after the file_version record.
  return run.steps.slice(Math.max(0, readRecords(head).records.length - 1));
}

async function verifyRuns(
  experimentsDir: string,
  experiments: readonly VerifiedExperiment[],
): Promise<ViewVerifyResult> {
  const problems: ViewProblem[] = [];
  const lag: Array<{ experiment: string; rounds: number[] }> = [];
  const notes: string[] = [];
  let checked = 0;
  for (const { state } of experiments) {
    if (state === null) continue;
    const base = tensorboardDir(experimentsDir, state.folder);
    const runs = tensorboardRuns(state);
    const wanted = new Set(runs.map((r) => path.join(base, r.dir, r.file)));
    try {
      await checkRunFolders(experimentsDir, state.folder, runs, false);
    } catch (error) {
      if (!(error instanceof NotARealFolderError)) throw error;
      // Nothing behind it is read: its files are not the experiment's, whatever they hold.
      problems.push({ experiment: state.folder, folder: error.folder, file: '.', round: null, reason: error.problem });
      const behind = await lagOf(experimentsDir, state);
      if (behind.length > 0) lag.push({ experiment: state.folder, rounds: behind });
      continue;
    }
    for (const run of runs) {
      const check = (await compareFile(path.join(base, run.dir, run.file), run.bytes)).kind;
      // Only files that are there are checked (a missing one is lag, or a note).
      if (check !== 'missing') checked++;
      if (check === 'different' || check === 'ahead') {
        problems.push({
          experiment: state.folder,
          folder: path.join(base, run.dir),
          file: run.file,
          round: null,
          reason:
            'the event file is not what the log gives (edited or damaged); ' +
            "'roundlog verify --repair' or 'roundlog project --rebuild' writes it again",
        });
      } else if ((check === 'missing' || check === 'behind') && run.dir !== '.') {
        notes.push(
          `${path.join(base, run.dir)}: the run of superseded rounds is not written yet ('roundlog project' writes it)`,
        );
      }
    }
    const behind = await lagOf(experimentsDir, state);
    if (behind.length > 0) lag.push({ experiment: state.folder, rounds: behind });
    for (const file of await ownEventFiles(base)) {
      if (wanted.has(file)) continue;
      problems.push({
        experiment: state.folder,
        folder: path.dirname(file),
        file: path.basename(file),
        round: null,
        reason:
          'an event file the log does not give (left by an interrupted rewrite?): it would show steps ' +
          "that are not the experiment's; 'roundlog verify --repair' or 'roundlog project' removes it",
      });
    }
  }
  return { checked, problems, lag, notes };
}

async function repairRuns(
  experimentsDir: string,
  experiments: readonly VerifiedExperiment[],
): Promise<ViewRepairResult> {
  const written: string[] = [];
  const problems: ViewProblem[] = [];
  for (const { state } of experiments) {
    if (state === null) continue;
    const result = await projectOne(experimentsDir, state, 'exact');
    written.push(...result.written);
    for (const reason of result.problems)
      problems.push({
        experiment: state.folder,
        folder: tensorboardDir(experimentsDir, state.folder),
        file: '.',
        round: null,
        reason,
      });
  }
  return { blobsHealed: [], filesRelinked: [], written, problems };
}
