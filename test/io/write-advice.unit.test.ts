/** A failed write's message says what to do, by the system's error code. */
import test from 'ava';
import { StorageWriteError } from '../../src/errors.ts';

const failure = (code: string) =>
  new StorageWriteError(
    '/r/experiments/E/tensorboard/run',
    'writing an event file',
    Object.assign(new Error(code), { code }),
  );

test('a file removed while it was written (ENOENT) is named as such, with what to do', (t) => {
  const error = failure('ENOENT');
  t.is(error.errno, 'ENOENT');
  t.regex(error.message, /removed meanwhile, by another program: run the command again/);
  t.notRegex(error.message, /check the folder and the storage/);
});

test('every code keeps its own advice, and committed data is said to be safe', (t) => {
  t.regex(failure('ENOSPC').message, /full/);
  t.regex(failure('EACCES').message, /permission denied/);
  t.regex(failure('EROFS').message, /read-only/);
  t.regex(failure('EIO').message, /I\/O error/);
  t.regex(failure('EBUSY').message, /check the folder and the storage/);
  for (const code of ['ENOENT', 'ENOSPC', 'EBUSY'])
    t.regex(failure(code).message, /nothing committed before was lost$/);
});
