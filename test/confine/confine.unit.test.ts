/** The path checks every layer calls (`src/confine.ts`), on real files, symlinks and a FIFO. */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  FileTooLargeError,
  NotARegularFileError,
  PathOutsideError,
  confinedPath,
  isInside,
  readConfinedFile,
  resolvedPath,
  resolvesInside,
  samePath,
} from '../../src/confine.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

test('isInside compares path components, never string prefixes', (t) => {
  t.true(isInside('/a/b', '/a/b'));
  t.true(isInside('/a/b', '/a/b/c'));
  t.false(isInside('/a/b', '/a/bc'), 'a sibling whose name starts the same is not inside');
  t.false(isInside('/a/b', '/a'));
  t.true(isInside('/a/b', '/a/b/..c'), 'a name that starts with two dots is inside');
});

test('a folder through a symlink is the same folder; a path not there yet resolves by its parent', async (t) => {
  const base = tempDir();
  mkdirSync(path.join(base, 'lustre', 'root'), { recursive: true });
  symlinkSync(path.join(base, 'lustre'), path.join(base, 'scratch'));
  const real = await resolvedPath(path.join(base, 'lustre', 'root'));
  t.true(await samePath(path.join(base, 'scratch', 'root'), path.join(base, 'lustre', 'root')));
  t.is(await resolvedPath(path.join(base, 'scratch', 'root', 'new', 'x')), path.join(real, 'new', 'x'));
  t.true(await resolvesInside(path.join(base, 'lustre'), path.join(base, 'scratch', 'root', 'not-yet')));
  t.false(await samePath(path.join(base, 'scratch'), path.join(base, 'scratch', 'root')));
});

test('confinedPath refuses ../, absolute paths and symlinks out, naming the field and the value', async (t) => {
  const base = tempDir();
  const folder = path.join(base, 'folder');
  mkdirSync(folder);
  writeFileSync(path.join(base, 'outside'), 'x');
  symlinkSync(path.join(base, 'outside'), path.join(folder, 'link-out'));
  writeFileSync(path.join(folder, 'inside'), 'y');
  symlinkSync('inside', path.join(folder, 'link-in'));
  for (const value of ['../outside', path.join(base, 'outside'), 'link-out', 'a/../../outside', '', '.']) {
    const error = await t.throwsAsync(confinedPath(folder, value, 'files'), { instanceOf: PathOutsideError });
    t.is(error!.field, 'files');
    t.is(error!.value, value);
  }
  t.is(await confinedPath(folder, 'link-in', 'files'), path.join(await resolvedPath(folder), 'inside'));
});

test('readConfinedFile opens only regular files: a FIFO, a folder, a file too large are refused', async (t) => {
  const folder = tempDir();
  execFileSync('mkfifo', [path.join(folder, 'fifo')]);
  mkdirSync(path.join(folder, 'dir'));
  writeFileSync(path.join(folder, 'big'), Buffer.alloc(100));
  const fifo = await t.throwsAsync(readConfinedFile(folder, 'fifo', 'f'), { instanceOf: NotARegularFileError });
  t.is(fifo!.kind, 'FIFO');
  const dir = await t.throwsAsync(readConfinedFile(folder, 'dir', 'f'), { instanceOf: NotARegularFileError });
  t.is(dir!.kind, 'directory');
  await t.throwsAsync(readConfinedFile(folder, 'big', 'f', { maxBytes: 99 }), { instanceOf: FileTooLargeError });
  t.is((await readConfinedFile(folder, 'big', 'f', { maxBytes: 100 })).length, 100);
  await t.throwsAsync(readConfinedFile(folder, 'sub/big', 'f', { plainName: true }), { instanceOf: PathOutsideError });
});
