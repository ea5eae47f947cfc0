/**
 * The TensorBoard projection as a library user gets it from the package entry (src/index.ts): the
 * folder and file names, the runs an experiment's state gives (`tensorboardRuns`), and the event
 * file reader (`readEventFile`, TFRecord `readRecords`/`frameRecord`), on files a root wrote.
 */
import test from 'ava';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import {
  CorruptPayloadError,
  FILE_VERSION,
  OWN_EVENT_FILE,
  RECORD_OVERHEAD,
  SUPERSEDED_RUNS_DIR,
  TENSORBOARD_DIR,
  crc32c,
  decodeEvent,
  fileVersionEvent,
  frameRecord,
  maskedCrc32c,
  openRoundLog,
  readEventFile,
  readRecords,
  rewindExperiment,
  roundScalars,
  scalarsEvent,
  tensorboardDir,
  tensorboardRuns,
  type TensorboardEvent,
} from '../../src/index.ts';
import { tensors } from '../support/rounds.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

/** Every event's time: 2026-01-01T00:00:00Z plus one second per event appended. */
const START_SECONDS = Date.UTC(2026, 0, 1) / 1000;

test('event files a root wrote read back with readEventFile, as tensorboardRuns gives them', async (t) => {
  const root = tempDir();
  let tick = 0;
  const rl = await openRoundLog({ root, clock: () => new Date((START_SECONDS + tick++) * 1000) });
  const handle = await rl.createExperiment({ roundLimit: 10, folder: 'lr-0.1' });
  const losses = [0.5, 0.25, 0.125, 0];
  for (const [round, loss] of losses.entries()) {
    await handle.recordRound({
      params: tensors(round),
      metrics: { loss, accuracy: round / 4 },
      nodes: [
        { node: 'site-b', sampleSize: 3, metrics: { loss: loss * 2 } },
        { node: 'site-a', sampleSize: 5, metrics: { loss: loss / 2 } },
      ],
    });
  }
  await rewindExperiment(rl, 'lr-0.1', { round: 1, reason: 'try again' });
  const state = await handle.refresh();
  await rl.close();

  const dir = tensorboardDir(rl.layout.experiments, 'lr-0.1');
  t.is(dir, path.join(root, 'experiments', 'lr-0.1', TENSORBOARD_DIR));
  t.is(TENSORBOARD_DIR, 'tensorboard');
  const runs = tensorboardRuns(state);
  t.deepEqual(
    runs.map((r) => [r.dir, r.steps]),
    [
      ['.', [0, 1]],
      [`${SUPERSEDED_RUNS_DIR}/rewind_1_rounds_2-3`, [2, 3]],
    ],
  );
  t.is(SUPERSEDED_RUNS_DIR, 'superseded');
  // The current file's name: the whole seconds of its first round, then the number of rewinds.
  t.regex(runs[0]!.file, OWN_EVENT_FILE);
  t.is(runs[0]!.file, `events.out.tfevents.${Math.floor(state.rounds[0]!.timestamp.getTime() / 1000)}.roundlog.1`);
  t.deepEqual(readdirSync(dir).sort(), [runs[0]!.file, SUPERSEDED_RUNS_DIR]);

  for (const run of runs) {
    const file = path.join(dir, run.dir, run.file);
    const bytes = readFileSync(file);
    t.deepEqual(bytes, run.bytes, `${run.dir}: the file the projection wrote is the bytes tensorboardRuns gives`);
    const { events, tornAt } = readEventFile(bytes, file);
    t.is(tornAt, null);
    const [first, ...steps] = events;
    t.like(first, { fileVersion: FILE_VERSION, step: 0, scalars: [] });
    t.deepEqual(
      steps.map((e: TensorboardEvent) => e.step),
      [...run.steps],
    );
    for (const event of steps) {
      const loss = losses[event.step]!;
      t.is(event.fileVersion, null);
      // Seconds (fractional) of the round's RoundCompleted, from the injected clock.
      const record = [...state.rounds, ...state.superseded].find((r) => r?.round === event.step)!;
      t.is(event.wallTime, record.timestamp.getTime() / 1000);
      t.true(Number.isInteger(event.wallTime - START_SECONDS));
      // Metric names sorted, then nodes by id; values as float32 (these are exact in float32).
      t.deepEqual(event.scalars, [
        { tag: 'accuracy', value: event.step / 4 },
        { tag: 'loss', value: loss },
        { tag: 'node/site-a/loss', value: loss / 2 },
        { tag: 'node/site-b/loss', value: loss * 2 },
      ]);
      t.deepEqual(roundScalars(record), event.scalars);
    }
  }
});

test('readEventFile: a record cut short is tornAt, a damaged one CorruptPayloadError naming file and offset', (t) => {
  const first = frameRecord(fileVersionEvent(1.5));
  const second = frameRecord(scalarsEvent(2.25, 7, [{ tag: 'loss', value: 0 }]));
  t.is(first.length, fileVersionEvent(1.5).length + RECORD_OVERHEAD);
  const whole = Buffer.concat([first, second]);
  t.deepEqual(readEventFile(whole).events, [
    { wallTime: 1.5, step: 0, fileVersion: FILE_VERSION, scalars: [] },
    { wallTime: 2.25, step: 7, fileVersion: null, scalars: [{ tag: 'loss', value: 0 }] },
  ]);
  t.deepEqual(readEventFile(whole.subarray(0, whole.length - 3)), {
    events: [{ wallTime: 1.5, step: 0, fileVersion: FILE_VERSION, scalars: [] }],
    tornAt: first.length,
  });
  const damaged = Buffer.from(whole);
  damaged[first.length + 14] = damaged[first.length + 14]! ^ 0xff;
  const error = t.throws(() => readEventFile(damaged, 'run/events.out.tfevents.1.roundlog.0'), {
    instanceOf: CorruptPayloadError,
  });
  t.is(error.code, 'CORRUPT_PAYLOAD');
  t.regex(
    error.message,
    /run\/events\.out\.tfevents\.1\.roundlog\.0: the record at byte 40: the data fails its CRC-32C/,
  );
  t.is(first.length, 40, 'the second record starts after the 24-byte first Event and its 16 bytes of framing');
  // An Event that does not parse, in valid framing.
  const garbage = frameRecord(Buffer.from([0x0a, 0xff]));
  t.throws(() => readEventFile(garbage, 'x'), { instanceOf: CorruptPayloadError, message: /an Event does not parse/ });
  t.throws(() => decodeEvent(Buffer.from([0x0a, 0xff])), { instanceOf: CorruptPayloadError });
  // TFRecord's CRC: RFC 3720's check value, and the mask TensorFlow applies.
  t.is(crc32c(Buffer.from('123456789')), 0xe3069283);
  t.is(maskedCrc32c(Buffer.from('123456789')), ((((0xe3069283 >>> 15) | (0xe3069283 << 17)) >>> 0) + 0xa282ead8) >>> 0);
  t.deepEqual(readRecords(whole).records.length, 2);
});
