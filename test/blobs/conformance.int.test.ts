/**
 * The BlobStore conformance suite on the file store and on the stream store (over the in-memory
 * event log, with and without a stream-deleting backend). The EventStoreDB run is in
 * test/esdb/blobs.int.test.ts.
 */
import test from 'ava';
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openFileBlobStore } from '../../src/blobs/file.ts';
import { openStreamBlobStore } from '../../src/blobs/streams.ts';
import { getInMemoryEventLog } from '../../src/log/memory.ts';
import { blobStoreConformance, damageFileBlob, damageStreamBlob } from '../../src/testing/index.ts';

const root = await fs.mkdtemp(path.join(os.tmpdir(), 'roundlog-blob-conformance-'));
test.after.always(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

blobStoreConformance(test, {
  name: 'file',
  open: () => openFileBlobStore({ dir: path.join(root, randomUUID(), 'blobs') }),
  damage: damageFileBlob,
});

blobStoreConformance(test, {
  name: 'streams (in-memory log)',
  open: async () => openStreamBlobStore({ log: getInMemoryEventLog(), ownsLog: true, chunkBytes: 1000 }),
  damage: damageStreamBlob,
});
