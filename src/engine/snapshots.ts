/**
 * Experiment snapshots: the folded state of an experiment at some revision of its stream, kept
 * in `<root>/snapshots/<experimentId>.snap`, so that opening an experiment replays only the
 * events after it: resume costs the same after 10 rounds or 10,000.
 *
 * A snapshot is a cache. It is used only when it checks out against the log (same stream, and
 * the event at its revision is at its log position); anything else, a missing, damaged or
 * foreign file, means a full replay. Replay from a snapshot folds the same `evolve`.
 *
 * File: u32 body length, u32 CRC-32C of the body, body = msgpack with records (msgpackr's
 * self-describing record extension: a state holds thousands of rounds of the same shape, which
 * then decode about 3x faster and take a third of the bytes) of
 * `{ v: 2, shape, stream, revision, position, state }`; `shape` is the version of the state's
 * shape (`STATE_SHAPE_VERSION`), so a snapshot written by another release is ignored.
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { rootLayout } from '../root.ts';
import { Packr } from 'msgpackr';
import { syncDir, writeStep } from '../durable.ts';
import { isReadRefusal, readRegularFileIfAny } from '../confine.ts';

/** The most bytes read from a snapshot file (the state of an experiment, packed). */
export const MAX_SNAPSHOT_BYTES = 1024 * 1024 * 1024;
import { STATE_SHAPE_VERSION, type ExperimentState, type RoundRecord } from '../model/state.ts';
import { crc32c } from '../log/file/crc32c.ts';

const packr = new Packr({ useRecords: true, moreTypes: true, int64AsType: 'bigint', largeBigIntToFloat: false });

export type Snapshot = Readonly<{ stream: string; revision: bigint; position: bigint; state: ExperimentState }>;

export function snapshotFile(root: string, experimentId: string): string {
  return path.join(rootLayout(root).snapshots, `${experimentId}.snap`);
}

/** Writes the snapshot under a temp name and renames it into place. */
export async function writeSnapshot(root: string, experimentId: string, snapshot: Snapshot): Promise<void> {
  const body = packr.pack({ v: 2, shape: STATE_SHAPE_VERSION, ...snapshot });
  const frame = Buffer.allocUnsafe(8 + body.length);
  frame.writeUInt32LE(body.length, 0);
  frame.writeUInt32LE(crc32c(body), 4);
  body.copy(frame, 8);
  const file = snapshotFile(root, experimentId);
  const temp = `${file}.${process.pid}.${randomUUID()}.tmp`;
  await writeStep(file, 'writing the snapshot', async () => {
    try {
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(temp, frame);
      await fs.rename(temp, file);
    } catch (error) {
      // A full disk leaves no partly written temp file behind.
      await fs.rm(temp, { force: true });
      throw error;
    }
    await syncDir(path.dirname(file));
  });
}

/** The snapshot of an experiment, or null when there is none or it is damaged. */
export async function readSnapshot(root: string, experimentId: string, stream: string): Promise<Snapshot | null> {
  // Only a regular file, and bounded: a snapshot replaced by a device or a huge file is refused
  // with a typed error, never read without limit. Any other failure to read: no snapshot.
  const frame = await readRegularFileIfAny(snapshotFile(root, experimentId), 'snapshot', MAX_SNAPSHOT_BYTES).catch(
    (error: unknown) => {
      if (isReadRefusal(error)) throw error;
      return null;
    },
  );
  if (frame === null || frame.length < 8) return null;
  const length = frame.readUInt32LE(0);
  if (8 + length !== frame.length || frame.readUInt32LE(4) !== crc32c(frame, 8)) return null;
  try {
    const value = packr.unpack(frame.subarray(8)) as { v?: unknown; shape?: unknown } & Partial<Snapshot>;
    // A snapshot of another format or shape of the state (written by another release) is not used.
    if (
      value.v !== 2 ||
      value.shape !== STATE_SHAPE_VERSION ||
      value.stream !== stream ||
      typeof value.revision !== 'bigint' ||
      typeof value.position !== 'bigint'
    )
      return null;
    const state = value.state as ExperimentState;
    // msgpack has no array holes: rounds before an imported breakpoint come back as null.
    const rounds = state.rounds.map((r) => r ?? undefined) as RoundRecord[];
    return { stream, revision: value.revision, position: value.position, state: { ...state, rounds } };
  } catch {
    return null;
  }
}
