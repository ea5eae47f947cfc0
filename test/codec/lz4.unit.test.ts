/**
 * The two LZ4 backends (C `lz4` where it built, prebuilt `lz4-napi` elsewhere) write and read the
 * same raw block format: each decodes what the other encoded, and both reject damaged blocks.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LZ4_BACKEND, lz4Compress, lz4Decompress, lz4DecompressInto } from '../../src/codec/lz4.ts';

const LZ4_MODULE = fileURLToPath(new URL('../../src/codec/lz4.ts', import.meta.url));

function sample(): Buffer {
  const parts: string[] = [];
  for (let i = 0; i < 400; i++)
    parts.push(`{"node":"hospital-${i % 7}","round":${i},"loss":${(1 / (i + 1)).toFixed(6)}}`);
  return Buffer.from(parts.join('\n'));
}

/** Runs `code` (given `lz4` = the wrapper module) in a child process whose backend is `backend`. */
function inChild(backend: 'lz4' | 'lz4-napi', code: string): string {
  const script = `const lz4 = await import(${JSON.stringify(LZ4_MODULE)}); ${code}`;
  return execFileSync(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], {
    env: { ...process.env, ROUNDLOG_LZ4: backend === 'lz4-napi' ? 'lz4-napi' : '' },
    encoding: 'utf8',
  }).trim();
}

test('both backends decode each other’s blocks bit for bit', (t) => {
  const data = sample();
  const local = lz4Compress(data);
  t.truthy(local);
  t.true(local!.length < data.length);
  for (const backend of ['lz4', 'lz4-napi'] as const) {
    const name = inChild(backend, 'console.log(lz4.LZ4_BACKEND)');
    if (backend === 'lz4-napi') t.is(name, 'lz4-napi');
    // The child decodes our block...
    const decoded = inChild(
      backend,
      `process.stdout.write(lz4.lz4Decompress(` +
        `Buffer.from(${JSON.stringify(local!.toString('base64'))}, 'base64'), ${data.length}).toString('base64'))`,
    );
    t.true(Buffer.from(decoded, 'base64').equals(data), `${backend} decodes a ${LZ4_BACKEND} block`);
    // ...and we decode the child's.
    const block = Buffer.from(
      inChild(
        backend,
        `process.stdout.write(lz4.lz4Compress(` +
          `Buffer.from(${JSON.stringify(data.toString('base64'))}, 'base64')).toString('base64'))`,
      ),
      'base64',
    );
    t.true(lz4Decompress(block, data.length).equals(data), `${LZ4_BACKEND} decodes a ${backend} block`);
  }
});

test('incompressible bytes are reported as such, and damaged blocks are rejected', (t) => {
  const noise = Buffer.alloc(4096);
  let x = 12345;
  for (let i = 0; i < noise.length; i++) noise[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  t.is(lz4Compress(noise), null);
  t.is(lz4Compress(new Uint8Array(0)), null);

  const data = sample();
  const block = lz4Compress(data)!;
  t.is(lz4DecompressInto(block, Buffer.alloc(data.length)), data.length);
  t.not(lz4DecompressInto(block.subarray(0, block.length - 7), Buffer.alloc(data.length)), data.length);
  t.throws(() => lz4Decompress(block, data.length + 10), { message: /malformed lz4 block/ });
  const napi = inChild(
    'lz4-napi',
    `const b = Buffer.from(${JSON.stringify(block.toString('base64'))}, 'base64'); ` +
      `console.log(lz4.lz4DecompressInto(b.subarray(0, b.length - 7), Buffer.alloc(${data.length})))`,
  );
  t.not(Number(napi), data.length);
});
