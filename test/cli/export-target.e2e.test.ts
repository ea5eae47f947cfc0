/**
 * `roundlog export --out F` writes a new regular file or, with --force, replaces a regular file,
 * and nothing else: a FIFO, a socket, a folder, a symbolic link (never followed) or a device at F,
 * or a folder of F that is a symbolic link, is refused with `ExportTargetError` (exit 1, as the
 * other refused --out values), with or without --force, and left as it was. A --format that
 * contradicts a .npz / .safetensors extension is a usage error (exit 2).
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileKind } from '../../src/confine.ts';
import { InvalidArgumentError } from '../../src/errors.ts';
import { ExportTargetError, exportRound, openRoundLog } from '../../src/projections/index.ts';
import { roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const node = { node: 'n1', sampleSize: 3, metrics: {} };

/** A root with one experiment and one round (a small float32 tensor). */
async function oneRound(): Promise<{ root: string; folder: string }> {
  const root = tempDir();
  const rl = await openRoundLog({ root });
  const handle = await rl.createExperiment({ saveBreakpoints: false, roundLimit: 10, initialParams: {} });
  const weights = { dtype: 'float32', shape: [3], data: new Float32Array([1, 2, 3]) } as const;
  await handle.recordRound({ params: { weights }, replies: [], nodes: [node] });
  const folder = handle.state.folder;
  await rl.close();
  return { root, folder };
}

/** What is at `file`, without following a link: its kind, and a link's target or a file's bytes. */
function snapshot(file: string): { kind: string; link: string | null; content: string | null } {
  const stats = lstatSync(file);
  return {
    kind: fileKind(stats),
    link: stats.isSymbolicLink() ? readlinkSync(file) : null,
    content: stats.isFile() ? readFileSync(file, 'utf8') : null,
  };
}

test('a FIFO, socket, folder, symlink (a device where mknod is allowed) are refused, even with --force', async (t) => {
  const { root, folder } = await oneRound();
  const dir = tempDir();
  const precious = path.join(dir, 'precious.txt');
  writeFileSync(precious, 'keep me');
  const fifo = path.join(dir, 'fifo.safetensors');
  await promisify(execFile)('mkfifo', [fifo]);
  const socket = path.join(dir, 'socket.npz');
  const server = net.createServer().listen(socket);
  await once(server, 'listening');
  t.teardown(() => server.close());
  const folderOut = path.join(dir, 'folder.safetensors');
  mkdirSync(folderOut);
  const link = path.join(dir, 'link.safetensors');
  symlinkSync(precious, link);
  const dangling = path.join(dir, 'dangling.npz');
  symlinkSync(path.join(dir, 'nothing-here'), dangling);
  const targets: [string, RegExp][] = [
    [fifo, /is a FIFO, not a regular file/],
    [socket, /is a socket, not a regular file/],
    [folderOut, /is a directory, not a regular file/],
    [link, /is a symbolic link to .*precious\.txt, not a regular file/],
    [dangling, /is a symbolic link to .*nothing-here, not a regular file/],
  ];
  // A character device made in the temp folder (the null device's numbers): only where mknod is allowed.
  const device = path.join(dir, 'device.safetensors');
  const made = await promisify(execFile)('mknod', [device, 'c', '1', '3']).then(
    () => true,
    () => false,
  );
  if (made) targets.push([device, /is a character device, not a regular file/]);
  else t.log('mknod is not allowed here: the device kind is checked by the unit test of exportTargetProblem');

  const before = Object.fromEntries(readdirSync(dir).map((name) => [name, snapshot(path.join(dir, name))]));
  for (const [out, message] of targets) {
    for (const force of [[], ['--force']]) {
      const run = await roundlog(['export', folder, '--round', '0', '--out', out, ...force, '--root', root]);
      t.is(run.code, 1, `${out} ${force.join(' ')}: ${run.stderr}`);
      t.regex(run.stderr, message);
      t.regex(run.stderr, /wrote nothing; choose another file name/);
      t.notRegex(run.stderr, /unexpected error/);
    }
  }
  const after = Object.fromEntries(readdirSync(dir).map((name) => [name, snapshot(path.join(dir, name))]));
  t.deepEqual(after, before, 'every target as it was (kinds, link targets, contents), no temporary file left');
  t.is(readFileSync(precious, 'utf8'), 'keep me', "the symlink's target is untouched");

  // From code: typed, with the path and its kind.
  const rl = await openRoundLog({ root });
  t.teardown(() => rl.close());
  const error = await t.throwsAsync(exportRound(rl, folder, { round: 0, out: fifo, force: true }), {
    instanceOf: ExportTargetError,
  });
  t.like(error, { code: 'EXPORT_TARGET_REFUSED', role: 'file', path: fifo, out: fifo, kind: 'FIFO' });
  const linked = await t.throwsAsync(exportRound(rl, folder, { round: 0, out: link, force: true }), {
    instanceOf: ExportTargetError,
  });
  t.like(linked, { kind: 'symbolic link', linkTarget: precious });
  t.true(lstatSync(fifo).isFIFO(), 'still a FIFO');
});

test('a folder of --out that is a symbolic link is refused: nothing is written through it', async (t) => {
  const { root, folder } = await oneRound();
  const real = tempDir();
  const links = tempDir();
  const through = path.join(links, 'to-real');
  symlinkSync(real, through);
  for (const force of [[], ['--force']]) {
    const run = await roundlog([
      'export',
      folder,
      '--round',
      '0',
      '--out',
      path.join(through, 'p.safetensors'),
      ...force,
      '--root',
      root,
    ]);
    t.is(run.code, 1, run.stderr);
    t.regex(run.stderr, /its folder .*to-real is a symbolic link to .*, not a real folder/);
  }
  t.deepEqual(readdirSync(real), []);
  // A regular file where its folder should be is refused the same way.
  const file = path.join(links, 'file');
  writeFileSync(file, 'x');
  const run = await roundlog(['export', folder, '--round', '0', '--out', path.join(file, 'p.npz'), '--root', root]);
  t.is(run.code, 1, run.stderr);
  t.regex(run.stderr, /its folder .*file is a regular file, not a real folder/);
});

test('--format contradicting a .npz or .safetensors --out is a usage error; another extension is fine', async (t) => {
  const { root, folder } = await oneRound();
  const dir = tempDir();
  const usage = async (format: string, name: string, message: RegExp) => {
    const out = path.join(dir, name);
    const run = await roundlog(['export', folder, '--round', '0', '--out', out, '--format', format, '--root', root]);
    t.is(run.code, 2, `${format} ${name}: ${run.stderr}`);
    t.regex(run.stderr, message);
  };
  await usage(
    'npz',
    'a.safetensors',
    /--format npz contradicts --out "a\.safetensors", a \.safetensors name: drop --format .*or name the file \.npz/,
  );
  await usage(
    'safetensors',
    'a.npz',
    /--format safetensors contradicts --out "a\.npz", a \.npz name: .*name the file \.safetensors/,
  );
  await usage('npz', 'B.SafeTensors', /contradicts/);
  t.deepEqual(readdirSync(dir), [], 'nothing written');
  for (const [format, name] of [
    ['npz', 'a.bin'],
    ['safetensors', 'b.pt'],
    ['npz', 'C.NPZ'],
    ['safetensors', 'd.safetensors'],
  ] as const) {
    const run = await roundlog([
      'export',
      folder,
      '--round',
      '0',
      '--out',
      path.join(dir, name),
      '--format',
      format,
      '--root',
      root,
      '--json',
    ]);
    t.is(run.code, 0, run.stderr);
    t.is((JSON.parse(run.stdout) as { format: string }).format, format);
  }
  // From code: an InvalidArgumentError on format.
  const rl = await openRoundLog({ root });
  t.teardown(() => rl.close());
  const error = await t.throwsAsync(
    exportRound(rl, folder, { round: 0, out: path.join(dir, 'e.safetensors'), format: 'npz' }),
    { instanceOf: InvalidArgumentError },
  );
  t.is(error?.argument, 'format');
});
