/**
 * `processIsAlive`, the one "is the writer of this file still running" check of temp and lock
 * files: this process and a process of another user (EPERM) are alive, an exited one is not, and
 * a number that cannot name one process (0 and negatives name process groups) is not either.
 */
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { processIsAlive } from '../../src/durable.ts';

const DURABLE = fileURLToPath(new URL('../../src/durable.ts', import.meta.url));

test('this process is alive, an exited child is not', async (t) => {
  t.true(processIsAlive(process.pid));
  const child = spawn(process.execPath, ['-e', '']);
  const pid = child.pid!;
  t.true(processIsAlive(pid) || child.exitCode !== null);
  await once(child, 'exit');
  t.false(processIsAlive(pid));
});

test('a number that names no single process is not alive (never a signal to a process group)', (t) => {
  for (const pid of [0, -1, -process.pid, 1.5, Number.NaN, Infinity, 2 ** 31, 2 ** 53]) {
    t.false(processIsAlive(pid), String(pid));
  }
});

test("a process of another user is alive (EPERM is not 'no such process')", async (t) => {
  const script =
    `import { processIsAlive } from ${JSON.stringify(DURABLE)};\n` +
    "let code = 'none';\n" +
    'try { process.kill(1, 0); } catch (error) { code = error.code; }\n' +
    'console.log(JSON.stringify({ alive: processIsAlive(1), code }));\n';
  // As root every signal 0 is allowed: ask from a child running as nobody.
  const asOther = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script],
    { ...asOther, cwd: fileURLToPath(new URL('../..', import.meta.url)) },
  );
  t.deepEqual(JSON.parse(stdout), { alive: true, code: 'EPERM' });
});
