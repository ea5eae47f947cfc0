/**
 * Verification of a file log: reads every segment whole, without the index, and reports each
 * record that fails its checksum, does not decode, or is out of position or revision order; one
 * damaged record is one problem (the records after it are checked from where it ends, or from the
 * next segment when its header is damaged too, and revisions they skip are not reported again).
 */
import { promises as fs } from 'node:fs';
import type { VerifyProblem, VerifyResult } from '../types.ts';
import { SEGMENT_HEADER_BYTES, SEGMENT_MAGIC, checkFrame, classifyTail, decodeRecordBody } from './format.ts';
import { checkOpen, type FileLogState } from './state.ts';

export async function verify(log: FileLogState): Promise<VerifyResult> {
  checkOpen(log);
  await log.flushing;
  const problems: VerifyProblem[] = [];
  const revisions = new Map<string, number>();
  let eventsChecked = 0;
  let bytesChecked = 0;
  let expectedPosition = 0;
  /**
   * Records skipped as damaged, or left unchecked at the end of a segment whose damage hides
   * where the next record starts: their streams are unknown, so a later record's revision may be
   * ahead by that many without being a problem of its own (one damage is reported once).
   */
  let unaccounted = 0;
  let previousComplete = true;
  for (const [i, segment] of log.segments.entries()) {
    const data = await fs.readFile(segment.file).catch((error: Error) => {
      problems.push({ file: segment.file, offset: 0, reason: `cannot read: ${(error as Error).message}` });
      return null;
    });
    if (data === null) {
      previousComplete = false;
      continue;
    }
    if (segment.base !== expectedPosition) {
      if (previousComplete || segment.base < expectedPosition) {
        const reason = `segment starts at position ${segment.base}, expected ${expectedPosition}`;
        problems.push({ file: segment.file, offset: 0, reason });
      } else {
        unaccounted += segment.base - expectedPosition;
      }
    }
    previousComplete = true;
    if (!data.subarray(0, SEGMENT_HEADER_BYTES).equals(SEGMENT_MAGIC)) {
      problems.push({ file: segment.file, offset: 0, reason: 'segment header is not a roundlog segment header' });
      previousComplete = false;
      expectedPosition = segment.base;
      continue;
    }
    const isLast = i === log.segments.length - 1;
    const limit = isLast ? segment.size : data.length;
    let offset = SEGMENT_HEADER_BYTES;
    let position = segment.base;
    while (offset < limit) {
      const check = checkFrame(data, offset, limit);
      if (check.kind === 'zeros') break;
      if (check.kind === 'bad' && check.end !== null) {
        // The header is sound: this one record is damaged, and the next starts where it ends.
        problems.push({
          file: segment.file,
          offset,
          reason: `${check.reason} (the record at log position ${position})`,
        });
        unaccounted++;
        bytesChecked += check.end - offset;
        offset = check.end;
        position++;
        continue;
      }
      if (check.kind !== 'ok') {
        const next = log.segments[i + 1];
        problems.push({
          file: segment.file,
          offset,
          reason:
            `${check.kind === 'bad' ? check.reason : 'record cut short'} (the record at log position ${position}); ` +
            `where the next record starts is unknown: the ${limit - offset} bytes from here to the end of the ` +
            `segment could not be checked` +
            (next === undefined ? '' : ` (the next segment starts at position ${next.base})`),
        });
        previousComplete = false;
        break;
      }
      try {
        const record = decodeRecordBody(data, check.bodyStart, check.end);
        const revision = revisions.get(record.stream) ?? 0;
        if (record.position !== position) {
          const reason = `record has position ${record.position}, expected ${position}`;
          problems.push({ file: segment.file, offset, reason });
        } else if (record.revision !== revision) {
          const ahead = record.revision - revision;
          if (ahead > 0 && ahead <= unaccounted) {
            unaccounted -= ahead;
          } else {
            const stream = JSON.stringify(record.stream);
            const reason = `record of stream ${stream} has revision ${record.revision}, expected ${revision}`;
            problems.push({ file: segment.file, offset, reason });
          }
        }
        revisions.set(record.stream, Math.max(revision, record.revision) + 1);
        eventsChecked++;
      } catch (error) {
        problems.push({ file: segment.file, offset, reason: `record cannot be decoded: ${(error as Error).message}` });
        unaccounted++;
      }
      bytesChecked += check.end - offset;
      offset = check.end;
      position++;
    }
    if (isLast) strayAfterData(data, segment.file, segment.size, problems);
    expectedPosition = position;
  }
  return { ok: problems.length === 0, eventsChecked, bytesChecked, problems };
}

/**
 * The zero-filled space after the data of the last segment must hold only zeros. Records a writer
 * in another process added since this handle looked are not stray bytes (their frames check).
 */
function strayAfterData(data: Buffer, file: string, end: number, problems: VerifyProblem[]): void {
  if (end >= data.length) return;
  const check = checkFrame(data, end);
  if (check.kind === 'ok') return;
  const verdict = classifyTail(data, end, check);
  if (verdict.kind !== 'stray') return;
  problems.push({
    file,
    offset: verdict.from,
    reason:
      `non-zero bytes (${verdict.to - verdict.from} bytes up to the last) in the zero-filled space after the ` +
      `end of the data at byte ${end}: no record, nothing committed is damaged, but a writer refuses to open ` +
      `over them; run 'roundlog verify --repair-tail' to cut them off`,
  });
}
