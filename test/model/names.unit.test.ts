/** Numbered folder names and their order: by number past 9,999, never by text. */
import test from 'ava';
import fc from 'fast-check';
import {
  allocateExperimentFolder,
  breakpointFolderName,
  compareNames,
  experimentFolderName,
  experimentNumberOfFolderName,
  isReservedFolderName,
  roundOfBreakpointFolderName,
} from '../../src/model/index.ts';

const NUMBERS = [0, 1, 9, 10, 999, 1000, 9998, 9999, 10000, 10001, 99999, 100000, 1234567];

test('folder names widen past 4 digits and read back as the same number', (t) => {
  t.is(breakpointFolderName(9999), 'breakpoint_9999');
  t.is(breakpointFolderName(10000), 'breakpoint_10000');
  t.is(experimentFolderName(3), 'Experiment_0003');
  t.is(experimentFolderName(10000), 'Experiment_10000');
  for (const n of NUMBERS) {
    t.is(roundOfBreakpointFolderName(breakpointFolderName(n)), n);
    t.is(experimentNumberOfFolderName(experimentFolderName(n)), n);
  }
});

test('only the name roundlog gives stands for a number: one name per round, no ties', (t) => {
  for (const name of ['breakpoint_00012', 'breakpoint_012', 'breakpoint_12', 'breakpoint_-001', 'breakpoint_0012.1']) {
    t.is(roundOfBreakpointFolderName(name), null, name);
  }
  t.is(roundOfBreakpointFolderName('breakpoint_99999999999999999999'), null, 'beyond a safe integer');
  t.is(experimentNumberOfFolderName('Experiment_00003'), null);
  t.is(experimentNumberOfFolderName('mydir'), null);
});

test('rounds 9,999 → 10,000 and beyond sort by number, as folder names and superseded names', (t) => {
  const shuffled = [...NUMBERS].reverse().map(breakpointFolderName);
  t.deepEqual(shuffled.sort(compareNames), NUMBERS.map(breakpointFolderName));
  // Text order is what this replaces: it puts breakpoint_10000 before breakpoint_9999.
  t.true('breakpoint_10000' < 'breakpoint_9999');
  t.deepEqual(
    ['breakpoint_10000.1', 'breakpoint_9999.10', 'breakpoint_9999.2', 'breakpoint_0004.1'].sort(compareNames),
    ['breakpoint_0004.1', 'breakpoint_9999.2', 'breakpoint_9999.10', 'breakpoint_10000.1'],
  );
  t.deepEqual(['Experiment_10000', 'Experiment_9999', 'Experiment_0000'].sort(compareNames), [
    'Experiment_0000',
    'Experiment_9999',
    'Experiment_10000',
  ]);
});

test('compareNames orders numbered names by their numbers for any numbers', (t) => {
  const number = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
  fc.assert(
    fc.property(number, number, fc.nat({ max: 30 }), (a, b, n) => {
      const byNumber = Math.sign(a - b);
      return (
        Math.sign(compareNames(breakpointFolderName(a), breakpointFolderName(b))) === byNumber &&
        Math.sign(compareNames(experimentFolderName(a), experimentFolderName(b))) === byNumber &&
        Math.sign(compareNames(`${breakpointFolderName(a)}.${n}`, `${breakpointFolderName(b)}.${n + 1}`)) ===
          (byNumber === 0 ? -1 : byNumber)
      );
    }),
  );
  t.pass();
});

test('compareNames is a total order: antisymmetric, transitive, 0 only for equal names', (t) => {
  const name = fc.stringMatching(/^[a-z_.]{0,3}[0-9]{0,6}[a-z_.]{0,2}[0-9]{0,3}$/);
  fc.assert(
    fc.property(name, name, name, (a, b, c) => {
      const ab = Math.sign(compareNames(a, b));
      if (ab !== -Math.sign(compareNames(b, a))) return false;
      if ((ab === 0) !== (a === b)) return false;
      if (compareNames(a, b) <= 0 && compareNames(b, c) <= 0 && compareNames(a, c) > 0) return false;
      return true;
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('Experiment_<digits> names are reserved, whatever their padding; others are not', (t) => {
  for (const name of ['Experiment_0000', 'Experiment_7', 'Experiment_00007', 'Experiment_10000'])
    t.true(isReservedFolderName(name), name);
  for (const name of ['experiment_0000', 'Experiment_', 'Experiment_00a1', 'Experiment_0001 copy', 'mydir'])
    t.false(isReservedFolderName(name), name);
});

test('allocateExperimentFolder passes over every taken name and never returns one', (t) => {
  t.deepEqual(allocateExperimentFolder(5, new Set()), { number: 5, folder: 'Experiment_0005' });
  t.deepEqual(allocateExperimentFolder(5, new Set(['Experiment_0005', 'Experiment_0006'])), {
    number: 7,
    folder: 'Experiment_0007',
  });
  fc.assert(
    fc.property(fc.nat(50), fc.uniqueArray(fc.nat(80)), (from, takenNumbers) => {
      const taken = new Set(takenNumbers.map(experimentFolderName));
      const { number, folder } = allocateExperimentFolder(from, taken);
      return number >= from && folder === experimentFolderName(number) && !taken.has(folder);
    }),
  );
});
