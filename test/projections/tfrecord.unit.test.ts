/** TFRecord framing and the `Event` encoding of the TensorBoard projection, against published values. */
import test from 'ava';
import {
  crc32c,
  fileVersionEvent,
  frameRecord,
  maskedCrc32c,
  readRecords,
  scalarsEvent,
} from '../../src/projections/tensorboard/index.ts';

test('CRC-32C matches the published check values (RFC 3720 B.4 and the "123456789" check)', (t) => {
  t.is(crc32c(Buffer.from('123456789')), 0xe3069283);
  t.is(crc32c(Buffer.alloc(32, 0x00)), 0x8a9136aa);
  t.is(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  t.is(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e);
});

test('the masked CRC of a 24-byte length is a3 7f 4b 22, the bytes every TensorFlow event file starts with', (t) => {
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(24n);
  const masked = Buffer.alloc(4);
  masked.writeUInt32LE(maskedCrc32c(length));
  t.is(masked.toString('hex'), 'a37f4b22');
  // A file_version event with a wall time is 24 bytes: its record starts the same way.
  const first = frameRecord(fileVersionEvent(1_700_000_000.5));
  t.is(first.subarray(0, 12).toString('hex'), '1800000000000000a37f4b22');
});

test('records round-trip: length, CRCs and data where the format puts them', (t) => {
  const data = [Buffer.from('first'), Buffer.alloc(0), Buffer.alloc(300, 7)];
  const file = Buffer.concat(data.map((d) => frameRecord(d)));
  t.is(
    file.length,
    data.reduce((n, d) => n + d.length + 16, 0),
  );
  const read = readRecords(file);
  t.deepEqual(
    read.records.map((r) => Buffer.from(r)),
    data,
  );
  t.is(read.end, file.length);
  t.is(read.tail, null);
  const one = frameRecord(Buffer.from('abc'));
  t.is(one.readBigUInt64LE(0), 3n);
  t.is(one.readUInt32LE(15), maskedCrc32c(Buffer.from('abc')));
});

test('a torn tail (a write cut anywhere in the last record) reads as the records before it, never as damage', (t) => {
  const whole = Buffer.concat([frameRecord(Buffer.from('kept')), frameRecord(Buffer.from('cut short'))]);
  const firstEnd = 4 + 16;
  for (let cut = firstEnd + 1; cut < whole.length; cut++) {
    const read = readRecords(whole.subarray(0, cut));
    t.is(read.records.length, 1, `cut at ${cut}`);
    t.is(read.end, firstEnd);
    t.like(read.tail, { kind: 'torn', offset: firstEnd });
  }
});

test('a damaged length or data is corrupt, found by its CRC; a damaged length is never trusted', (t) => {
  const record = frameRecord(Buffer.from('payload'));
  const badData = Buffer.from(record);
  badData.writeUInt8(badData.readUInt8(14) ^ 1, 14);
  t.like(readRecords(badData).tail, { kind: 'corrupt', offset: 0, reason: 'the data fails its CRC-32C' });
  // A length claiming 2^62 bytes: refused by its CRC before anything is sized from it.
  const badLength = Buffer.from(record);
  badLength.writeBigUInt64LE(1n << 62n, 0);
  const read = readRecords(badLength);
  t.deepEqual(read.records, []);
  t.like(read.tail, { kind: 'corrupt', offset: 0, reason: 'the length fails its CRC-32C' });
});

test('a scalar of 0 is on the wire (simple_value is in its oneof): fixed32 field 2 holding 0.0', (t) => {
  const event = Buffer.from(scalarsEvent(1.5, 3, [{ tag: 'loss', value: 0 }]));
  // Summary (field 5) → Value (field 1) → tag (1) "loss", simple_value (2, fixed32) 0.
  const value = Buffer.concat([Buffer.from([0x0a, 4]), Buffer.from('loss'), Buffer.from([0x15, 0, 0, 0, 0])]);
  const summary = Buffer.concat([Buffer.from([0x0a, value.length]), value]);
  const wallTime = Buffer.alloc(8);
  wallTime.writeDoubleLE(1.5);
  const expected = Buffer.concat([
    Buffer.from([0x09]),
    wallTime,
    Buffer.from([0x10, 3]),
    Buffer.from([0x2a, summary.length]),
    summary,
  ]);
  t.is(event.toString('hex'), expected.toString('hex'));
});
