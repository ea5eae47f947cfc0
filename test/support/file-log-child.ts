/**
 * A child process that drives a file log, for tests that need a real second process
 * (crash with SIGKILL, lock contention, cross-process races, readers following a writer).
 * Talks line by line on stdout; commands are given as argv.
 */
import { createInterface } from 'node:readline';
import { openFileEventLog } from '../../src/log/file/index.ts';
import type { FileEventLog } from '../../src/log/file/index.ts';
import { LogLockedError } from '../../src/log/errors.ts';
import type { EventData } from '../../src/log/types.ts';
import { eventPayload } from './payloads.ts';

const [mode, dir, ...args] = process.argv.slice(2);
if (mode === undefined || dir === undefined) throw new Error('usage: file-log-child <mode> <dir> ...');

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function openWhenFree(): Promise<FileEventLog> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      return await openFileEventLog({ dir: dir!, onWarning: (w) => say(`warning ${w.code} ${w.bytesDropped ?? ''}`) });
    } catch (error) {
      if (!(error instanceof LogLockedError) || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }
}

switch (mode) {
  case 'append-loop': {
    // Appends forever to `streams` streams concurrently, one in-flight append per stream,
    // each with the exact expected revision; prints `ack <stream> <revision>` once durable.
    const streams = Number(args[0] ?? 4);
    const log = await openFileEventLog({ dir, onWarning: (w) => say(`warning ${w.code} ${w.bytesDropped ?? ''}`) });
    const heads = new Map((await log.listStreams()).streams.map((s) => [s.stream, s.lastRevision]));
    say('ready');
    await Promise.all(
      Array.from({ length: streams }, async (_, k) => {
        const stream = `crash-${k}`;
        let revision = heads.get(stream) ?? -1n;
        for (;;) {
          const next = revision + 1n;
          await log.append(stream, [{ type: 'RoundCompleted', data: eventPayload(stream, next) }], {
            expectedRevision: revision < 0n ? 'no_stream' : revision,
          });
          revision = next;
          say(`ack ${stream} ${next}`);
        }
      }),
    );
    break;
  }
  case 'hold-lock': {
    // Holds the writer lock until stdin closes.
    const log = await openFileEventLog({ dir });
    say(`locked ${process.pid}`);
    for await (const _ of createInterface({ input: process.stdin })) void _;
    await log.close();
    break;
  }
  case 'race-append': {
    // Waits for "go" on stdin, then appends the JSON batch with the given expected revision,
    // waiting for the lock if another process holds it; prints `ok` or `error <code>`.
    const [stream, expected, batch] = args as [string, string, string];
    const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
    say('ready');
    await lines.next();
    const log = await openWhenFree();
    try {
      const expectedRevision =
        expected === 'no_stream' || expected === 'stream_exists' || expected === 'any' ? expected : BigInt(expected);
      await log.append(stream, JSON.parse(batch) as EventData[], { expectedRevision });
      say('ok');
    } catch (error) {
      say(`error ${(error as { code?: string }).code ?? String(error)}`);
    } finally {
      await log.close();
    }
    process.exit(0);
  }
  case 'append-n': {
    // Appends n single events to a stream, one after another, then exits.
    const [stream, n, segmentBytes] = args as [string, string, string | undefined];
    const log = await openFileEventLog({ dir, ...(segmentBytes ? { segmentBytes: Number(segmentBytes) } : {}) });
    for (let i = 0; i < Number(n); i++) {
      await log.append(stream, [{ type: 'Counted', data: { i } }]);
    }
    await log.close();
    say('done');
    break;
  }
  default:
    throw new Error(`unknown mode ${mode}`);
}
