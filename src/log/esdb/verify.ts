/**
 * Verification of the EventStoreDB log: scans `$all` and reports each event of this log's
 * streams that does not decode, and each revision that goes back within a stream.
 */
import type { VerifyProblem, VerifyResult } from '../types.ts';
import { decode, visibleStream } from './mapping.ts';
import { scanAll } from './read.ts';
import { run, type EsdbState } from './state.ts';

export function verify(log: EsdbState): Promise<VerifyResult> {
  return run(log, 'verify', async () => {
    const problems: VerifyProblem[] = [];
    let eventsChecked = 0;
    let bytesChecked = 0;
    const expectedRevision = new Map<string, bigint>();
    await scanAll(log, true, 'start', (event) => {
      if (visibleStream(log, event.streamId, event.type) === null) return true;
      eventsChecked++;
      const where = `${log.store} stream ${JSON.stringify(event.streamId)}`;
      const bytes = event.data as Uint8Array;
      if (bytes instanceof Uint8Array) bytesChecked += bytes.length;
      try {
        decode(log, event);
      } catch (error) {
        problems.push({ file: where, offset: Number(event.revision), reason: (error as Error).message });
      }
      // Revisions of a stream follow each other in $all; a gap is a lost event (or a soft delete and restart).
      const expected = expectedRevision.get(event.streamId) ?? 0n;
      if (event.revision < expected) {
        const reason = `revision ${event.revision} follows revision ${expected - 1n}`;
        problems.push({ file: where, offset: Number(event.revision), reason });
      }
      expectedRevision.set(event.streamId, event.revision + 1n);
      return true;
    });
    return { ok: problems.length === 0, eventsChecked, bytesChecked, problems };
  });
}
