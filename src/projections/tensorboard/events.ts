/**
 * TensorBoard's `Event` protos for an experiment's metrics, and the runs (event files) the log
 * gives: a pure function of the experiment's state, so `project --rebuild` writes the same bytes.
 *
 * The messages are a minimal subset of TensorBoard's published `event.proto` and `summary.proto`
 * (`tensorboard/compat/proto/`), same field names and numbers, only the fields written here;
 * protobufjs parses the text below at runtime (no generated code) and encodes with it.
 */
import protobuf from 'protobufjs';
import { CorruptPayloadError } from '../../codec/errors.ts';
import type { ExperimentState, RoundRecord } from '../../model/state.ts';
import { frameRecord, readRecords } from './tfrecord.ts';

/**
 * The subset of TensorBoard's protos written here. `simple_value` is inside its `oneof`, as in
 * the published `Summary.Value`: a value of 0 is then still on the wire (proto3 would drop a
 * plain field's default), and readers tell a scalar from an empty value by the oneof.
 */
export const TENSORBOARD_PROTO = `
syntax = "proto3";
package roundlog.tensorboard;

// One record of an event file (TensorBoard's tensorboard.Event, fields used here only).
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    Summary summary = 5;
  }
}

// TensorBoard's tensorboard.Summary, scalar values only.
message Summary {
  message Value {
    string tag = 1;
    oneof value {
      float simple_value = 2;
    }
  }
  repeated Value value = 1;
}
`;

/** The `file_version` of the first event of every file; TensorBoard reads files of this version. */
export const FILE_VERSION = 'brain.Event:2';

let eventType: protobuf.Type | null = null;
function eventMessage(): protobuf.Type {
  eventType ??= protobuf.parse(TENSORBOARD_PROTO, { keepCase: true }).root.lookupType('roundlog.tensorboard.Event');
  return eventType;
}

/** A scalar of one step: its tag (`loss`, `node/<id>/loss`) and value (stored as float32 by TensorBoard). */
export type Scalar = Readonly<{ tag: string; value: number }>;

/** The encoded `Event` starting a file: `wall_time` in seconds, `file_version` "brain.Event:2". */
export function fileVersionEvent(wallTime: number): Uint8Array {
  const type = eventMessage();
  return type.encode(type.fromObject({ wall_time: wallTime, file_version: FILE_VERSION })).finish();
}

/** The encoded `Event` of one step's scalars: `wall_time` in seconds, `step` the round index. */
export function scalarsEvent(wallTime: number, step: number, scalars: readonly Scalar[]): Uint8Array {
  const type = eventMessage();
  const summary = { value: scalars.map((s) => ({ tag: s.tag, simple_value: s.value })) };
  return type.encode(type.fromObject({ wall_time: wallTime, step, summary })).finish();
}

/** One decoded `Event` of an event file: a file-version event, or a step's scalars. */
export type TensorboardEvent = Readonly<{
  /** Seconds since the Unix epoch (TensorBoard's `wall_time`, a double). */
  wallTime: number;
  /** The step (roundlog writes the round index); 0 for the file-version event. */
  step: number;
  /** `brain.Event:2` on the first event of a file; null on the others. */
  fileVersion: string | null;
  /** The scalars (`simple_value`s) of the event's summary, in stored order; empty when it has none. */
  scalars: readonly Scalar[];
}>;

/** What an event file holds: its events, and where a record cut short by a write in progress starts. */
export type EventFileContents = Readonly<{
  events: readonly TensorboardEvent[];
  /** Byte offset of a last record that is cut short (a file being written, or a crash); null when none. */
  tornAt: number | null;
}>;

/** The encoding named in the errors of `decodeEvent` and `readEventFile`. */
const EVENT_FILE = 'TensorBoard event file';

/**
 * Decodes one `Event` record (the data of a TFRecord record). Fields other than `wall_time`,
 * `step`, `file_version` and scalar summary values are skipped. Throws `CorruptPayloadError`
 * (naming `source`) when the bytes are not an `Event` protobuf.
 */
export function decodeEvent(data: Uint8Array, source?: string): TensorboardEvent {
  const type = eventMessage();
  let decoded: Record<string, unknown>;
  try {
    decoded = type.toObject(type.decode(data), { longs: Number, defaults: true }) as Record<string, unknown>;
  } catch (error) {
    throw new CorruptPayloadError(EVENT_FILE, `an Event does not parse (${(error as Error).message})`, source, error);
  }
  const summary = decoded.summary as { value?: Array<{ tag?: string; simple_value?: number }> } | undefined;
  const scalars: Scalar[] = [];
  for (const value of summary?.value ?? []) {
    if (typeof value.simple_value === 'number') scalars.push({ tag: value.tag ?? '', value: value.simple_value });
  }
  return {
    wallTime: Number(decoded.wall_time ?? 0),
    step: Number(decoded.step ?? 0),
    fileVersion: typeof decoded.file_version === 'string' && decoded.file_version !== '' ? decoded.file_version : null,
    scalars,
  };
}

/**
 * Reads a TensorBoard event file (any writer's, TFRecord-framed `Event`s): every whole record
 * decoded with `decodeEvent`. A last record cut short is not an error (TensorBoard reads files
 * while they are written): its offset is `tornAt`. Throws `CorruptPayloadError` naming `source`
 * and the byte offset when a record's length or data fails its CRC-32C, or an `Event` does not parse.
 */
export function readEventFile(bytes: Uint8Array, source?: string): EventFileContents {
  const { records, tail } = readRecords(bytes);
  if (tail?.kind === 'corrupt') {
    throw new CorruptPayloadError(EVENT_FILE, `the record at byte ${tail.offset}: ${tail.reason}`, source);
  }
  const events = records.map((record) => decodeEvent(record, source));
  return { events, tornAt: tail === null ? null : tail.offset };
}

/**
 * The tags and values a round records: each aggregate metric under its name, each node's under
 * `node/<node id>/<name>`; metric names sorted, nodes by id. Empty for a round with no metric
 * (the round an imported breakpoint stands for).
 */
export function roundScalars(record: RoundRecord): Scalar[] {
  const scalars: Scalar[] = [];
  const add = (prefix: string, metrics: Readonly<Record<string, number>>) => {
    for (const name of Object.keys(metrics).sort()) {
      const value = metrics[name];
      if (typeof value === 'number') scalars.push({ tag: `${prefix}${name}`, value });
    }
  };
  add('', record.metrics);
  for (const node of [...record.nodes].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)))
    add(`node/${node.node}/`, node.metrics);
  return scalars;
}

/**
 * One run as the log gives it: its folder (relative to the experiment's `tensorboard/`), file name,
 * bytes (a whole TFRecord event file) and steps (round indices).
 */
export type TensorboardRun = Readonly<{
  /** `.` for the current branch, `superseded/rewind_<n>_rounds_<first>-<last>` for a rewind's rounds. */
  dir: string;
  /** `events.out.tfevents.<seconds>.roundlog[.<generation>]`. */
  file: string;
  bytes: Buffer;
  /** The round indices (steps) the file holds, in order. */
  steps: readonly number[];
}>;

/** Where the superseded runs are, inside an experiment's `tensorboard/` folder. */
export const SUPERSEDED_RUNS_DIR = 'superseded';
/** Names of the event files this projection writes (and only those are ever replaced or removed). */
export const OWN_EVENT_FILE = /^events\.out\.tfevents\.\d+\.roundlog(\.\d+)?$/;

/**
 * The framed `Event` of each round, by its record (records are never changed, and a state after
 * more events shares them): a run of n rounds is encoded once, not again after every round.
 */
const framesOfRecords = new WeakMap<RoundRecord, Buffer | null>();

function roundFrame(record: RoundRecord): Buffer | null {
  let frame = framesOfRecords.get(record);
  if (frame === undefined) {
    const scalars = roundScalars(record);
    frame =
      scalars.length === 0 ? null : frameRecord(scalarsEvent(record.timestamp.getTime() / 1000, record.round, scalars));
    framesOfRecords.set(record, frame);
  }
  return frame;
}

/** The event file of `records` (those with a metric), or null when none has one. */
function eventFile(dir: string, records: readonly (RoundRecord | undefined)[], suffix: string): TensorboardRun | null {
  const frames: Buffer[] = [];
  const steps: number[] = [];
  let first: number | null = null;
  for (const record of records) {
    if (record === undefined) continue;
    const frame = roundFrame(record);
    if (frame === null) continue;
    if (first === null) {
      first = record.timestamp.getTime() / 1000;
      frames.push(frameRecord(fileVersionEvent(first)));
    }
    frames.push(frame);
    steps.push(record.round);
  }
  if (first === null) return null;
  return {
    dir,
    file: `events.out.tfevents.${Math.floor(first)}.roundlog${suffix}`,
    bytes: Buffer.concat(frames),
    steps,
  };
}

/**
 * Every run of an experiment: the current branch (its rounds in order; a fork's or an import's
 * own rounds only, as `audit metric` gives them), then one run per rewind that took rounds with
 * metrics off the branch, holding exactly those rounds. The current file's name carries the number
 * of rewinds that took rounds (its generation): a rewrite after a rewind is a new file, which a
 * running TensorBoard picks up (it keeps reading a file it has open by name, never reopening it).
 *
 * Each file is a `file_version` event then one event per round with a metric: `step` = the round
 * index, `wall_time` = the seconds (fractional, since the Unix epoch) of its `RoundCompleted`.
 * Pure and deterministic (the bytes `project --rebuild` writes under `tensorboardDir`); throws nothing.
 */
export function tensorboardRuns(state: ExperimentState): TensorboardRun[] {
  const runs: TensorboardRun[] = [];
  const generation = state.rewinds.filter((r) => r.count > 0).length;
  const current = eventFile('.', state.rounds, `.${generation}`);
  if (current !== null) runs.push(current);
  let start = 0;
  state.rewinds.forEach((rewind, i) => {
    const taken = state.superseded.slice(start, start + rewind.count);
    start += rewind.count;
    const rounds = taken.filter((r) => r !== undefined).map((r) => r.round);
    if (rounds.length === 0) return;
    const name = `rewind_${i + 1}_rounds_${Math.min(...rounds)}-${Math.max(...rounds)}`;
    const run = eventFile(`${SUPERSEDED_RUNS_DIR}/${name}`, taken, '');
    if (run !== null) runs.push(run);
  });
  return runs;
}
