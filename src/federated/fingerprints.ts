/**
 * Node datasets across the rounds of an experiment. A node process reports its dataset's
 * fingerprint (SHA-256 of the file's bytes, shape, format, and the loader's options such as the
 * heart-disease split seed) when it connects; each round records the fingerprint of every node it
 * trained on (`RoundCompleted.nodes[].dataset`). Before a round starts, each selected node's
 * fingerprint is compared with the last one recorded for that node on the experiment's branch: a
 * different one is refused (`NodeDatasetChangedError`, the default) or, with
 * `onDatasetChange: 'record'`, accepted and recorded in the round. Never mixed silently.
 *
 * Loader options entered the fingerprint after the first logs were written: an option is compared
 * when both fingerprints carry it. A fingerprint recorded without options (an older log) is
 * compared on the fields it has, and the round records the full one, so from the next round on the
 * options are compared too. Why not take the default split seed as implied: the seed was already a
 * node option before it was recorded, so a node of such a log may have run with another one;
 * assuming the default would refuse a node restarted exactly as before.
 */
import type { DatasetFingerprint } from '../model/events.ts';
import type { ExperimentState, RoundRecord } from '../model/state.ts';
import { NodeDatasetChangedError, fingerprintDifferences } from './remote/errors.ts';
import type { RemoteTrainer } from './training-plan.ts';

/** What a round does with a node whose dataset differs from the one recorded for it. */
export type DatasetChangePolicy = 'refuse' | 'record';

export const DEFAULT_DATASET_CHANGE_POLICY: DatasetChangePolicy = 'refuse';

/**
 * The last fingerprint recorded for `node` on the current branch, and the round that recorded it.
 * Rounds the experiment's own stream does not hold (before the breakpoint it was imported from, or
 * forked from) record none here.
 */
export function recordedFingerprint(
  state: ExperimentState,
  node: string,
): { fingerprint: DatasetFingerprint; round: number } | null {
  for (let i = state.rounds.length - 1; i >= 0; i--) {
    // An imported or forked experiment's rounds before its start are not in its stream: holes.
    const record = state.rounds[i] as RoundRecord | undefined;
    const entry = record?.nodes.find((n) => n.node === node);
    if (entry?.dataset !== undefined) return { fingerprint: entry.dataset, round: record!.round };
  }
  return null;
}

export { fingerprintDifferences };

export const sameFingerprint = (a: DatasetFingerprint, b: DatasetFingerprint): boolean =>
  fingerprintDifferences(a, b).length === 0;

/** `<format> <rows>×<columns>[ <option> <value>...] sha256 <hex>`: a dataset in a node's or researcher's line. */
export function datasetSummary(dataset: DatasetFingerprint): string {
  const options = Object.entries(dataset.options ?? {})
    .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
    .map(([name, value]) => ` ${name} ${value}`)
    .join('');
  return `${dataset.format} ${dataset.rows}×${dataset.columns}${options} sha256 ${dataset.sha256}`;
}

/** A fingerprint as a round records it: the loader's options only when it has any. */
export function fingerprintOf(dataset: DatasetFingerprint): DatasetFingerprint {
  const { sha256, rows, columns, format, options } = dataset;
  const named = Object.keys(options ?? {}).length > 0;
  return { sha256, rows, columns, format, ...(named ? { options: { ...options } } : {}) };
}

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
    const reported = remote.dataset?.(node) ?? null;
    if (reported === null) continue;
    const now = fingerprintOf(reported);
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
    fingerprints.set(node, now);
  }
  return fingerprints;
}
