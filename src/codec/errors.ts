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
 * refused before anything is allocated. Either the bytes are damaged or crafted, or the maximum is
 * too low for this data.
 */
export class DecodeLimitError extends RoundlogError {
  readonly code = 'DECODE_LIMIT' as const;
  constructor(
    /** What was being decoded (a log value, a tensor set, a header). */
    readonly what: string,
    /** The size declared or estimated, in bytes (or the depth, for nesting). */
    readonly declared: number,
    readonly limit: number,
    /** Where the maximum comes from (an environment variable), so it can be raised. */
    readonly setting: string,
    /** What `declared` and `limit` count: bytes, unless said (levels for nesting, tensors...). */
    readonly unit: string = setting === 'the depth limit' ? 'levels' : 'bytes',
    /** Where in the payload the count went over (bytes from its start), when it is at one place. */
    readonly byteOffset?: number,
  ) {
    super(
      `${what} would take ${declared} ${unit}, over the maximum of ${limit} (${setting})` +
        `${byteOffset === undefined ? '' : `, the first past it at byte ${byteOffset}`}; nothing was allocated. ` +
        `The bytes are damaged or were not written by roundlog; if they are genuine, raise ${setting} and try again`,
    );
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
