/**
 * `src/model` is the deterministic core, a leaf: it imports nothing but its own files, the log's
 * and the blob store's types, the error base and the schema validator (zod, pure), so no I/O, clock
 * or engine can creep into it.
 */
import test from 'ava';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const MODEL = path.join(SRC, 'model');
const ALLOWED = new Set([
  ...['log/types.ts', 'blobs/types.ts', 'errors.ts'].map((f) => path.join(SRC, f)),
  // The validator of the event schemas (`schemas.ts`): pure functions over values, no I/O.
  'zod',
]);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(entry.parentPath, entry.name);
    return entry.isDirectory() ? sources(file) : entry.name.endsWith('.ts') ? [file] : [];
  });
}

test('every import of src/model stays in the model or names an allowed port type', (t) => {
  const outside: string[] = [];
  const files = sources(MODEL);
  t.true(files.length >= 10);
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const [, specifier] of text.matchAll(/(?:import|export)[^'"]*?from\s+'([^']+)'/g)) {
      const target = specifier!.startsWith('.') ? path.resolve(path.dirname(file), specifier!) : specifier!;
      const inModel = target.startsWith(MODEL + path.sep);
      if (!inModel && !ALLOWED.has(target)) outside.push(`${path.relative(SRC, file)} imports ${specifier}`);
    }
    t.notRegex(text, /\b(Date\.now|Math\.random|randomUUID|process\.)/, `${path.relative(SRC, file)} is not pure`);
  }
  t.deepEqual(outside, []);
});
