/** Typed errors raised when stored payloads are decoded. */
import { RoundlogError } from '../errors.ts';

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
  ) {
    super(
      `corrupt ${encoding} payload${source === undefined ? '' : ` in ${source}`}: ${reason}. ` +
        `The bytes are not what the encoder wrote (damaged storage, truncated copy, or a wrong ` +
        `encoding recorded beside them): restore them from a copy, or re-create them from the round log`,
      cause === undefined ? undefined : { cause },
    );
  }
}
