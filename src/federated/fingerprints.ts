/**
 * Node datasets across the rounds of an experiment. A node process reports its dataset's
 * fingerprint (SHA-256 of the file's bytes, shape, format) when it connects; each round records the
 * fingerprint of every node it trained on (`RoundCompleted.nodes[].dataset`). Before a round
 * starts, each selected node's fingerprint is compared with the last one recorded for that node on
 * the experiment's branch: a different one is refused (`NodeDatasetChangedError`, the default) or,
 * with `onDatasetChange: 'record'`, accepted and recorded in the round. Never mixed silently.
 */
import type { DatasetFingerprint } from '../model/events.ts';
import type { ExperimentState } from '../model/state.ts';
import { NodeDatasetChangedError } from './remote/errors.ts';
import type { RemoteTrainer } from './training-plan.ts';

/** What a round does with a node whose dataset differs from the one recorded for it. */
export type DatasetChangePolicy = 'refuse' | 'record';

export const DEFAULT_DATASET_CHANGE_POLICY: DatasetChangePolicy = 'refuse';

/** The last fingerprint recorded for `node` on the current branch, and the round that recorded it. */
export function recordedFingerprint(
  state: ExperimentState,
  node: string,
): { fingerprint: DatasetFingerprint; round: number } | null {
  for (let i = state.rounds.length - 1; i >= 0; i--) {
    const entry = state.rounds[i]!.nodes.find((n) => n.node === node);
    if (entry?.dataset !== undefined) return { fingerprint: entry.dataset, round: state.rounds[i]!.round };
  }
  return null;
}

export const sameFingerprint = (a: DatasetFingerprint, b: DatasetFingerprint): boolean =>
  a.sha256 === b.sha256 && a.rows === b.rows && a.columns === b.columns && a.format === b.format;

/**
 * The fingerprints of the selected `nodes` as `remote` reports them now (nodes it reports none for
 * are left out), each checked against the experiment's record under `policy`.
 */
export function checkFingerprints(
  state: ExperimentState,
  remote: RemoteTrainer,
  nodes: readonly string[],
  round: number,
  policy: DatasetChangePolicy,
): Map<string, DatasetFingerprint> {
  const fingerprints = new Map<string, DatasetFingerprint>();
  for (const node of nodes) {
    const now = remote.dataset?.(node) ?? null;
    if (now === null) continue;
    const recorded = recordedFingerprint(state, node);
    if (recorded !== null && !sameFingerprint(recorded.fingerprint, now) && policy === 'refuse') {
      throw new NodeDatasetChangedError(
        state.folder,
        node,
        round,
        recorded.fingerprint,
        recorded.round,
        now,
        remote.describe?.() ?? null,
      );
    }
    fingerprints.set(node, {
      sha256: now.sha256,
      rows: now.rows,
      columns: now.columns,
      format: now.format,
    });
  }
  return fingerprints;
}
