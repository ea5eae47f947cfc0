/**
 * The one-pass reader of the safetensors header: hand-written hostile headers, each refused with its
 * typed error at the file offset of the fault (`byteOffset`: 8 + the offset within the header), and
 * the headers it accepts read as a JSON parser reads them (escapes, UTF-8, whitespace).
 */
import test from 'ava';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { CorruptPayloadError, DecodeLimitError } from '../../src/codec/errors.ts';
import { setDecodeLimits } from '../../src/codec/limits.ts';
import {
  MAX_TENSOR_RANK,
  decodeSafetensorsFile,
  encodeSafetensors,
  parseSafetensorsHeader,
} from '../../src/codec/safetensors.ts';

const SOURCE = 'file /x/hostile.safetensors';

/** No lone surrogate (what `String.prototype.isWellFormed` says, Node 20 and later). */
const wellFormed = (text: string) => !/\p{Surrogate}/u.test(text);

/** A safetensors file: the 8-byte length, `header` (text, or bytes as they are), then `buffer`. */
function file(header: string | Buffer, buffer: Uint8Array = new Uint8Array(0)): Buffer {
  const json = typeof header === 'string' ? Buffer.from(header, 'utf8') : header;
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, buffer]);
}

const E = (offsets = '[0, 4]') => `{"dtype": "F32", "shape": [1], "data_offsets": ${offsets}}`;
/** The file offset of the `nth` (0-based) occurrence of `marker` in `header`, plus `delta`. */
function at(header: string, marker: string, delta = 0, nth = 0): number {
  let index = -1;
  for (let k = 0; k <= nth; k++) {
    index = header.indexOf(marker, index + 1);
    if (index === -1) throw new Error(`no ${marker} in ${header}`);
  }
  return 8 + Buffer.byteLength(header.slice(0, index), 'utf8') + delta;
}

type Case = { header: string | Buffer; buffer?: Uint8Array; byteOffset: number; reason: RegExp };

const refused = test.macro({
  exec(t, { header, buffer, byteOffset, reason }: Case) {
    const error = t.throws(() => decodeSafetensorsFile(file(header, buffer), { source: SOURCE }), {
      instanceOf: CorruptPayloadError,
    });
    t.is(error?.code, 'CORRUPT_PAYLOAD');
    t.is(error?.source, SOURCE);
    t.is(error?.byteOffset, byteOffset, error?.message);
    t.regex(error!.reason, reason);
    t.true(error!.message.includes(`/x/hostile.safetensors`));
    t.true(error!.message.includes(`at byte ${byteOffset}`), error!.message);
  },
  title: (given) => `refused at its byte: ${given}`,
});

const cases: Array<[string, Case]> = (() => {
  const list: Array<[string, Case]> = [];
  const add = (title: string, header: string | Buffer, byteOffset: number, reason: RegExp, buffer?: Uint8Array) =>
    list.push([title, { header, byteOffset, reason, ...(buffer === undefined ? {} : { buffer }) }]);

  // Structure and depth: refused at the first byte that breaks the format's shape.
  add('a header that is an array', '[[[[]]]]', 8, /does not start with "\{" \(it starts with an array\)/);
  add('an empty header', '', 8, /does not start with "\{" \(it starts with the end of the header\)/);
  add('leading whitespace', ' {}', 8, /does not start with "\{"/);
  let h = '{"a": [[[[[]]]]]}';
  add('a tensor that is nested arrays', h, at(h, '['), /tensor "a" is not an object .* \(it is an array\)/);
  h = `{"a": {"dtype": "F32", "shape": [[1]], "data_offsets": [0, 4]}}`;
  add('an array inside a shape (depth 4)', h, at(h, '[[', 1), /nested deeper than the format allows .*3 levels/);
  h = `{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, {}]}}`;
  add('an object inside data_offsets (depth 4)', h, at(h, '{}'), /nested deeper than the format allows/);
  h = '{"__metadata__": {"k": {"x": "y"}}}';
  add('an object as a metadata value', h, at(h, '{"x"'), /__metadata__\["k"\] is an object, not a string/);
  h = '{"__metadata__": ["a"]}';
  add('metadata that is an array', h, at(h, '['), /__metadata__ is not an object of strings \(it is an array\)/);
  h = `{"a": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}`;
  add('a dtype that is not a string', h, at(h, '["F32"]'), /tensor "a" has dtype an array, not a string/);
  h = `{"a": {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]}}`;
  add('a shape that is not a list', h, at(h, '1,'), /tensor "a" has shape 1, not a list/);
  h = `{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": 1}}`;
  add('an unknown field', h, at(h, '"extra"'), /tensor "a" has an unknown field "extra"/);
  h = `{"a": {"dtype": "F32", "shape": [1]}}`;
  add('a missing field', h, at(h, '}'), /tensor "a" has no field "data_offsets"/);
  h = `{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}`;
  add('three data_offsets', h, at(h, '8]'), /data_offsets with more than two numbers/);
  h = `{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4]}}`;
  add('one data_offset', h, at(h, '[4]'), /data_offsets \[4\], not \[begin, end\]/);
  const rank = (n: number) =>
    `{"a": {"dtype": "U8", "shape": [${Array(n).fill(1).join(',')}], "data_offsets": [0, 1]}}`;
  h = rank(MAX_TENSOR_RANK + 1);
  add('a shape of rank 65', h, at(h, '1]'), /tensor "a" has shape with more than 64 dimensions/);

  // Repeated keys, at each level: JSON.parse would keep the last silently.
  h = `{"a": ${E()}, "a": ${E()}}`;
  add(
    'a repeated tensor name',
    h,
    at(h, '"a"', 0, 1),
    /names "a" more than once \(first at file byte 9\).*JSON\.parse/,
  );
  h = `{"a": ${E()}, "\\u0061": ${E()}}`;
  add('a repeated name spelled with an escape', h, at(h, '"\\u0061"'), /names "a" more than once/);
  h = `{"a": {"dtype": "F32", "dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}`;
  add('a repeated field', h, at(h, '"dtype"', 0, 1), /tensor "a" names the field "dtype" more than once/);
  h = '{"__metadata__": {"k": "1", "k": "2"}}';
  add('a repeated metadata key', h, at(h, '"k"', 0, 1), /__metadata__ names "k" more than once/);
  h = `{"__metadata__": {}, "__metadata__": {}}`;
  add('metadata twice', h, at(h, '"__metadata__"', 0, 1), /names "__metadata__" more than once/);

  // Numbers: non-negative integers as JSON writes them, at most 2^53 - 1.
  const shape = (dims: string) => `{"w": {"dtype": "U8", "shape": [${dims}], "data_offsets": [0, 1]}}`;
  for (const [dims, reason] of [
    ['-1', /shape \[-1\], not a list of non-negative integers: "-1" is negative/],
    ['1.5', /shape \[1\.5\], .*"1\.5" has a fraction/],
    ['1e0', /"1e0" has an exponent/],
    ['1E0', /"1E0" has an exponent/],
    ['01', /"01" has a leading zero/],
    ['+1', /"\+" is not a number/],
    ['9007199254740992', /"9007199254740992" is over 2\^53 - 1/],
    ['1, true', /shape \[1, true\], not a list of non-negative integers: true is not a number/],
    ['null', /null is not a number/],
    ['"1"', /a string is not a number/],
  ] as const) {
    h = shape(dims);
    add(`the dimension ${dims}`, h, at(h, dims.split(', ').at(-1)!), reason);
  }

  // Strings: JSON escapes, surrogate pairs whole, UTF-8 well formed, no raw control character.
  for (const [escape, reason] of [
    ['\\ud800', /\\uD800, the first half of a surrogate pair, without its second half/],
    ['\\ud800\\u0041', /without its second half/],
    ['\\udc00', /\\uDC00, the second half of a surrogate pair, without its first half/],
    ['\\x41', /a backslash before "x", not one of JSON's escapes/],
    ['\\u12', /without four hex digits/],
  ] as const) {
    h = `{"__metadata__": {"k": "a${escape}"}}`;
    add(`the escape ${escape}`, h, at(h, escape), reason);
  }
  h = '{"__metadata__": {"k": "a\nb"}}';
  add('a raw newline in a string', h, at(h, '\n'), /control character 0x0A/);
  h = '{"__metadata__": {"k": "abc';
  add('a string without its closing quote', h, 8 + h.length, /no closing quote \(it opens at file byte 31\)/);
  for (const [bytes, bad, title] of [
    [[0xc0, 0xaf], 0, 'an overlong encoding'],
    [[0xed, 0xa0, 0x80], 1, 'an encoded surrogate'],
    [[0x80], 0, 'a lone continuation byte'],
    [[0xf4, 0x90, 0x80, 0x80], 1, 'a code point past U+10FFFF'],
    [[0xe2, 0x82], 2, 'a character cut short'],
    [[0xff], 0, 'the byte 0xFF'],
  ] as const) {
    const prefix = Buffer.from('{"__metadata__": {"k": "a');
    const header = Buffer.concat([prefix, Buffer.from(bytes), Buffer.from('"}}')]);
    add(`${title} in a string`, header, 8 + prefix.length + bad, /the header is not UTF-8/);
  }

  // JSON syntax.
  h = '{"a" {}}';
  add('a missing colon', h, at(h, '{}'), /not JSON: the header has an object after the key "a", where ":" belongs/);
  h = `{"a": ${E()} "b": ${E('[4, 8]')}}`;
  add('a missing comma', h, at(h, '"b"'), /not JSON: the header has a string after a value, where "," or "\}" belongs/);
  h = `{"a": ${E()},}`;
  add('a trailing comma', h, at(h, '}', 0, 1), /not JSON: the header has "\}" where a key \(a string\) belongs/);
  h = '{"a": ';
  add('a header cut short', h, 8 + h.length, /tensor "a" is not an object .*the end of the header/);
  h = '{} x';
  add('bytes after the object', h, at(h, 'x'), /"x" follows its object, where only spaces may/);
  h = '{}{}';
  add('a second object', h, at(h, '{', 0, 1), /an object follows its object/);

  // Sizes and ranges, checked after reading: at the field that is wrong.
  h = `{"w": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}`;
  add('an unknown dtype', h, at(h, '"F8_E4M3"'), /dtype "F8_E4M3", which this build does not read/, new Uint8Array(1));
  h = `{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}`;
  add('a size that is not dtype × shape', h, at(h, '[0, 4]'), /has 4 bytes .* needs 8/, new Uint8Array(4));
  h = `{"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 9007199254740991]}}`;
  add('offsets of 2^53 - 1 (read, then past the buffer)', h, at(h, '[0, 9'), /past the end of the 0-byte buffer/);
  h = `{"a": ${E()}, "b": ${E('[2, 6]')}}`;
  add('overlapping tensors', h, at(h, '[2, 6]'), /tensors "a" .* and "b" .* overlap/, new Uint8Array(6));
  h = `{"a": ${E()}, "b": ${E('[6, 10]')}}`;
  add('a hole', h, 8 + h.length + 4, /buffer bytes 4\.\.6 belong to no tensor/, new Uint8Array(10));
  h = `{"a": ${E()}}`;
  add('trailing bytes', h, 8 + h.length + 4, /2 bytes follow the last tensor/, new Uint8Array(6));
  return list;
})();

for (const [title, given] of cases) test(title, refused, given);

test('a bool byte other than 0 or 1 gives its file offset', (t) => {
  const bytes = file('{"b": {"dtype": "BOOL", "shape": [3], "data_offsets": [0, 3]}}', new Uint8Array([1, 0, 7]));
  const error = t.throws(() => decodeSafetensorsFile(bytes), { instanceOf: CorruptPayloadError });
  t.is(error?.byteOffset, bytes.length - 1);
});

test('the 8-byte length: a short file and a length past the end give their offsets', (t) => {
  t.is(
    t.throws(() => decodeSafetensorsFile(Buffer.from([1, 2, 3])), { instanceOf: CorruptPayloadError })?.byteOffset,
    3,
  );
  const long = file('{}');
  long.writeBigUInt64LE(99n);
  t.is(t.throws(() => decodeSafetensorsFile(long), { instanceOf: CorruptPayloadError })?.byteOffset, 0);
});

test('more tensors or metadata entries than ROUNDLOG_MAX_TENSOR_COUNT: DecodeLimitError at the first over', (t) => {
  const previous = setDecodeLimits({ maxTensorCount: 2 });
  try {
    const tensors = `{"a": ${E()}, "b": ${E('[4, 8]')}, "c": ${E('[8, 12]')}}`;
    const error = t.throws(() => decodeSafetensorsFile(file(tensors, new Uint8Array(12)), { source: SOURCE }), {
      instanceOf: DecodeLimitError,
    });
    t.is(error?.code, 'DECODE_LIMIT');
    t.like(error, { declared: 3, limit: 2, setting: 'ROUNDLOG_MAX_TENSOR_COUNT', unit: 'tensors' });
    t.is(error?.byteOffset, at(tensors, '"c"'));
    t.regex(
      error!.message,
      new RegExp(
        'the safetensors header of file /x/hostile\\.safetensors holds 3 tensors, ' +
          `over the maximum of 2 \\(ROUNDLOG_MAX_TENSOR_COUNT\\), the first past it at byte ${at(tensors, '"c"')}`,
      ),
    );
    const metadata = '{"__metadata__": {"a": "", "b": "", "c": ""}}';
    const over = t.throws(() => decodeSafetensorsFile(file(metadata)), { instanceOf: DecodeLimitError });
    t.like(over, { declared: 3, unit: 'metadata entries', byteOffset: at(metadata, '"c"') });
    // Two of each is within the limit, and the encoder refuses what the decoder would.
    const two = `{"__metadata__": {"a": "", "b": ""}, "a": ${E()}, "b": ${E('[4, 8]')}}`;
    t.is(decodeSafetensorsFile(file(two, new Uint8Array(8))).metadata.b, '');
    const three = Object.fromEntries(
      ['a', 'b', 'c'].map((name) => [name, { dtype: 'uint8' as const, shape: [1], data: new Uint8Array(1) }]),
    );
    t.like(
      t.throws(() => encodeSafetensors(three), { instanceOf: DecodeLimitError }),
      { unit: 'tensors' },
    );
  } finally {
    setDecodeLimits(previous);
  }
});

test('a megabyte name, key or dtype is cut short in messages, which stay small', (t) => {
  const long = 'n'.repeat(1_000_000);
  for (const header of [
    `{"${long}": {"dtype": "F8", "shape": [1], "data_offsets": [0, 1]}}`,
    `{"a": {"dtype": "${long}", "shape": [1], "data_offsets": [0, 1]}}`,
    `{"__metadata__": {"${long}": 3}}`,
    `{"a": {"${long}": 1}}`,
    `{"${long}": {}, "${long}": {}}`,
  ]) {
    const error = t.throws(() => decodeSafetensorsFile(file(header, new Uint8Array(1))), {
      instanceOf: CorruptPayloadError,
    });
    t.true(error!.message.length < 1000, error!.message.slice(0, 300));
    t.regex(error!.message, /"n{197}"\.\.\. \(1000000 characters\)/);
  }
});

test('rank 64 and offsets up to 2^53 - 1 are read; the shape is as written', (t) => {
  const dims = Array(MAX_TENSOR_RANK).fill(1);
  const header = `{"a": {"dtype": "U8", "shape": [${dims.join(', ')}], "data_offsets": [0, 1]}}`;
  const { tensors } = decodeSafetensorsFile(file(header, new Uint8Array([5])));
  t.deepEqual(tensors.a!.shape, dims);
});

test('escapes, raw UTF-8, surrogate pairs and JSON whitespace read as a JSON parser reads them', (t) => {
  const names = ['q"uote', 'back\\slash', 'sl/ash', 'tab\tnl\n', 'é', '😀', '\u0000', '__proto__', ''];
  const escaped = [
    '"q\\"uote"',
    '"back\\\\slash"',
    '"sl\\/ash"',
    '"tab\\tnl\\n"',
    '"\\u00E9"',
    '"\\ud83d\\ude00"',
    '"\\u0000"',
    '"__proto__"',
    '""',
  ];
  const members = escaped.map((key, i) => `${key}\t:\r\n${E(`[ ${4 * i} , ${4 * i + 4} ]`)}`);
  const header = `{\n  "__metadata__" : { "é😀" : "\\b\\f\\r", "__proto__": "x" } ,\n  ${members.join(' ,\n  ')}\n}   `;
  const { tensors, metadata } = decodeSafetensorsFile(file(header, new Uint8Array(4 * names.length)));
  t.deepEqual(Object.keys(tensors), names);
  t.deepEqual({ ...metadata }, JSON.parse(header).__metadata__ as Record<string, string>);
  t.true(Object.hasOwn(metadata, '__proto__'));
  t.is(Object.getPrototypeOf(metadata), Object.prototype);
});

test('any header JSON.stringify writes of well-formed names and metadata reads as JSON.parse reads it', (t) => {
  const text = fc.string({ unit: 'binary', maxLength: 12 }).filter(wellFormed);
  fc.assert(
    fc.property(
      fc.uniqueArray(text, { maxLength: 6 }).map((names) => names.filter((name) => name !== '__metadata__')),
      fc.dictionary(text, text, { maxKeys: 4 }),
      (names, metadata) => {
        // No prototype: a name "__proto__" is an own key. Each tensor one byte, in the order of `names`.
        const header = Object.create(null) as Record<string, unknown>;
        header.__metadata__ = { ...metadata };
        names.forEach((name, i) => (header[name] = { dtype: 'U8', shape: [1], data_offsets: [i, i + 1] }));
        const json = Buffer.from(JSON.stringify(header), 'utf8');
        const parsed = parseSafetensorsHeader(json, names.length, {});
        const expected = JSON.parse(json.toString('utf8')) as Record<string, unknown>;
        assert.deepStrictEqual(
          parsed.entries.map((e) => e.name),
          names,
        );
        assert.deepStrictEqual(
          new Set(parsed.entries.map((e) => e.name)),
          new Set(Object.keys(expected).filter((k) => k !== '__metadata__')),
        );
        assert.deepStrictEqual({ ...parsed.metadata }, { ...(expected.__metadata__ as object) });
      },
    ),
  );
  t.pass();
});
