/**
 * `exportTargetProblem`: what `lstat` finds at an export's --out that export never replaces. Devices
 * are checked here on lstat-like objects (no test ever writes to, or makes, a real device).
 */
import test from 'ava';
import type { FileKindStats } from '../../src/confine.ts';
import { exportTargetProblem } from '../../src/projections/export.ts';

type Kind = 'file' | 'dir' | 'fifo' | 'socket' | 'char' | 'block' | 'link';

function statsOf(kind: Kind): FileKindStats {
  return {
    isFile: () => kind === 'file',
    isDirectory: () => kind === 'dir',
    isFIFO: () => kind === 'fifo',
    isSocket: () => kind === 'socket',
    isCharacterDevice: () => kind === 'char',
    isBlockDevice: () => kind === 'block',
    isSymbolicLink: () => kind === 'link',
  };
}

test('only a regular file may be replaced; every other kind is named', (t) => {
  t.is(exportTargetProblem(statsOf('file')), null);
  t.is(exportTargetProblem(statsOf('char')), 'character device');
  t.is(exportTargetProblem(statsOf('block')), 'block device');
  t.is(exportTargetProblem(statsOf('fifo')), 'FIFO');
  t.is(exportTargetProblem(statsOf('socket')), 'socket');
  t.is(exportTargetProblem(statsOf('dir')), 'directory');
  t.is(exportTargetProblem(statsOf('link')), 'symbolic link');
});
