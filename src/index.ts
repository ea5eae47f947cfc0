/** roundlog: crash-proof, rewindable, auditable round logs for round-based training experiments. */
export {
  RoundlogError,
  InvalidArgumentError,
  ClosedError,
  MissingDependencyError,
  StorageWriteError,
} from './errors.ts';
export {
  NotARootError,
  ROOT_MARKER_FILE,
  RootMarkerInvalidError,
  RootNotADirectoryError,
  RootNotFoundError,
  checkRoot,
  resolveRoot,
  rootLayout,
} from './root.ts';
export { PathOutsideError, NotARegularFileError, NotARealFolderError, FileTooLargeError } from './confine.ts';
export * from './log/index.ts';
export type { FileLogStats } from './log/file/options.ts';
export type {
  BlobRef,
  BlobSource,
  BlobStore,
  BlobProblem,
  DeleteResult,
  LinkOptions,
  LinkResult,
  PutOptions,
  PutResult,
  VerifyResult as BlobVerifyResult,
} from './blobs/types.ts';
export { RAW_ENCODING } from './blobs/types.ts';
export { BlobNotFoundError, BlobWriteFailedError, CorruptBlobError, LinkTargetExistsError } from './blobs/errors.ts';
export { openFileBlobStore, type FileBlobStore, type FileBlobStoreOptions } from './blobs/file.ts';
export { getInMemoryBlobStore } from './blobs/memory.ts';
export { openStreamBlobStore, type StreamBlobStore, type StreamBlobStoreOptions } from './blobs/streams.ts';
export {
  decodeTensors,
  encodeTensors,
  TensorEncoding,
  type Tensor,
  type TensorDType,
  type TensorSet,
  type EncodedTensors,
} from './codec/tensors.ts';
export {
  decodeSafetensors,
  decodeSafetensorsFile,
  encodeSafetensors,
  encodeSafetensorsChunks,
  MAX_TENSOR_RANK,
  type DecodedSafetensors,
  type EncodeSafetensorsOptions,
} from './codec/safetensors.ts';
export { TENSOR_DTYPES } from './codec/dtypes.ts';
export { bfloat16ToNumber, float16ToNumber, numberToBfloat16, numberToFloat16 } from './codec/float16.ts';
export { decodeValue, encodeValue, ValueEncoding } from './codec/values.ts';
export { npzArchive, npzNameProblem, npyHeader, NPY_DESCR, type NpzArchive, type NpzOptions } from './codec/npz.ts';
export { CorruptPayloadError, DecodeLimitError, UnknownEncodingError, UnsafeTensorNameError } from './codec/errors.ts';
export {
  DEFAULT_MAX_TENSOR_BYTES,
  DEFAULT_MAX_TENSOR_COUNT,
  DEFAULT_MAX_VALUE_BYTES,
  decodeLimits,
  setDecodeLimits,
  type DecodeLimits,
} from './codec/limits.ts';
export {
  openRoundLog,
  ExperimentHandle,
  type RoundLog,
  type OpenRoundLogOptions,
  type CreateExperimentOptions,
  type RecordRoundOptions,
  type RoundState,
} from './projections/index.ts';
export {
  BreakpointCorruptError,
  ConcurrentModificationError,
  ExperimentHistoryDamagedError,
  ExperimentNotFoundError,
  InvalidEventDataError,
  InvalidMetricNameError,
  MAX_METRIC_NAME_LENGTH,
  NoBreakpointError,
  NodeFailedError,
  RegistryDamagedError,
  RoundLimitReachedError,
  RoundNotFoundError,
  TrainingPlanChangedError,
  UnknownEventError,
  UnrecordableValueError,
} from './model/errors.ts';
export {
  Experiment,
  type ExperimentOptions,
  type LoadBreakpointOptions,
  type RoundProgress,
  type TrainingPlanLocation,
} from './federated/experiment.ts';
export type { ExperimentDefinition } from './federated/definition.ts';
export * from './model/events.ts';
export {
  evolve,
  replay,
  upcast,
  initialState,
  roundCurrent,
  currentParams,
  type ExperimentState,
  type RoundRecord,
  type Settings,
} from './model/state.ts';
export { Rng, deriveRng, type RngState } from './federated/rng.ts';
export {
  fedAvg,
  aggregatorFrom,
  type Aggregator,
  type AggregatorFactory,
  type AggregatorState,
  type AggregateContext,
  type AggregationRun,
  type NodeReply,
} from './federated/aggregators.ts';
export {
  allNodes,
  randomFraction,
  strategyFrom,
  type Strategy,
  type StrategyFactory,
  type StrategyState,
} from './federated/strategies.ts';
export type { ComponentRegistry, RegistrySource, FederatedRoundState } from './federated/components.ts';
export {
  selectDatasets,
  type TrainingPlan,
  type Federation,
  type Node,
  type Dataset,
  type RemoteTrainer,
  type RemoteTrainRequest,
  type StoredTrainResult,
} from './federated/training-plan.ts';
export * from './federated/errors.ts';
// Nodes as processes: the researcher's server, the node's files, the protocol's errors.
export {
  listenForNodes,
  RemoteFederation,
  type ConnectedNode,
  type ListenOptions,
} from './federated/remote/researcher.ts';
export { runNode, type NodeOptions } from './federated/remote/node.ts';
export { approvePlan, checkPlanFile, readApprovals, type ApprovedPlan } from './federated/remote/approvals.ts';
export {
  PLAN_DIGEST,
  PlanClosureError,
  closureChanges,
  closureDigest,
  planClosure,
  type ClosureChange,
  type PlanClosure,
  type PlanClosureFile,
} from './federated/plan-closure.ts';
export {
  DATASET_LOADERS,
  NUMERIC_CSV,
  loadNodeDataset,
  type NodeDataset,
  type NodeDatasetLoader,
} from './federated/remote/dataset.ts';
export * from './federated/remote/errors.ts';
export { DEFAULT_DATASET_CHANGE_POLICY, type DatasetChangePolicy } from './federated/fingerprints.ts';
export { DEFAULT_MAX_MESSAGE_BYTES, PROTOCOL_VERSION } from './federated/remote/protocol.ts';
export { ModuleLoadError, importModule } from './federated/load-module.ts';
export {
  replayRound,
  rewindExperiment,
  forkExperiment,
  RoundNotInHistoryError,
  type ReplayOptions,
  type ReplayResult,
  type RewindOptions,
  type RewindResult,
  type ForkOptions,
  type ForkResult,
  type RoundChoice,
  exportRound,
  exportFormatOf,
  exportFormatNamedBy,
  exportTargetProblem,
  ExportTargetError,
  EXPORT_FORMATS,
  type ExportFormat,
  type ExportOptions,
  type ExportResult,
  type ExportedTensor,
} from './projections/index.ts';
export {
  gc,
  applyRetention,
  planRetention,
  type GcOptions,
  type PruneReport,
  type RetentionPlan,
} from './projections/index.ts';
export { verifyRoot, type VerifyOptions, type VerifyReport, type CacheProblem } from './projections/index.ts';
export { repairRoot, type RepairReport, type UnhealableBlob } from './projections/index.ts';
export {
  projectRoot,
  followProjection,
  readProjectionCheckpoint,
  loadProjectionCheckpoint,
  ProjectionCheckpointMismatchError,
  type StoredProjectionCheckpoint,
  type ProjectOptions,
  type ProjectReport,
  type FollowProjectionOptions,
  type ProjectionUpdate,
  type ProjectionCheckpoint,
} from './projections/index.ts';
export {
  tensorboardRuns,
  tensorboardDir,
  roundScalars,
  readEventFile,
  decodeEvent,
  fileVersionEvent,
  scalarsEvent,
  frameRecord,
  readRecords,
  crc32c,
  maskedCrc32c,
  TENSORBOARD_DIR,
  SUPERSEDED_RUNS_DIR,
  OWN_EVENT_FILE,
  FILE_VERSION,
  RECORD_OVERHEAD,
  type TensorboardRun,
  type TensorboardEvent,
  type EventFileContents,
  type Scalar,
  type ReadRecordsResult,
} from './projections/tensorboard/index.ts';
export { ProjectionLockedError, PROJECTION_LOCK_WAIT_MS } from './engine/projection-lock.ts';
export { BLOBS_IN_STORE, type StoreOptions, type LogAccess } from './engine/store.ts';
export { ReferencedBlobMissingError } from './engine/blob-refs.ts';
export { RoundPrunedError } from './model/errors.ts';
export * from './audit/index.ts';
