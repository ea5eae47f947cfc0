/** roundlog: crash-proof, rewindable, auditable round logs for round-based training experiments. */
export { RoundlogError, InvalidArgumentError, ClosedError } from './errors.ts';
export { resolveRoot, rootLayout } from './root.ts';
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
export {
  decodeTensors,
  encodeTensors,
  TensorEncoding,
  type Tensor,
  type TensorDType,
  type TensorSet,
  type EncodedTensors,
} from './codec/tensors.ts';
export { decodeValue, encodeValue, ValueEncoding } from './codec/values.ts';
export { CorruptPayloadError, UnknownEncodingError } from './codec/errors.ts';
