/**
 * Verification of a file log: reads every segment whole, without the index, and reports each
 * record that fails its checksum, does not decode, or is out of position or revision order; one
 * damaged record is one problem (the records after it are checked from where it ends, or from the
 * next segment when its header is damaged too, and revisions they skip are not reported again).
 *
 * The caches beside the segments are checked too, against what the walk found: every index file
 * (`.seg.idx`: each chunk's checksum, the offsets and stream numbers it lists) and the heads
 * checkpoint (`heads.ckpt`: its checksum, and every stream's head at the end of the segments it
 * covers). A damaged cache is ignored by the log (it reads the records instead), and the problem
 * says so.
 */
import path from 'node:path';
import { NotARegularFileError, readRegularFile, type FileTooLargeError } from '../../confine.ts';
import type { VerifyProblem, VerifyResult } from '../types.ts';
import {
  HEADS_FILE,
  INDEX_SUFFIX,
  SEGMENT_HEADER_BYTES,
  SEGMENT_MAGIC,
  checkFrame,
  classifyTail,
  decodeHeads,
  decodeIndexChunks,
  decodeRecordBody,
  readCacheFile,
  type HeadsCheckpoint,
} from './format.ts';
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
  /**
   * Records skipped as damaged, or left unchecked at the end of a segment whose damage hides
   * where the next record starts: their streams are unknown, so a later record's revision may be
   * ahead by that many without being a problem of its own (one damage is reported once).
   */
  let unaccounted = 0;
  let previousComplete = true;
  const headsFile = path.join(log.dir, HEADS_FILE);
  const { bytes: headsBytes, refused: headsRefused } = await readCacheFile(
    headsFile,
    'heads checkpoint',
    MAX_SEGMENT_FILE_BYTES,
  );
  if (headsRefused !== null) {
    problems.push({
      file: headsFile,
      offset: 0,
      reason:
        `${refusalOf(headsRefused)}: the log ignores it and reads every segment when it opens (nothing wrong ` +
        "is used); 'roundlog verify --repair' removes it now",
    });
  }
  const heads = headsBytes === null ? null : decodeHeads(headsBytes);
  if (headsBytes !== null && heads === null) {
    problems.push({
      file: headsFile,
      offset: 0,
      reason:
        'the heads checkpoint fails its checksum or does not decode: the log ignores it and reads every ' +
        'segment when it opens (nothing wrong is used); the next sealed segment writes it again, and ' +
        "'roundlog verify --repair' removes it now",
    });
  }
  /** Every stream's head as the walk finds it, streams in the order of their first event (their numbers). */
  const walked = new Map<string, { num: number; count: number; first: number; last: number }>();
  let headsFound: HeadsCheckpoint | null = null;
  for (const [i, segment] of log.segments.entries()) {
    const seen: Seen = { offsets: [], streams: [], complete: true, clean: unaccounted === 0 && previousComplete };
    // Bounded and only a regular file: a segment replaced by a device is a problem, not read.
    const data = await readRegularFile(segment.file, 'log segment', MAX_SEGMENT_FILE_BYTES).catch((error: Error) => {
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
        seen.clean = false;
        seen.offsets.push(offset);
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
        seen.complete = false;
        break;
      }
      seen.offsets.push(offset);
      try {
        const record = decodeRecordBody(data, check.bodyStart, check.end);
        const head = walked.get(record.stream) ?? { num: walked.size, count: 0, first: position, last: position };
        walked.set(record.stream, { ...head, count: record.revision + 1, last: position });
        seen.streams.push(head.num);
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
        seen.clean = false;
      }
      bytesChecked += check.end - offset;
      offset = check.end;
      position++;
    }
    if (isLast) strayAfterData(data, segment.file, segment.size, problems);
    expectedPosition = position;
    await checkIndex(segment.file + INDEX_SUFFIX, seen, isLast, problems);
    if (heads !== null && i === heads.segments - 1) {
      headsFound = {
        segments: heads.segments,
        nextPosition: position,
        streams: [...walked].map(([name, h]) => [name, h.count, h.first, h.last]),
      };
    }
  }
  if (heads !== null && JSON.stringify(heads) !== JSON.stringify(headsFound)) {
    problems.push({
      file: headsFile,
      offset: 0,
      reason:
        headsFound === null
          ? `the heads checkpoint covers ${heads.segments} segments where the log has ${log.segments.length}: ` +
            "the log ignores it (nothing wrong is used); 'roundlog verify --repair' removes it"
          : `the heads checkpoint does not match the records of the ${heads.segments} segments it covers ` +
            `(it says ${heads.nextPosition} events in ${heads.streams.length} streams, the records ` +
            `${headsFound.nextPosition} in ${headsFound.streams.length}); ` +
            "'roundlog verify --repair' removes it (the log then rebuilds the heads from the records)",
    });
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

/** Why a cache file was not opened: what it is instead of a regular file, or its size. */
function refusalOf(refused: NotARegularFileError | FileTooLargeError): string {
  return refused instanceof NotARegularFileError
    ? `it is a ${refused.kind}, not a regular file (never opened)`
    : `it holds ${refused.size} bytes, more than a cache of it can (never read)`;
}

/** What to do about a damaged segment index (a cache of the record offsets). */
const REBUILD_INDEX =
  "'roundlog verify --repair' (or a writer opened with rebuildIndexes) writes it again from the segment";

/** What the walk found in one segment: its record offsets, and their stream numbers while no record was skipped. */
type Seen = { offsets: number[]; streams: number[]; complete: boolean; clean: boolean };

/**
 * A segment's index against the records found: every chunk's checksum, then the offsets and
 * stream numbers it lists. A torn last chunk of the active segment's index is what a crash leaves
 * (index chunks are not fsynced) and is not a problem.
 */
async function checkIndex(file: string, seen: Seen, isLast: boolean, problems: VerifyProblem[]): Promise<void> {
  const { bytes: buf, refused } = await readCacheFile(file, 'segment index', MAX_SEGMENT_FILE_BYTES);
  if (refused !== null) {
    problems.push({
      file,
      offset: 0,
      reason:
        `${refusalOf(refused)}: the log ignores it and reads those records from the segment ` +
        `(nothing wrong is used); ${REBUILD_INDEX}`,
    });
  }
  if (buf === null) return;
  const { chunks, validBytes } = decodeIndexChunks(buf);
  if (validBytes < buf.length) {
    const torn = validBytes + 8 > buf.length || validBytes + 8 + buf.readUInt32LE(validBytes) > buf.length;
    if (!(torn && isLast)) {
      problems.push({
        file,
        offset: validBytes,
        reason:
          `the index chunk at byte ${validBytes} fails its checksum or does not decode: the log ignores it and ` +
          `the chunks after it and reads those records from the segment (nothing wrong is used); ` +
          "'roundlog verify --repair' (or a writer opened with rebuildIndexes) writes it again from the segment",
      });
    }
  }
  const listed = chunks.flatMap((chunk) => [...chunk.offsets]);
  const streams = chunks.flatMap((chunk) => [...chunk.streams]);
  for (let j = 0; j < Math.min(listed.length, seen.offsets.length); j++) {
    if (listed[j] !== seen.offsets[j] || (seen.clean && j < seen.streams.length && streams[j] !== seen.streams[j])) {
      problems.push({
        file,
        offset: 0,
        reason:
          (listed[j] !== seen.offsets[j]
            ? `the index lists record ${j} at byte ${listed[j]} where the segment has it at byte ${seen.offsets[j]}`
            : `the index gives record ${j} stream number ${streams[j]} ` +
              `where its record is of stream ${seen.streams[j]}`) + `; ${REBUILD_INDEX}`,
      });
      return;
    }
  }
  if (listed.length > seen.offsets.length && seen.complete) {
    problems.push({
      file,
      offset: 0,
      reason:
        `the index lists ${listed.length} records where the segment holds ${seen.offsets.length}; ` + REBUILD_INDEX,
    });
  }
}
