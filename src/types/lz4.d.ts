// Types for the parts of the `lz4` package roundlog uses (the package ships none).
declare module 'lz4' {
  /** Worst-case compressed size of `length` input bytes. */
  export function encodeBound(length: number): number;
  /** Compresses `input` into `output` as one raw LZ4 block; returns the bytes written, 0 if incompressible. */
  export function encodeBlock(input: Buffer, output: Buffer, startIdx?: number, endIdx?: number): number;
  /** Decompresses one raw LZ4 block into `output`; returns the bytes written, negative on malformed input. */
  export function decodeBlock(input: Buffer, output: Buffer, startIdx?: number, endIdx?: number): number;
  const lz4: {
    encodeBound: typeof encodeBound;
    encodeBlock: typeof encodeBlock;
    decodeBlock: typeof decodeBlock;
  };
  export default lz4;
}
