/**
 * The two parsers `--listen`, `--researcher`, `--nodes` and `--tags` share (src/cli/args.ts).
 */
import test from 'ava';
import { commaList, splitHostPort } from '../../src/cli/args.ts';

test('HOST:PORT and [IPv6]:PORT split into host and port; anything else is null', (t) => {
  t.deepEqual(splitHostPort('10.0.0.5:50051'), { host: '10.0.0.5', port: 50051, portText: '50051' });
  t.deepEqual(splitHostPort('researcher.example:0'), { host: 'researcher.example', port: 0, portText: '0' });
  t.deepEqual(splitHostPort('[::1]:8080'), { host: '::1', port: 8080, portText: '8080' });
  // The range is the caller's: a listening port may be 0, a researcher's may not.
  t.deepEqual(splitHostPort('h:99999'), { host: 'h', port: 99999, portText: '99999' });
  for (const bad of ['h', ':80', 'h:', 'h:8x', '::1:80', '[::1]', '[ ::1]:80', 'a b:80', 'h:80 ', '[::1:80', 'h:-1']) {
    t.is(splitHostPort(bad), null, bad);
  }
});

test('a comma list: items trimmed, the first empty one, the first named twice', (t) => {
  t.deepEqual(commaList('a, b ,c'), { items: ['a', 'b', 'c'], empty: -1, repeated: undefined });
  t.deepEqual(commaList('a,,b'), { items: ['a', '', 'b'], empty: 1, repeated: undefined });
  t.deepEqual(commaList('a,b,a,b'), { items: ['a', 'b', 'a', 'b'], empty: -1, repeated: 'a' });
  t.is(commaList('').empty, 0);
});
