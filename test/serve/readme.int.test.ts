/**
 * The README's round from the shell (section "From any language: `roundlog serve`") is what the
 * server answers: each `curl` of the sample is sent to a server on a new root, and each answer the
 * sample shows (`#  {...}` after its command) is compared with the real one, byte for byte.
 */
import test from 'ava';
import { encodeSafetensors } from '../../src/codec/safetensors.ts';
import { readmeBlock } from '../support/readme.ts';
import { removeTempDirs } from '../support/tmp.ts';
import { servedRoot } from './support.ts';

test.after.always(removeTempDirs);

type Curl = { method: string; url: string; contentType: string | null; body: string | null; file: string | null };

/** The few curl options the sample uses: -XPOST, -H 'content-type: ...', -d '...', --data-binary @file. */
function parseCurl(line: string): Curl {
  const words = [...line.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!);
  const curl: Curl = { method: 'GET', url: '', contentType: null, body: null, file: null };
  for (let i = 1; i < words.length; i++) {
    const word = words[i]!;
    if (word === '-XPOST') curl.method = 'POST';
    else if (word === '-H') curl.contentType = words[++i]!.replace(/^content-type:\s*/i, '');
    else if (word === '-d') curl.body = words[++i]!;
    else if (word === '--data-binary') curl.file = words[++i]!.replace(/^@/, '');
    else if (word === '-o') i++;
    else if (word.startsWith('localhost:8080')) curl.url = word.slice('localhost:8080'.length);
  }
  return curl;
}

test('the curl sample of the README is what the server answers', async (t) => {
  const block = readmeBlock('## From any language: `roundlog serve`', '', 'curl -s -XPOST');
  // Continuation lines joined; each command with the answer shown after it, if any.
  const lines = block.replaceAll('\\\n', ' ').split('\n');
  const steps: { curl: Curl; answer: string | null }[] = [];
  for (const line of lines) {
    if (line.startsWith('curl ')) steps.push({ curl: parseCurl(line), answer: null });
    else if (line.startsWith('#  ')) steps.at(-1)!.answer = line.slice(3);
  }
  t.true(steps.length >= 4, block);
  t.true(
    steps.some((s) => s.answer !== null),
    'the sample shows answers',
  );
  // w.safetensors as the README writes it: 358 float32 zeros.
  const files: Record<string, Buffer> = {
    'w.safetensors': encodeSafetensors({ w: { dtype: 'float32', shape: [358], data: new Float32Array(358) } }),
  };
  const { app } = await servedRoot();
  try {
    for (const { curl, answer } of steps) {
      const reply = await app.inject({
        method: curl.method as 'GET' | 'POST',
        url: curl.url,
        ...(curl.contentType === null ? {} : { headers: { 'content-type': curl.contentType } }),
        ...(curl.body !== null ? { payload: curl.body } : curl.file !== null ? { payload: files[curl.file] } : {}),
      });
      t.true(reply.statusCode < 300, `${curl.method} ${curl.url}: ${reply.statusCode} ${reply.body}`);
      if (answer !== null) t.is(reply.body, answer, `${curl.method} ${curl.url}`);
    }
  } finally {
    await app.close();
  }
});
