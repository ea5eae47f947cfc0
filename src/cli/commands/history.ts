/**
 * `roundlog history`: one experiment's timeline, once or live. The work is done by `src/audit`; this
 * module prints it as a table (default), JSON (`--json`) or CSV (`--csv`).
 *
 * With `--follow`, output is streamed: text lines, CSV rows after one header, or one JSON object per
 * line (JSON Lines); a line on stderr says when the history has been printed and new events follow.
 * The command runs until SIGINT or SIGTERM and then exits 0.
 */
import { describeEntry } from '../../audit/describe.ts';
import { actorOf, experimentHistory, followHistory, type HistoryEntry } from '../../audit/history.ts';
import { jsonLine, toJson } from '../args.ts';
import { defineCommand, withRoundLog } from '../command.ts';
import { EXPERIMENT, NEEDS_EXPERIMENT, oneExperiment } from '../filters.ts';
import { FORMAT_OPTIONS, count, csvLine, followUntilStopped, formatOf } from '../output.ts';

/** The `--follow` option of the live commands. */
export const FOLLOW = {
  type: 'boolean',
  alias: 'f',
  default: false,
  describe: 'keep printing new events until Ctrl-C (--json: one object per line)',
} as const;

const CSV_HEADER = ['position', 'revision', 'time', 'kind', 'round', 'attempt', 'user', 'host', 'pid', 'details'];

function historyCsv(entry: HistoryEntry): string {
  const by = actorOf(entry);
  const attempt = entry.kind === 'round' || entry.kind === 'aborted' || entry.kind === 'started' ? entry : null;
  // The round column names a round by its index (breakpoint_RRRR), as the JSON's `round` does.
  const round = 'round' in entry ? (entry.round ?? undefined) : undefined;
  return csvLine([
    entry.position,
    entry.revision,
    entry.time.toISOString(),
    entry.kind,
    round,
    attempt?.attempt,
    by?.user,
    by?.host,
    by?.pid,
    describeEntry(entry),
  ]);
}

const HEADER = `${'time'.padEnd(24)}  ${'rev'.padStart(5)}  ${'event'.padEnd(11)}  details`;

function historyText(entry: HistoryEntry): string {
  const rev = String(entry.revision).padStart(5);
  return `${entry.time.toISOString()}  ${rev}  ${entry.kind.padEnd(11)}  ${describeEntry(entry)}`;
}

export const history = defineCommand({
  name: 'history',
  describe:
    'the timeline of one experiment: creation, rounds (nodes, metrics), aborted attempts, resumes (who, host), ' +
    'rewinds, forks, settings changes, pruning',
  positionals: { experiment: EXPERIMENT },
  options: { ...FORMAT_OPTIONS, follow: FOLLOW },
  needs: NEEDS_EXPERIMENT,
  readsRoot: true,
  examples: [['roundlog history Experiment_0000 --follow', 'the timeline, then new events as they are appended']],
  run: async (args, { global, io, extra }) => {
    const format = formatOf(args);
    const experiment = oneExperiment('history', args.experiment, extra);
    return withRoundLog(global, async (rl) => {
      if (args.follow) {
        if (format === 'csv') io.out(csvLine(CSV_HEADER));
        if (format === 'table') io.out(HEADER);
        const print = (e: HistoryEntry) =>
          io.out(format === 'json' ? jsonLine(e) : format === 'csv' ? historyCsv(e) : historyText(e));
        return followUntilStopped(followHistory(rl, { experiment }), print, io, `history of ${experiment}`);
      }
      const result = await experimentHistory(rl, { experiment });
      if (format === 'json') io.out(toJson(result));
      else if (format === 'csv') {
        io.out(csvLine(CSV_HEADER));
        for (const entry of result.entries) io.out(historyCsv(entry));
      } else {
        const { folder, id } = result.experiment;
        io.out(`${folder} (${id}): ${count(result.roundCurrent, 'round')} completed on the current branch`);
        io.out(HEADER);
        for (const entry of result.entries) io.out(historyText(entry));
      }
      return 0;
    });
  },
});
