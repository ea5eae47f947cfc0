/**
 * `roundlog replay`, `rewind` and `fork`: an experiment's history as something to rebuild, rewind and
 * branch from. The work is in `src/engine/history-ops.ts`; this module parses and prints.
 */
import path from 'node:path';
import {
  forkExperiment,
  replayRound,
  rewindExperiment,
  type ReplayResult,
  type RoundChoice,
} from '../../projections/index.ts';
import { folderNameProblem } from '../../model/decide/index.ts';
import { FolderNameReservedError } from '../../model/errors.ts';
import { resumeCommand, type RemoteRun } from '../../model/events.ts';
import { isReservedFolderName } from '../../model/names.ts';
import { UsageError, checkPathArgument, shownValue, toJson } from '../args.ts';
import { defineCommand, onSameRoot, withRoundLog, type GlobalOptions } from '../command.ts';
import { displayPath } from '../experiments.ts';

export const EXPERIMENT = { type: 'string', demandOption: true, describe: 'its folder name, id or path' } as const;
export const NEEDS = 'exactly one experiment (its folder name, id or path)';

const ROUND = {
  type: 'string',
  describe: 'R: the 0-based index of a completed round (as in breakpoint_RRRR)',
} as const;
export const JSON_OPTION = { type: 'boolean', default: false, describe: 'print JSON' } as const;

/** `--round` with the choice of a superseded round, for replay, fork and export. */
export const ROUND_CHOICE = {
  round: ROUND,
  superseded: { type: 'boolean', default: false, describe: 'round R of the superseded rounds (after a rewind)' },
  position: { type: 'string', describe: 'P: the log position of the RoundCompleted of round R, on any branch' },
  json: JSON_OPTION,
} as const;

export const replay = defineCommand({
  name: 'replay',
  describe:
    'rebuild the state after round R from the log and write it as a breakpoint folder ' +
    '(default <root>/replays/<folder>/breakpoint_RRRR)',
  positionals: { experiment: EXPERIMENT },
  options: { ...ROUND_CHOICE, out: { type: 'string', describe: 'DIR: a new folder outside the root to write' } },
  needs: NEEDS,
  readsRoot: true,
  examples: [['roundlog replay Experiment_0000 --round 3 --out /tmp/round3', 'round 3 as a folder of its own']],
  run: async (args, { global, io, extra }) => {
    const experiment = onePositional('replay', args.experiment, extra);
    const choice = roundChoice('replay', args);
    const out = args.out === undefined ? {} : { out: checkPathArgument('--out', args.out, global.cwd) };
    const result = await withRoundLog(global, (rl) => replayRound(rl, experiment, { ...choice, ...out }));
    if (args.json) io.out(toJson(replaySummary(result)));
    else {
      const branch = result.branch === 'current' ? 'current branch' : 'superseded';
      io.out(
        `replayed ${result.folder} round ${result.round} (${branch}) from the log, ` +
          `up to its RoundCompleted at log position ${result.logPosition}`,
      );
      io.out(`  parameters  sha256 ${result.params.sha256} (${result.params.bytes} bytes, as recorded)`);
      io.out(
        `  breakpoint  ${displayPath(result.path, global.cwd)}${result.created ? '' : ' (already there, checked)'}`,
      );
    }
    return 0;
  },
});

export const rewind = defineCommand({
  name: 'rewind',
  describe:
    'continue from round R (roundCurrent becomes R+1): later rounds are superseded, their folders moved to superseded/',
  positionals: { experiment: EXPERIMENT },
  options: {
    round: ROUND,
    reason: { type: 'string', describe: 'TEXT: why the rounds after R are set aside (recorded in the history)' },
    json: JSON_OPTION,
  },
  needs: NEEDS,
  readsRoot: true,
  run: async (args, { global, io, extra }) => {
    const experiment = onePositional('rewind', args.experiment, extra);
    const round = roundIndex('rewind', args.round);
    if (args.reason === undefined || args.reason.trim() === '') {
      throw new UsageError(
        'rewind needs --reason TEXT: why the rounds after R are set aside (it is recorded in the history)',
      );
    }
    const reason = args.reason;
    const { result, remote } = await withRoundLog(global, async (rl) => {
      const result = await rewindExperiment(rl, experiment, { round, reason });
      // A run on node processes goes on on them: the command to continue names them.
      return { result, remote: (await rl.openExperiment(result.experimentId)).state.remote };
    });
    if (args.json) io.out(toJson(result));
    else {
      const moved = `${result.moved.length} folders moved to ${result.folder}/superseded/`;
      io.out(`rewound ${result.folder} to round ${result.round} (round ${result.roundCurrent} runs next)`);
      io.out(`  superseded  rounds ${result.supersededRounds.join(', ')} (still in the history; ${moved})`);
      io.out(`  reason      ${result.reason}`);
      io.out(`  by          ${result.by.user}@${result.by.host} (pid ${result.by.pid})`);
      if (result.settingsRestored) io.out(`  settings    restored to those round ${result.round} ran under`);
      io.out(`  breakpoint  ${displayPath(result.breakpoint, global.cwd)}`);
      io.out(`continue with: ${continueWith(result.breakpoint, remote, global)}`);
    }
    return 0;
  },
});

export const fork = defineCommand({
  name: 'fork',
  describe: 'a new experiment starting from round R of <experiment>',
  positionals: { experiment: EXPERIMENT },
  options: {
    ...ROUND_CHOICE,
    name: { type: 'string', describe: 'FOLDER: the new experiment folder under <root>/experiments' },
  },
  needs: NEEDS,
  readsRoot: true,
  run: async (args, { global, io, extra }) => {
    const experiment = onePositional('fork', args.experiment, extra);
    const choice = roundChoice('fork', args);
    const nameProblem = args.name === undefined ? null : folderNameProblem(args.name);
    if (nameProblem !== null) {
      throw new UsageError(`--name ${nameProblem}, created under <root>/experiments (got ${shownValue(args.name!)})`);
    }
    if (args.name !== undefined && isReservedFolderName(args.name))
      throw new FolderNameReservedError('--name', args.name);
    const name = args.name === undefined ? {} : { name: args.name };
    const { result, remote } = await withRoundLog(global, async (rl) => {
      const result = await forkExperiment(rl, experiment, { ...choice, ...name });
      // The parent's last run on node processes: the fork's command to continue names them too.
      return { result, remote: (await rl.openExperiment(result.parentId)).state.remote };
    });
    if (args.json) io.out(toJson(result));
    else {
      io.out(
        `forked ${result.parentFolder} round ${result.round}` +
          `${result.branch === 'superseded' ? ' (superseded)' : ''} into ` +
          `${result.childFolder} (${result.childId}) (round ${result.roundCurrent} runs next)`,
      );
      io.out(`  parameters  sha256 ${result.params.sha256}`);
      io.out(`  breakpoint  ${displayPath(result.breakpoint, global.cwd)}`);
      io.out(`continue with: ${continueWith(result.breakpoint, remote, global)}`);
    }
    return 0;
  },
});

/** What `replay --json` prints: the result without the folded state (its rounds are in the log). */
export function replaySummary(result: ReplayResult): Omit<ReplayResult, 'state'> {
  const { state: _state, ...summary } = result;
  return summary;
}

export function onePositional(command: string, experiment: string, extra: readonly string[]): string {
  if (extra.length > 0) {
    const given = [experiment, ...extra].map((p) => shownValue(p)).join(', ');
    throw new UsageError(`${command} needs ${NEEDS}; got ${given}`);
  }
  return experiment;
}

function roundIndex(command: string, value: string | undefined): number {
  if (value === undefined)
    throw new UsageError(`${command} needs --round R, the 0-based index of a completed round (as in breakpoint_RRRR)`);
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new UsageError(
      `--round must be a non-negative integer, the 0-based index of a completed round (got ${shownValue(value)})`,
    );
  }
  return n;
}

export function roundChoice(
  command: string,
  values: { round?: string | undefined; superseded: boolean; position?: string | undefined },
): RoundChoice {
  const round = roundIndex(command, values.round);
  if (values.position !== undefined) {
    if (!/^\d+$/.test(values.position)) {
      throw new UsageError(
        '--position must be the log position of a RoundCompleted event, a non-negative integer ' +
          `(got ${shownValue(values.position)})`,
      );
    }
    if (values.superseded) {
      throw new UsageError(
        '--superseded and --position are exclusive: --position names one round of the whole history already',
      );
    }
    return { round, position: BigInt(values.position) };
  }
  return values.superseded ? { round, superseded: true } : { round };
}

/** The command that continues from `breakpoint` (on the run's node processes, on this root). */
function continueWith(breakpoint: string, remote: RemoteRun | null, global: GlobalOptions): string {
  return onSameRoot(resumeCommand(displayPath(path.dirname(breakpoint), global.cwd), remote), global);
}
