/**
 * Roots: a root has a marker; a command that reads a root refuses a file or a folder that is not
 * one with a typed error, and no read command creates or changes anything in a root.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT_MARKER_FILE } from '../../src/root.ts';
import { REPO, roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const DEFINITION = 'examples/logistic-regression/experiment.ts';

/** Every command that only reads a root, with the arguments it needs. */
const READ_COMMANDS: readonly (readonly string[])[] = [
  ['ls'],
  ['ls', '--json'],
  ['streams'],
  ['events', 'Experiment_0000'],
  ['history', 'Experiment_0000'],
  ['audit'],
  ['audit', 'events', '--json'],
  ['audit', 'rounds', 'Experiment_0000'],
  ['audit', 'metric', 'Experiment_0000', 'loss'],
  ['audit', 'lineage', 'Experiment_0000'],
  ['audit', 'actions'],
  ['verify'],
  ['gc', '--dry-run', '--keep-last', '1'],
];

/** Commands that read an existing root (and may write to it), refused on a folder that is not a root. */
const ROOT_COMMANDS: readonly (readonly string[])[] = [
  ...READ_COMMANDS,
  ['resume'],
  ['replay', 'Experiment_0000', '--round', '0'],
  ['rewind', 'Experiment_0000', '--round', '0', '--reason', 'x'],
  ['fork', 'Experiment_0000', '--round', '0'],
  ['project'],
  ['gc', '--keep-last', '1'],
];

/**
 * The folder tree: every path with its kind, size and modification time and, for files, a hash of
 * the content (a folder's mtime changes when an entry is created or removed in it, even a temp one).
 */
function snapshot(dir: string): Map<string, string> {
  const tree = new Map<string, string>([['.', String(statSync(dir).mtimeMs)]]);
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const file = path.join(entry.parentPath, entry.name);
    const relative = path.relative(dir, file);
    const { size, mtimeMs } = statSync(file);
    const kind = entry.isFile()
      ? createHash('sha256').update(readFileSync(file)).digest('hex')
      : entry.isDirectory()
        ? 'dir'
        : 'other';
    tree.set(relative, `${kind} ${size} ${mtimeMs}`);
  }
  return tree;
}

async function rootWithOneExperiment(): Promise<string> {
  const root = tempDir();
  const run = await roundlog(['run', DEFINITION, '--rounds', '2', '--root', root]);
  if (run.code !== 0) throw new Error(run.stderr);
  return root;
}

test('a new root gets a marker with its format version', async (t) => {
  const root = await rootWithOneExperiment();
  const marker = JSON.parse(readFileSync(path.join(root, ROOT_MARKER_FILE), 'utf8')) as Record<string, unknown>;
  t.is(marker.format, 'roundlog-root');
  t.is(marker.formatVersion, 1);
  t.true(Number.isFinite(Date.parse(String(marker.createdAt))));
});

test('--root naming a file: every command fails with ROOT_NOT_A_DIRECTORY, never a stack trace', async (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'not-a-root');
  writeFileSync(file, 'hello');
  for (const args of [...ROOT_COMMANDS, ['run', DEFINITION, '--rounds', '1']]) {
    const result = await roundlog([...args, '--root', file]);
    t.is(result.code, 1, `${args.join(' ')}: ${result.stderr}`);
    t.regex(result.stderr, /not-a-root is not a folder, so it cannot be a roundlog root/, args.join(' '));
    t.notRegex(result.stderr, /unexpected error|    at /, args.join(' '));
  }
  t.is(readFileSync(file, 'utf8'), 'hello');
});

test('--root naming a folder that is not a root: refused (NOT_A_ROOT), nothing created in it', async (t) => {
  const dir = tempDir();
  mkdirSync(path.join(dir, 'photos'));
  writeFileSync(path.join(dir, 'photos', 'cat.jpg'), 'meow');
  const before = snapshot(dir);
  for (const args of ROOT_COMMANDS) {
    const result = await roundlog([...args, '--root', dir]);
    t.is(result.code, 1, `${args.join(' ')}: ${result.stderr}`);
    t.regex(result.stderr, /is not a roundlog root: it has no roundlog-root\.json and no log/, args.join(' '));
    t.deepEqual(snapshot(dir), before, `${args.join(' ')} changed the folder`);
  }
});

test('no read command creates or changes anything in a root', async (t) => {
  const root = await rootWithOneExperiment();
  const before = snapshot(root);
  t.true(before.has(ROOT_MARKER_FILE));
  for (const args of READ_COMMANDS) {
    const result = await roundlog([...args, '--root', root]);
    t.is(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    t.deepEqual(snapshot(root), before, `${args.join(' ')} changed the root`);
  }
});

test('no read command creates blobs/tmp or anything else in a root that lacks it, nor in a 0.1.0 root', async (t) => {
  const current = await rootWithOneExperiment();
  rmSync(path.join(current, 'blobs', 'tmp'), { recursive: true });
  const old = tempDir();
  cpSync(path.join(REPO, 'test/fixtures/formats/0.1.0-before-manifest-v2/root'), old, { recursive: true });
  for (const root of [current, old]) {
    const before = snapshot(root);
    for (const args of READ_COMMANDS) {
      const result = await roundlog([...args, '--root', root]);
      t.is(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
      t.deepEqual(snapshot(root), before, `${args.join(' ')} changed ${root}`);
    }
    t.false(readdirSync(path.join(root, 'blobs')).includes('tmp'));
  }
});

test('a root written before markers existed (a log, no marker) is read as is, adopted by the next run', async (t) => {
  const root = await rootWithOneExperiment();
  rmSync(path.join(root, ROOT_MARKER_FILE));
  const before = snapshot(root);
  for (const args of READ_COMMANDS) {
    const result = await roundlog([...args, '--root', root]);
    t.is(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    t.deepEqual(snapshot(root), before, `${args.join(' ')} changed the root`);
  }
  const resumed = await roundlog(['resume', '--rounds', '1', '--root', root]);
  t.is(resumed.code, 0, resumed.stderr);
  t.true(statSync(path.join(root, ROOT_MARKER_FILE)).isFile());
});

test('a marker of a newer format or that is not one is refused with ROOT_MARKER_INVALID', async (t) => {
  const root = await rootWithOneExperiment();
  const marker = path.join(root, ROOT_MARKER_FILE);
  writeFileSync(marker, JSON.stringify({ format: 'roundlog-root', formatVersion: 2, createdAt: '2030-01-01' }));
  const newer = await roundlog(['ls', '--root', root]);
  t.is(newer.code, 1);
  t.regex(newer.stderr, /has format version 2, newer than this release of roundlog reads \(1\); upgrade roundlog/);
  writeFileSync(marker, '{ not json');
  const garbled = await roundlog(['verify', '--root', root]);
  t.is(garbled.code, 1);
  t.regex(garbled.stderr, /roundlog-root\.json is not JSON/);
  const run = await roundlog(['run', DEFINITION, '--rounds', '1', '--root', root]);
  t.is(run.code, 1);
  t.regex(run.stderr, /roundlog-root\.json is not JSON/);
});
