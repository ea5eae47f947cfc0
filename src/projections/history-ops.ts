/**
 * History operations on an experiment, all read from its log, with their breakpoint folders:
 *
 * - `replayRound`: the exact state after a round, folded from the log up to that round's
 *   `RoundCompleted` (no breakpoint folder needed), written as a breakpoint folder outside the
 *   experiment's own folder (default `<root>/replays/<folder>/breakpoint_RRRR`).
 * - `rewindExperiment`: the experiment continues from round R in the same stream (`Rewound`, who and
 *   why); later rounds are superseded, their folders moved to `superseded/`, R's folder written.
 * - `forkExperiment`: a new experiment that starts from round R of another (its parameters, state,
 *   settings, federated setup and seed), lineage recorded in both streams (`ForkedFrom`, `Forked`).
 */
import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { BlobRef } from '../blobs/types.ts';
import { checkPlainName, readRegularFile, resolvesInside, samePath } from '../confine.ts';
import { syncDir } from '../durable.ts';
import { InvalidArgumentError } from '../errors.ts';
import { breakpointFolderName, type Actor, type Rewound } from '../model/events.ts';
import { checkReason, decideForked, decideRewind, folderNameProblem, forkCreation } from '../model/decide/index.ts';
import type { ExperimentState, RoundRecord, Settings } from '../model/state.ts';
import { rootLayout, type RootLayout } from '../root.ts';
import { ConcurrentModificationError, ExperimentRunningError, FolderNameReservedError } from '../model/errors.ts';
import { isReservedFolderName } from '../model/names.ts';
import { statusOf } from '../engine/lease.ts';
import type { RoundLog } from '../engine/round-log.ts';
import { stateAfterRound, type Branch, type RoundChoice } from '../engine/history.ts';
import {
  MANIFEST_FILE,
  SUPERSEDED_DIR,
  materializeBreakpoint,
  readBreakpoint,
  supersedeBreakpoints,
  writeBreakpoint,
} from './breakpoints/index.ts';

// ---------------------------------------------------------------------------------------------
// replay

export type ReplayOptions = RoundChoice & {
  /**
   * The breakpoint folder to write (absolute, or relative to the current directory); it must not
   * exist, unless it holds the same round's replay. Not inside `<root>/experiments`, `log` or
   * `blobs`. Default: `defaultReplayFolder(...)`.
   */
  out?: string;
};

export type ReplayResult = Readonly<{
  experimentId: string;
  /** The experiment's folder name (under `<root>/experiments`). */
  folder: string;
  round: number;
  /** `roundCurrent()` after the round: `round + 1`. */
  roundCurrent: number;
  branch: Branch;
  /** Log position and stream revision of the round's `RoundCompleted`. */
  logPosition: bigint;
  streamRevision: bigint;
  /**
   * The parameters recorded in the round's `RoundCompleted`; the folder's parameters file holds
   * exactly these bytes.
   */
  params: BlobRef;
  settings: Settings;
  metrics: Readonly<Record<string, number>>;
  /** The breakpoint folder written. */
  path: string;
  /** False when the folder already held this round's replay. */
  created: boolean;
  /** SHA-256 of the folder's `breakpoint.json`. */
  manifestSha256: string;
  /** The experiment's state after the round, folded from the log. */
  state: ExperimentState;
}>;

/**
 * Where `replayRound` writes by default: `<root>/replays/<folder>/breakpoint_RRRR` for a round of
 * the current branch, `<root>/replays/<folder>/superseded/breakpoint_RRRR-<position>` for a
 * superseded one (`position`: the log position of its `RoundCompleted`). Never inside the
 * experiment's own folder, whose breakpoint folders are a projection of the log.
 */
export function defaultReplayFolder(
  root: string,
  folder: string,
  round: number,
  branch: Branch,
  position: bigint,
): string {
  const name = breakpointFolderName(round);
  const replays = rootLayout(root).replays;
  return branch === 'current'
    ? path.join(replays, folder, name)
    : path.join(replays, folder, SUPERSEDED_DIR, `${name}-${position}`);
}

/**
 * Rebuilds the exact state after a round by replaying the log, and writes it as a breakpoint
 * folder (loadable like any other), even if no breakpoint folder was ever saved for the round.
 * A round pruned by retention is a `RoundPrunedError`.
 */
export async function replayRound(rl: RoundLog, experiment: string, options: ReplayOptions): Promise<ReplayResult> {
  const handle = await rl.openExperiment(experiment);
  const at = await stateAfterRound(rl, handle, options);
  const { record, branch } = at;
  const folder = handle.state.folder;
  const defaultOut = defaultReplayFolder(rl.root, folder, record.round, branch, record.position);
  const out = options.out === undefined ? defaultOut : path.resolve(options.out);
  await checkOutside(rl.layout, out);
  let written: { path: string; created: boolean };
  if (branch === 'current' && (await samePath(out, defaultOut))) {
    await setAsideStaleReplay(rl.root, folder, handle.id, record, out);
    // The projection's own rules, under <root>/replays: idempotent, written under a temp name.
    const ctx = { experimentsDir: rl.layout.replays, blobs: rl.blobs };
    written = await materializeBreakpoint(ctx, at.state, record.round, folder);
  } else {
    written = await writeBreakpointAt(rl, at.state, record, out);
  }
  // Read back: every file re-hashed against the manifest, the parameters against the log.
  const manifest = await readBreakpoint(written.path);
  if (manifest.params.sha256 !== record.params.sha256 || manifest.logPosition !== String(record.position)) {
    throw new InvalidArgumentError(
      'out',
      `must be a replay of round ${record.round} of ${folder} (position ${record.position}); it holds another round`,
      written.path,
    );
  }
  return {
    experimentId: handle.id,
    folder,
    round: record.round,
    roundCurrent: record.round + 1,
    branch,
    logPosition: record.position,
    streamRevision: record.revision,
    params: record.params,
    settings: record.settings,
    metrics: record.metrics,
    path: written.path,
    created: written.created,
    manifestSha256: await sha256File(path.join(written.path, MANIFEST_FILE)),
    state: at.state,
  };
}

/**
 * A replay at the default place of a round of the current branch that is of another history of
 * that round (the branch was rewound and the round run again since): it is the replay of a round
 * now superseded, so it moves to that round's superseded place (or goes, if that place already
 * holds the same replay).
 */
async function setAsideStaleReplay(
  root: string,
  folder: string,
  experimentId: string,
  record: RoundRecord,
  out: string,
): Promise<void> {
  const manifest = await readBreakpoint(out).catch(() => null);
  if (manifest === null || manifest.experimentId !== experimentId || manifest.logPosition === String(record.position))
    return;
  if (!/^\d+$/.test(manifest.logPosition)) return;
  const target = defaultReplayFolder(root, folder, record.round, 'superseded', BigInt(manifest.logPosition));
  if (await exists(target)) {
    await fs.rm(out, { recursive: true, force: true });
  } else {
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.rename(out, target);
    await syncDir(path.dirname(target));
  }
  await syncDir(path.dirname(out));
}

/**
 * `--out` (of replay, export) must not be in the root's experiments, log or blobs; decided on resolved paths, so a
 * symlink into one of them (or a root reached through a symlink) is refused too.
 */
export async function checkOutside(layout: RootLayout, out: string): Promise<void> {
  for (const area of [layout.experiments, layout.log, layout.blobs]) {
    if (await resolvesInside(area, out)) {
      throw new InvalidArgumentError(
        'out',
        `must not be inside ${area}: experiment folders are a projection of the log, ` +
          'and the log and blob store hold nothing else; ' +
          `omit it for ${layout.replays}/<folder>/breakpoint_RRRR`,
        out,
      );
    }
  }
}

/**
 * Writes the breakpoint of `record` (a round of `state`'s current branch) as the folder `out`:
 * materialized under a temp folder beside it, then renamed into place. An `out` that already holds
 * this round's breakpoint is kept; anything else there is refused, never overwritten.
 */
async function writeBreakpointAt(
  rl: RoundLog,
  state: ExperimentState,
  record: RoundRecord,
  out: string,
): Promise<{ path: string; created: boolean }> {
  const id = state.created!.experimentId;
  if (await exists(out)) {
    const manifest = await readBreakpoint(out).catch(() => null);
    if (manifest !== null && manifest.experimentId === id && manifest.logPosition === String(record.position))
      return { path: out, created: false };
    throw new InvalidArgumentError(
      'out',
      'must be a folder that does not exist yet (or that holds this very replay); remove it or choose another',
      out,
    );
  }
  const parent = path.dirname(out);
  await fs.mkdir(parent, { recursive: true });
  const stage = path.join(parent, `.tmp-replay-${process.pid}-${randomUUID()}`);
  try {
    const written = await materializeBreakpoint(
      { experimentsDir: stage, blobs: rl.blobs },
      state,
      record.round,
      'replay',
    );
    await fs.rename(written.path, out);
    await syncDir(parent);
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
  return { path: out, created: true };
}

async function exists(file: string): Promise<boolean> {
  return (await fs.lstat(file).catch(() => null)) !== null;
}

async function sha256File(file: string): Promise<string> {
  return createHash('sha256')
    .update(await readRegularFile(file, 'breakpoint manifest', 64 * 1024 * 1024))
    .digest('hex');
}

// ---------------------------------------------------------------------------------------------
// rewind

export type RewindOptions = {
  /** Who rewinds, as recorded in `Rewound.by`; default the process (`rl.actor`). A server passes its client. */
  by?: Actor;
  /**
   * Index of the last round kept: `roundCurrent()` becomes `round + 1`. Must be on the current
   * branch, before its last round.
   */
  round: number;
  /** Why, recorded in the `Rewound` event with who did it. */
  reason: string;
  /**
   * The ids of the events appended (by index), for a caller that recognizes its own retry by them
   * (`roundlog serve`'s request ids). Default: ids the log draws.
   */
  eventIds?: (count: number) => readonly string[];
};

export type RewindResult = Readonly<{
  experimentId: string;
  folder: string;
  round: number;
  /** `roundCurrent()` after the rewind: `round + 1`. */
  roundCurrent: number;
  /** Round indexes taken off the current branch. */
  supersededRounds: readonly number[];
  reason: string;
  by: Actor;
  /** True when the round's settings (round limit, breakpoints, training args) differed and were restored. */
  settingsRestored: boolean;
  /** Log position of the `Rewound` event. */
  logPosition: bigint;
  /** The breakpoint folder of `round`, written from the log if it did not exist: what `resume` continues from. */
  breakpoint: string;
  /** Breakpoint folders of the superseded rounds, now under `<folder>/superseded/`. */
  moved: readonly string[];
}>;

/**
 * Rewinds an experiment to round `round`: one atomic append (expecting the revision read, so a
 * process running the experiment meanwhile fails with `ConcurrentModificationError` on its next
 * commit) of a `Rewound` and, if the round ran under other settings than those in force now, a
 * `SettingsChanged` restoring them, as a resume from that round's breakpoint would. Then the
 * folders of later rounds go to `superseded/` and the round's own folder is written, so that
 * `resume` (with no path, or the experiment folder) continues from it.
 */
export async function rewindExperiment(
  rl: RoundLog,
  experiment: string,
  options: RewindOptions,
): Promise<RewindResult> {
  // Refused before the experiment is read: an empty reason is the caller's mistake whatever the root.
  const reason = checkReason(options.reason);
  const handle = await rl.openExperiment(experiment);
  // A run a live process holds is not rewound under it (it would die at its next commit).
  const run = handle.state.run;
  if (run !== null && statusOf(handle.state) === 'running') {
    throw new ExperimentRunningError(handle.state.folder, run.owner, run.since, run.lastSeen);
  }
  const by = options.by ?? rl.actor;
  const events = decideRewind(handle.state, { round: options.round, reason }, { actor: by });
  // decideRewind accepted the round: it is a round of the current branch.
  const round = options.round;
  const keep = round + 1;
  const { supersededRounds } = events[0]!.data as Rewound;
  const settingsRestored = events.some((e) => e.type === 'SettingsChanged');
  // The log first: if this append fails, no folder has moved. If the process dies after it, the log
  // is right and the folders lag: resume writes the round's folder, `roundlog project` moves the rest.
  const ids = options.eventIds?.(events.length);
  const recorded = await handle.append(ids === undefined ? events : events.map((e, i) => ({ ...e, id: ids[i] })));
  const ctx = { experimentsDir: rl.layout.experiments, blobs: rl.blobs };
  const moved = await supersedeBreakpoints(ctx, handle.state.folder, keep);
  const breakpoint = await writeBreakpoint(handle, round);
  await handle.snapshot();
  return {
    experimentId: handle.id,
    folder: handle.state.folder,
    round,
    roundCurrent: keep,
    supersededRounds,
    reason,
    by,
    settingsRestored,
    logPosition: recorded[0]!.position,
    breakpoint,
    moved,
  };
}

// ---------------------------------------------------------------------------------------------
// fork

export type ForkOptions = RoundChoice & {
  /** Who forks, as recorded in the parent's `Forked.by`; default the process (`rl.actor`). */
  by?: Actor;
  /** The new experiment's folder under `<root>/experiments`; default `Experiment_NNNN` with its number. */
  name?: string;
};

export type ForkResult = Readonly<{
  parentId: string;
  parentFolder: string;
  /** The parent's round the fork starts from, and where its `RoundCompleted` is in the log. */
  round: number;
  branch: Branch;
  parentPosition: bigint;
  childId: string;
  childFolder: string;
  childNumber: number;
  /** `roundCurrent()` of the child: `round + 1`. */
  roundCurrent: number;
  params: BlobRef;
  /**
   * SHA-256 of the parent round's breakpoint manifest, recorded in the child's `importedFrom`
   * (what `replayRound` writes for that round).
   */
  breakpointSha256: string;
  /** The child's breakpoint folder for `round`: `resume` continues from it. */
  breakpoint: string;
  by: Actor;
}>;

/**
 * Starts a new experiment from round `round` of another: the parameters and state of that round,
 * the settings it ran under, the same federated setup, configuration and seed (so the child's
 * next rounds draw what the parent's did). The child's stream starts with an `ExperimentCreated`
 * whose `importedFrom` stands for the parent's round, then a `ForkedFrom`; the parent's stream
 * gets a `Forked`. The child's breakpoint folder for the round is written, so `resume` continues it.
 */
export async function forkExperiment(rl: RoundLog, experiment: string, options: ForkOptions): Promise<ForkResult> {
  if (options.name !== undefined) {
    const problem = folderNameProblem(options.name);
    if (problem !== null) throw new InvalidArgumentError('name', problem, options.name);
    if (isReservedFolderName(options.name)) throw new FolderNameReservedError('name', options.name);
  }
  if (options.name !== undefined) checkPlainName(options.name, 'name', rl.layout.experiments);
  const parent = await rl.openExperiment(experiment);
  if (options.name !== undefined && (await exists(path.join(rl.layout.experiments, options.name)))) {
    throw new InvalidArgumentError(
      'name',
      `must not be a folder that already exists in ${rl.layout.experiments}`,
      options.name,
    );
  }
  const at = await stateAfterRound(rl, parent, options);
  const { record, branch } = at;
  const breakpointSha256 = await manifestSha256(rl, at.state, record);
  const {
    record: _record,
    branch: _branch,
    ...creation
  } = forkCreation(parent.state, { ...options, breakpointSha256 });
  const child = await rl.createExperiment({
    ...(options.name === undefined ? {} : { folder: options.name }),
    ...creation,
  });
  // The parent may be running meanwhile: `Forked` depends on nothing in its state, so it is
  // appended after whatever the parent committed (read again on each conflict).
  const fork = { childId: child.id, childFolder: child.state.folder, round: record.round };
  for (let attempt = 1; ; attempt++) {
    try {
      await parent.append(decideForked(parent.state, fork, { actor: options.by ?? rl.actor }));
      break;
    } catch (error) {
      if (!(error instanceof ConcurrentModificationError) || attempt >= 5) throw error;
      await parent.refresh();
    }
  }
  const breakpoint = await writeBreakpoint(child, record.round);
  await child.snapshot();
  return {
    parentId: parent.id,
    parentFolder: parent.state.folder,
    round: record.round,
    branch,
    parentPosition: record.position,
    childId: child.id,
    childFolder: child.state.folder,
    childNumber: child.created.number,
    roundCurrent: child.roundCurrent(),
    params: record.params,
    breakpointSha256,
    breakpoint,
    by: options.by ?? rl.actor,
  };
}

/** SHA-256 of the breakpoint manifest of a round of `state`'s current branch, as the projection writes it. */
async function manifestSha256(rl: RoundLog, state: ExperimentState, record: RoundRecord): Promise<string> {
  const stage = path.join(rl.layout.replays, `.tmp-fork-${process.pid}-${randomUUID()}`);
  try {
    const written = await materializeBreakpoint(
      { experimentsDir: stage, blobs: rl.blobs },
      state,
      record.round,
      'parent',
    );
    return await sha256File(path.join(written.path, MANIFEST_FILE));
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}
