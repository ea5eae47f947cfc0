/**
 * The rounds table of one experiment: every attempt of every round, superseded rounds and aborted
 * attempts included and marked, with nodes, metrics, durations and breakpoint folders. Read only.
 */
import path from 'node:path';
import { foldersByPosition } from '../projections/breakpoints/index.ts';
import type { RoundLog } from '../projections/index.ts';
import { roundCurrent, upcast } from '../model/state.ts';
import { openWithHistory, type ExperimentRef } from './common.ts';

/**
 * `current`: a completed round of the current branch. `superseded`: a completed round a rewind
 * (or a resume from an older breakpoint) took off the branch. `aborted`: an attempt that never
 * completed. `started`: the last attempt, not completed yet (running, or its process stopped).
 */
export type RoundStatus = 'current' | 'superseded' | 'aborted' | 'started';

export type RoundRow = Readonly<{
  round: number;
  attempt: number;
  status: RoundStatus;
  /** The nodes of the attempt; sample sizes and metrics are null/empty for an attempt that did not complete. */
  nodes: ReadonlyArray<
    Readonly<{
      node: string;
      sampleSize: number | null;
      metrics: Readonly<Record<string, number>>;
      durationMs: number | null;
    }>
  >;
  /** Total samples of the nodes that replied; null when the attempt did not complete. */
  samples: number | null;
  metrics: Readonly<Record<string, number>>;
  durationMs: number | null;
  startedAt: Date | null;
  completedAt: Date | null;
  breakpoint: Readonly<{
    /** The round asked for a breakpoint folder. */
    requested: boolean;
    /**
     * Its folder, relative to the experiment folder (`breakpoint_0003`, `superseded/breakpoint_0004.1`),
     * when present.
     */
    folder: string | null;
  }>;
  /** Retention deleted the round's parameters. */
  pruned: boolean;
  /** For a superseded round: the rewind that took it off the branch (null if the log holds none). */
  supersededBy: Readonly<{ position: bigint; time: Date; reason: string }> | null;
  /** Log position of the round's `RoundCompleted` (of its `RoundStarted` for an attempt that did not complete). */
  position: bigint;
}>;

export type RoundsOptions = { experiment: string };

export type RoundsResult = Readonly<{
  experiment: ExperimentRef;
  roundCurrent: number;
  /** Names of the round metrics, in the order they first appear. */
  metricNames: readonly string[];
  /** Every attempt, by round index then log position. */
  rounds: readonly RoundRow[];
}>;

type MutableRow = { -readonly [K in keyof RoundRow]: RoundRow[K] };

/** The rounds table of one experiment. `ExperimentNotFoundError` when nothing answers to the name. */
export async function roundsTable(rl: RoundLog, options: RoundsOptions): Promise<RoundsResult> {
  const { ref, state, events } = await openWithHistory(rl, options.experiment);
  const folders = await foldersByPosition(path.join(rl.layout.experiments, state.folder), ref.id);
  const rows: MutableRow[] = [];
  const branch = new Map<number, MutableRow>();
  const durations = new Map<string, Map<string, number>>();
  let pending: MutableRow | null = null;
  const supersede = (fromRound: number, by: RoundRow['supersededBy']) => {
    for (const [round, row] of branch) {
      if (round < fromRound) continue;
      row.status = 'superseded';
      row.supersededBy = by;
      branch.delete(round);
    }
  };
  const abortPending = () => {
    if (pending !== null) pending.status = 'aborted';
    pending = null;
  };
  for (const recorded of events) {
    const event = upcast(recorded);
    switch (event.type) {
      case 'RoundStarted': {
        abortPending();
        const d = event.data;
        pending = {
          round: d.round,
          attempt: d.attempt,
          status: 'started',
          nodes: d.nodes.map((node) => ({ node, sampleSize: null, metrics: {}, durationMs: null })),
          samples: null,
          metrics: {},
          durationMs: null,
          startedAt: recorded.timestamp,
          completedAt: null,
          breakpoint: { requested: false, folder: null },
          pruned: false,
          supersededBy: null,
          position: recorded.position,
        };
        rows.push(pending);
        break;
      }
      case 'NodeReplied': {
        const key = `${event.data.round}/${event.data.attempt}`;
        const map = durations.get(key) ?? new Map<string, number>();
        map.set(event.data.node, event.data.durationMs);
        durations.set(key, map);
        break;
      }
      case 'RoundCompleted': {
        const d = event.data;
        const key = `${d.round}/${d.attempt}`;
        let row: MutableRow;
        if (pending !== null && pending.round === d.round && pending.attempt === d.attempt) {
          row = pending;
          pending = null;
        } else {
          row = {
            round: d.round,
            attempt: d.attempt,
            status: 'current',
            nodes: [],
            samples: null,
            metrics: {},
            durationMs: null,
            startedAt: null,
            completedAt: null,
            breakpoint: { requested: false, folder: null },
            pruned: false,
            supersededBy: null,
            position: recorded.position,
          };
          rows.push(row);
        }
        const replies = durations.get(key);
        durations.delete(key);
        Object.assign(row, {
          status: 'current',
          nodes: d.nodes.map((n) => ({
            node: n.node,
            sampleSize: n.sampleSize,
            metrics: n.metrics,
            durationMs: replies?.get(n.node) ?? null,
          })),
          samples: d.nodes.reduce((sum, n) => sum + n.sampleSize, 0),
          metrics: d.metrics,
          durationMs: d.durationMs,
          completedAt: recorded.timestamp,
          breakpoint: { requested: d.breakpoint, folder: folders.get(String(recorded.position)) ?? null },
          pruned: state.pruned[String(recorded.position)] !== undefined,
          position: recorded.position,
        } satisfies Partial<MutableRow>);
        // A round recorded again without a rewind replaces the branch from that round on.
        supersede(d.round, null);
        branch.set(d.round, row);
        break;
      }
      case 'Resumed':
        abortPending();
        break;
      case 'Rewound':
        abortPending();
        supersede(event.data.roundCurrent, {
          position: recorded.position,
          time: recorded.timestamp,
          reason: event.data.reason,
        });
        break;
      default:
        break;
    }
  }
  rows.sort((a, b) => a.round - b.round || (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
  const metricNames: string[] = [];
  for (const row of rows) {
    for (const name of Object.keys(row.metrics)) if (!metricNames.includes(name)) metricNames.push(name);
  }
  return { experiment: ref, roundCurrent: roundCurrent(state), metricNames, rounds: rows };
}
