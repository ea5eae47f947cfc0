/** The round log: the EventLog port, its errors, and its adapters. */
export type {
  AppendOptions,
  AppendResult,
  Direction,
  EventData,
  EventLog,
  ExpectedRevision,
  ListStreamsResult,
  ReadAllOptions,
  ReadAllResult,
  ReadStreamOptions,
  ReadStreamResult,
  RecordedEvent,
  StreamInfo,
  SubscribeOptions,
  SubscriptionItem,
  VerifyProblem,
  VerifyResult,
} from './types.ts';
export { ANY, NO_STREAM, STREAM_EXISTS } from './types.ts';
export {
  AppendTooLargeError,
  CorruptLogError,
  LogLockedError,
  LogReadOnlyError,
  LogWriteFailedError,
  StoreRequestFailedError,
  StoreUnavailableError,
  StrayTailBytesError,
  StreamNotFoundError,
  WrongExpectedRevisionError,
} from './errors.ts';
export { getInMemoryEventLog, type InMemoryEventLogOptions } from './memory.ts';
export { IDEMPOTENCY_WINDOW } from './idempotence.ts';
export { openFileEventLog } from './file/index.ts';
export type { FileEventLog, FileEventLogOptions, FileLogWarning } from './file/options.ts';
