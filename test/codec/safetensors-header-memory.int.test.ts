/**
 * A hostile safetensors header costs about its length, not what a JSON parser would build from it:
 * a 60 MB header of balanced nested arrays (valid JSON: `JSON.parse` builds 30 million arrays from
 * it, gigabytes) is refused at the first byte the format does not allow, in a child whose V8 heap is
 * 128 MB, so building it would end the child out of memory. The control run shows it would.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('../support/safetensors-header-child.ts', import.meta.url));
const HEAP_MB = 128;

type Result = { outcome: string; byteOffset?: number; reason?: string; before: number; after: number };

function run(kind: string): { status: number | null; signal: NodeJS.Signals | null; result: Result | null } {
  const child = spawnSync(process.execPath, [`--max-old-space-size=${HEAP_MB}`, '--import', 'tsx', CHILD, kind, '60'], {
    encoding: 'utf8',
    maxBuffer: 1024 * 1024,
  });
  const line = child.stdout.trim().split('\n').at(-1) ?? '';
  return {
    status: child.status,
    signal: child.signal,
    result: line.startsWith('{') ? (JSON.parse(line) as Result) : null,
  };
}

for (const [kind, byteOffset, reason] of [
  ['tensor-arrays', 8 + '{"a": '.length, /tensor "a" is not an object .*\(it is an array\)/],
  ['shape-arrays', 8 + '{"a": {"dtype": "F32", "shape": ['.length, /has shape nested deeper than the format allows/],
  ['metadata-arrays', 8 + '{"__metadata__": {"k": '.length, /__metadata__\["k"\] is an array, not a string/],
] as const) {
  test(`a 60 MB header of nested arrays (${kind}) is refused at byte ${byteOffset}, heap ${HEAP_MB} MB`, (t) => {
    const { status, signal, result } = run(kind);
    t.is(signal, null);
    t.is(status, 0);
    t.is(result?.outcome, 'CORRUPT_PAYLOAD');
    t.is(result?.byteOffset, byteOffset);
    t.regex(result?.reason ?? '', reason);
    t.log(`peak RSS ${result?.before} kB before the read, ${result?.after} kB after`);
  });
}

test('ROUNDLOG_MAX_TENSOR_COUNT is read from the environment (default 100000); a bad value is refused', (t) => {
  const count = (tensors: number, env: NodeJS.ProcessEnv) => {
    const child = spawnSync(process.execPath, ['--import', 'tsx', CHILD, 'count', String(tensors)], {
      encoding: 'utf8',
      env: { ...process.env, ROUNDLOG_MAX_TENSOR_COUNT: undefined, ...env },
    });
    return { status: child.status, stderr: child.stderr, result: JSON.parse(child.stdout.trim() || 'null') as unknown };
  };
  t.like(count(3, { ROUNDLOG_MAX_TENSOR_COUNT: '2' }).result, {
    outcome: 'DECODE_LIMIT',
    declared: 3,
    limit: 2,
    setting: 'ROUNDLOG_MAX_TENSOR_COUNT',
  });
  t.like(count(3, { ROUNDLOG_MAX_TENSOR_COUNT: '3' }).result, { outcome: 'decoded', count: 3 });
  t.like(count(100_001, {}).result, { outcome: 'DECODE_LIMIT', declared: 100_001, limit: 100_000 });
  t.like(count(100_000, {}).result, { outcome: 'decoded', count: 100_000 });
  const bad = count(1, { ROUNDLOG_MAX_TENSOR_COUNT: 'many' });
  t.not(bad.status, 0);
  t.regex(bad.stderr, /ROUNDLOG_MAX_TENSOR_COUNT must be a positive whole number of tensors/);
});

test(`control: JSON.parse of the same header does not fit a ${HEAP_MB} MB heap`, (t) => {
  const { status, signal, result } = run('json-parse');
  t.is(result, null, 'JSON.parse finished: the heap limit no longer shows what building the header costs');
  t.true(status !== 0 || signal !== null);
});
