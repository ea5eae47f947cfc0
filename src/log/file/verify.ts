/**
 * Verification of a file log: reads every segment whole, without the index, and reports each
 * record that fails its checksum, does not decode, or is out of position or revision order.
 */
import { readRegularFile } from '../../confine.ts';
import type { VerifyProblem, VerifyResult } from '../types.ts';
import { SEGMENT_HEADER_BYTES, SEGMENT_MAGIC, checkFrame, decodeRecordBody } from './format.ts';
import { checkOpen, type FileLogState } from './state.ts';

/** The largest segment a log writes (`segmentBytes` is at most 1 GiB), with its header. */
const MAX_SEGMENT_FILE_BYTES = 1024 * 1024 * 1024 + 4096;

export async function verify(log: FileLogState): Promise<VerifyResult> {
  checkOpen(log);
  await log.flushing;
  const problems: VerifyProblem[] = [];
  const revisions = new Map<string, number>();
  let eventsChecked = 0;
  let bytesChecked = 0;
  let expectedPosition = 0;
  for (const [i, segment] of log.segments.entries()) {
    // Bounded and only a regular file: a segment replaced by a device is a problem, not read.
    const data = await readRegularFile(segment.file, 'log segment', MAX_SEGMENT_FILE_BYTES).catch((error: Error) => {
      problems.push({ file: segment.file, offset: 0, reason: `cannot read: ${error.message}` });
      return null;
    });
    if (data === null) continue;
    if (segment.base !== expectedPosition) {
      const reason = `segment starts at position ${segment.base}, expected ${expectedPosition}`;
      problems.push({ file: segment.file, offset: 0, reason });
    }
    if (!data.subarray(0, SEGMENT_HEADER_BYTES).equals(SEGMENT_MAGIC)) {
      problems.push({ file: segment.file, offset: 0, reason: 'segment header is not a roundlog segment header' });
      continue;
    }
    const isLast = i === log.segments.length - 1;
    const limit = isLast ? segment.size : data.length;
    let offset = SEGMENT_HEADER_BYTES;
    let position = segment.base;
    while (offset < limit) {
      const check = checkFrame(data, offset, limit);
      if (check.kind === 'zeros') break;
      if (check.kind !== 'ok') {
        problems.push({
          file: segment.file,
          offset,
          reason:
            `${check.kind === 'bad' ? check.reason : 'record cut short'}; ` +
            `the ${limit - offset} bytes from here to the end of the segment could not be checked`,
        });
        break;
      }
      try {
        const record = decodeRecordBody(data, check.bodyStart, check.end);
        const revision = revisions.get(record.stream) ?? 0;
        if (record.position !== position) {
          const reason = `record has position ${record.position}, expected ${position}`;
          problems.push({ file: segment.file, offset, reason });
        } else if (record.revision !== revision) {
          const stream = JSON.stringify(record.stream);
          const reason = `record of stream ${stream} has revision ${record.revision}, expected ${revision}`;
          problems.push({ file: segment.file, offset, reason });
        }
        revisions.set(record.stream, revision + 1);
        eventsChecked++;
      } catch (error) {
        problems.push({ file: segment.file, offset, reason: `record cannot be decoded: ${(error as Error).message}` });
      }
      bytesChecked += check.end - offset;
      offset = check.end;
      position++;
    }
    expectedPosition = position;
  }
  return { ok: problems.length === 0, eventsChecked, bytesChecked, problems };
}
