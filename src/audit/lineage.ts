/**
 * The lineage of an experiment: its ancestors through forks and imports, its descendants through
 * forks. Read only.
 */
import { ExperimentNotFoundError } from '../model/errors.ts';
import type { RoundLog } from '../projections/index.ts';
import type { Actor } from '../model/events.ts';
import { upcast } from '../model/state.ts';
import type { RecordedEvent } from '../log/types.ts';
import { openWithHistory, type ExperimentRef } from './common.ts';

/**
 * An experiment this one continues: the parent of a fork, or (`import`) the experiment of a
 * breakpoint carried from another root.
 */
export type LineageAncestor = Readonly<{
  via: 'fork' | 'import';
  id: string;
  /** The folder recorded at the fork or import. */
  folder: string;
  /** The round of the ancestor its child continues from. */
  round: number;
  /** Log position (decimal) of that round in the ancestor's log. */
  position: string;
  /** Whether this root holds the ancestor; when it does, its folder now. */
  known: boolean;
  currentFolder: string | null;
}>;

export type LineageDescendant = Readonly<{
  id: string;
  folder: string;
  /** The round of its parent it was forked from. */
  round: number;
  by: Actor;
  time: Date;
  /** Log position of the `Forked` event in the parent. */
  position: bigint;
  known: boolean;
  currentFolder: string | null;
  children: readonly LineageDescendant[];
}>;

export type LineageOptions = { experiment: string };

export type LineageResult = Readonly<{
  experiment: ExperimentRef;
  /** Nearest first: the parent, its parent, ... */
  ancestors: readonly LineageAncestor[];
  /** Forks of this experiment, each with its own forks. */
  descendants: readonly LineageDescendant[];
}>;

/** Ancestors through `ForkedFrom` (and an import's origin), descendants through `Forked`. */
export async function lineage(rl: RoundLog, options: LineageOptions): Promise<LineageResult> {
  const self = await openWithHistory(rl, options.experiment);
  const open = async (id: string) => {
    try {
      return await openWithHistory(rl, id);
    } catch (error) {
      if (error instanceof ExperimentNotFoundError) return null;
      throw error;
    }
  };
  const ancestors: LineageAncestor[] = [];
  const seen = new Set<string>([self.ref.id]);
  let current = self.state;
  for (;;) {
    const forkedFrom = current.forkedFrom;
    const imported = current.created?.importedFrom ?? null;
    let step: Omit<LineageAncestor, 'known' | 'currentFolder'>;
    if (forkedFrom !== null) {
      step = {
        via: 'fork',
        id: forkedFrom.parentId,
        folder: forkedFrom.parentFolder,
        round: forkedFrom.parentRound,
        position: forkedFrom.parentPosition,
      };
    } else if (imported !== null) {
      step = {
        via: 'import',
        id: imported.experimentId,
        folder: imported.folder,
        round: imported.round,
        position: imported.logPosition,
      };
    } else {
      break;
    }
    if (seen.has(step.id)) break; // a cycle can only come from a damaged history: stop rather than loop
    seen.add(step.id);
    const parent = await open(step.id);
    ancestors.push({ ...step, known: parent !== null, currentFolder: parent?.ref.folder ?? null });
    if (parent === null) break;
    current = parent.state;
  }
  const visited = new Set<string>([self.ref.id]);
  const descend = async (events: readonly RecordedEvent[]): Promise<LineageDescendant[]> => {
    const out: LineageDescendant[] = [];
    for (const recorded of events) {
      if (recorded.type !== 'Forked') continue;
      const event = upcast(recorded);
      if (event.type !== 'Forked' || visited.has(event.data.childId)) continue;
      visited.add(event.data.childId);
      const child = await open(event.data.childId);
      out.push({
        id: event.data.childId,
        folder: event.data.childFolder,
        round: event.data.round,
        by: event.data.by,
        time: recorded.timestamp,
        position: recorded.position,
        known: child !== null,
        currentFolder: child?.ref.folder ?? null,
        children: child === null ? [] : await descend(child.events),
      });
    }
    return out;
  };
  return { experiment: self.ref, ancestors, descendants: await descend(self.events) };
}
