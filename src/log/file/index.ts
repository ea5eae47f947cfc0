/**
 * The embedded file log: the default EventLog, no server needed. Segment files of framed,
 * checksummed records under one folder; appends are durable before they resolve and are
 * group-committed; one writer process at a time, any number of readers. See ARCHITECTURE.md.
 *
 * The operations live in their own modules around one shared state (state.ts): open.ts
 * (recovery), writer.ts, retry.ts (idempotent retries), reader.ts, follower.ts (subscriptions) and verify.ts.
 */
import type { Observable } from 'rxjs';
import type {
  AppendOptions,
  AppendResult,
  EventData,
  ListStreamsResult,
  ReadAllOptions,
  ReadAllResult,
  ReadStreamOptions,
  ReadStreamResult,
  SubscribeOptions,
  SubscriptionItem,
  VerifyResult,
} from '../types.ts';
import { subscribe } from './follower.ts';
import { closeLog, openLog } from './open.ts';

export { emitFileLogWarning } from './open.ts';
import type { FileEventLog, FileEventLogOptions, FileLogStats } from './options.ts';
import { checkStream, listStreams, readAll, readStream } from './reader.ts';
import type { FileLogState } from './state.ts';
import { verify } from './verify.ts';
import { appendOnce } from './retry.ts';

export type { FileEventLog, FileEventLogOptions, FileLogStats, FileLogWarning } from './options.ts';

/** Opens (creating when missing, unless read-only) the file log in `options.dir`. */
export async function openFileEventLog(options: FileEventLogOptions): Promise<FileEventLog> {
  return new FileLog(await openLog(options));
}

class FileLog implements FileEventLog {
  readonly dir: string;
  readonly readOnly: boolean;

  constructor(private readonly state: FileLogState) {
    this.dir = state.dir;
    this.readOnly = state.readOnly;
  }

  append(stream: string, events: readonly EventData[], options?: AppendOptions): Promise<AppendResult> {
    return appendOnce(this.state, stream, events, options);
  }

  readStream(stream: string, options?: ReadStreamOptions): Promise<ReadStreamResult> {
    return readStream(this.state, stream, options);
  }

  checkStream(stream: string, options?: { toRevision?: bigint }): Promise<void> {
    return checkStream(this.state, stream, options);
  }

  readAll(options?: ReadAllOptions): Promise<ReadAllResult> {
    return readAll(this.state, options);
  }

  listStreams(): Promise<ListStreamsResult> {
    return listStreams(this.state);
  }

  subscribe(options?: SubscribeOptions): Observable<SubscriptionItem> {
    return subscribe(this.state, options);
  }

  verify(): Promise<VerifyResult> {
    return verify(this.state);
  }

  close(): Promise<void> {
    return closeLog(this.state);
  }

  stats(): FileLogStats {
    return { ...this.state.counters, segments: this.state.segments.length };
  }
}
