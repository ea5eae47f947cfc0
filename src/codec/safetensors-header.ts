/**
 * The reader of a safetensors header's JSON: one pass over the bytes that builds only what the
 * format allows and refuses anything else at the byte where it shows, so a hostile header costs
 * about its own length in memory whatever it holds (a general JSON parser builds every array and
 * object first: a 60 MB header of nested arrays took gigabytes).
 *
 * The subset read, and nothing more:
 *
 *     header   = ws "{" ws [ member *( ws "," ws member ) ] ws "}" ws        (ws: space, tab, LF, CR)
 *     member   = name ":" ws ( entry | metadata )         (metadata when the name is "__metadata__")
 *     entry    = "{" field *( "," field ) "}"    fields "dtype": string, "shape": [uint, ...] (at most
 *                                                 MAX_TENSOR_RANK), "data_offsets": [uint, uint], each once
 *     metadata = "{" [ string ":" string *( "," string ":" string ) ] "}"
 *     uint     = "0" | [1-9][0-9]*                  at most Number.MAX_SAFE_INTEGER; no sign, fraction, exponent
 *
 * Nesting is at most 3 levels (the header, an entry, a shape); a name or key repeated in one object
 * is refused (a general JSON parser keeps the last one silently); strings are JSON strings of valid
 * UTF-8 with JSON's escapes, a `\uXXXX` surrogate only as half of a pair. Tensors, and metadata
 * entries, number at most `ROUNDLOG_MAX_TENSOR_COUNT` each. Dtypes, sizes and ranges are checked by
 * the caller (`parseSafetensorsHeader`), from the file offsets this reader returns.
 */
import { shownText } from '../errors.ts';
import { DecodeLimitError } from './errors.ts';
import { MAX_TENSOR_COUNT_ENV } from './limits.ts';

/** Most dimensions a tensor's shape may have. */
export const MAX_TENSOR_RANK = 64;
/** Deepest nesting of the header: the object of tensors, a tensor's object, its shape. */
export const MAX_HEADER_DEPTH = 3;
/** The key of the header's optional string-to-string map. */
export const METADATA_KEY = '__metadata__';

/** A tensor as the header gives it, with where each part is in the file (bytes from its start). */
export type HeaderEntry = Readonly<{
  name: string;
  /** File offset of the tensor's name. */
  at: number;
  dtype: string;
  dtypeAt: number;
  shape: number[];
  shapeAt: number;
  offsets: readonly [number, number];
  offsetsAt: number;
}>;

export type HeaderJson = Readonly<{ entries: HeaderEntry[]; metadata: Record<string, string> }>;

export type ReadHeaderOptions = Readonly<{
  /** File offset of the header's first byte (8 in a safetensors file). */
  base: number;
  /** Most tensors, and most metadata entries. */
  maxCount: number;
  /** What the header is (`the safetensors header of blob 3f…`), named in `DecodeLimitError`. */
  what: string;
  /** The error for a fault at file offset `byteOffset` (its reason does not name the offset). */
  corrupt: (reason: string, byteOffset: number) => Error;
}>;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const ZERO = 0x30;
const NINE = 0x39;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const LOWER_E = 0x65;
const UPPER_E = 0x45;

const ESCAPES: Readonly<Record<number, string>> = {
  0x22: '"',
  0x5c: '\\',
  0x2f: '/',
  0x62: '\b',
  0x66: '\f',
  0x6e: '\n',
  0x72: '\r',
  0x74: '\t',
};

/** A name, key or dtype from the header as a message shows it: JSON, cut past 200 characters. */
export const shown = (text: string): string => shownText(text, 200);

const ENTRY_FIELDS: ReadonlySet<string> = new Set(['dtype', 'shape', 'data_offsets']);
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * The tensors (in header order) and metadata of the header `bytes`. Throws `options.corrupt(…)` at
 * the first byte that is not JSON, not UTF-8, or not the subset above, and `DecodeLimitError` for
 * more than `options.maxCount` tensors or metadata entries.
 */
export function readSafetensorsHeaderJson(bytes: Uint8Array, options: ReadHeaderOptions): HeaderJson {
  return new Reader(bytes, options).header();
}

class Reader {
  private pos = 0;
  private readonly end: number;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly options: ReadHeaderOptions,
  ) {
    this.end = bytes.byteLength;
  }

  header(): HeaderJson {
    const { bytes } = this;
    if (bytes[0] !== OPEN_BRACE) {
      this.fail(`the header does not start with "{" (it starts with ${this.found(0)})`, 0);
    }
    this.pos = 1;
    const names = new Map<string, number>();
    const entries: HeaderEntry[] = [];
    let metadata: Record<string, string> = {};
    this.members('the header', (name, at) => {
      this.duplicate(names, name, at, 'the header names');
      if (name === METADATA_KEY) {
        metadata = this.metadata();
      } else {
        if (entries.length >= this.options.maxCount) this.tooMany('tensors', entries.length + 1, at);
        entries.push(this.entry(name, at));
      }
    });
    this.ws();
    if (this.pos < this.end) {
      this.fail(
        `the header is not JSON: ${this.found(this.pos)} follows its object, where only spaces may (padding)`,
        this.pos,
      );
    }
    return { entries, metadata };
  }

  /** Reads `{` (already consumed) … `}`: calls `member` at each key, positioned at its value. */
  private members(what: string, member: (key: string, at: number) => void): void {
    this.ws();
    if (this.bytes[this.pos] === CLOSE_BRACE) {
      this.pos++;
      return;
    }
    for (;;) {
      this.ws();
      const at = this.pos;
      if (this.bytes[at] !== QUOTE) {
        this.syntax(`${what} has ${this.found(at)} where a key (a string) belongs`, at);
      }
      const key = this.string();
      this.ws();
      if (this.bytes[this.pos] !== COLON) {
        this.syntax(`${what} has ${this.found(this.pos)} after the key ${shown(key)}, where ":" belongs`);
      }
      this.pos++;
      this.ws();
      member(key, at);
      this.ws();
      const next = this.bytes[this.pos];
      this.pos++;
      if (next === CLOSE_BRACE) return;
      if (next !== COMMA) {
        this.syntax(`${what} has ${this.found(this.pos - 1)} after a value, where "," or "}" belongs`, this.pos - 1);
      }
    }
  }

  private entry(name: string, at: number): HeaderEntry {
    const tensor = `tensor ${shown(name)}`;
    if (this.bytes[this.pos] !== OPEN_BRACE) {
      this.fail(`${tensor} is not an object { dtype, shape, data_offsets } (it is ${this.found(this.pos)})`);
    }
    this.pos++;
    const fields = new Map<string, number>();
    let dtype: string | undefined;
    let dtypeAt = 0;
    let shape: number[] | undefined;
    let shapeAt = 0;
    let offsets: number[] | undefined;
    let offsetsAt = 0;
    this.members(tensor, (field, fieldAt) => {
      if (!ENTRY_FIELDS.has(field)) this.fail(`${tensor} has an unknown field ${shown(field)}`, fieldAt);
      this.duplicate(fields, field, fieldAt, `${tensor} names the field`);
      if (field === 'dtype') {
        dtypeAt = this.pos;
        if (this.bytes[this.pos] !== QUOTE) this.fail(`${tensor} has dtype ${this.found(this.pos)}, not a string`);
        dtype = this.string();
      } else if (field === 'shape') {
        shapeAt = this.pos;
        shape = this.integers(`${tensor} has shape`, MAX_TENSOR_RANK, `more than ${MAX_TENSOR_RANK} dimensions`);
      } else {
        offsetsAt = this.pos;
        offsets = this.integers(`${tensor} has data_offsets`, 2, 'more than two numbers');
        if (offsets.length !== 2) {
          this.fail(
            `${tensor} has data_offsets ${JSON.stringify(offsets)}, not [begin, end] with 0 <= begin <= end`,
            offsetsAt,
          );
        }
      }
    });
    const missing = ['dtype', 'shape', 'data_offsets'].find((field) => !fields.has(field));
    if (missing !== undefined) this.fail(`${tensor} has no field "${missing}"`, this.pos - 1);
    return {
      name,
      at: this.fileOffset(at),
      dtype: dtype!,
      dtypeAt: this.fileOffset(dtypeAt),
      shape: shape!,
      shapeAt: this.fileOffset(shapeAt),
      offsets: offsets as [number, number],
      offsetsAt: this.fileOffset(offsetsAt),
    };
  }

  private metadata(): Record<string, string> {
    if (this.bytes[this.pos] !== OPEN_BRACE) {
      this.fail(`${METADATA_KEY} is not an object of strings (it is ${this.found(this.pos)})`);
    }
    this.pos++;
    // A Map, then fromEntries: a key "__proto__" is an own property like any other.
    const entries = new Map<string, string>();
    const seen = new Map<string, number>();
    this.members(METADATA_KEY, (key, at) => {
      this.duplicate(seen, key, at, `${METADATA_KEY} names`);
      if (entries.size >= this.options.maxCount) this.tooMany('metadata entries', entries.size + 1, at);
      if (this.bytes[this.pos] !== QUOTE) {
        this.fail(`${METADATA_KEY}[${shown(key)}] is ${this.found(this.pos)}, not a string`);
      }
      entries.set(key, this.string());
    });
    return Object.fromEntries(entries);
  }

  /** `[uint, ...]` of at most `max` numbers, at depth 3: nothing may nest inside it. */
  private integers(what: string, max: number, tooLong: string): number[] {
    const start = this.pos;
    if (this.bytes[start] !== OPEN_BRACKET) {
      this.fail(`${what} ${this.found(start)}, not a list of non-negative integers`);
    }
    this.pos++;
    const values: number[] = [];
    this.ws();
    if (this.bytes[this.pos] === CLOSE_BRACKET) {
      this.pos++;
      return values;
    }
    for (;;) {
      this.ws();
      const at = this.pos;
      const c = this.bytes[at];
      if (c === OPEN_BRACKET || c === OPEN_BRACE) {
        this.fail(
          `${what} nested deeper than the format allows (${this.found(at)} inside a list of integers; ` +
            `a header nests at most ${MAX_HEADER_DEPTH} levels)`,
          at,
        );
      }
      if (values.length === max) this.fail(`${what} with ${tooLong}`, at);
      const problem = this.integer();
      if (problem !== null) {
        const token = this.token(at);
        const item = token === '' ? this.found(at) : token;
        const length = token !== '' ? token.length : /^(true|false|null)$/.test(item) ? item.length : 1;
        const after = this.skipWs(at + length);
        const shown = `[${[...values, item].join(', ')}${this.bytes[after] === CLOSE_BRACKET ? ']' : ', …]'}`;
        this.fail(`${what} ${shown}, not a list of non-negative integers: ${problem}`, at);
      }
      values.push(this.value);
      this.ws();
      const next = this.bytes[this.pos];
      this.pos++;
      if (next === CLOSE_BRACKET) return values;
      if (next !== COMMA) {
        this.syntax(`${what} with ${this.found(this.pos - 1)} after a number, where "," or "]" belongs`, this.pos - 1);
      }
    }
  }

  /** The integer last read by `integer()`. */
  private value = 0;

  /** Reads a non-negative integer into `value`: null, or what is wrong (nothing consumed then). */
  private integer(): string | null {
    const { bytes } = this;
    const start = this.pos;
    const token = () => JSON.stringify(this.token(start));
    const c = bytes[start];
    if (c === MINUS) return `${token()} is negative`;
    if (c === undefined || c < ZERO || c > NINE) return `${this.found(start)} is not a number`;
    if (c === ZERO && bytes[start + 1]! >= ZERO && bytes[start + 1]! <= NINE) {
      return `${token()} has a leading zero`;
    }
    let value = 0;
    let i = start;
    for (; i < this.end && bytes[i]! >= ZERO && bytes[i]! <= NINE; i++) {
      value = value * 10 + (bytes[i]! - ZERO);
      if (value > Number.MAX_SAFE_INTEGER) return `${token()} is over 2^53 - 1`;
    }
    const next = bytes[i];
    if (next === DOT) return `${token()} has a fraction`;
    if (next === LOWER_E || next === UPPER_E) return `${token()} has an exponent`;
    this.pos = i;
    this.value = value;
    return null;
  }

  /** A JSON string at `pos` (its opening quote), decoded. */
  private string(): string {
    const { bytes, end } = this;
    const open = this.pos;
    let start = ++this.pos;
    let i = start;
    let parts: string[] | null = null;
    for (;;) {
      if (i >= end) this.syntax(`a string has no closing quote (it opens at file byte ${this.fileOffset(open)})`, end);
      const c = bytes[i]!;
      if (c === QUOTE) break;
      if (c < 0x20) {
        this.syntax(`a string holds the control character 0x${hex(c, 2)} (JSON writes it as an escape)`, i);
      } else if (c === BACKSLASH) {
        parts ??= [];
        if (i > start) parts.push(utf8.decode(bytes.subarray(start, i)));
        i = this.escape(i, parts);
        start = i;
      } else if (c < 0x80) {
        i++;
      } else {
        i += this.utf8Sequence(i);
      }
    }
    this.pos = i + 1;
    const last = utf8.decode(bytes.subarray(start, i));
    if (parts === null) return last;
    parts.push(last);
    return parts.join('');
  }

  /** Decodes the escape at `at` (its backslash) into `parts`; returns the offset after it. */
  private escape(at: number, parts: string[]): number {
    const kind = this.bytes[at + 1];
    if (kind === undefined) this.syntax('a string ends inside an escape', at);
    const simple = ESCAPES[kind];
    if (simple !== undefined) {
      parts.push(simple);
      return at + 2;
    }
    if (kind !== 0x75) this.syntax(`a string has a backslash before ${this.char(kind)}, not one of JSON's escapes`, at);
    const unit = this.hex4(at);
    if (unit >= 0xdc00 && unit <= 0xdfff) {
      this.fail(`a string has \\u${hex(unit, 4)}, the second half of a surrogate pair, without its first half`, at);
    }
    if (unit < 0xd800 || unit > 0xdbff) {
      parts.push(String.fromCharCode(unit));
      return at + 6;
    }
    const low = this.bytes[at + 6] === BACKSLASH && this.bytes[at + 7] === 0x75 ? this.hex4(at + 6) : -1;
    if (low < 0xdc00 || low > 0xdfff) {
      this.fail(`a string has \\u${hex(unit, 4)}, the first half of a surrogate pair, without its second half`, at);
    }
    parts.push(String.fromCharCode(unit, low));
    return at + 12;
  }

  /** The four hex digits of the `\u` escape at `at`. */
  private hex4(at: number): number {
    let unit = 0;
    for (let k = at + 2; k < at + 6; k++) {
      const c = this.bytes[k];
      const digit =
        c === undefined
          ? -1
          : c >= ZERO && c <= NINE
            ? c - ZERO
            : c >= 0x61 && c <= 0x66
              ? c - 0x61 + 10
              : c >= 0x41 && c <= 0x46
                ? c - 0x41 + 10
                : -1;
      if (digit < 0) this.syntax('a string has a \\u escape without four hex digits', at);
      unit = unit * 16 + digit;
    }
    return unit;
  }

  /** The length of the well-formed UTF-8 sequence at `at` (a byte >= 0x80), else fails. */
  private utf8Sequence(at: number): number {
    const { bytes } = this;
    const lead = bytes[at]!;
    let length: number;
    let low = 0x80;
    let high = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) length = 2;
    else if (lead >= 0xe0 && lead <= 0xef) {
      length = 3;
      if (lead === 0xe0) low = 0xa0;
      if (lead === 0xed) high = 0x9f; // no UTF-16 surrogates
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      length = 4;
      if (lead === 0xf0) low = 0x90;
      if (lead === 0xf4) high = 0x8f; // nothing past U+10FFFF
    } else return this.notUtf8(at);
    for (let k = 1; k < length; k++) {
      const c = bytes[at + k];
      if (c === undefined || c < (k === 1 ? low : 0x80) || c > (k === 1 ? high : 0xbf)) return this.notUtf8(at + k);
    }
    return length;
  }

  private notUtf8(at: number): never {
    const c = this.bytes[at];
    const what = c === undefined ? 'it ends inside a character' : `byte 0x${hex(c, 2)} breaks a character`;
    return this.fail(`the header is not UTF-8: ${what}`, Math.min(at, this.end));
  }

  /** Fails when `key` is in `seen` (an object names it twice); else adds it. */
  private duplicate(seen: Map<string, number>, key: string, at: number, prefix: string): void {
    const first = seen.get(key);
    if (first !== undefined) {
      this.fail(
        `${prefix} ${shown(key)} more than once (first at file byte ${this.fileOffset(first)}); ` +
          `a JSON parser such as JSON.parse would keep only the last one, silently`,
        at,
      );
    }
    seen.set(key, at);
  }

  private tooMany(what: string, count: number, at: number): never {
    throw new DecodeLimitError(this.options.what, count, this.options.maxCount, MAX_TENSOR_COUNT_ENV, {
      unit: what,
      byteOffset: this.fileOffset(at),
    });
  }

  private ws(): void {
    this.pos = this.skipWs(this.pos);
  }

  private skipWs(at: number): number {
    const { bytes, end } = this;
    while (at < end) {
      const c = bytes[at]!;
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      at++;
    }
    return at;
  }

  /** The number-like run of bytes at `at` (at most 24), for messages. */
  private token(at: number): string {
    let i = at;
    while (i < this.end && i < at + 24) {
      const c = this.bytes[i]!;
      if (!((c >= ZERO && c <= NINE) || c === MINUS || c === PLUS || c === DOT || c === LOWER_E || c === UPPER_E)) {
        break;
      }
      i++;
    }
    return String.fromCharCode(...this.bytes.subarray(at, i));
  }

  /** What is at `at`, for messages: "an object", "a string", "true", "3", "the end of the header"... */
  private found(at: number): string {
    const c = this.bytes[at];
    if (c === undefined) return 'the end of the header';
    if (c === OPEN_BRACE) return 'an object';
    if (c === OPEN_BRACKET) return 'an array';
    if (c === QUOTE) return 'a string';
    if ((c >= ZERO && c <= NINE) || c === MINUS) return this.token(at);
    for (const literal of ['true', 'false', 'null']) {
      if (literal.split('').every((ch, k) => this.bytes[at + k] === ch.charCodeAt(0))) return literal;
    }
    return this.char(c);
  }

  /** `"x"` for a printable ASCII byte, else `byte 0xNN`. */
  private char(c: number): string {
    return c >= 0x20 && c < 0x7f ? JSON.stringify(String.fromCharCode(c)) : `byte 0x${hex(c, 2)}`;
  }

  private fileOffset(at: number): number {
    return this.options.base + at;
  }

  /** A fault of JSON syntax at `at` (default: the current position). */
  private syntax(reason: string, at: number = this.pos): never {
    return this.fail(`the header is not JSON: ${reason}`, at);
  }

  private fail(reason: string, at: number = this.pos): never {
    throw this.options.corrupt(reason, this.fileOffset(at));
  }
}

function hex(value: number, digits: number): string {
  return value.toString(16).toUpperCase().padStart(digits, '0');
}
