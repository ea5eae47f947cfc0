/**
 * The heart-disease data module (examples/heart-disease/data.ts): parsing with its missing values,
 * imputation and standardisation from a node's own training patients (hand-computed on a small
 * file), the seeded stratified split, and malformed files named by file, line and column.
 */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../../src/errors.ts';
import {
  HEART_DISEASE_DATA_DIR,
  HEART_DISEASE_FEATURES,
  HEART_DISEASE_HOSPITALS,
  HeartDiseaseFormatError,
  applyPreprocessing,
  fitPreprocessing,
  loadHeartDiseaseHospital,
  parseHeartDiseaseFile,
  prepareHospital,
  type BinarySplit,
} from '../../examples/heart-disease/data.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

// Row 1: slope missing. Row 2: trestbps '?', chol 0, oldpeak and slope NaN, ca '?'. Row 4: chol 0.
const LINES = [
  '60,1,4,140,200,0,2,150,0,1.0,?,0,3,0',
  '50,0,3,?,0,0,0,170,1,NaN,NaN,?,7,2',
  '40,1,2,120,260,0,0,160,0,2.0,?,2,6,1',
  '70,0,1,160,0,1,1,100,1,3.0,2,1,7,3',
];
const FIXTURE = LINES.join('\n') + '\n';
const column = (name: string) => HEART_DISEASE_FEATURES.indexOf(name as (typeof HEART_DISEASE_FEATURES)[number]);
const row = (split: BinarySplit, i: number) => [...split.x.subarray(i * split.columns, (i + 1) * split.columns)];

function near(actual: readonly number[], expected: readonly number[]): boolean {
  return actual.length === expected.length && actual.every((a, i) => Math.abs(a - expected[i]!) < 1e-12);
}

test('parses 14 columns: ?, NaN and chol = 0 are missing, num kept as written', (t) => {
  const parsed = parseHeartDiseaseFile(FIXTURE, 'fixture.data');
  t.is(parsed.rows, 4);
  t.deepEqual([...parsed.num], [0, 2, 1, 3]);
  const missing = [...parsed.x.keys()]
    .filter((k) => Number.isNaN(parsed.x[k]))
    .map((k) => `${Math.floor(k / 13) + 1}:${HEART_DISEASE_FEATURES[k % 13]}`);
  t.deepEqual(missing, ['1:slope', '2:trestbps', '2:chol', '2:oldpeak', '2:slope', '2:ca', '3:slope', '4:chol']);
  t.is(parsed.x[column('oldpeak')], 1);
  t.is(parsed.x[2 * 13 + column('chol')], 260);
});

test('blank lines, CRLF and padded cells are read; line numbers still count blank lines', (t) => {
  const parsed = parseHeartDiseaseFile(`\r\n ${LINES[0]!.replaceAll(',', ' , ')}\r\n\r\n${LINES[1]}\r\n`, 'f');
  t.is(parsed.rows, 2);
  t.deepEqual([...parsed.x.subarray(0, 13)], [...parseHeartDiseaseFile(LINES[0]!, 'f').x]);
  const error = t.throws(() => parseHeartDiseaseFile(`${LINES[0]}\n\n60,1`, 'f'), {
    instanceOf: HeartDiseaseFormatError,
  });
  t.like(error, { line: 3, column: 3, columnName: 'cp' });
});

test('imputation and standardisation: hand-computed on three training patients', (t) => {
  const parsed = parseHeartDiseaseFile(FIXTURE, 'fixture.data');
  const prep = fitPreprocessing(parsed, [0, 1, 2]);
  // Means of the observed training values; slope has none (0), chol's 0 on row 2 is not a value.
  t.true(near(prep.imputed, [50, 2 / 3, 3, 130, 230, 0, 2 / 3, 160, 1 / 3, 1.5, 0, 1, 16 / 3]));
  t.deepEqual(prep.observed, [3, 3, 3, 2, 2, 3, 3, 3, 3, 2, 0, 2, 3]);
  t.is(prep.std[column('fbs')], 1, 'a constant column is centred only');
  t.is(prep.std[column('slope')], 1);
  t.true(near([prep.std[column('trestbps')]!], [Math.sqrt(200 / 3)]), 'std of 140, 130 (imputed), 120');

  const s = Math.sqrt(1.5); // 10 / sqrt(200/3): one step of 10 (or 30, or 0.5) over a std of such steps
  const h = Math.sqrt(0.5);
  const thal = (v: number) => (v - 16 / 3) / Math.sqrt(78 / 27);
  const train = applyPreprocessing(parsed, [0, 1, 2], prep);
  t.deepEqual([train.rows, train.columns, [...train.y]], [3, 13, [0, 1, 1]]);
  //                   age sex  cp  bps chol fbs restecg thalach exang oldpeak slope ca  thal
  t.true(near(row(train, 0), [s, h, s, s, -s, 0, 2 * h, -s, -h, -s, 0, -s, thal(3)]));
  t.true(near(row(train, 1), [0, -2 * h, 0, 0, 0, 0, -h, s, 2 * h, 0, 0, 0, thal(7)]), 'imputed values are 0');
  t.true(near(row(train, 2), [-s, h, -s, -s, s, 0, -h, 0, -h, s, 0, s, thal(6)]));

  // A held-out patient with the training statistics: its chol 0 is imputed (0), its slope (a
  // column no training patient has) is 0, its fbs 1 on a constant column is 1 - 0.
  const test_ = applyPreprocessing(parsed, [3], prep);
  t.deepEqual([...test_.y], [1]);
  t.true(near(row(test_, 0), [2 * s, -2 * h, -2 * s, 3 * s, 0, 1, h / 2, -6 * s, 2 * h, 3 * s, 0, 0, thal(7)]));
});

test('prepareHospital fits on the training split only: a held-out patient changes nothing of training', (t) => {
  const parsed = parseHeartDiseaseFile(FIXTURE, 'fixture.data');
  const data = prepareHospital(parsed, { seed: 3, hospital: 'fixture', testFraction: 0.25 });
  // Stratified: the one patient without disease stays in training, one of the three with it is held out.
  t.is(data.split.test.length, 1);
  t.true(data.split.train.includes(0));
  t.deepEqual(data.preprocessing, fitPreprocessing(parsed, data.split.train));
  const held = data.split.test[0]!;
  const changed = LINES.map((line, i) => (i === held ? '99,1,4,999,999,1,2,999,1,9.9,3,3,7,4' : line)).join('\n');
  const again = prepareHospital(parseHeartDiseaseFile(changed, 'fixture.data'), {
    seed: 3,
    hospital: 'fixture',
    testFraction: 0.25,
  });
  t.deepEqual(again.split, data.split);
  t.deepEqual(again.preprocessing, data.preprocessing);
  t.deepEqual(again.train, data.train);
  t.notDeepEqual(again.test.x, data.test.x);
});

test('the real split: seeded, stratified 80/20 per hospital, disjoint, every patient once', (t) => {
  const expected = {
    cleveland: { rows: 303, test: 61, positivesHeld: 28 },
    hungarian: { rows: 294, test: 59, positivesHeld: 21 },
    switzerland: { rows: 123, test: 25, positivesHeld: 23 },
    va: { rows: 200, test: 40, positivesHeld: 30 },
  };
  for (const hospital of HEART_DISEASE_HOSPITALS) {
    const data = loadHeartDiseaseHospital(hospital, { seed: 7 });
    const { rows, test: held, positivesHeld } = expected[hospital];
    t.is(data.file, path.join(HEART_DISEASE_DATA_DIR, `processed.${hospital}.data`));
    t.is(data.test.rows, held, hospital);
    t.is(data.train.rows, rows - held, hospital);
    t.is(
      data.test.y.reduce((a, b) => a + b, 0),
      positivesHeld,
      hospital,
    );
    t.deepEqual(
      [...data.split.train, ...data.split.test].sort((a, b) => a - b),
      Array.from({ length: rows }, (_, i) => i),
    );
    t.deepEqual(loadHeartDiseaseHospital(hospital, { seed: 7 }), data, 'the same seed, the same node data');
    t.notDeepEqual(loadHeartDiseaseHospital(hospital, { seed: 8 }).split, data.split, 'another seed, another split');
    // Standardised on the training split: every observed column has mean 0 there, and std 1 unless constant.
    for (let j = 0; j < 13; j++) {
      let sum = 0;
      let squares = 0;
      for (let i = 0; i < data.train.rows; i++) sum += data.train.x[i * 13 + j]!;
      for (let i = 0; i < data.train.rows; i++) squares += (data.train.x[i * 13 + j]! - sum / data.train.rows) ** 2;
      t.true(Math.abs(sum / data.train.rows) < 1e-9, `${hospital} ${HEART_DISEASE_FEATURES[j]} mean`);
      const std = Math.sqrt(squares / data.train.rows);
      t.true(Math.abs(std - 1) < 1e-9 || std === 0, `${hospital} ${HEART_DISEASE_FEATURES[j]} std ${std}`);
    }
  }
  t.is(loadHeartDiseaseHospital('switzerland', { seed: 7 }).preprocessing.observed[column('chol')], 0);
});

test('a split leaving one side empty, or a fraction out of (0, 1), is refused', (t) => {
  const parsed = parseHeartDiseaseFile(LINES[0]!, 'one.data');
  t.throws(() => prepareHospital(parsed, { seed: 1, hospital: 'x' }), {
    instanceOf: InvalidArgumentError,
    message: /one\.data \(1 patients; 1 for training, 0 held out\)/,
  });
  for (const testFraction of [0, 1, NaN, -0.2]) {
    t.throws(() => prepareHospital(parseHeartDiseaseFile(FIXTURE, 'f'), { seed: 1, hospital: 'x', testFraction }), {
      instanceOf: InvalidArgumentError,
    });
  }
});

test('a malformed line names the file, line and column', (t) => {
  const cases: [text: string, line: number | null, column: number | null, name: string | null, value: string | null][] =
    [
      [`${LINES[0]}\n\n${LINES[1]!.slice(0, LINES[1]!.lastIndexOf(','))}`, 3, 14, 'num', null],
      [`${LINES[0]},1`, 1, 15, null, null],
      [LINES[0]!.replace('140', 'abc'), 1, 4, 'trestbps', 'abc'],
      [LINES[0]!.replace('140', '0x10'), 1, 4, 'trestbps', '0x10'],
      [LINES[0]!.replace('140', '1e400'), 1, 4, 'trestbps', '1e400'],
      [LINES[0]!.replace('140', ''), 1, 4, 'trestbps', ''],
      [`${LINES[0]}\n${LINES[1]!.replace(/2$/, '?')}`, 2, 14, 'num', '?'],
      [LINES[0]!.replace(/0$/, '5'), 1, 14, 'num', '5'],
      ['\n \n', null, null, null, null],
    ];
  for (const [text, line, columnNumber, columnName, value] of cases) {
    const error = t.throws(() => parseHeartDiseaseFile(text, 'bad.data'), { instanceOf: HeartDiseaseFormatError });
    t.like(error, { code: 'HEART_DISEASE_MALFORMED', file: 'bad.data', line, column: columnNumber, columnName, value });
  }
});

test('loading a malformed file: the error names its path, line and column', (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'processed.va.data');
  writeFileSync(file, `${LINES[0]}\n${LINES[1]!.replace('0,0,0,170', '0,zero,0,170')}\n`);
  const error = t.throws(() => loadHeartDiseaseHospital('va', { seed: 1, dataDir: dir }), {
    instanceOf: HeartDiseaseFormatError,
  });
  t.like(error, { file, line: 2, column: 6, columnName: 'fbs', value: 'zero' });
  t.true(error!.message.startsWith(`${file} line 2, column 6 (fbs): is not a decimal number. Value: "zero"`));
});
