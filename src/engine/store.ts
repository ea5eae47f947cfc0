/**
 * Where a root keeps its history and its parameters: the embedded file log under `<root>/log`
 * (the default), or an EventStoreDB cluster named by a connection string; blobs in a folder
 * (`<root>/blobs`, or a shared path) or chunked into streams of the cluster.
 *
 * The EventStoreDB driver is loaded only when a connection string is given, through the
 * `roundlog/esdb` module: a root on the file log never loads it.
 */
import path from 'node:path';
import { openFileBlobStore } from '../blobs/file.ts';
import type { BlobStore } from '../blobs/types.ts';
import { InvalidArgumentError, MissingDependencyError, isMissingPackage } from '../errors.ts';
import { openFileEventLog } from '../log/file/index.ts';
import type { EventLog } from '../log/types.ts';
import { checkRoot, prepareRoot, rootLayout } from '../root.ts';

/** The EventStoreDB driver: an optional peer dependency, installed only by those who use an esdb:// store. */
const ESDB_DRIVER = '@eventstore/db-client';

/** The value of `--blobs` / `ROUNDLOG_BLOBS` that keeps parameters in streams of the EventStoreDB store. */
export const BLOBS_IN_STORE = 'esdb';
/** Prefix of the streams the chunked blob store writes; the experiments' log does not show them. */
export const BLOB_STREAM_PREFIX = 'roundlog.blob-';

export type StoreOptions = {
  /** An EventStoreDB connection string (`esdb://…`); default `ROUNDLOG_STORE`, else the file log of the root. */
  store?: string;
  /**
   * Where parameters go: a folder (shared between machines when the log is on EventStoreDB), or
   * `'esdb'` for chunked streams of the EventStoreDB store. Default `ROUNDLOG_BLOBS`, else `<root>/blobs`.
   */
  blobs?: string;
  /** Prefix of every EventStoreDB stream of this root. Default `ROUNDLOG_NAMESPACE`, else none. */
  namespace?: string;
  env?: NodeJS.ProcessEnv;
  /** File log only: how long a write waits for another process's writer lock. */
  lockWaitMs?: number;
  /**
   * File log only: a writer cuts off non-zero bytes found in the zero-filled space after the data
   * (`repairTail` of the file log) instead of refusing to open. Default false.
   */
  repairTail?: boolean;
  clock?: () => Date;
  newId?: () => string;
  /**
   * File log only. `true` (the default): the root is created if needed and given its marker.
   * `false`: the root must already be one (`checkRoot`), and nothing is created in it by opening.
   */
  createRoot?: boolean;
};

/** How the engine reaches the log, whatever the backend. */
export interface LogAccess {
  /** `file log <dir>` or `EventStoreDB esdb://…` (no credentials), for messages. */
  readonly description: string;
  readonly kind: 'file' | 'esdb';
  /**
   * Runs `fn` with the log open for appends. On the file log this waits for the writer lock and
   * closes the log afterwards; on EventStoreDB optimistic concurrency alone orders writers.
   */
  withWriter<T>(fn: (log: EventLog) => Promise<T>): Promise<T>;
  /** Runs `fn` with the log open for reads. */
  withReader<T>(fn: (log: EventLog) => Promise<T>): Promise<T>;
  /** A handle that sees events appended by other processes, for subscriptions; the caller closes it. */
  openFollower(options?: { pollIntervalMs?: number }): Promise<EventLog>;
  close(): Promise<void>;
}

export type Store = Readonly<{ log: LogAccess; blobs: BlobStore; blobsDescription: string }>;

/** The connection string in effect, or null for the file log. */
export function storeOf(options: Pick<StoreOptions, 'store' | 'env'> = {}): string | null {
  const value = options.store ?? (options.env ?? process.env).ROUNDLOG_STORE;
  if (value === undefined || value === '' || value === 'file') return null;
  if (!/^esdb(\+discover)?:\/\//.test(value)) {
    throw new InvalidArgumentError(
      'store',
      "must be an EventStoreDB connection string (esdb://host:2113?tls=false) or 'file'",
      value,
    );
  }
  return value;
}

export async function openStore(root: string, options: StoreOptions = {}): Promise<Store> {
  const env = options.env ?? process.env;
  const connectionString = storeOf(options);
  const blobsOption = options.blobs ?? env.ROUNDLOG_BLOBS ?? undefined;
  const namespace = options.namespace ?? env.ROUNDLOG_NAMESPACE ?? '';
  if (connectionString === null) {
    if (blobsOption === BLOBS_IN_STORE) {
      throw new InvalidArgumentError(
        'blobs',
        "'esdb' keeps parameters in EventStoreDB streams and needs an EventStoreDB store (--store esdb://…)",
        blobsOption,
      );
    }
    if (options.createRoot === false) await checkRoot(root);
    else await prepareRoot(root);
    const blobsDir = path.resolve(blobsOption ?? rootLayout(root).blobs);
    return {
      log: fileLogAccess(root, options),
      blobs: await openFileBlobStore({ dir: blobsDir }),
      blobsDescription: blobsDir,
    };
  }
  const esdb = await import('../log/esdb/index.ts').catch((error: unknown) => {
    throw isMissingPackage(error, ESDB_DRIVER)
      ? new MissingDependencyError(ESDB_DRIVER, 'an EventStoreDB store (esdb://…)', { cause: error })
      : error;
  });
  const open = (hide: readonly string[]) =>
    esdb.openEsdbEventLog({
      connectionString,
      namespace,
      hide,
      ...(options.newId === undefined ? {} : { newId: options.newId }),
    });
  const log = await open([BLOB_STREAM_PREFIX]);
  let blobs: BlobStore;
  let blobsDescription: string;
  try {
    if (blobsOption === BLOBS_IN_STORE) {
      const { openStreamBlobStore } = await import('../blobs/streams.ts');
      const blobLog = await open([]);
      blobs = openStreamBlobStore({
        log: blobLog,
        ownsLog: true,
        prefix: BLOB_STREAM_PREFIX,
        deleteStream: (stream) => blobLog.deleteStream(stream),
      });
      blobsDescription = `${log.store} (streams ${namespace}${BLOB_STREAM_PREFIX}*)`;
    } else {
      blobsDescription = path.resolve(blobsOption ?? rootLayout(root).blobs);
      blobs = await openFileBlobStore({ dir: blobsDescription });
    }
  } catch (error) {
    await log.close();
    throw error;
  }
  const access: LogAccess = {
    kind: 'esdb',
    description: `EventStoreDB ${log.store}${namespace === '' ? '' : ` (namespace ${namespace})`}`,
    withWriter: (fn) => fn(log),
    withReader: (fn) => fn(log),
    openFollower: () => open([BLOB_STREAM_PREFIX]),
    close: () => log.close(),
  };
  return { log: access, blobs, blobsDescription };
}

function fileLogAccess(root: string, options: StoreOptions): LogAccess {
  const dir = rootLayout(root).log;
  return {
    kind: 'file',
    description: `file log ${dir}`,
    async withWriter(fn) {
      const log = await openFileEventLog({
        dir,
        lockWaitMs: options.lockWaitMs ?? 30_000,
        ...(options.repairTail === true ? { repairTail: true } : {}),
        ...(options.clock === undefined ? {} : { clock: options.clock }),
        ...(options.newId === undefined ? {} : { newId: options.newId }),
      });
      try {
        return await fn(log);
      } finally {
        await log.close();
      }
    },
    async withReader(fn) {
      const log = await openFileEventLog({ dir, readOnly: true });
      try {
        return await fn(log);
      } finally {
        await log.close();
      }
    },
    openFollower(followOptions = {}) {
      const pollIntervalMs = followOptions.pollIntervalMs ?? 50;
      if (!Number.isInteger(pollIntervalMs) || pollIntervalMs < 1) {
        throw new InvalidArgumentError('pollIntervalMs', 'must be a positive integer', followOptions.pollIntervalMs);
      }
      return openFileEventLog({ dir, readOnly: true, pollIntervalMs });
    },
    close: async () => undefined,
  };
}
