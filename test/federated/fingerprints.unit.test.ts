/**
 * Dataset fingerprints with loader options (the heart-disease split seed): which fields differ, how
 * a fingerprint recorded before options were recorded compares (on the fields it has), the
 * message of a refusal, and the log's schema reading both kinds of record.
 */
import test from 'ava';
import { checkFingerprints, fingerprintDifferences, fingerprintOf } from '../../src/federated/fingerprints.ts';
import { NodeDatasetChangedError } from '../../src/federated/remote/errors.ts';
import type { RemoteTrainer } from '../../src/federated/training-plan.ts';
import type { DatasetFingerprint } from '../../src/model/events.ts';
import { EVENT_SCHEMAS } from '../../src/model/schemas.ts';
import { initialState, type ExperimentState } from '../../src/model/state.ts';

const SHA = 'a'.repeat(64);
const OLD: DatasetFingerprint = { sha256: SHA, rows: 200, columns: 13, format: 'heart-disease' };
const seeded = (seed: string): DatasetFingerprint => ({ ...OLD, options: { splitSeed: seed } });

/** A state whose round 0 recorded `dataset` for node `va`. */
function stateWith(dataset: DatasetFingerprint): ExperimentState {
  const round = { round: 0, nodes: [{ node: 'va', sampleSize: 1, metrics: {}, dataset }] };
  return { ...initialState, folder: 'Experiment_0000', rounds: [round] } as unknown as ExperimentState;
}

const reporting = (dataset: DatasetFingerprint): RemoteTrainer => ({
  train: () => Promise.reject(new Error('not called')),
  dataset: () => dataset,
});

test('the fields that differ: file, shape, format, and each option both sides carry', (t) => {
  t.deepEqual(fingerprintDifferences(seeded('1'), seeded('1')), []);
  t.deepEqual(fingerprintDifferences(seeded('1'), seeded('2')), ['options.splitSeed']);
  t.deepEqual(fingerprintDifferences(seeded('1'), { ...seeded('2'), format: 'numeric-csv', rows: 3 }), [
    'format',
    'rows',
    'options.splitSeed',
  ]);
  // Recorded before options were: compared on the fields it has, either way round.
  t.deepEqual(fingerprintDifferences(OLD, seeded('7')), []);
  t.deepEqual(fingerprintDifferences(seeded('7'), OLD), []);
  t.deepEqual(fingerprintDifferences(OLD, { ...seeded('7'), sha256: 'b'.repeat(64) }), ['sha256']);
});

test('a round checks options against the last record, and records them; an old record does not refuse', (t) => {
  const error = t.throws(() => checkFingerprints(stateWith(seeded('1')), reporting(seeded('2')), ['va'], 1, 'refuse'), {
    instanceOf: NodeDatasetChangedError,
  });
  t.deepEqual(error.fields, ['options.splitSeed']);
  t.is(
    error.message,
    `node "va" holds another dataset than experiment Experiment_0000 recorded for it (in round 0): ` +
      `sha256 ${SHA} (heart-disease 200×13, splitSeed 1) then, sha256 ${SHA} (heart-disease 200×13, splitSeed 2) ` +
      `now (options.splitSeed differs); round 1 was refused and nothing of it was committed. Restart the node ` +
      `with --split-seed 1 as before, leave it out (the experiment's nodes), or, if the new data is meant, run ` +
      `'roundlog resume Experiment_0000 --on-dataset-change record' (onDatasetChange: 'record' in code; the ` +
      `change is recorded in the round)`,
  );
  // A log written before options were recorded: the resumed round trains, and records the seed.
  const recorded = checkFingerprints(stateWith(OLD), reporting(seeded('2')), ['va'], 1, 'refuse');
  t.deepEqual(recorded.get('va'), seeded('2'));
  // A loader without options records none (the record is as before).
  const csv = { sha256: SHA, rows: 3, columns: 2, format: 'numeric-csv', options: {} };
  t.deepEqual(fingerprintOf(csv), { sha256: SHA, rows: 3, columns: 2, format: 'numeric-csv' });
});

test('the log reads a RoundCompleted with and without dataset options', (t) => {
  const event = (dataset: DatasetFingerprint) => ({
    v: 1,
    round: 0,
    attempt: 1,
    params: { sha256: SHA, bytes: 1, encoding: 'safetensors' },
    state: null,
    nodes: [{ node: 'va', sampleSize: 1, metrics: {}, dataset }],
    metrics: {},
    breakpoint: false,
    durationMs: 1,
  });
  t.true(EVENT_SCHEMAS.RoundCompleted.safeParse(event(OLD)).success);
  t.true(EVENT_SCHEMAS.RoundCompleted.safeParse(event(seeded('20261205'))).success);
  const wrong = { ...OLD, options: { splitSeed: 7 } } as unknown as DatasetFingerprint;
  t.false(EVENT_SCHEMAS.RoundCompleted.safeParse(event(wrong)).success);
});

test('a fork or an import, whose first rounds are not in its stream, checks against the rounds it holds', (t) => {
  // Rounds 0 and 1 came from the parent (holes); round 2 is the fork's own.
  const rounds: unknown[] = new Array(3);
  rounds[2] = { round: 2, nodes: [{ node: 'va', sampleSize: 1, metrics: {}, dataset: seeded('1') }] };
  const forked = { ...initialState, folder: 'Experiment_0001', rounds } as unknown as ExperimentState;
  t.deepEqual(checkFingerprints(forked, reporting(seeded('1')), ['va'], 3, 'refuse').get('va'), seeded('1'));
  const error = t.throws(() => checkFingerprints(forked, reporting(seeded('2')), ['va'], 3, 'refuse'), {
    instanceOf: NodeDatasetChangedError,
  });
  t.is(error.recordedRound, 2);
  // Only holes: nothing recorded to compare with.
  const imported = { ...forked, rounds: new Array(2) } as unknown as ExperimentState;
  t.deepEqual(checkFingerprints(imported, reporting(seeded('2')), ['va'], 2, 'refuse').get('va'), seeded('2'));
});
