/**
 * `roundlog replay`, `rewind` and `fork`: an experiment's history as something to rebuild, rewind
 * and branch from. The work is in `src/engine/history-ops.ts`; this module parses and prints.
 */
import path from 'node:path';
import { openRoundLog, type RoundLog } from '../projections/index.ts';
import { forkExperiment, replayRound, rewindExperiment, type ReplayResult, type RoundChoice } from '../projections/index.ts';
import { resolveRoot } from '../root.ts';
import { UsageError, parse, toJson, type Io } from './args.ts';
import { displayPath } from './experiments.ts';

export type Command = (args: string[], io: Io) => Promise<number>;

/** Commands this module adds to `roundlog`, by name. */
export const commands: Record<string, Command> = {};

/** Lines for `roundlog help`, one per command. */
export const help: string[] = [
  'replay <experiment> --round R [--out DIR] [--superseded | --position P] [--json]',
  '                                      rebuild the state after round R from the log and write it as',
  '                                      a breakpoint folder (default <root>/replays/<folder>/breakpoint_RRRR)',
  'rewind <experiment> --round R --reason TEXT [--json]',
  '                                      continue from round R (roundCurrent becomes R+1): later rounds',
  '                                      are superseded, their folders moved to superseded/',
  'fork <experiment> --round R [--name FOLDER] [--superseded | --position P] [--json]',
  '                                      a new experiment starting from round R of <experiment>',
  '                                      (<experiment>: folder name, id or path; R: 0-based round index)',
];

const roundOptions = {
  root: { type: 'string' },
  round: { type: 'string' },
  superseded: { type: 'boolean', default: false },
  position: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

commands.replay = async (args, io) => {
  const { values, positionals } = parse(args, { ...roundOptions, out: { type: 'string' } });
  const experiment = onePositional('replay', positionals);
  const choice = roundChoice('replay', values);
  const result = await withRoundLog(values.root, io, (rl) =>
    replayRound(rl, experiment, { ...choice, ...(values.out === undefined ? {} : { out: path.resolve(values.out) }) }),
  );
  if (values.json) io.out(toJson(replaySummary(result)));
  else {
    io.out(
      `replayed ${result.folder} round ${result.round} (${result.branch === 'current' ? 'current branch' : 'superseded'}) from the log, ` +
        `up to its RoundCompleted at log position ${result.logPosition}`,
    );
    io.out(`  parameters  sha256 ${result.params.sha256} (${result.params.bytes} bytes, as recorded)`);
    io.out(`  breakpoint  ${displayPath(result.path)}${result.created ? '' : ' (already there, checked)'}`);
  }
  return 0;
};

commands.rewind = async (args, io) => {
  const { values, positionals } = parse(args, {
    root: { type: 'string' },
    round: { type: 'string' },
    reason: { type: 'string' },
    json: { type: 'boolean', default: false },
  });
  const experiment = onePositional('rewind', positionals);
  const round = roundIndex('rewind', values.round);
  if (values.reason === undefined || values.reason.trim() === '') {
    throw new UsageError('rewind needs --reason TEXT: why the rounds after R are set aside (it is recorded in the history)');
  }
  const reason = values.reason;
  const result = await withRoundLog(values.root, io, (rl) => rewindExperiment(rl, experiment, { round, reason }));
  if (values.json) io.out(toJson(result));
  else {
    io.out(`rewound ${result.folder} to round ${result.round}: roundCurrent is now ${result.roundCurrent}`);
    io.out(`  superseded  rounds ${result.supersededRounds.join(', ')} (still in the history; ${result.moved.length} folders moved to ${result.folder}/superseded/)`);
    io.out(`  reason      ${result.reason}`);
    io.out(`  by          ${result.by.user}@${result.by.host} (pid ${result.by.pid})`);
    if (result.settingsRestored) io.out(`  settings    restored to those round ${result.round} ran under`);
    io.out(`  breakpoint  ${displayPath(result.breakpoint)}`);
    io.out(`continue with: roundlog resume ${displayPath(path.dirname(result.breakpoint))}`);
  }
  return 0;
};

commands.fork = async (args, io) => {
  const { values, positionals } = parse(args, { ...roundOptions, name: { type: 'string' } });
  const experiment = onePositional('fork', positionals);
  const choice = roundChoice('fork', values);
  if (values.name !== undefined && (values.name === '' || values.name !== path.basename(values.name))) {
    throw new UsageError(`--name must be a plain folder name, created under <root>/experiments (got ${JSON.stringify(values.name)})`);
  }
  const result = await withRoundLog(values.root, io, (rl) =>
    forkExperiment(rl, experiment, { ...choice, ...(values.name === undefined ? {} : { name: values.name }) }),
  );
  if (values.json) io.out(toJson(result));
  else {
    io.out(
      `forked ${result.parentFolder} round ${result.round}${result.branch === 'superseded' ? ' (superseded)' : ''} into ` +
        `${result.childFolder} (${result.childId}) at roundCurrent ${result.roundCurrent}`,
    );
    io.out(`  parameters  sha256 ${result.params.sha256}`);
    io.out(`  breakpoint  ${displayPath(result.breakpoint)}`);
    io.out(`continue with: roundlog resume ${displayPath(path.dirname(result.breakpoint))}`);
  }
  return 0;
};

/** What `replay --json` prints: the result without the folded state (its rounds are in the log). */
export function replaySummary(result: ReplayResult): Omit<ReplayResult, 'state'> {
  const { state: _state, ...summary } = result;
  return summary;
}

async function withRoundLog<T>(root: string | undefined, io: Io, fn: (rl: RoundLog) => Promise<T>): Promise<T> {
  const rl = await openRoundLog({ root: resolveRoot(root, io.env), env: io.env });
  try {
    return await fn(rl);
  } finally {
    await rl.close();
  }
}

function onePositional(command: string, positionals: string[]): string {
  if (positionals.length !== 1) {
    throw new UsageError(
      `${command} needs exactly one experiment (its folder name, id or path)` +
        (positionals.length > 1 ? `; got ${positionals.map((p) => JSON.stringify(p)).join(', ')}` : ''),
    );
  }
  return positionals[0]!;
}

function roundIndex(command: string, value: string | undefined): number {
  if (value === undefined) throw new UsageError(`${command} needs --round R, the 0-based index of a completed round (as in breakpoint_RRRR)`);
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new UsageError(`--round must be a non-negative integer, the 0-based index of a completed round (got ${JSON.stringify(value)})`);
  }
  return n;
}

function roundChoice(command: string, values: { round?: string | undefined; superseded: boolean; position?: string | undefined }): RoundChoice {
  const round = roundIndex(command, values.round);
  if (values.position !== undefined) {
    if (!/^\d+$/.test(values.position)) {
      throw new UsageError(`--position must be the log position of a RoundCompleted event, a non-negative integer (got ${JSON.stringify(values.position)})`);
    }
    if (values.superseded) throw new UsageError('--superseded and --position are exclusive: --position names one round of the whole history already');
    return { round, position: BigInt(values.position) };
  }
  return values.superseded ? { round, superseded: true } : { round };
}
