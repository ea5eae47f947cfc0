/**
 * Events whose data has the wrong shape, written through the real file log (its append API,
 * bypassing the deciders), as a damaged log or other tooling would leave them: every command that
 * reads the experiment's history fails with, or reports, the typed `InvalidEventDataError` naming
 * the event and the field, never `unexpected error`.
 */
import test from 'ava';
import { cpSync } from 'node:fs';
import path from 'node:path';
import { openFileEventLog } from '../../src/log/file/index.ts';
import { roundlog } from '../support/cli.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

/** A finished root of 2 rounds, shared and never changed. */
let source = '';
test.before(async () => {
  source = tempDir();
  const run = await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '2', '--root', source]);
  if (run.code !== 0) throw new Error(run.stderr);
});

const nested = (depth: number): unknown => {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = [value];
  return value;
};

type Bad = { title: string; field: string; type: string; data: (roundCompleted: Record<string, unknown>) => unknown };

const BAD: Bad[] = [
  {
    title: 'a round that is a string',
    field: 'data.round',
    type: 'RoundCompleted',
    data: (r) => ({ ...r, round: 'x' }),
  },
  {
    title: 'missing parameters',
    field: 'data.params',
    type: 'RoundCompleted',
    data: ({ params: _p, ...r }) => r,
  },
  {
    title: 'a state nested 100 deep',
    field: 'data.state',
    type: 'RoundCompleted',
    data: (r) => ({ ...r, state: nested(100) }),
  },
  {
    title: 'a folder that is a path out of the root',
    field: 'data.folder',
    type: 'Resumed',
    data: () => ({
      v: 1,
      roundCurrent: 2,
      breakpoint: null,
      folder: '../../outside',
      by: { user: 'u', host: 'h', pid: 1 },
    }),
  },
  {
    title: 'a node name of a megabyte',
    field: 'data.nodes[0]',
    type: 'RoundStarted',
    data: () => ({ v: 1, round: 2, attempt: 1, nodes: ['n'.repeat(1024 * 1024)] }),
  },
  {
    title: 'pruned rounds that are a number',
    field: 'data.rounds',
    type: 'RoundsPruned',
    data: () => ({
      v: 1,
      rounds: 42,
      retention: { keepLast: 1, keepEvery: null },
      by: { user: 'u', host: 'h', pid: 1 },
    }),
  },
  { title: 'null data', field: 'data', type: 'RunHeartbeat', data: () => null },
];

/** A copy of the finished root with `bad`'s event appended to the experiment's stream. */
async function damagedRoot(bad: Bad): Promise<string> {
  const root = tempDir();
  cpSync(source, root, { recursive: true });
  const log = await openFileEventLog({ dir: path.join(root, 'log') });
  try {
    const streams = (await log.listStreams()).streams.map((s) => s.stream);
    const stream = streams.find((s) => s.startsWith('experiment-'))!;
    const { events } = await log.readStream(stream);
    const completed = [...events].reverse().find((e) => e.type === 'RoundCompleted')!.data as Record<string, unknown>;
    await log.append(stream, [{ type: bad.type, data: bad.data(completed) }]);
  } finally {
    await log.close();
  }
  return root;
}

const COMMANDS: ReadonlyArray<{ args: (root: string) => string[]; reports?: boolean }> = [
  // `ls` lists the experiment as damaged (exit 0), `verify` reports it (exit 1); the others refuse it.
  { args: () => ['ls'], reports: true },
  { args: () => ['verify'] },
  { args: () => ['history', 'Experiment_0000'] },
  { args: () => ['audit', 'events'] },
  { args: () => ['audit', 'rounds', 'Experiment_0000'] },
  { args: (root) => ['resume', path.join(root, 'experiments', 'Experiment_0000'), '--rounds', '1'] },
  { args: () => ['gc'] },
];

for (const bad of BAD) {
  test(`an event with ${bad.title} is named by every command, typed: ${bad.field}`, async (t) => {
    const root = await damagedRoot(bad);
    for (const command of COMMANDS) {
      const args = [...command.args(root), '--root', root];
      const result = await roundlog(args);
      const output = `${result.stdout}${result.stderr}`;
      const shown = `roundlog ${args.join(' ')} exited ${result.code}:\n${output.slice(0, 2000)}`;
      t.notRegex(output, /unexpected error/, shown);
      t.is(result.code, command.reports === true ? 0 : 1, shown);
      // The event and the field are named: its revision in the stream, its type, the field's path.
      t.true(
        output.includes(`${bad.type} whose ${bad.field} `) ||
          output.includes(`${bad.type}) cannot be read: ${bad.field} `),
        shown,
      );
      t.true(output.length < 64 * 1024, `the output stays short (${output.length} characters)`);
    }
  });
}

test('a damaged experiment does not hide the others: ls lists both, the damaged one as damaged', async (t) => {
  const root = await damagedRoot(BAD[0]!);
  const run = await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '1', '--root', root]);
  t.is(run.code, 0, run.stderr);
  const ls = await roundlog(['ls', '--json', '--root', root]);
  t.is(ls.code, 0, ls.stderr);
  const listing = JSON.parse(ls.stdout) as Array<{ folder: string; status: string; damage: unknown }>;
  t.deepEqual(
    listing.map((e) => [e.folder, e.status]),
    [
      ['Experiment_0000', 'damaged'],
      ['Experiment_0001', 'stopped'],
    ],
  );
  t.like(listing[0]!.damage, { file: null, offset: null, revision: '13' });
});

/**
 * Every command over several experiments isolates the damaged one, for data of the wrong shape and
 * for an event type this release does not know: commands on the other experiment work (exit 0),
 * commands over all report the damaged one by its folder and still do the others' work (exit 1).
 */
const KINDS: Bad[] = [
  BAD[0]!,
  { title: 'an unknown type', field: 'type', type: 'Foo', data: () => ({ v: 1, round: -5 }) },
];
for (const bad of KINDS) {
  test(`an experiment with ${bad.title} is isolated: every command works for the other one`, async (t) => {
    const root = await damagedRoot(bad);
    const run = await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '2', '--root', root]);
    t.is(run.code, 0, run.stderr);
    const other: string[][] = [
      ['ls'],
      ['history', 'Experiment_0001'],
      ['audit', 'rounds', 'Experiment_0001'],
      ['audit', 'lineage', 'Experiment_0001'],
      ['fork', 'Experiment_0001', '--round', '0'],
      ['resume', 'Experiment_0001', '--rounds', '1'],
    ];
    for (const args of other) {
      const result = await roundlog([...args, '--root', root]);
      t.is(result.code, 0, `roundlog ${args.join(' ')}: ${result.stderr}`);
    }
    const all: Array<{ args: string[]; shows: RegExp }> = [
      { args: ['audit'], shows: /Experiment_0001 .*RunEnded/ },
      { args: ['audit', 'actions'], shows: /Experiment_0001 .*ExperimentCreated/ },
      { args: ['gc'], shows: /Experiment_0001: no retention policy/ },
      { args: ['project'], shows: /Experiment_0001/ },
      { args: ['verify', '--repair'], shows: /Experiment_0000/ },
      { args: ['history', 'Experiment_0000'], shows: /experiment Experiment_0000/ },
    ];
    for (const { args, shows } of all) {
      const result = await roundlog([...args, '--root', root]);
      const shown = `roundlog ${args.join(' ')} exited ${result.code}:\n${result.stdout}${result.stderr}`.slice(
        0,
        3000,
      );
      t.is(result.code, 1, shown);
      t.regex(`${result.stdout}${result.stderr}`, shows, shown);
      t.regex(`${result.stdout}${result.stderr}`, /experiment Experiment_0000/, shown);
      t.notRegex(result.stderr, /unexpected error/, shown);
    }
    // The typed results name it in `damaged`, and still hold the other experiment's work.
    for (const args of [['audit'], ['gc'], ['project']]) {
      const result = await roundlog([...args, '--json', '--root', root]);
      t.is(result.code, 1, `roundlog ${args.join(' ')} --json: ${result.stderr}`);
      const json = JSON.parse(result.stdout) as { damaged: Array<{ folder: string; code: string; message: string }> };
      t.deepEqual(
        json.damaged.map((d) => [d.folder, d.code]),
        [['Experiment_0000', bad.type === 'Foo' ? 'UNKNOWN_EVENT' : 'INVALID_EVENT_DATA']],
        args.join(' '),
      );
      t.regex(result.stdout, /Experiment_0001/, args.join(' '));
    }
    const ls = JSON.parse((await roundlog(['ls', '--json', '--root', root])).stdout) as Array<{ status: string }>;
    t.deepEqual(
      ls.map((e) => e.status),
      // The fork never ran a round of its own: created.
      ['damaged', 'stopped', 'created'],
    );
  });
}
