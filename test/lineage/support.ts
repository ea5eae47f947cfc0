/** Shared by the lineage e2e tests: the `roundlog` command (in process), and readers of a real root. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { openRoundLog } from '../../src/projections/index.ts';
import type { ExperimentState } from '../../src/model/state.ts';
import type { RecordedEvent } from '../../src/log/types.ts';

export { REPO, roundlog, roundlogJson, type Run as Result } from '../support/cli.ts';

/** The example: logistic regression, 10-round limit, a breakpoint folder after every round. */
export const EXAMPLE = 'examples/logistic-regression/experiment.ts';
/** The same experiment (same seed and settings) saving no breakpoint folder at all. */
export const NO_BREAKPOINTS = 'test/lineage/no-breakpoints.experiment.ts';

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function sha256File(file: string): string {
  return sha256(readFileSync(file));
}

/** The bytes the blob store holds under a hash (its file, read directly). */
export function blobBytes(root: string, hash: string): Buffer {
  return readFileSync(path.join(root, 'blobs', hash.slice(0, 2), hash.slice(2)));
}

/** An experiment's stream and folded state, read with the library from the root's files. */
export async function history(
  root: string,
  experiment: string,
): Promise<{ events: RecordedEvent[]; state: ExperimentState; stream: string }> {
  const rl = await openRoundLog({ root });
  try {
    const handle = await rl.openExperiment(experiment);
    const { events } = await rl.withReader((log) => log.readStream(handle.stream));
    return { events: [...events], state: handle.state, stream: handle.stream };
  } finally {
    await rl.close();
  }
}

type Data = Record<string, unknown> & { round?: number; params?: { sha256: string } };

export function eventsOf(events: readonly RecordedEvent[], type: string): Array<RecordedEvent & { data: Data }> {
  return events.filter((e) => e.type === type) as Array<RecordedEvent & { data: Data }>;
}

/** The `RoundCompleted` events of a stream for one round index, oldest first. */
export function completions(events: readonly RecordedEvent[], round: number): Array<RecordedEvent & { data: Data }> {
  return eventsOf(events, 'RoundCompleted').filter((e) => e.data.round === round);
}
