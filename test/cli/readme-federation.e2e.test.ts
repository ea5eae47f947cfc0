/**
 * The README's "Run a federation" walkthrough, run as written: the researcher's command, then each
 * node's approval and start, as real processes from the repository's folder. Two changes only: the
 * port is a free one instead of 50051, and the root and node folders are in a temporary folder
 * (`--root`, and `nodes/` moved there), so the test leaves nothing in the repository. The lines the
 * README shows for terminal 1 are among what the researcher prints.
 */
import test from 'ava';
import { createServer } from 'node:net';
import path from 'node:path';
import type { Child } from '../support/child.ts';
import { roundlog, startRoundlog } from '../support/cli.ts';
import { readmeBlock } from '../support/readme.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const HEADING = '### Walkthrough: a researcher and two hospitals in three terminals';

/** The `roundlog …` commands of a README block (lines continued with `\` joined), as argument lists. */
function commands(block: string): string[][] {
  return block
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .filter((line) => line.startsWith('roundlog '))
    .map((line) => line.split(/\s+/).slice(1));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

test("the README's three terminals run a federation of two hospitals to its end", async (t) => {
  const dir = tempDir();
  const port = await freePort();
  const local = (args: string[]) =>
    args.map((arg) => arg.replace('127.0.0.1:50051', `127.0.0.1:${port}`).replace(/^nodes\//, `${dir}/nodes/`));
  const [researcherArgs] = commands(readmeBlock(HEADING, 'sh', 'roundlog run'));
  const cleveland = commands(readmeBlock(HEADING, 'sh', '--id cleveland'));
  const va = commands(readmeBlock(HEADING, 'sh', '--id va'));
  t.is(cleveland.length, 2);
  t.is(va.length, 2);

  const children: Child[] = [];
  t.teardown(async () => {
    for (const child of children)
      if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
    await Promise.all(children.map((child) => child.exited));
  });
  const researcher = startRoundlog([...local(researcherArgs!), '--root', path.join(dir, 'var')]);
  children.push(researcher);
  await researcher.waitFor((line) => line === `listening for nodes on 127.0.0.1:${port}; waiting for cleveland, va`);
  for (const [approve, start] of [cleveland, va]) {
    const approved = await roundlog(local(approve!));
    t.is(approved.code, 0, approved.stderr);
    t.regex(approved.stdout, /^approved .*examples\/heart-disease\/plan\.ts sha256 [0-9a-f]{64}/);
    children.push(startRoundlog(local(start!)));
  }
  await researcher.waitFor((line) => line.startsWith('done: '));
  const { code } = await researcher.exited;
  t.is(code, 0, researcher.stderr());

  const printed = researcher.lines.map((line) => line.replace(`${path.join(dir, 'var')}/`, 'var/'));
  const shown = readmeBlock(HEADING, 'text', 'researcher: node "cleveland" connected')
    .trimEnd()
    .split('\n')
    .filter((line) => line !== '…' && !line.startsWith('experiment '));
  t.true(shown.length >= 5);
  for (const line of shown) t.true(printed.includes(line), `${line}\nnot in:\n${printed.join('\n')}`);
});
