/** Typed errors raised when stored payloads are decoded. */
import { RoundlogError, shownText } from '../errors.ts';

/** The payload names an encoding this build cannot read. */
export class UnknownEncodingError extends RoundlogError {
  readonly code = 'UNKNOWN_ENCODING' as const;
  constructor(
    readonly encoding: string,
    readonly known: readonly string[],
    /** Where the payload came from (a blob, a file), when the caller said. */
    readonly source: string | undefined,
  ) {
    super(
      `unknown encoding ${JSON.stringify(encoding)}${source === undefined ? '' : ` for ${source}`}; ` +
        `this build of roundlog reads ${known.map((name) => JSON.stringify(name)).join(', ')}. ` +
        `The payload was written by a newer roundlog, or the encoding recorded beside it is wrong: ` +
        `upgrade roundlog, or check the reference that recorded the encoding`,
    );
  }
}

/** The bytes do not parse under the encoding they were recorded with. */
export class CorruptPayloadError extends RoundlogError {
  readonly code = 'CORRUPT_PAYLOAD' as const;
  constructor(
    readonly encoding: string,
    readonly reason: string,
    /** Where the payload came from (a blob, a file), when the caller said. */
    readonly source: string | undefined,
    cause?: unknown,
    /** Where in the payload the fault is (bytes from its start), when it is at one place. */
    readonly byteOffset?: number,
  ) {
    super(
      `corrupt ${encoding} payload${source === undefined ? '' : ` in ${source}`}: ${reason}` +
        `${byteOffset === undefined ? '' : ` (at byte ${byteOffset})`}. ` +
        `The bytes are not what the encoder wrote (damaged storage, truncated copy, or a wrong ` +
        `encoding recorded beside them): restore them from a copy, or re-create them from the round log`,
      cause === undefined ? undefined : { cause },
    );
  }
}

/**
 * Decoding would take more memory than the configured maximum (or nest deeper than the limit):
 * refused before anything is allocated. When reading stored bytes, either they are damaged or
 * crafted, or the maximum is too low for this data; when recording a value (`writing`), nothing is
 * written, since every reader would refuse it.
 */
export type DecodeLimitOptions = {
  /**
   * `declared` (default): a size the bytes state (a length prefix, a tensor's shape, a count);
   * `estimated`: the memory the decoded value would take, estimated from the msgpack bytes
   * (`checkMsgpack` in limits.ts says how); `depth`: levels of nesting.
   */
  measure?: 'declared' | 'estimated' | 'depth';
  /** What `declared` and `limit` count when not bytes (`tensors`, `metadata entries`). Default bytes. */
  unit?: string;
  /** Whether a value being recorded was refused (nothing written), rather than stored bytes being read. */
  writing?: boolean;
  /** Where in the payload the count went over (bytes from its start), when it is at one place. */
  byteOffset?: number;
};

export class DecodeLimitError extends RoundlogError {
  readonly code = 'DECODE_LIMIT' as const;
  /** What `declared` measures (see `DecodeLimitOptions.measure`). */
  readonly measure: 'declared' | 'estimated' | 'depth';
  /** What `declared` and `limit` count: `bytes`, `levels` for nesting, `tensors`, ... */
  readonly unit: string;
  /** True when a value being recorded was refused (nothing was written). */
  readonly writing: boolean;
  /** Where in the payload the count went over, when it is at one place. */
  readonly byteOffset?: number;
  constructor(
    /** What was being decoded or encoded (a log value, a tensor set, a header). */
    readonly what: string,
    /** The size, in bytes, declared by the bytes or estimated (see `measure`); or the depth, for nesting. */
    readonly declared: number,
    readonly limit: number,
    /** Where the maximum comes from (an environment variable), so it can be raised. */
    readonly setting: string,
    options: DecodeLimitOptions = {},
  ) {
    const measure = options.measure ?? (setting === 'the depth limit' ? 'depth' : 'declared');
    const unit = options.unit ?? 'bytes';
    const writing = options.writing ?? false;
    const { byteOffset } = options;
    const at = byteOffset === undefined ? '' : `, the first past it at byte ${byteOffset}`;
    const size =
      measure === 'depth'
        ? `nests ${declared} levels deep, over the maximum of ${limit} (${setting})`
        : measure === 'estimated'
          ? `would take an estimated ${declared} bytes of memory once decoded, over the maximum of ${limit} ` +
            `bytes (${setting})`
          : unit === 'bytes'
            ? `would take ${declared} bytes once decoded, over the maximum of ${limit} bytes (${setting})${at}`
            : `holds ${declared} ${unit}, over the maximum of ${limit} (${setting})${at}`;
    const advice = writing
      ? measure === 'depth'
        ? 'nothing was recorded, since no reader would accept it: flatten it'
        : 'nothing was recorded, since every reader would refuse it: make it smaller (large numeric arrays ' +
          `belong in a round's parameters, as tensors), or raise ${setting} in the ` +
          'environment of every roundlog process that writes or reads this root'
      : 'nothing was allocated. The bytes are damaged or were not written by roundlog; if they are genuine, ' +
        (measure === 'depth' ? 'they cannot be read by this build' : `raise ${setting} and try again`);
    super(`${what} ${size}; ${advice}`);
    this.measure = measure;
    this.unit = measure === 'depth' ? 'levels' : unit;
    this.writing = writing;
    if (byteOffset !== undefined) this.byteOffset = byteOffset;
  }
}

/**
 * A tensor's name cannot be the name of an entry `<name>.npy` of a `.npz` archive (`npzNameProblem`
 * in npz.ts says why: empty, a control character, a backslash, an absolute path, a `.`, `..` or
 * empty path segment). The safetensors format keeps any name: export in it instead.
 */
export class UnsafeTensorNameError extends RoundlogError {
  readonly code = 'UNSAFE_TENSOR_NAME' as const;
  constructor(
    /** The tensor's name. */
    readonly tensor: string,
    readonly reason: string,
    /** Where the tensors come from (a round of an experiment), when the caller said. */
    readonly source: string | undefined,
  ) {
    super(
      `tensor ${shownText(tensor)}${source === undefined ? '' : ` of ${source}`} ${reason}: it cannot be an ` +
        `entry of a .npz archive (numpy.load names each array by its entry, <name>.npy). ` +
        `Export in the safetensors format, which keeps any name`,
    );
  }
}
