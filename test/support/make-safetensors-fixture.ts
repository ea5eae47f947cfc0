/**
 * Writes the fixture root `test/fixtures/formats/0.1.0-safetensors-tensorboard/root` (see the README
 * there): a small experiment whose rounds are stored as `tensors/safetensors` of several dtypes, a
 * rewind, a fork, breakpoint folders, TensorBoard event files, state snapshots and the projection
 * checkpoint, everything as this code writes it. Deterministic: the clock, the ids, the actor, the
 * seed and the root marker's time are fixed, so two runs write the same bytes.
 *
 *     npx tsx test/support/make-safetensors-fixture.ts <empty or missing folder>
 *
 * A fixture is never regenerated once committed: it pins the format it was written in.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TensorSet } from '../../src/codec/tensors.ts';
import { SEGMENT_HEADER_BYTES, SEGMENT_SUFFIX, checkFrame } from '../../src/log/file/format.ts';
import { followProjection, forkExperiment, openRoundLog, rewindExperiment } from '../../src/projections/index.ts';

/** Every time the code asks: 2026-12-01T00:00:00Z, then one second more each call. */
function fixedClock(): () => Date {
  let seconds = 0;
  return () => new Date(Date.UTC(2026, 11, 1) + 1000 * seconds++);
}

/** UUIDs (version 4 layout) numbered from 1. */
function fixedIds(): () => string {
  let n = 0;
  return () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;
}

/**
 * The parameters of round `r` on branch `b` (0 the first branch, 1 after the rewind, 2 the fork,
 * 9 the initial ones): small values, exact in every dtype, that differ between rounds and branches.
 */
export function fixtureParams(r: number, b: number): TensorSet {
  return {
    'layer.weight': { dtype: 'float32', shape: [2, 2], data: new Float32Array([r, -r, 0.5 * r, b]) },
    'layer.half': { dtype: 'float16', shape: [2], data: new Uint16Array([0x3c00 + r, 0x8000 + b]) },
    'layer.brain': { dtype: 'bfloat16', shape: [2], data: new Uint16Array([0x3f80 + r, 0xc000 + b]) },
    'layer.mask': { dtype: 'bool', shape: [3], data: new Uint8Array([1, r % 2, b % 2]) },
    'layer.codes': { dtype: 'int8', shape: [2], data: new Int8Array([-128 + r, 10 * b - r]) },
    step: { dtype: 'int64', shape: [], data: new BigInt64Array([BigInt(100 * b + r)]) },
  };
}

/** The metrics of round `r` on branch `b`: exact in float32, as TensorBoard stores them. */
function fixtureRound(r: number, b: number) {
  const loss = (4 - r) / 8 + b / 16;
  return {
    params: fixtureParams(r, b),
    metrics: { loss },
    nodes: [
      { node: 'site-a', sampleSize: 3, metrics: { loss: loss / 2 } },
      { node: 'site-b', sampleSize: 5, metrics: { loss: loss * 2 } },
    ],
  };
}

export async function makeFixture(root: string): Promise<void> {
  if (existsSync(root) && readdirSync(root).length > 0) throw new Error(`${root} is not empty`);
  mkdirSync(root, { recursive: true });
  // The marker as the code writes it (src/root.ts), at a fixed time: an existing marker is kept.
  const marker = {
    format: 'roundlog-root',
    formatVersion: 1,
    createdAt: new Date(Date.UTC(2026, 11, 1)).toISOString(),
  };
  writeFileSync(path.join(root, 'roundlog-root.json'), `${JSON.stringify(marker, null, 2)}\n`);
  const clock = fixedClock();
  const newId = fixedIds();
  const actor = { user: 'fixture', host: 'fixture-host', pid: 1 };
  const env = {};
  const rl = await openRoundLog({ root, clock, newId, actor, env });
  try {
    const main = await rl.createExperiment({
      roundLimit: 10,
      seed: 7,
      saveBreakpoints: true,
      initialParams: fixtureParams(0, 9),
      config: { fixture: 'safetensors-tensorboard' },
    });
    for (let r = 0; r < 4; r++) await main.recordRound(fixtureRound(r, 0));
    // Rounds 2 and 3 taken off the branch, then recorded again differently.
    await rewindExperiment(rl, main.state.folder, { round: 1, reason: 'fixture: a rewind' });
    await main.refresh();
    for (let r = 2; r < 4; r++) await main.recordRound(fixtureRound(r, 1));
    await main.snapshot();
    const fork = await forkExperiment(rl, main.state.folder, { round: 2, name: 'fork-a' });
    const child = await rl.openExperiment(fork.childFolder);
    await child.recordRound(fixtureRound(3, 2));
    await child.snapshot();
  } finally {
    await rl.close();
  }
  // The projection checkpoint, as `roundlog project --follow` leaves it once caught up.
  const controller = new AbortController();
  await followProjection({
    root,
    clock,
    newId,
    actor,
    env,
    signal: controller.signal,
    onUpdate: (update) => {
      if (update.kind === 'caughtUp') controller.abort();
    },
  });
  // The log's segments end at their last record: the zero-filled space a writer preallocates after
  // it (1 MiB) is not kept, as a copy that drops trailing zeros would not keep it. The log reads a
  // segment that ends there, and a writer extends it again.
  const log = path.join(root, 'log');
  for (const name of readdirSync(log).filter((n) => n.endsWith(SEGMENT_SUFFIX))) {
    const file = path.join(log, name);
    const bytes = readFileSync(file);
    let offset = SEGMENT_HEADER_BYTES;
    for (let check = checkFrame(bytes, offset); check.kind === 'ok'; check = checkFrame(bytes, offset))
      offset = check.end;
    if (checkFrame(bytes, offset).kind !== 'zeros') throw new Error(`${file}: no clean end of data at byte ${offset}`);
    truncateSync(file, offset);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = process.argv[2];
  if (out === undefined) throw new Error('usage: npx tsx test/support/make-safetensors-fixture.ts <folder>');
  await makeFixture(path.resolve(out));
  console.log(`wrote ${path.resolve(out)}`);
}
