/**
 * `roundlog history` and `roundlog audit` (in process) against one real root built by real
 * processes and by the command: an experiment SIGKILLed mid-round and resumed by another process, the example
 * run by `roundlog run` then resumed from an older breakpoint with `roundlog resume`, and forked
 * with `roundlog fork`. Outputs are checked against the raw log (`roundlog events`, `streams`).
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { killSpawned, spawnTs } from '../support/child.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { roundlog, type Run } from '../support/cli.ts';
import { parseCsv } from './helpers.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const USER = os.userInfo().username;
const HOST = os.hostname();
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

type Fixture = {
  root: string;
  /** Experiment_0000: rounds 0 and 1, round 2 killed mid-way, resumed by `resumerPid` for rounds 2 and 3. */
  id0: string;
  resumerPid: number;
  /**
   * Experiment_0001: the example, 3 rounds by `roundlog run`; `roundlog resume` of breakpoint_0000 (pid `resumePid`)
   * re-ran round 1.
   */
  id1: string;
  resumePid: number;
  /** Experiment_0002: `roundlog fork Experiment_0001 --round 0` (pid `forkPid`). */
  id2: string;
  forkPid: number;
};

function ok(t: { is: (a: unknown, b: unknown, m?: string) => void }, run: Run): string {
  t.is(run.code, 0, `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  return run.stdout;
}

function must(run: Run, what: string): Run {
  if (run.code !== 0) throw new Error(`${what} failed (${run.code}):\n${run.stdout}\n${run.stderr}`);
  return run;
}

async function build(): Promise<Fixture> {
  const root = tempDir();
  // 1. Rounds 0 and 1 go through the gate; round 2 has started (its RoundStarted is durable) when the process is
  // killed.
  const first = spawnTs('experiment-child.ts', ['run', root, '7', 'all', '6', 'gate'], (line, child) => {
    const training = /^training (\d+) /.exec(line);
    if (training === null) return;
    if (Number(training[1]) < 2) child.process.stdin!.write('\n');
    else child.process.kill('SIGKILL');
  });
  const id0 = (await first.waitFor((l) => l.startsWith('created '))).split(' ')[2]!;
  const killed = await first.exited;
  if (killed.signal !== 'SIGKILL')
    throw new Error(`the first child was not killed: ${JSON.stringify(killed)}\n${first.stderr()}`);
  // 2. Another process resumes from the last breakpoint and runs rounds 2 and 3.
  const resumer = spawnTs('experiment-child.ts', ['run', root, '7', '2', '6']);
  const resumed = await resumer.waitFor((l) => l.startsWith('resumed '));
  if (resumed !== `resumed 2 Experiment_0000 ${id0}`) throw new Error(`unexpected: ${resumed}`);
  await resumer.waitFor((l) => l === 'stopped 4');
  await resumer.exited;
  // 3. The example through the CLI, then a resume from its first breakpoint (rounds 1 and 2 superseded).
  must(await roundlog(['run', 'examples/logistic-regression/experiment.ts', '--rounds', '3', '--root', root]), 'run');
  const resume = must(
    await roundlog([
      'resume',
      path.join(root, 'experiments', 'Experiment_0001', 'breakpoint_0000'),
      '--rewind',
      '--rounds',
      '1',
      '--root',
      root,
    ]),
    'resume',
  );
  const id1 = /resumed Experiment_0001 \(([0-9a-f-]{36})\)/.exec(resume.stdout)![1]!;
  // 4. A fork of it.
  const fork = must(await roundlog(['fork', 'Experiment_0001', '--round', '0', '--root', root]), 'fork');
  const id2 = /into Experiment_0002 \(([0-9a-f-]{36})\)/.exec(fork.stdout)![1]!;
  return { root, id0, resumerPid: resumer.process.pid!, id1, resumePid: resume.pid, id2, forkPid: fork.pid };
}

const fixture = build();
fixture.catch(() => undefined); // reported by every test that awaits it

type Raw = { type: string; revision: string; position: string; timestamp: string; data: Record<string, unknown> };

/** The experiment's events as `roundlog events` prints them: the log itself, not the audit code. */
async function rawEvents(root: string, id: string): Promise<Raw[]> {
  const run = must(await roundlog(['events', `experiment-${id}`, '--json', '--root', root]), 'events');
  return JSON.parse(run.stdout) as Raw[];
}

type JsonEntry = {
  kind: string;
  position: string;
  revision: string;
  time: string;
  round?: number | null;
  attempt?: number;
  by?: { user: string; host: string; pid: number };
  [k: string]: unknown;
};
const brief = (entries: JsonEntry[]) =>
  entries.map((e) =>
    e.round !== undefined && ['round', 'aborted', 'started'].includes(e.kind)
      ? `${e.kind} ${e.round}/${e.attempt}`
      : e.kind,
  );

test(
  'history: creation, rounds with nodes and metrics, the attempt a ' +
    'SIGKILL aborted, the resume with who, host and pid; JSON and CSV agree',
  async (t) => {
    const f = await fixture;
    const text = ok(t, await roundlog(['history', 'Experiment_0000', '--root', f.root]));
    t.regex(text, new RegExp(`^Experiment_0000 \\(${f.id0}\\): 4 rounds completed on the current branch$`, 'm'));
    t.regex(
      text,
      new RegExp(
        `created +Experiment_0000 created by ${escape(USER)}@${escape(HOST)} \\(pid \\d+\\): ` +
          `seed 7, round limit 6, breakpoints saved`,
      ),
    );
    const completedRound = new RegExp(
      /round +round 0 attempt 1 completed in (?:\d+ ms|\d+\.\d{2} s); nodes hospital-a \(\d+ samples\), /.source +
        /hospital-b \(\d+ samples\), hospital-c \(\d+ samples\); loss \d\.\d{4}, accuracy \d\.\d{4}; breakpoint/.source,
    );
    t.regex(text, completedRound);
    const abortedRound = new RegExp(
      /aborted +round 2 attempt 1 aborted: started on hospital-a, hospital-b, hospital-c, /.source +
        /never completed \(next: Resumed at \d{4}-/.source,
    );
    t.regex(text, abortedRound);
    t.regex(
      text,
      new RegExp(
        'resumed +resumed after round 1 \\(round 2 runs next\\) from breakpoint_0001 ' +
          `by ${escape(USER)}@${escape(HOST)} \\(pid ${f.resumerPid}\\)`,
      ),
    );
    t.regex(text, /round +round 2 attempt 2 completed/);

    const json = JSON.parse(ok(t, await roundlog(['history', 'Experiment_0000', '--json', '--root', f.root]))) as {
      experiment: { id: string; folder: string };
      roundCurrent: number;
      entries: JsonEntry[];
    };
    t.like(json, { experiment: { id: f.id0, folder: 'Experiment_0000' }, roundCurrent: 4 });
    t.deepEqual(brief(json.entries), [
      'created',
      'run-started',
      'round 0/1',
      'round 1/1',
      'aborted 2/1',
      'resumed',
      'run-started',
      'round 2/2',
      'round 3/1',
      'run-ended',
    ]);
    const resumed = json.entries.find((e) => e.kind === 'resumed')!;
    t.deepEqual(resumed.by, { user: USER, host: HOST, pid: f.resumerPid });
    t.like(resumed, { roundCurrent: 2, breakpoint: 'breakpoint_0001' });

    // Each round entry is its RoundCompleted in the raw log; the aborted one is the RoundStarted with no
    // RoundCompleted.
    const raw = await rawEvents(f.root, f.id0);
    const completed = raw.filter((e) => e.type === 'RoundCompleted');
    const rounds = json.entries.filter((e) => e.kind === 'round');
    t.deepEqual(
      rounds.map((e) => [e.position, e.round, e.attempt, e.metrics]),
      completed.map((e) => [e.position, e.data.round, e.data.attempt, e.data.metrics]),
    );
    const aborted = json.entries.find((e) => e.kind === 'aborted')!;
    const started = raw.find((e) => e.type === 'RoundStarted' && e.data.round === 2 && e.data.attempt === 1)!;
    t.is(aborted.position, started.position);
    t.is(aborted.time, started.timestamp);

    const csv = parseCsv(ok(t, await roundlog(['history', 'Experiment_0000', '--csv', '--root', f.root])));
    t.deepEqual(
      csv.map((r) => [r.position, r.revision, r.time, r.kind, r.round, r.attempt, r.user, r.host, r.pid]),
      json.entries.map((e) => [
        e.position,
        e.revision,
        e.time,
        e.kind,
        // One round convention: the CSV's round column is the JSON's `round` (an index), for every kind.
        e.round === undefined || e.round === null ? '' : String(e.round),
        e.attempt === undefined ? '' : String(e.attempt),
        e.by?.user ?? '',
        e.by?.host ?? '',
        e.by === undefined ? '' : String(e.by.pid),
      ]),
    );
    t.regex(csv.find((r) => r.kind === 'aborted')!.details!, /^round 2 attempt 1 aborted/);

    // The same experiment by id, by path, and with the root from ROUNDLOG_DIR.
    for (const [args, env] of [
      [['history', f.id0, '--json', '--root', f.root], {}],
      [['history', path.join(f.root, 'experiments', 'Experiment_0000'), '--json', '--root', f.root], {}],
      [['history', 'Experiment_0000', '--json'], { ROUNDLOG_DIR: f.root }],
    ] as const) {
      t.deepEqual(JSON.parse(ok(t, await roundlog([...args], env))), json, args.join(' '));
    }
  },
);

type JsonEvent = {
  type: string;
  folder: string;
  experimentId: string;
  position: string;
  revision: string;
  time: string;
  data: Record<string, unknown> & { by?: { pid: number; user: string; host: string } };
};

test(
  'audit events: every experiment, filtered by --type, --node, ' +
    '--experiment, --since and --until; table, JSON and CSV agree',
  async (t) => {
    const f = await fixture;
    const events = async (args: string[]) =>
      (JSON.parse(ok(t, await roundlog(['audit', ...args, '--json', '--root', f.root]))) as { events: JsonEvent[] })
        .events;
    const all = await events([]);
    const streams = JSON.parse(ok(t, await roundlog(['streams', '--json', '--root', f.root]))) as Array<{
      stream: string;
      lastRevision: string;
    }>;
    t.is(
      all.length,
      streams.filter((s) => s.stream.startsWith('experiment-')).reduce((n, s) => n + Number(s.lastRevision) + 1, 0),
      'every event of every experiment',
    );
    t.deepEqual([...new Set(all.map((e) => e.folder))], ['Experiment_0000', 'Experiment_0001', 'Experiment_0002']);
    const key = (list: JsonEvent[]) => list.map((e) => e.position);

    // Resumes of both experiments, by two different processes.
    const resumes = await events(['--type', 'Resumed']);
    t.deepEqual(
      resumes.map((e) => [e.folder, e.data.by!.pid, e.data.by!.host, e.data.by!.user]),
      [
        ['Experiment_0000', f.resumerPid, HOST, USER],
        ['Experiment_0001', f.resumePid, HOST, USER],
      ],
    );
    // `events` is the default query; types are case-insensitive, comma-separated or repeated.
    t.deepEqual(
      key(await events(['events', '--type', 'resumed,REWOUND'])),
      key(all.filter((e) => e.type === 'Resumed' || e.type === 'Rewound')),
    );
    t.deepEqual(
      key(await events(['--type', 'Resumed', '--type', 'Rewound'])),
      key(all.filter((e) => e.type === 'Resumed' || e.type === 'Rewound')),
    );

    // A node: the events that name it.
    const names = (e: JsonEvent): string[] =>
      e.type === 'RoundStarted'
        ? (e.data.nodes as string[])
        : e.type === 'NodeReplied'
          ? [e.data.node as string]
          : e.type === 'RoundCompleted'
            ? (e.data.nodes as Array<{ node: string }>).map((n) => n.node)
            : [];
    const nodeB = await events(['--node', 'hospital-b']);
    t.deepEqual(key(nodeB), key(all.filter((e) => names(e).includes('hospital-b'))));
    t.true(
      nodeB.some(
        (e) =>
          e.type === 'RoundStarted' && e.folder === 'Experiment_0000' && e.data.round === 2 && e.data.attempt === 1,
      ),
      'the aborted start',
    );
    const replies = await events(['--node', 'hospital-b', '--type', 'NodeReplied']);
    t.is(replies.length, 8, '4 completed rounds in each of two experiments');
    t.true(replies.every((e) => e.data.node === 'hospital-b'));

    const ofOne = await events(['--experiment', 'Experiment_0001', '--type', 'RoundCompleted']);
    t.deepEqual(
      ofOne.map((e) => `${e.data.round}/${e.data.attempt}`),
      ['0/1', '1/1', '2/1', '1/2'],
    );
    t.true(ofOne.every((e) => e.experimentId === f.id1));

    // Time: --since T keeps t >= T, --until T keeps t < T.
    const at = resumes[1]!.time;
    const since = await events(['--since', at]);
    const until = await events(['--until', at]);
    t.deepEqual(key(since), key(all.filter((e) => Date.parse(e.time) >= Date.parse(at))));
    t.deepEqual(key(until), key(all.filter((e) => Date.parse(e.time) < Date.parse(at))));
    t.true(since.length > 0 && until.length > 0);
    t.is(since.length + until.length, all.length);
    t.deepEqual(key(await events(['--since', '1h'])), key(all), 'built within the last hour');
    t.deepEqual(await events(['--until', '1d']), [], 'nothing older than a day');

    const csv = parseCsv(ok(t, await roundlog(['audit', '--type', 'Resumed,Rewound', '--csv', '--root', f.root])));
    const typed = all.filter((e) => e.type === 'Resumed' || e.type === 'Rewound');
    t.deepEqual(
      csv.map((r) => [r.position, r.time, r.experiment, r.experiment_id, r.revision, r.type]),
      typed.map((e) => [e.position, e.time, e.folder, e.experimentId, e.revision, e.type]),
    );
    const text = ok(t, await roundlog(['audit', '--type', 'Resumed', '--root', f.root]));
    t.regex(text, /^time +experiment +rev +type +details$/m);
    t.regex(
      text,
      new RegExp(
        `Experiment_0001 +\\d+ +Resumed +after round 0 \\(round 1 runs next\\) from breakpoint_0000 ` +
          `by ${escape(USER)}@${escape(HOST)} \\(pid ${f.resumePid}\\)`,
      ),
    );
    t.regex(text, /^2 events$/m);
  },
);

type JsonRow = {
  round: number;
  attempt: number;
  status: string;
  metrics: Record<string, number>;
  breakpoint: { requested: boolean; folder: string | null };
  samples: number | null;
  position: string;
  supersededBy: { reason: string } | null;
};

test(
  'audit rounds: a resume from an older breakpoint leaves superseded ' +
    'rounds in the table, marked, with their moved folders; JSON and CSV agree',
  async (t) => {
    const f = await fixture;
    const json = JSON.parse(
      ok(t, await roundlog(['audit', 'rounds', 'Experiment_0001', '--json', '--root', f.root])),
    ) as { roundCurrent: number; metricNames: string[]; rounds: JsonRow[] };
    t.is(json.roundCurrent, 2);
    t.deepEqual(json.metricNames, ['loss', 'accuracy']);
    t.deepEqual(
      json.rounds.map((r) => [r.round, r.attempt, r.status, r.breakpoint.folder]),
      [
        [0, 1, 'current', 'breakpoint_0000'],
        [1, 1, 'superseded', 'superseded/breakpoint_0001.1'],
        [1, 2, 'current', 'breakpoint_0001'],
        [2, 1, 'superseded', 'superseded/breakpoint_0002.1'],
      ],
    );
    for (const row of json.rounds)
      t.true(
        existsSync(path.join(f.root, 'experiments', 'Experiment_0001', row.breakpoint.folder!, 'breakpoint.json')),
      );
    t.true(
      json.rounds
        .filter((r) => r.status === 'superseded')
        .every((r) => r.supersededBy?.reason === 'loaded the older breakpoint breakpoint_0000'),
    );
    t.true(json.rounds.every((r) => r.samples === 1100));
    const raw = (await rawEvents(f.root, f.id1)).filter((e) => e.type === 'RoundCompleted');
    t.deepEqual(
      json.rounds.map((r) => [r.position, r.metrics]),
      json.rounds.map((r) => [r.position, raw.find((e) => e.position === r.position)!.data.metrics]),
    );

    const text = ok(t, await roundlog(['audit', 'rounds', 'Experiment_0001', '--root', f.root]));
    t.regex(
      text,
      /^round +attempt +status +nodes \(samples\) +samples +loss +accuracy +duration +breakpoint +pruned +completed$/m,
    );
    const supersededRow = new RegExp(
      /^1 +1 +superseded +hospital-a 600, hospital-b 150, hospital-c 350 +1100 +/.source +
        /\d\.\d{4} +\d\.\d{4} +\d+ ms +superseded\/breakpoint_0001\.1 +- +\d{4}-/.source,
      'm',
    );
    t.regex(text, supersededRow);
    t.regex(text, /^1 +2 +current +.* breakpoint_0001 +- +\d{4}-/m);

    const csv = parseCsv(ok(t, await roundlog(['audit', 'rounds', 'Experiment_0001', '--csv', '--root', f.root])));
    t.deepEqual(
      csv.map((r) => [
        Number(r.round),
        Number(r.attempt),
        r.status,
        Number(r.loss),
        Number(r.accuracy),
        r.breakpoint_folder,
        r.sample_sizes,
        r.position,
      ]),
      json.rounds.map((r) => [
        r.round,
        r.attempt,
        r.status,
        r.metrics.loss,
        r.metrics.accuracy,
        r.breakpoint.folder,
        '600;150;350',
        r.position,
      ]),
    );

    // The killed attempt is in the table of Experiment_0000, marked aborted, with no breakpoint.
    const first = JSON.parse(
      ok(t, await roundlog(['audit', 'rounds', 'Experiment_0000', '--json', '--root', f.root])),
    ) as { rounds: JsonRow[] };
    t.deepEqual(
      first.rounds.map((r) => [r.round, r.attempt, r.status, r.breakpoint.folder]),
      [
        [0, 1, 'current', 'breakpoint_0000'],
        [1, 1, 'current', 'breakpoint_0001'],
        [2, 1, 'aborted', null],
        [2, 2, 'current', 'breakpoint_0002'],
        [3, 1, 'current', 'breakpoint_0003'],
      ],
    );
  },
);

test(
  'audit metric: the series equals the RoundCompleted metrics ' +
    'of the current branch; per node; an unknown metric exits 1',
  async (t) => {
    const f = await fixture;
    // The current branch, folded by hand from the raw log: a RoundCompleted sets its round, a Rewound cuts the branch.
    const branch: Array<{ loss: number; nodes: Array<{ node: string; metrics: Record<string, number> }> }> = [];
    for (const e of await rawEvents(f.root, f.id1)) {
      if (e.type === 'RoundCompleted')
        branch[e.data.round as number] = {
          loss: (e.data.metrics as Record<string, number>).loss!,
          nodes: e.data.nodes as never,
        };
      if (e.type === 'Rewound') branch.length = e.data.roundCurrent as number;
    }
    t.is(branch.length, 2);
    const json = JSON.parse(
      ok(t, await roundlog(['audit', 'metric', 'Experiment_0001', 'loss', '--json', '--root', f.root])),
    ) as { metric: string; points: Array<{ round: number; attempt: number; value: number }> };
    t.deepEqual(
      json.points.map((p) => [p.round, p.value]),
      branch.map((r, i) => [i, r.loss]),
    );
    t.deepEqual(
      json.points.map((p) => p.attempt),
      [1, 2],
    );
    const csv = parseCsv(
      ok(t, await roundlog(['audit', 'metric', 'Experiment_0001', 'loss', '--csv', '--root', f.root])),
    );
    t.deepEqual(
      csv.map((r) => [Number(r.round), Number(r.attempt), Number(r.value)]),
      json.points.map((p) => [p.round, p.attempt, p.value]),
    );
    const text = ok(t, await roundlog(['audit', 'metric', 'Experiment_0001', 'loss', '--root', f.root]));
    t.regex(text, /^loss over the current branch of Experiment_0001 \(.*\): 2 rounds$/m);
    t.regex(text, new RegExp(`^1 +2 +${escape(json.points[1]!.value.toFixed(4))} +\\d{4}-`, 'm'));

    const node = JSON.parse(
      ok(
        t,
        await roundlog([
          'audit',
          'metric',
          'Experiment_0001',
          'loss',
          '--node',
          'hospital-c',
          '--json',
          '--root',
          f.root,
        ]),
      ),
    ) as { points: Array<{ value: number }> };
    t.deepEqual(
      node.points.map((p) => p.value),
      branch.map((r) => r.nodes.find((n) => n.node === 'hospital-c')!.metrics.loss),
    );
    t.notDeepEqual(
      node.points.map((p) => p.value),
      json.points.map((p) => p.value),
    );

    const unknown = await roundlog(['audit', 'metric', 'Experiment_0001', 'auc', '--root', f.root]);
    t.is(unknown.code, 1);
    t.regex(unknown.stderr, /experiment Experiment_0001 has no metric "auc"; its rounds record: loss, accuracy/);
  },
);

test(
  'audit lineage after roundlog fork, both ways; audit actions: ' +
    'who resumed, rewound and forked what, from which host',
  async (t) => {
    const f = await fixture;
    type Lineage = {
      ancestors: Array<{
        via: string;
        id: string;
        folder: string;
        round: number;
        position: string;
        known: boolean;
        currentFolder: string | null;
      }>;
      descendants: Array<{ id: string; folder: string; round: number; by: { pid: number }; children: unknown[] }>;
    };
    const child = JSON.parse(
      ok(t, await roundlog(['audit', 'lineage', 'Experiment_0002', '--json', '--root', f.root])),
    ) as Lineage;
    t.is(child.ancestors.length, 1);
    const round0 = (await rawEvents(f.root, f.id1)).find((e) => e.type === 'RoundCompleted' && e.data.round === 0)!;
    t.deepEqual(child.ancestors[0], {
      via: 'fork',
      id: f.id1,
      folder: 'Experiment_0001',
      round: 0,
      position: round0.position,
      known: true,
      currentFolder: 'Experiment_0001',
    });
    t.deepEqual(child.descendants, []);
    const parent = JSON.parse(
      ok(t, await roundlog(['audit', 'lineage', 'Experiment_0001', '--json', '--root', f.root])),
    ) as Lineage;
    t.deepEqual(parent.ancestors, []);
    t.deepEqual(
      parent.descendants.map((d) => [d.id, d.folder, d.round, d.by.pid, d.children.length]),
      [[f.id2, 'Experiment_0002', 0, f.forkPid, 0]],
    );
    const tree = ok(t, await roundlog(['audit', 'lineage', 'Experiment_0001', '--root', f.root]));
    t.regex(
      tree,
      new RegExp(
        `^  └── Experiment_0002 \\(${f.id2}\\) forked at round 0 ` +
          `by ${escape(USER)}@${escape(HOST)} \\(pid ${f.forkPid}\\)`,
        'm',
      ),
    );
    const csv = parseCsv(ok(t, await roundlog(['audit', 'lineage', 'Experiment_0002', '--csv', '--root', f.root])));
    t.deepEqual(
      csv.map((r) => [r.relation, r.depth, r.id, r.folder]),
      [
        ['ancestor', '-1', f.id1, 'Experiment_0001'],
        ['self', '0', f.id2, 'Experiment_0002'],
      ],
    );
    t.regex(
      ok(t, await roundlog(['audit', 'lineage', 'Experiment_0000', '--root', f.root])),
      /ancestors: none\ndescendants: none/,
    );

    type Actions = {
      actions: Array<{
        type: string;
        folder: string;
        by: { user: string; host: string; pid: number };
        position: string;
        time: string;
      }>;
    };
    const actions = (JSON.parse(ok(t, await roundlog(['audit', 'actions', '--json', '--root', f.root]))) as Actions)
      .actions;
    t.deepEqual(
      actions.filter((a) => a.type !== 'ExperimentCreated').map((a) => [a.folder, a.type, a.by.pid]),
      [
        ['Experiment_0000', 'Resumed', f.resumerPid],
        ['Experiment_0001', 'Rewound', f.resumePid],
        ['Experiment_0001', 'Resumed', f.resumePid],
        ['Experiment_0001', 'Forked', f.forkPid],
      ],
    );
    t.true(actions.every((a) => a.by.user === USER && a.by.host === HOST));
    const rewound = (
      JSON.parse(
        ok(
          t,
          await roundlog([
            'audit',
            'actions',
            '--type',
            'Rewound',
            '--experiment',
            'Experiment_0001',
            '--json',
            '--root',
            f.root,
          ]),
        ),
      ) as Actions
    ).actions;
    t.deepEqual(
      rewound.map((a) => a.by.pid),
      [f.resumePid],
    );
    t.deepEqual(
      (
        JSON.parse(
          ok(t, await roundlog(['audit', 'actions', '--user', `not-${USER}`, '--json', '--root', f.root])),
        ) as Actions
      ).actions,
      [],
    );
    const csvActions = parseCsv(ok(t, await roundlog(['audit', 'actions', '--csv', '--root', f.root])));
    t.deepEqual(
      csvActions.map((r) => [r.position, r.time, r.experiment, r.action, r.user, r.host, r.pid]),
      actions.map((a) => [a.position, a.time, a.folder, a.type, a.by.user, a.by.host, String(a.by.pid)]),
    );
    const table = ok(t, await roundlog(['audit', 'actions', '--type', 'Resumed', '--root', f.root]));
    t.regex(
      table,
      new RegExp(
        `Experiment_0000 +Resumed +${escape(USER)} +${escape(HOST)} +${f.resumerPid} ` +
          '+after round 1 \\(round 2 runs next\\) from breakpoint_0001',
      ),
    );
  },
);

test(
  'bad input: an unknown experiment exits 1 naming it; ' + 'bad flags and arguments are usage errors (exit 2)',
  async (t) => {
    const f = await fixture;
    for (const args of [
      ['history', 'Experiment_0099'],
      ['history', 'Experiment_0099', '--follow'],
      ['audit', 'rounds', 'Experiment_0099'],
      ['audit', 'metric', 'Experiment_0099', 'loss'],
      ['audit', 'lineage', 'Experiment_0099'],
      ['audit', '--experiment', 'Experiment_0099'],
      ['audit', 'actions', '--experiment', 'Experiment_0099'],
    ]) {
      const run = await roundlog([...args, '--root', f.root]);
      t.is(run.code, 1, args.join(' '));
      t.regex(
        run.stderr,
        // The command it names acts on the same root.
        /^roundlog: no experiment "Experiment_0099" in the roundlog root .*; run 'roundlog ls --root \S+' to list/,
        args.join(' '),
      );
    }
    for (const [args, message] of [
      [['history'], /history needs an experiment/],
      [['history', 'Experiment_0000', 'Experiment_0001'], /history takes one experiment/],
      [['history', 'Experiment_0000', '--json', '--csv'], /--json and --csv cannot be used together/],
      [['history', 'Experiment_0000', '--since', '1h'], /Unknown option '--since'/],
      [['audit', 'bogus'], /unknown audit query "bogus"; use one of events, rounds, metric, lineage, actions/],
      [['audit', '--type', 'Resume'], /--type "Resume" is not an event type; use one of ExperimentCreated, /],
      [['audit', 'actions', '--type', 'RoundCompleted'], /--type "RoundCompleted" is not an action/],
      [['audit', '--since', 'yesterday'], /--since must be an ISO 8601 time/],
      [
        ['audit', '--since', '2025-01-02', '--until', '2025-01-01'],
        /--since \(2025-01-02T00:00:00.000Z\) is after --until/,
      ],
      [['audit', 'events', 'Experiment_0000'], /audit events takes no positional argument .*--experiment/],
      [['audit', 'rounds'], /audit rounds needs an experiment/],
      [['audit', 'metric', 'Experiment_0000'], /audit metric needs an experiment and a metric name/],
    ] as const) {
      const run = await roundlog([...args, '--root', f.root]);
      t.is(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      t.regex(run.stderr, message, args.join(' '));
      t.regex(run.stderr, /Run 'roundlog help'/);
    }
    // The usage is generated from the declarations: commands in `help`, their options in `<command> --help`.
    t.regex(ok(t, await roundlog(['help'])), /^ {2}roundlog history <experiment> +the timeline of one experiment/m);
    const history = ok(t, await roundlog(['history', '--help']));
    for (const option of ['-f, --follow', '--json', '--csv']) t.true(history.includes(option), option);
    const audit = ok(t, await roundlog(['help', 'audit']));
    t.regex(audit, /^ {2}roundlog audit rounds <experiment> +every attempt/m);
    t.regex(audit, /^ {2}roundlog audit metric <experiment> <name> +a metric over the current branch/m);
    t.regex(ok(t, await roundlog(['audit', 'metric', '--help'])), /^ +--node +one node's value/m);
    // A follower of an unknown experiment ends at once (it does not wait for it to appear).
    const follower = await roundlog(['history', 'nope', '--follow', '--root', f.root]);
    t.is(follower.code, 1);
  },
);
