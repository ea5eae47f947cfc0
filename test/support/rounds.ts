/** Rounds recorded through the round log (no training), for tests of what is kept beside the log. */
import type { TensorSet } from '../../src/codec/tensors.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { tempDir } from './tmp.ts';

/** One float32 tensor `w` holding `values`. */
export const tensors = (...values: number[]): TensorSet => ({
  w: { dtype: 'float32', shape: [values.length], data: new Float32Array(values) },
});

/**
 * A new root with one experiment (round limit 10, breakpoints saved, initial parameters [0, 0])
 * of `rounds` rounds, round r with parameters [r, 1] from node n1, each with a breakpoint; closed.
 * With `snapshot`, the experiment's snapshot is written before.
 */
export async function rootWithRounds(
  rounds: number,
  options: { snapshot?: boolean } = {},
): Promise<{ root: string; id: string; stream: string; folder: string }> {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const handle = await rl.createExperiment({ saveBreakpoints: true, roundLimit: 10, initialParams: tensors(0, 0) });
  for (let r = 0; r < rounds; r++) {
    await handle.recordRound({
      params: tensors(r, 1),
      replies: [],
      nodes: [{ node: 'n1', sampleSize: 3, metrics: {} }],
    });
  }
  if (options.snapshot === true) await handle.snapshot();
  const folder = handle.state.folder;
  await rl.close();
  return { root, id: handle.id, stream: handle.stream, folder };
}
