/**
 * For tests that call `RemoteTrainer.train` directly: a `storeReply` that keeps replies in an
 * in-memory blob store, and the reply's parameters read back from it.
 */
import { getInMemoryBlobStore } from '../../src/blobs/memory.ts';
import type { BlobRef } from '../../src/blobs/types.ts';
import { SAFETENSORS_ENCODING, decodeSafetensors, encodeSafetensors } from '../../src/codec/safetensors.ts';
import type { TensorSet } from '../../src/codec/tensors.ts';
import type { RemoteTrainRequest } from '../../src/federated/training-plan.ts';

export type ReplyStore = {
  storeReply: RemoteTrainRequest['storeReply'];
  /** The stored reply's tensors. */
  tensors(ref: BlobRef): Promise<TensorSet>;
};

export function replyStore(): ReplyStore {
  const blobs = getInMemoryBlobStore();
  return {
    storeReply: (chunks) => blobs.putStream(chunks, { encoding: SAFETENSORS_ENCODING }),
    tensors: async (ref) => decodeSafetensors(await blobs.get(ref)),
  };
}

/** A request's `params` and `storeReply` for `tensors`. */
export function requestParams(tensors: TensorSet, store: ReplyStore = replyStore()) {
  return { params: encodeSafetensors(tensors), storeReply: store.storeReply };
}
