/**
 * Headers from an independent writer: Python's json module (test/python/write_safetensors_header.py)
 * writes safetensors headers with every escape it uses (\uXXXX surrogate pairs for astral
 * characters), raw UTF-8, indentation, sorted keys and padding; roundlog's one-pass header reader
 * must read each as Python meant it. The interpreter is `ROUNDLOG_PYTHON`, else /usr/bin/python3.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { decodeSafetensorsFile } from '../../src/codec/safetensors.ts';
import { REPO } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const PYTHON = process.env.ROUNDLOG_PYTHON || '/usr/bin/python3';
const SCRIPT = path.join(REPO, 'test', 'python', 'write_safetensors_header.py');

test('headers json.dumps writes (escapes, surrogate pairs, raw UTF-8, indents, padding) read as written', (t) => {
  const folder = tempDir();
  const run = spawnSync(PYTHON, [SCRIPT, folder], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`${SCRIPT} exited ${run.status}: ${run.error?.message ?? run.stderr}`);
  const written = JSON.parse(run.stdout) as Record<string, { names: string[]; metadata: Record<string, string> }>;
  t.is(Object.keys(written).length, 4);
  for (const [file, { names, metadata }] of Object.entries(written)) {
    const bytes = readFileSync(path.join(folder, file));
    const decoded = decodeSafetensorsFile(bytes, { source: file });
    // Tensor i holds the byte i: the names come back in buffer order, each with its own byte.
    t.deepEqual(Object.keys(decoded.tensors), names, file);
    names.forEach((name, i) => t.deepEqual([...(decoded.tensors[name]!.data as Uint8Array)], [i], `${file} ${name}`));
    t.deepEqual({ ...decoded.metadata }, { ...metadata }, file);
    t.true(Object.hasOwn(decoded.metadata, '__proto__'), file);
  }
  // The astral names really were written as surrogate-pair escapes in the ASCII files.
  t.regex(readFileSync(path.join(folder, 'ascii-indented.safetensors'), 'latin1'), /\\ud83d\\ude00 grin/);
});
