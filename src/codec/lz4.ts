/**
 * Raw LZ4 block compression (the block format of the LZ4 spec, no frame, no length prefix), the
 * one place roundlog calls an LZ4 library. Stored data names only the format, so either backend
 * reads what the other wrote:
 *
 * - `lz4` (C, built by node-gyp at install): the faster one, an optional dependency that is
 *   used where it built;
 * - `lz4-napi` (Rust lz4_flex, prebuilt binaries for every common platform): always installed,
 *   used where `lz4` did not build (no C compiler, install scripts off).
 *
 * `ROUNDLOG_LZ4=lz4-napi` forces the prebuilt one. bench/lz4-backends.ts compares the two.
 */
import { createRequire } from 'node:module';

type Backend = {
  readonly name: 'lz4' | 'lz4-napi';
  /** One block of `input` that is shorter than it, or null. */
  compress(input: Buffer): Buffer | null;
  /** Decodes `block` into `target`; returns the bytes written, or -1 for a malformed block. */
  decompressInto(block: Buffer, target: Buffer): number;
};

type NativeLz4 = {
  encodeBlock(input: Buffer, output: Buffer): number;
  decodeBlock(input: Buffer, output: Buffer): number;
};
type NapiLz4 = {
  compressSync(data: Buffer): Buffer;
  uncompressSync(data: Uint8Array): Buffer;
};

const require = createRequire(import.meta.url);

function nativeBackend(): Backend | null {
  let lz4: NativeLz4;
  try {
    lz4 = require('lz4') as NativeLz4;
  } catch {
    return null; // not installed, or its native build failed
  }
  return {
    name: 'lz4',
    compress(input) {
      // A destination one byte short of the input makes lz4 give up as soon as the block cannot
      // be smaller; untouched pages of it are never allocated by the OS.
      const output = Buffer.allocUnsafeSlow(input.length - 1);
      const written = lz4.encodeBlock(input, output);
      return written > 0 ? output.subarray(0, written) : null;
    },
    decompressInto(block, target) {
      const written = lz4.decodeBlock(block, target);
      return written < 0 ? -1 : written;
    },
  };
}

function napiBackend(): Backend {
  const lz4 = require('lz4-napi') as NapiLz4;
  return {
    name: 'lz4-napi',
    compress(input) {
      // lz4_flex puts the u32 LE uncompressed length before the block.
      const prefixed = lz4.compressSync(input);
      return prefixed.length - 4 < input.length ? prefixed.subarray(4) : null;
    },
    decompressInto(block, target) {
      const prefixed = Buffer.allocUnsafe(4 + block.length);
      prefixed.writeUInt32LE(target.length, 0);
      block.copy(prefixed, 4);
      let output: Buffer;
      try {
        output = lz4.uncompressSync(prefixed);
      } catch {
        return -1;
      }
      if (output.length > target.length) return -1;
      return output.copy(target);
    },
  };
}

const backend: Backend = (process.env.ROUNDLOG_LZ4 === 'lz4-napi' ? null : nativeBackend()) ?? napiBackend();

/** The library in use: `'lz4'` or `'lz4-napi'`. */
export const LZ4_BACKEND: 'lz4' | 'lz4-napi' = backend.name;

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Compresses `input`; returns null when compression does not shrink it (the caller then keeps
 * the raw bytes and records that choice in its encoding).
 */
export function lz4Compress(input: Uint8Array): Buffer | null {
  if (input.byteLength === 0) return null;
  return backend.compress(asBuffer(input));
}

/**
 * Decodes one block into `target`, whose length is the uncompressed length; returns the bytes
 * written, or -1 when the block is malformed.
 */
export function lz4DecompressInto(block: Uint8Array, target: Buffer): number {
  if (target.length === 0) return block.byteLength === 0 ? 0 : -1;
  return backend.decompressInto(asBuffer(block), target);
}

/** Decompresses a block whose uncompressed length is known; throws when the block is malformed. */
export function lz4Decompress(block: Uint8Array, uncompressedLength: number): Buffer {
  const output = Buffer.allocUnsafe(uncompressedLength);
  const written = uncompressedLength === 0 ? 0 : lz4DecompressInto(block, output);
  if (written !== uncompressedLength) {
    throw new Error(`malformed lz4 block: expected ${uncompressedLength} bytes, decoded ${written}`);
  }
  return output;
}
