/**
 * Bounds on what decoding may cost, checked before anything is allocated: decompression is bounded
 * by the size the bytes declare, and that size by a total maximum, never by a ratio alone (lz4 can
 * expand 255-fold, so a 4 MB record could otherwise claim a gigabyte). msgpack is walked once
 * before msgpackr builds anything: every declared length must fit in the bytes that follow, the
 * nesting must stay under `MAX_VALUE_DEPTH`, and an estimate of the memory the decoded value takes
 * (`checkMsgpack` says how it is made) must stay under the same maximum (one byte of msgpack can
 * become a JavaScript array).
 *
 * The maxima come from `ROUNDLOG_MAX_VALUE_BYTES` (a log record's value or an event's data;
 * default 64 MiB, the largest record the file log writes), `ROUNDLOG_MAX_TENSOR_BYTES` (the
 * decoded size of a tensor set; default 2 GiB) and `ROUNDLOG_MAX_TENSOR_COUNT` (the tensors of a
 * safetensors header, and separately its metadata entries; default 100000), read when the module
 * loads, or from `setDecodeLimits`. Encoding checks the same bounds, so what is written can be read
 * back.
 */
import { InvalidArgumentError } from '../errors.ts';
import { DecodeLimitError } from './errors.ts';

export const DEFAULT_MAX_VALUE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_TENSOR_BYTES = 2 * 1024 * 1024 * 1024;
export const DEFAULT_MAX_TENSOR_COUNT = 100_000;
/** Deepest nesting of arrays and maps a value may have (a deeper one would exhaust the stack). */
export const MAX_VALUE_DEPTH = 512;
export const MAX_VALUE_BYTES_ENV = 'ROUNDLOG_MAX_VALUE_BYTES';
export const MAX_TENSOR_BYTES_ENV = 'ROUNDLOG_MAX_TENSOR_BYTES';
export const MAX_TENSOR_COUNT_ENV = 'ROUNDLOG_MAX_TENSOR_COUNT';

export type DecodeLimits = Readonly<{ maxValueBytes: number; maxTensorBytes: number; maxTensorCount: number }>;

function fromEnv(name: string, fallback: number, unit = 'bytes'): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidArgumentError(name, `must be a positive whole number of ${unit}`, text);
  }
  return value;
}

let limits: DecodeLimits = {
  maxValueBytes: fromEnv(MAX_VALUE_BYTES_ENV, DEFAULT_MAX_VALUE_BYTES),
  maxTensorBytes: fromEnv(MAX_TENSOR_BYTES_ENV, DEFAULT_MAX_TENSOR_BYTES),
  maxTensorCount: fromEnv(MAX_TENSOR_COUNT_ENV, DEFAULT_MAX_TENSOR_COUNT, 'tensors'),
};

export function decodeLimits(): DecodeLimits {
  return limits;
}

/** Changes the maxima for this process; returns the previous ones. */
export function setDecodeLimits(next: Partial<DecodeLimits>): DecodeLimits {
  const previous = limits;
  for (const [key, value] of Object.entries(next)) {
    if (!Number.isSafeInteger(value) || (value as number) <= 0) {
      throw new InvalidArgumentError(key, 'must be a positive whole number', value);
    }
  }
  limits = { ...limits, ...next };
  return previous;
}

/**
 * Throws `DecodeLimitError` when `bytes` (declared or found) is over the maximum of `what`; `writing`
 * when it is a value being recorded rather than stored bytes being read.
 */
export function checkDeclaredSize(what: string, bytes: number, max: number, setting: string, writing = false): void {
  if (bytes > max) throw new DecodeLimitError(what, bytes, max, setting, { writing });
}

/**
 * The estimate of what a decoded msgpack value takes in memory, in bytes, on a 64-bit V8 (8-byte
 * tagged slots, no pointer compression), made to stay at or above what msgpackr builds without
 * charging numbers as if they were strings:
 * - an array or map: `CONTAINER_COST`, plus `ARRAY_SLOT_COST` per array element (msgpackr allocates
 *   the array at its length; a slot holds a small integer or a pointer, or a double unboxed) or
 *   `MAP_ENTRY_COST` per map entry (a key and a value slot in an object's dictionary, with its spare
 *   capacity);
 * - an integer that fits 31 bits (positive and negative fixints, 8- and 16-bit ints): nothing beyond
 *   its slot (a small integer lives in the slot); a 32-bit integer or a float: `NUMBER_COST` (a heap
 *   number, 16 bytes); a 64-bit integer: `BIGINT_COST` (it may be a bigint);
 * - a string, a binary or an extension (typed array, date, bigint): `STRING_COST` plus its length (a
 *   string of n UTF-8 bytes takes at most n bytes of characters);
 * - nil and booleans: nothing beyond their slot.
 * An array of small integers is thus estimated at 8 bytes per 1-byte element, an array of doubles
 * at 24 bytes per 9-byte element (an object of them at 16 + 32 + 32 + the key's length per entry).
 */
const CONTAINER_COST = 64;
const ARRAY_SLOT_COST = 8;
const MAP_ENTRY_COST = 32;
const STRING_COST = 32;
const NUMBER_COST = 16;
const BIGINT_COST = 24;

/**
 * Walks msgpack `bytes` without building anything: throws `DecodeLimitError` when the decoded value
 * would take more than `max` bytes of memory (estimated as above) or nest deeper than
 * `MAX_VALUE_DEPTH`, and a plain Error when a declared length runs past the end. `writing` when the
 * bytes are a value being recorded (the error then says nothing was written) rather than stored
 * bytes being read.
 */
export function checkMsgpack(what: string, bytes: Uint8Array, max: number, setting: string, writing = false): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.byteLength;
  let offset = 0;
  let cost = 0;
  /** Items still to read at each open container. */
  const pending: number[] = [1];
  const need = (n: number) => {
    if (offset + n > end)
      throw new Error(`Unexpected end of MessagePack data: a length at byte ${offset} runs past its ${end} bytes`);
  };
  const opaque = (length: number) => {
    need(length);
    offset += length;
    cost += STRING_COST + length;
  };
  const number = (length: number, bytesOfMemory: number) => {
    need(length);
    offset += length;
    cost += bytesOfMemory;
  };
  const container = (items: number, slotCost: number, slotsPerCost: number) => {
    // Every item takes at least one byte: a count beyond the bytes left is damage, not data.
    if (items > end - offset)
      throw new Error(`Unexpected end of MessagePack data: a container of ${items} items in ${end - offset} bytes`);
    cost += CONTAINER_COST + (slotCost * items) / slotsPerCost;
    if (items > 0) {
      pending.push(items);
      if (pending.length - 1 > MAX_VALUE_DEPTH) {
        const where = `${what} (nesting)`;
        throw new DecodeLimitError(where, pending.length - 1, MAX_VALUE_DEPTH, 'the depth limit', {
          measure: 'depth',
          writing,
        });
      }
    }
  };
  const array = (items: number) => container(items, ARRAY_SLOT_COST, 1);
  /** `items` is twice the entries: a key and a value each. */
  const map = (items: number) => container(items, MAP_ENTRY_COST, 2);
  const over = () => new DecodeLimitError(what, cost, max, setting, { measure: 'estimated', writing });
  while (pending.length > 0) {
    if (cost > max) throw over();
    const top = pending.length - 1;
    if (pending[top] === 0) {
      pending.pop();
      continue;
    }
    pending[top]!--;
    need(1);
    const byte = bytes[offset++]!;
    if (byte <= 0x7f || byte >= 0xe0) continue;
    if (byte <= 0x8f) map((byte & 0x0f) * 2);
    else if (byte <= 0x9f) array(byte & 0x0f);
    else if (byte <= 0xbf) opaque(byte & 0x1f);
    else
      switch (byte) {
        case 0xc0:
        case 0xc1:
        case 0xc2:
        case 0xc3:
          break;
        case 0xc4:
        case 0xd9:
          need(1);
          opaque(view.getUint8((offset += 1) - 1));
          break;
        case 0xc5:
        case 0xda:
          need(2);
          opaque(view.getUint16((offset += 2) - 2));
          break;
        case 0xc6:
        case 0xdb:
          need(4);
          opaque(view.getUint32((offset += 4) - 4));
          break;
        case 0xc7:
          need(2);
          opaque(view.getUint8((offset += 2) - 2));
          break;
        case 0xc8:
          need(3);
          opaque(view.getUint16((offset += 3) - 3));
          break;
        case 0xc9:
          need(5);
          opaque(view.getUint32((offset += 5) - 5));
          break;
        case 0xca:
          number(4, NUMBER_COST);
          break;
        case 0xcb:
          number(8, NUMBER_COST);
          break;
        case 0xcc:
        case 0xd0:
          number(1, 0);
          break;
        case 0xcd:
        case 0xd1:
          number(2, 0);
          break;
        case 0xce:
        case 0xd2:
          number(4, NUMBER_COST);
          break;
        case 0xcf:
        case 0xd3:
          number(8, BIGINT_COST);
          break;
        case 0xd4:
          opaque(2);
          break;
        case 0xd5:
          opaque(3);
          break;
        case 0xd6:
          opaque(5);
          break;
        case 0xd7:
          opaque(9);
          break;
        case 0xd8:
          opaque(17);
          break;
        case 0xdc:
          need(2);
          array(view.getUint16((offset += 2) - 2));
          break;
        case 0xdd:
          need(4);
          array(view.getUint32((offset += 4) - 4));
          break;
        case 0xde:
          need(2);
          map(view.getUint16((offset += 2) - 2) * 2);
          break;
        case 0xdf:
          need(4);
          map(view.getUint32((offset += 4) - 4) * 2);
          break;
      }
  }
  if (cost > max) throw over();
}
