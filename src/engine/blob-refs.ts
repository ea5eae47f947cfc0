/**
 * The blob references an event carries, found by shape (`{ sha256, bytes, encoding }`) wherever
 * they are in its data, and the check that makes retention safe against concurrent writers.
 *
 * Retention deletes blobs while it holds the log's writer lock, and only blobs that no event
 * references. A writer stores its blobs before it takes the lock, so a blob it stored (or found
 * already stored: puts deduplicate) may be deleted before its event is appended. Every append of
 * the round log therefore checks, under the writer lock, that the blobs its events reference are
 * still in the store, and refuses the append otherwise: a committed event never points at a
 * deleted blob.
 */
import type { BlobRef, BlobStore } from '../blobs/types.ts';
import { RoundlogError } from '../errors.ts';
import { resumeCommand, type RemoteRun } from '../model/events.ts';

const SHA256_HEX = /^[0-9a-f]{64}$/;

export function isBlobRef(value: unknown): value is BlobRef {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.sha256 === 'string' &&
    SHA256_HEX.test(v.sha256) &&
    typeof v.bytes === 'number' &&
    typeof v.encoding === 'string'
  );
}

/** Every blob reference inside `value` (plain objects and arrays), in the order met. */
export function blobRefsIn(value: unknown, into: BlobRef[] = []): BlobRef[] {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value) || value instanceof Date) return into;
  if (isBlobRef(value)) {
    into.push(value);
    return into;
  }
  if (Array.isArray(value)) for (const item of value) blobRefsIn(item, into);
  else for (const item of Object.values(value)) blobRefsIn(item, into);
  return into;
}

/** An append referenced a blob that is no longer in the store; nothing was appended. */
export class ReferencedBlobMissingError extends RoundlogError {
  readonly code = 'REFERENCED_BLOB_MISSING' as const;
  constructor(
    readonly experiment: string,
    readonly sha256: string,
    readonly eventType: string,
    /** How the experiment's run trains on node processes (`ExperimentState.remote`), named in the command. */
    readonly remote: RemoteRun | null = null,
  ) {
    super(
      `experiment ${experiment}: the ${eventType} about to be appended references blob ${sha256}, ` +
        'which is no longer in the ' +
        `blob store (retention in another process deleted it after this process stored it); nothing was appended: ` +
        `run it again ('${resumeCommand(experiment, remote)}' for a round of a run, or the command that failed): ` +
        'it stores the blob anew',
    );
  }
}

/** Throws `ReferencedBlobMissingError` for the first referenced blob the store does not hold. */
export async function assertBlobsPresent(
  blobs: BlobStore,
  experiment: string,
  events: ReadonlyArray<Readonly<{ type: string; data: unknown }>>,
  remote: RemoteRun | null = null,
): Promise<void> {
  const checked = new Set<string>();
  for (const event of events) {
    for (const ref of blobRefsIn(event.data)) {
      if (checked.has(ref.sha256)) continue;
      checked.add(ref.sha256);
      if (!(await blobs.has(ref.sha256))) {
        throw new ReferencedBlobMissingError(experiment, ref.sha256, event.type, remote);
      }
    }
  }
}
