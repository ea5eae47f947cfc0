/**
 * `roundlog node start`'s arguments, checked before the node loads anything or connects: options
 * given empty, as white space, twice, lists with empty or repeated items, a researcher address
 * that is not HOST:PORT or whose port is out of range, global options it does not use: usage
 * errors (exit 2) naming the option. Files it cannot read (the dataset, the approval list): typed
 * errors naming the file and what to do, never a stack trace. Every help example and README
 * command is a shell line that means what it shows (a `#` word quoted).
 */
import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from '../../src/cli/command.ts';
import { COMMANDS } from '../../src/cli/commands/index.ts';
import { parseResearcher } from '../../src/cli/commands/node.ts';
import { REPO, roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

function csv(): string {
  const file = path.join(tempDir(), 'd.csv');
  writeFileSync(file, 'a,b,label\n1,2,0\n3,4,1\n');
  return file;
}

/** `node start` with valid arguments, `replace` replacing (or adding) some. */
function startArgs(data: string, replace: Record<string, string | string[]>): string[] {
  const args: Record<string, string | string[]> = {
    id: 'a',
    data,
    tags: 't',
    researcher: '127.0.0.1:9',
    'node-dir': tempDir(),
    ...replace,
  };
  return [
    'node',
    'start',
    ...Object.entries(args).flatMap(([name, value]) =>
      (Array.isArray(value) ? value : [value]).flatMap((v) => [`--${name}`, v]),
    ),
  ];
}

test('empty, blank, repeated and malformed options are usage errors naming the option', async (t) => {
  const data = csv();
  const cases: Array<[Record<string, string | string[]>, string]> = [
    [{ tags: '' }, '--tags must be one tag or more, separated by commas (--tags a,b) (got "")'],
    [{ tags: ' ' }, '--tags must be one tag or more, separated by commas (--tags a,b) (got " ")'],
    [{ tags: 'a,,b' }, '--tags has an empty tag (tag 2 of "a,,b"): write --tags a,b'],
    [{ tags: 'a, b,a' }, '--tags names "a" twice: name each tag once'],
    [{ tags: ['a', 'b'] }, '--tags is given 2 times ("a", "b"): give it once (several tags: --tags a,b)'],
    [{ id: '' }, '--id must be the node id (got "")'],
    [{ id: ' a' }, '--id has white space at its start or end (got " a"): remove it'],
    [{ id: ['a', 'b'] }, '--id is given 2 times ("a", "b"): give it once'],
    [{ data: '' }, '--data must be the dataset file (got "")'],
    [{ 'node-dir': ' ' }, '--node-dir must be a folder (got " ")'],
    [{ researcher: '127.0.0.1:99999' }, `--researcher's port must be from 1 to 65535 (got 99999 in "127.0.0.1:99999")`],
    [{ researcher: '127.0.0.1:0' }, `--researcher's port must be from 1 to 65535 (got 0 in "127.0.0.1:0")`],
    [
      { researcher: 'localhost' },
      '--researcher must be HOST:PORT (a name or IPv4 address, or [IPv6], then the port), e.g. 10.0.0.5:50051 ' +
        '(got "localhost")',
    ],
    [{ 'split-seed': ['1', '2'] }, '--split-seed is given 2 times ("1", "2"): give it once'],
    [{ 'split-seed': '7' }, `--split-seed applies to the heart-disease format only; ${data} is read as numeric-csv`],
    [{ root: tempDir() }, '--root does not apply to node start (it reads no root)'],
  ];
  for (const [replace, message] of cases) {
    const run = await roundlog(startArgs(data, replace));
    t.is(run.code, 2, `${JSON.stringify(replace)}: ${run.stderr}`);
    t.is(run.stderr.split('\n')[0], `roundlog: ${message}`, JSON.stringify(replace));
    t.is(run.stdout, '', JSON.stringify(replace));
  }
  // Names, IPv4 and bracketed IPv6 addresses are HOST:PORT.
  for (const address of ['[::1]:50051', 'researcher.example.org:1', '10.0.0.5:65535']) {
    t.is(parseResearcher(address), address);
  }
});

test('a dataset or approval list that cannot be read is a typed error naming the file, never a stack', async (t) => {
  const dir = tempDir();
  const missing = path.join(dir, 'missing.csv');
  let run = await roundlog(startArgs(missing, {}));
  t.is(run.code, 1);
  t.is(
    run.stderr,
    `roundlog: the dataset file (--data) ${missing} does not exist: check --data (a relative path is taken ` +
      'from the folder the node is started in)\n',
  );
  // The node folder is a file: its approval list cannot be reached.
  const data = csv();
  run = await roundlog(startArgs(data, { 'node-dir': data }));
  t.is(run.code, 1);
  t.is(
    run.stderr,
    `roundlog: the node's approval list ${data}/approved-plans.json cannot be reached: a part of its path is a ` +
      'file, not a folder: check --node-dir (or $ROUNDLOG_NODE_DIR): it names the folder the node keeps its ' +
      'approvals in\n',
  );
  t.notRegex(run.stderr, /\n\s+at /);
});

/** Every declared command, depth first. */
const all = (commands: readonly Command[]): Command[] => commands.flatMap((c) => [c, ...all(c.subcommands ?? [])]);

/** The words of a shell line a word starting with `#` would cut (unquoted: the rest is a comment). */
function commentedOut(line: string): string | null {
  let quote: string | null = null;
  let start = true;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote !== null) {
      if (c === quote) quote = null;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '#' && start) return line.slice(i);
    start = quote === null && /\s/.test(c);
  }
  return null;
}

test('help examples and README node commands quote a word that starts with #', (t) => {
  for (const command of all(COMMANDS)) {
    for (const [line] of command.examples ?? []) t.is(commentedOut(line), null, line);
  }
  const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const lines = readme.split('\n').filter((line) => /--tags\s/.test(line) && /roundlog /.test(line));
  t.true(lines.length > 0);
  for (const line of lines) t.notRegex(line, /--tags\s+#/, line);
  t.is(commentedOut('roundlog node start --tags #heart --researcher h:1'), '#heart --researcher h:1');
});
