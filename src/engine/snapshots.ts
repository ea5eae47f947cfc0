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
import { FileTooLargeError, NotARegularFileError, readRegularFileIfAny } from '../confine.ts';

/** The most bytes read from a snapshot file (the state of an experiment, packed). */
export const MAX_SNAPSHOT_BYTES = 1024 * 1024 * 1024;
import { STATE_SHAPE_VERSION, initialState, type ExperimentState, type RoundRecord } from '../model/state.ts';
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

/** What a snapshot file holds: a damaged file (and why), one of another release, or a snapshot. */
export type SnapshotFile =
  | Readonly<{ kind: 'damaged'; reason: string }>
  | Readonly<{ kind: 'other-release'; reason: string }>
  | Readonly<{ kind: 'ok'; snapshot: Snapshot }>;

/** Reads and checks one snapshot file (its checksum, format and shape); null when it is missing. */
export async function inspectSnapshot(file: string): Promise<SnapshotFile | null> {
  let frame: Buffer;
  try {
    // Only a regular file, and bounded: a snapshot replaced by a FIFO, a device or a huge file is
    // never opened or read without limit. A snapshot is a cache: such a file is damaged (replayed
    // past, reported by verify, written again by verify --repair).
    const read = await readRegularFileIfAny(file, 'snapshot', MAX_SNAPSHOT_BYTES);
    if (read === null) return null;
    frame = read;
  } catch (error) {
    if (error instanceof NotARegularFileError) {
      return { kind: 'damaged', reason: `it is a ${error.kind}, not a regular file (never opened)` };
    }
    if (error instanceof FileTooLargeError) {
      return { kind: 'damaged', reason: `it holds ${error.size} bytes, more than a snapshot may (never read)` };
    }
    return { kind: 'damaged', reason: `it cannot be read: ${(error as Error).message}` };
  }
  if (frame.length < 8 || 8 + frame.readUInt32LE(0) !== frame.length) {
    return { kind: 'damaged', reason: `its length field does not match its ${frame.length} bytes` };
  }
  if (frame.readUInt32LE(4) !== crc32c(frame, 8)) return { kind: 'damaged', reason: 'it fails its checksum' };
  let value: { v?: unknown; shape?: unknown } & Partial<Snapshot>;
  try {
    value = packr.unpack(frame.subarray(8)) as typeof value;
  } catch (error) {
    return { kind: 'damaged', reason: `it does not decode: ${(error as Error).message}` };
  }
  // A snapshot of another format or shape of the state (written by another release) is not used.
  if (value?.v !== 2 || (value.shape !== STATE_SHAPE_VERSION && value.shape !== 4)) {
    const reason =
      `it is of format ${String(value?.v)}, state shape ${String(value?.shape)} ` +
      `(this release: 2, ${STATE_SHAPE_VERSION})`;
    return { kind: 'other-release', reason };
  }
  if (typeof value.stream !== 'string' || typeof value.revision !== 'bigint' || typeof value.position !== 'bigint') {
    return { kind: 'damaged', reason: 'its fields are not those of a snapshot' };
  }
  // Shape 4 is shape 5 without `remote`: written before a run recorded its node processes
  // (RunStarted.remote), so no event before the snapshot set it and its value is null. The fields
  // keep the order of `initialState`, so the state packs as a replay's does (`sameState`).
  const state =
    value.shape === 4
      ? (Object.fromEntries(
          Object.keys(initialState).map((key) => [
            key,
            key === 'remote' ? null : (value.state as unknown as Record<string, unknown>)[key],
          ]),
        ) as unknown as ExperimentState)
      : (value.state as ExperimentState);
  // msgpack has no array holes: rounds before an imported breakpoint come back as null.
  const rounds = state.rounds.map((r) => r ?? undefined) as RoundRecord[];
  return {
    kind: 'ok',
    snapshot: { stream: value.stream, revision: value.revision, position: value.position, state: { ...state, rounds } },
  };
}

/** The snapshot of an experiment, or null when there is none, it is damaged, or of another stream or release. */
export async function readSnapshot(root: string, experimentId: string, stream: string): Promise<Snapshot | null> {
  const found = await inspectSnapshot(snapshotFile(root, experimentId)).catch(() => null);
  return found?.kind === 'ok' && found.snapshot.stream === stream ? found.snapshot : null;
}

/** Whether two states are the same once written (what a snapshot of `a` would hold is `b`). */
export function sameState(a: ExperimentState, b: ExperimentState): boolean {
  const pack = (state: ExperimentState) =>
    new Packr({ useRecords: true, moreTypes: true, int64AsType: 'bigint', largeBigIntToFloat: false }).pack(state);
  return pack(a).equals(pack(b));
}
