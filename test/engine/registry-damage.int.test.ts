/**
 * The experiments of a root whose registry has a damaged record, found from their own streams:
 * every one whose history starts with `ExperimentCreated`, and never the stream of a creation that
 * crashed before its registration (the next creation took its number).
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { openRoundLog } from '../../src/engine/round-log.ts';
import { openFileEventLog } from '../../src/log/file/index.ts';
import { RegistryDamagedError } from '../../src/model/errors.ts';
import { REGISTRY_STREAM, experimentStream, type ExperimentCreated } from '../../src/model/events.ts';
import { flipByte, recordEnd, recordOffsets, segmentsOf } from '../support/segments.ts';
import { tensors } from '../support/rounds.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

test('a damaged registration: the experiments from their streams, in order, without a crashed creation', async (t) => {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const first = await rl.createExperiment({ initialParams: tensors(0) });
  // A creation that crashed between its stream and its registration: number 1, never registered.
  const created = (await rl.withReader((log) => log.readStream(first.stream))).events[0]!;
  const orphanId = '00000000-0000-4000-8000-000000000001';
  await rl.withWriter((log) =>
    log.append(experimentStream(orphanId), [
      {
        type: 'ExperimentCreated',
        data: { ...(created.data as ExperimentCreated), experimentId: orphanId, number: 1, folder: 'Experiment_0001' },
      },
    ]),
  );
  const second = await rl.createExperiment({ initialParams: tensors(1) });
  const third = await rl.createExperiment({ initialParams: tensors(2) });
  t.deepEqual(
    (await rl.listExperiments()).map((e) => [e.number, e.experimentId]),
    [
      [0, first.id],
      [1, second.id],
      [2, third.id],
    ],
  );
  await rl.close();

  // The registration of the second (the registry's revision 1) is damaged.
  const [segment] = segmentsOf(path.join(root, 'log')) as [string];
  const data = readFileSync(segment);
  const registrations = recordOffsets(segment).filter((at) =>
    data.subarray(at, recordEnd(segment, at)).includes(Buffer.from(REGISTRY_STREAM)),
  );
  t.is(registrations.length, 3);
  flipByte(segment, recordEnd(segment, registrations[1]!) - 3);

  const again = await openRoundLog({ root });
  try {
    t.deepEqual(
      (await again.listExperiments()).map((e) => [e.number, e.experimentId, e.folder]),
      [
        [0, first.id, 'Experiment_0000'],
        [1, second.id, 'Experiment_0001'],
        [2, third.id, 'Experiment_0002'],
      ],
    );
    t.is((await again.openExperiment('Experiment_0001')).id, second.id);
    const refused = await t.throwsAsync(again.createExperiment(), { instanceOf: RegistryDamagedError });
    t.is(refused!.code, 'REGISTRY_DAMAGED');
    t.is(refused!.file, segment);
    t.is(refused!.offset, registrations[1]!);
    t.is(refused!.revision, 1n);
    // Nothing was appended: the log holds the same records.
    const log = await openFileEventLog({ dir: path.join(root, 'log'), readOnly: true });
    t.is((await log.listStreams()).streams.find((s) => s.stream === REGISTRY_STREAM)!.lastRevision, 2n);
    await log.close();
  } finally {
    await again.close();
  }
});
