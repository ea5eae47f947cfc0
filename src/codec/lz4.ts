/** Raw LZ4 block compression with the uncompressed length carried beside the block. */
import lz4 from 'lz4';

/**
 * Compresses `input`; returns null when compression does not shrink it (the caller then keeps
 * the raw bytes and records that choice in its encoding).
 */
export function lz4Compress(input: Uint8Array): Buffer | null {
  const source = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const output = Buffer.allocUnsafe(lz4.encodeBound(source.length));
  const written = lz4.encodeBlock(source, output);
  if (written <= 0 || written >= source.length) return null;
  return output.subarray(0, written);
}

/** Decompresses a block whose uncompressed length is known; throws when the block is malformed. */
export function lz4Decompress(block: Uint8Array, uncompressedLength: number): Buffer {
  const source = Buffer.from(block.buffer, block.byteOffset, block.byteLength);
  const output = Buffer.allocUnsafe(uncompressedLength);
  const written = uncompressedLength === 0 ? 0 : lz4.decodeBlock(source, output);
  if (written !== uncompressedLength) {
    throw new Error(`malformed lz4 block: expected ${uncompressedLength} bytes, decoded ${written}`);
  }
  return output;
}
