/** One-line, human-readable descriptions of history entries and experiment events. */
import {
  type Actor,
  type ExperimentEvent,
  type RemoteRun,
  type Retention,
  type RunEnded,
  type RunOwner,
} from '../model/events.ts';
import type { HistoryEntry, SettingsChange } from './history.ts';

export function formatActor(by: Actor): string {
  return `${by.user}@${by.host} (pid ${by.pid})`;
}

/** The owner of a run: who, on which host, which process (and its start, telling a reused pid apart). */
export function formatOwner(owner: RunOwner): string {
  const started = owner.processStart === null ? '' : `, started ${owner.processStart}`;
  return `${owner.user}@${owner.host} (pid ${owner.pid}${started})`;
}

function formatFailure(f: Readonly<{ round: number; attempt: number | null; code: string; message: string }>): string {
  return `at round ${f.round}${f.attempt === null ? '' : ` attempt ${f.attempt}`}: ${f.code}: ${f.message}`;
}

export function formatMetrics(metrics: Readonly<Record<string, number>>): string {
  const parts = Object.entries(metrics).map(([name, value]) => `${name} ${formatNumber(value)}`);
  return parts.length === 0 ? 'no metrics' : parts.join(', ');
}

/** Four decimals for ordinary values, exponent notation for very small or large ones. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6)) return value.toExponential(4);
  return Number.isInteger(value) ? String(value) : value.toFixed(4);
}

export function formatDuration(ms: number | null): string {
  if (ms === null) return '-';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

function formatRetention(retention: Retention | null): string {
  if (retention === null) return 'none';
  return `keep last ${retention.keepLast}${retention.keepEvery === null ? '' : `, every ${retention.keepEvery}`}`;
}

export function formatSettings(changes: SettingsChange): string {
  const parts: string[] = [];
  if (changes.roundLimit !== undefined) parts.push(`round limit ${changes.roundLimit ?? 'none'}`);
  if (changes.saveBreakpoints !== undefined) parts.push(`save breakpoints ${changes.saveBreakpoints ? 'on' : 'off'}`);
  if (changes.trainingArgs !== undefined) parts.push(`training args ${JSON.stringify(changes.trainingArgs)}`);
  if (changes.retention !== undefined) parts.push(`retention ${formatRetention(changes.retention)}`);
  if (changes.trainingPlan !== undefined)
    parts.push(
      `training plan ${changes.trainingPlan.module} (sha256 ${changes.trainingPlan.sha256.slice(0, 12)}…) accepted`,
    );
  return parts.length === 0 ? 'no change' : parts.join(', ');
}

/**
 * Where an experiment stands after `roundCurrent` completed rounds, named by round index as in
 * `breakpoint_RRRR` (never by the count, which is the index of the round that runs next).
 */
export function kept(roundCurrent: number): string {
  return roundCurrent === 0
    ? 'before round 0 (round 0 runs next)'
    : `after round ${roundCurrent - 1} (round ${roundCurrent} runs next)`;
}

function completed(roundCurrent: number): string {
  return roundCurrent === 0
    ? 'with no round completed'
    : `after round ${roundCurrent - 1} (${roundCurrent} round${roundCurrent === 1 ? '' : 's'} completed)`;
}

const list = (items: readonly (string | number)[]) => (items.length === 0 ? 'none' : items.join(', '));

/**
 * Pruned rounds by index; an index pruned twice (a round of the branch and a superseded one)
 * names the log position of each, so the two can be told apart.
 */
function prunedRounds(rounds: ReadonlyArray<Readonly<{ round: number; position: string }>>): string[] {
  const seen = new Map<number, number>();
  for (const { round } of rounds) seen.set(round, (seen.get(round) ?? 0) + 1);
  return rounds.map(({ round, position }) =>
    seen.get(round)! > 1 ? `${round} (position ${position})` : String(round),
  );
}

/** What a history entry says, in one line (without its time). */
export function describeEntry(entry: HistoryEntry): string {
  switch (entry.kind) {
    case 'created': {
      const plan =
        entry.trainingPlan === null
          ? 'its own training loop'
          : `plan ${entry.trainingPlan.module}#${entry.trainingPlan.export}`;
      const nodes =
        entry.tags === null
          ? ''
          : `, tags ${list(entry.tags)}, nodes ${entry.nodes === null ? 'all with the tags' : list(entry.nodes)}`;
      return (
        `${entry.folder} created by ${formatActor(entry.by)}: seed ${entry.seed}, ` +
        `round limit ${entry.roundLimit ?? 'none'}, ` +
        `breakpoints ${entry.saveBreakpoints ? 'saved' : 'not saved'}, ${plan}${nodes}` +
        (entry.importedFrom === null
          ? ''
          : `; continues ${entry.importedFrom.folder} (${entry.importedFrom.experimentId}) ` +
            `after its round ${entry.importedFrom.round}`)
      );
    }
    case 'round': {
      const nodes =
        entry.nodes.length === 0
          ? ''
          : `; nodes ${entry.nodes.map((n) => `${n.node} (${n.sampleSize} samples)`).join(', ')}`;
      return (
        `round ${entry.round} attempt ${entry.attempt} completed in ${formatDuration(entry.durationMs)}${nodes}; ` +
        `${formatMetrics(entry.metrics)}${entry.breakpoint ? '; breakpoint' : ''}`
      );
    }
    case 'aborted':
      return (
        `round ${entry.round} attempt ${entry.attempt} aborted: started on ${list(entry.nodes)}, never completed ` +
        `(next: ${entry.endedBy.type} at ${entry.endedBy.time.toISOString()})`
      );
    case 'started':
      return (
        `round ${entry.round} attempt ${entry.attempt} started on ${list(entry.nodes)}; ` +
        'not completed yet (running, or its process stopped)'
      );
    case 'resumed':
      return (
        `resumed ${kept(entry.roundCurrent)} from ${resumedFrom(entry.breakpoint)} ` +
        `by ${formatActor(entry.by)}` +
        (entry.folder === null ? '' : `; folder now ${entry.folder}`)
      );
    case 'rewound':
      return (
        `rewound to round ${entry.round} (round ${entry.roundCurrent} runs next) ` +
        `by ${formatActor(entry.by)}: ${entry.reason}; ` +
        `superseded rounds ${list(entry.supersededRounds)}`
      );
    case 'forked-from':
      return `forked from ${entry.parentFolder} (${entry.parentId}) at its round ${entry.parentRound}`;
    case 'forked':
      return `forked into ${entry.childFolder} (${entry.childId}) at round ${entry.round} by ${formatActor(entry.by)}`;
    case 'settings':
      return `settings changed by ${formatActor(entry.by)}: ${formatSettings(entry.changes)}`;
    case 'pruned':
      return (
        `parameters of rounds ${list(prunedRounds(entry.rounds))} deleted by retention ` +
        `(${formatRetention(entry.retention)}) by ${formatActor(entry.by)}`
      );
    case 'finished':
      return `finished ${completed(entry.roundCurrent)}`;
    case 'run-started':
      return (
        `run ${entry.runId} started by ${formatOwner(entry.owner)}, ` +
        `heartbeat every ${formatDuration(entry.heartbeatMs)}` +
        onNodes(entry.remote) +
        (entry.tookOver === null
          ? ''
          : `; took over run ${entry.tookOver.runId} of ${formatOwner(entry.tookOver.owner)}`)
      );
    case 'run-failed':
      return `run ${entry.runId ?? '(no lease)'} failed ${formatFailure(entry)}`;
    case 'run-ended':
      return `run ${entry.runId} ${stopped(entry)} ${completed(entry.roundCurrent)}`;
  }
}

/** What an experiment event says, in one line. */
export function describeEvent(event: ExperimentEvent): string {
  switch (event.type) {
    case 'ExperimentCreated': {
      const d = event.data;
      return (
        `${d.folder} created by ${formatActor(d.createdBy)}: seed ${d.seed}, round limit ${d.roundLimit ?? 'none'}` +
        (d.importedFrom === null ? '' : `; continues ${d.importedFrom.folder} after its round ${d.importedFrom.round}`)
      );
    }
    case 'RoundStarted':
      return `round ${event.data.round} attempt ${event.data.attempt} started on ${list(event.data.nodes)}`;
    case 'NodeReplied':
      return (
        `round ${event.data.round} attempt ${event.data.attempt}: ${event.data.node} replied, ` +
        `${event.data.sampleSize} samples, ` +
        `${formatMetrics(event.data.metrics)}, ${formatDuration(event.data.durationMs)}`
      );
    case 'RoundCompleted':
      return (
        `round ${event.data.round} attempt ${event.data.attempt} completed: ${formatMetrics(event.data.metrics)}` +
        `${event.data.nodes.length === 0 ? '' : `; nodes ${event.data.nodes.map((n) => n.node).join(', ')}`}` +
        `${event.data.breakpoint ? '; breakpoint' : ''}`
      );
    case 'SettingsChanged': {
      const { v: _v, by, ...changes } = event.data;
      return `by ${formatActor(by)}: ${formatSettings(changes)}`;
    }
    case 'Resumed':
      return (
        `${kept(event.data.roundCurrent)} from ${resumedFrom(event.data.breakpoint)} ` +
        `by ${formatActor(event.data.by)}`
      );
    case 'Rewound':
      return (
        `to round ${event.data.roundCurrent - 1} (round ${event.data.roundCurrent} runs next) ` +
        `by ${formatActor(event.data.by)}: ${event.data.reason}; ` +
        `superseded rounds ${list(event.data.supersededRounds)}`
      );
    case 'ForkedFrom':
      return `from ${event.data.parentFolder} (${event.data.parentId}) at its round ${event.data.parentRound}`;
    case 'Forked':
      return (
        `into ${event.data.childFolder} (${event.data.childId}) at round ${event.data.round} ` +
        `by ${formatActor(event.data.by)}`
      );
    case 'RoundsPruned':
      return (
        `parameters of rounds ${list(event.data.rounds.map((r) => r.round))} ` +
        `deleted (${formatRetention(event.data.retention)}) by ${formatActor(event.data.by)}`
      );
    case 'ExperimentFinished':
      return completed(event.data.roundCurrent);
    case 'RunStarted':
      return (
        `run ${event.data.runId} by ${formatOwner(event.data.owner)}` +
        onNodes(event.data.remote ?? null) +
        (event.data.tookOver === null
          ? ''
          : `; took over run ${event.data.tookOver.runId} of ${formatOwner(event.data.tookOver.owner)}`)
      );
    case 'RunHeartbeat':
      return `run ${event.data.runId} alive`;
    case 'RunFailed':
      return `run ${event.data.runId ?? '(no lease)'} failed ${formatFailure(event.data)}`;
    case 'RunEnded':
      return `run ${event.data.runId} ${stopped(event.data)} ${completed(event.data.roundCurrent)}`;
  }
}

/** What a resume continued from: its breakpoint folder, or (no round completed) the initial parameters. */
function resumedFrom(breakpoint: string | null): string {
  return breakpoint ?? 'its initial parameters (no breakpoint)';
}

/** How a run ended: `ended`, or `stopped by SIGTERM` when a signal stopped it. */
function stopped(data: Pick<RunEnded, 'signal'>): string {
  const signal = data.signal ?? null;
  return signal === null ? 'ended' : `stopped by ${signal}`;
}

/** `, on node processes at HOST:PORT (nodes a, b)` for a run on node processes; nothing in process. */
function onNodes(remote: RemoteRun | null): string {
  return remote === null ? '' : `, on node processes at ${remote.listen} (nodes ${remote.nodes.join(', ')})`;
}
