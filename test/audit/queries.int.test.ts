/**
 * The audit library against real roots built in this process by the `Experiment` facade (a toy
 * plan in a temp workspace, nodes that fail on demand), read through real file logs: history,
 * rounds table, metric series, events across experiments, actions, lineage, and the live modes
 * following appends made after they caught up.
 */
import test from 'ava';
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { filter, firstValueFrom, take, toArray } from 'rxjs';
import {
  MetricNotFoundError,
  auditActions,
  auditEvents,
  experimentHistory,
  followEvents,
  followHistory,
  lineage,
  metricSeries,
  roundsTable,
  type AuditEvent,
  type Followed,
  type HistoryEntry,
} from '../../src/audit/index.ts';
import { ExperimentNotFoundError } from '../../src/model/errors.ts';
import { openRoundLog, type RoundLog } from '../../src/projections/index.ts';
import { InvalidArgumentError } from '../../src/errors.ts';
import { Experiment, type ExperimentOptions } from '../../src/federated/experiment.ts';
import type { ExperimentCreated, RoundCompleted } from '../../src/model/events.ts';
import type { TrainResult } from '../../src/federated/training-plan.ts';
import { openFileEventLog } from '../../src/log/file/index.ts';
import type { RecordedEvent } from '../../src/log/types.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

const PLAN = `export const plan = {
  init: () => ({ w: { dtype: 'float32', shape: [2], data: new Float32Array(2) } }),
  train: (params, data) => data.train(params),
};
`;
const NODES = ['node-a', 'node-b', 'node-c'] as const;
const SAMPLES: Record<string, number> = { 'node-a': 1, 'node-b': 2, 'node-c': 5 };
const ME = { user: os.userInfo().username, host: os.hostname(), pid: process.pid };

type Harness = {
  root: string;
  workspace: string;
  failing: Set<string>;
  options(overrides?: Partial<ExperimentOptions>): ExperimentOptions;
};

/** A root and a workspace; every node adds (its index + 1) to the weights, and throws while in `failing`. */
function harness(): Harness {
  const root = tempDir();
  const workspace = tempDir();
  mkdirSync(path.join(workspace, 'plan'));
  writeFileSync(path.join(workspace, 'plan/node-plan.ts'), PLAN);
  const failing = new Set<string>();
  const federation = {
    nodes: NODES.map((id) => ({
      id,
      datasets: [
        {
          id: `${id}/data`,
          tags: ['#t'],
          data: {
            train: (params: { w: { data: Float32Array } }): TrainResult => {
              if (failing.has(id)) throw new Error(`${id}: disk full`);
              const step = NODES.indexOf(id) + 1;
              return {
                params: { w: { dtype: 'float32', shape: [2], data: params.w.data.map((x) => x + step) } },
                sampleSize: SAMPLES[id]!,
                metrics: { loss: step / (1 + params.w.data[0]!), score: 10 * step },
              };
            },
          },
        },
      ],
    })),
  };
  return {
    root,
    workspace,
    failing,
    options: (overrides = {}) => ({
      tags: ['#t'],
      trainingPlan: { module: 'plan/node-plan.ts', export: 'plan' },
      federation,
      roundLimit: 8,
      saveBreakpoints: true,
      seed: 3,
      root,
      workspace,
      ...overrides,
    }),
  };
}

async function streamOf(root: string, experimentId: string): Promise<readonly RecordedEvent[]> {
  const log = await openFileEventLog({ dir: path.join(root, 'log'), readOnly: true });
  try {
    return (await log.readStream(`experiment-${experimentId}`)).events;
  } finally {
    await log.close();
  }
}

/**
 * A fork written through the low-level API, as the event catalogue describes one: the child's
 * `ExperimentCreated` (its `importedFrom` standing for the parent's round) and `ForkedFrom`, the
 * parent's `Forked`.
 */
async function forkByHand(rl: RoundLog, parentName: string, round: number): Promise<{ id: string; folder: string }> {
  const parent = await rl.openExperiment(parentName);
  const record = parent.state.rounds[round]!;
  const child = await rl.createExperiment({
    roundLimit: parent.state.settings.roundLimit,
    seed: parent.created.seed,
    saveBreakpoints: true,
    federated: parent.created.federated,
    importedFrom: {
      experimentId: parent.id,
      folder: parent.state.folder,
      round,
      logPosition: String(record.position),
      breakpointSha256: '0'.repeat(64),
      params: record.params,
      state: record.state,
    },
  });
  await child.append([
    {
      type: 'ForkedFrom',
      data: {
        v: 1,
        parentId: parent.id,
        parentFolder: parent.state.folder,
        parentRound: round,
        parentPosition: String(record.position),
      },
    },
  ]);
  await parent.append([
    { type: 'Forked', data: { v: 1, childId: child.id, childFolder: child.state.folder, round, by: rl.actor } },
  ]);
  return { id: child.id, folder: child.state.folder };
}

type Fixture = {
  h: Harness;
  a: { id: string; dir: string };
  b: { id: string };
  c: { id: string; folder: string };
  d: { id: string; folder: string };
};

/**
 * Experiment_0000 (A, nodes a and b only): rounds 0 and 1; round 2 fails (node-b) and is retried
 * as attempt 2; then breakpoint_0000 is loaded (rounds 1 and 2 superseded), round 1 runs again
 * (attempt 2) and round 2 fails once more (attempt 3, left open); then forked and pruned.
 * Experiment_0001 (B, every node): one round. Experiment_0002 (C): a fork of A at round 0;
 * Experiment_0003 (D): a fork of C at round 0.
 */
async function build(): Promise<Fixture> {
  const h = harness();
  const first = await Experiment.create(h.options({ nodes: ['node-a', 'node-b'] }));
  await first.runOnce();
  await first.runOnce();
  h.failing.add('node-b');
  await first.runOnce().catch(() => undefined);
  h.failing.delete('node-b');
  await first.runOnce();
  const a = { id: first.id, dir: first.experimentationPath() };
  await first.close();

  const again = await Experiment.loadBreakpoint(path.join(a.dir, 'breakpoint_0000'), {
    rewind: true,
    root: h.root,
    federation: h.options().federation,
    workspace: h.workspace,
  });
  await again.runOnce();
  h.failing.add('node-b');
  await again.runOnce().catch(() => undefined);
  h.failing.delete('node-b');
  await again.close();

  const other = await Experiment.create(h.options());
  await other.runOnce();
  const b = { id: other.id };
  await other.close();

  const rl = await openRoundLog({ root: h.root });
  try {
    const c = await forkByHand(rl, 'Experiment_0000', 0);
    const d = await forkByHand(rl, c.folder, 0);
    const handle = await rl.openExperiment(a.id);
    const round0 = handle.state.rounds[0]!;
    await handle.append([
      {
        type: 'RoundsPruned',
        data: {
          v: 1,
          rounds: [{ round: 0, position: String(round0.position) }],
          retention: { keepLast: 1, keepEvery: null },
          by: rl.actor,
        },
      },
    ]);
    return { h, a, b, c, d };
  } finally {
    await rl.close();
  }
}

const fixture = build();

async function withRl<T>(root: string, fn: (rl: RoundLog) => Promise<T>): Promise<T> {
  const rl = await openRoundLog({ root });
  try {
    return await fn(rl);
  } finally {
    await rl.close();
  }
}

const brief = (entries: readonly HistoryEntry[]) =>
  entries.map((e) =>
    e.kind === 'round' || e.kind === 'aborted' || e.kind === 'started' ? `${e.kind} ${e.round}/${e.attempt}` : e.kind,
  );

test(
  'history: creation, rounds, the aborted and the open attempt, ' +
    'the rewind and resume with who and where, fork and pruning',
  async (t) => {
    const { h, a, c } = await fixture;
    const result = await withRl(h.root, (rl) => experimentHistory(rl, { experiment: 'Experiment_0000' }));
    t.like(result.experiment, { id: a.id, number: 0, folder: 'Experiment_0000', stream: `experiment-${a.id}` });
    t.is(result.roundCurrent, 2);
    t.deepEqual(brief(result.entries), [
      'created',
      'run-started',
      'round 0/1',
      'round 1/1',
      'aborted 2/1',
      'run-failed',
      'run-started',
      'round 2/2',
      'run-ended',
      'rewound',
      'resumed',
      'run-started',
      'round 1/2',
      'aborted 2/3',
      'run-failed',
      'forked',
      'pruned',
    ]);
    const byKind = <K extends HistoryEntry['kind']>(kind: K) =>
      result.entries.filter((e): e is Extract<HistoryEntry, { kind: K }> => e.kind === kind);
    const [created] = byKind('created');
    t.like(created, { seed: 3, roundLimit: 8, nodes: ['node-a', 'node-b'], tags: ['#t'], by: ME });
    const [aborted] = byKind('aborted');
    t.deepEqual(aborted!.nodes, ['node-a', 'node-b']);
    t.is(aborted!.endedBy.type, 'RunFailed', 'the failure recorded ended it');
    const [rewound] = byKind('rewound');
    t.like(rewound, {
      roundCurrent: 1,
      reason: 'loaded the older breakpoint breakpoint_0000',
      supersededRounds: [1, 2],
      by: ME,
    });
    const [resumed] = byKind('resumed');
    t.like(resumed, { roundCurrent: 1, breakpoint: 'breakpoint_0000', folder: null, by: ME });
    const rounds = byKind('round');
    t.deepEqual(
      rounds[0]!.nodes.map((n) => [n.node, n.sampleSize]),
      [
        ['node-a', 1],
        ['node-b', 2],
      ],
    );
    t.true(
      rounds.every(
        (r) => r.startedAt !== null && r.startedAt <= r.time && r.nodes.every((n) => typeof n.durationMs === 'number'),
      ),
    );
    const [forked] = byKind('forked');
    t.like(forked, { childId: c.id, childFolder: c.folder, round: 0, by: ME });
    // In log order.
    t.deepEqual(
      result.entries.map((e) => e.position),
      [...result.entries.map((e) => e.position)].sort((x, y) => (x < y ? -1 : 1)),
    );

    // The same history by id, by stream name and by path.
    for (const name of [a.id, `experiment-${a.id}`, a.dir]) {
      const again = await withRl(h.root, (rl) => experimentHistory(rl, { experiment: name }));
      t.deepEqual(again, result, name);
    }
  },
);

test('history of an unknown experiment is ExperimentNotFoundError', async (t) => {
  const { h } = await fixture;
  const error = await withRl(h.root, (rl) =>
    t.throwsAsync(experimentHistory(rl, { experiment: 'Experiment_0042' }), { instanceOf: ExperimentNotFoundError }),
  );
  t.is(error!.code, 'EXPERIMENT_NOT_FOUND');
  t.is(error!.experiment, 'Experiment_0042');
});

test(
  'rounds table: every attempt, superseded and aborted ' + 'ones marked, breakpoint folders where they are, pruning',
  async (t) => {
    const { h, a } = await fixture;
    const result = await withRl(h.root, (rl) => roundsTable(rl, { experiment: 'Experiment_0000' }));
    t.is(result.roundCurrent, 2);
    t.deepEqual(result.metricNames, ['loss', 'score']);
    t.deepEqual(
      result.rounds.map((r) => [r.round, r.attempt, r.status, r.breakpoint.folder, r.pruned]),
      [
        [0, 1, 'current', 'breakpoint_0000', true],
        [1, 1, 'superseded', 'superseded/breakpoint_0001.1', false],
        [1, 2, 'current', 'breakpoint_0001', false],
        [2, 1, 'aborted', null, false],
        [2, 2, 'superseded', 'superseded/breakpoint_0002.1', false],
        [2, 3, 'started', null, false],
      ],
    );
    for (const row of result.rounds) {
      if (row.breakpoint.folder !== null)
        t.true(existsSync(path.join(a.dir, row.breakpoint.folder, 'breakpoint.json')), row.breakpoint.folder);
    }
    // Each completed row is its RoundCompleted: position, metrics, nodes and sample sizes.
    const events = await streamOf(h.root, a.id);
    const completed = events.filter((e) => e.type === 'RoundCompleted');
    const rows = result.rounds.filter((r) => r.status === 'current' || r.status === 'superseded');
    t.is(rows.length, completed.length);
    for (const event of completed) {
      const data = event.data as RoundCompleted;
      const row = rows.find((r) => r.position === event.position)!;
      t.like(row, {
        round: data.round,
        attempt: data.attempt,
        metrics: data.metrics,
        durationMs: data.durationMs,
        samples: 3,
      });
      t.deepEqual(
        row.nodes.map((n) => [n.node, n.sampleSize, n.metrics]),
        data.nodes.map((n) => [n.node, n.sampleSize, n.metrics]),
      );
      t.true(row.breakpoint.requested);
    }
    const superseded = result.rounds.filter((r) => r.status === 'superseded');
    t.true(superseded.every((r) => r.supersededBy?.reason === 'loaded the older breakpoint breakpoint_0000'));
    const unfinished = result.rounds.filter((r) => r.status === 'aborted' || r.status === 'started');
    t.true(
      unfinished.every(
        (r) => r.completedAt === null && r.samples === null && r.nodes.map((n) => n.node).join() === 'node-a,node-b',
      ),
    );
  },
);

test(
  'metric series: the current branch, as the engine folds ' + 'it; per node; unknown names are MetricNotFoundError',
  async (t) => {
    const { h, a } = await fixture;
    await withRl(h.root, async (rl) => {
      const { state } = await rl.openExperiment(a.id);
      const loss = await metricSeries(rl, { experiment: 'Experiment_0000', metric: 'loss' });
      t.deepEqual(
        loss.points.map((p) => [p.round, p.attempt, p.value, p.position]),
        state.rounds.map((r) => [r.round, r.attempt, r.metrics.loss, r.position]),
      );
      t.deepEqual(
        loss.points.map((p) => p.attempt),
        [1, 2],
        'round 1 as re-run after the rewind, not the superseded one',
      );
      const nodeB = await metricSeries(rl, { experiment: a.id, metric: 'score', node: 'node-b' });
      t.deepEqual(
        nodeB.points.map((p) => p.value),
        [20, 20],
      );
      t.is(nodeB.node, 'node-b');

      const unknown = await t.throwsAsync(metricSeries(rl, { experiment: 'Experiment_0000', metric: 'accuracy' }), {
        instanceOf: MetricNotFoundError,
      });
      t.is(unknown!.code, 'METRIC_NOT_FOUND');
      t.deepEqual(unknown!.available, ['loss', 'score']);
      t.regex(unknown!.message, /has no metric "accuracy"; its rounds record: loss, score/);
      const absentNode = await t.throwsAsync(
        metricSeries(rl, { experiment: 'Experiment_0000', metric: 'loss', node: 'node-c' }),
        { instanceOf: MetricNotFoundError },
      );
      t.deepEqual(absentNode!.available, []);
      await t.throwsAsync(metricSeries(rl, { experiment: 'Experiment_0000', metric: '' }), {
        instanceOf: InvalidArgumentError,
      });
      // A fork with no round of its own records no metric yet: the name is unknown to it, as to any
      // experiment with no completed round (not an empty series for one name and a 404 for another).
      const fork = await t.throwsAsync(metricSeries(rl, { experiment: 'Experiment_0002', metric: 'loss' }), {
        instanceOf: MetricNotFoundError,
      });
      t.deepEqual(fork!.available, []);
      t.regex(fork!.message, /has no metric "loss"; it has no completed round of its own yet/);
    });
  },
);

test(
  'events across experiments: by node, type, experiment ' + 'and time, each equal to the same filter applied by hand',
  async (t) => {
    const { h, a, b } = await fixture;
    await withRl(h.root, async (rl) => {
      const all = (await auditEvents(rl)).events;
      const streams = new Map<string, readonly RecordedEvent[]>();
      for (const id of new Set(all.map((e) => e.experimentId))) streams.set(id, await streamOf(h.root, id));
      t.is(
        all.length,
        [...streams.values()].reduce((n, s) => n + s.length, 0),
        'every event of every experiment',
      );
      t.deepEqual(
        all.map((e) => e.position),
        [...all.map((e) => e.position)].sort((x, y) => (x < y ? -1 : 1)),
      );
      const key = (events: readonly AuditEvent[]) => events.map((e) => `${e.experimentId}@${e.revision}`);

      // node-c takes part in B only.
      const nodeC = (await auditEvents(rl, { nodes: ['node-c'] })).events;
      t.true(nodeC.length > 0 && nodeC.every((e) => e.experimentId === b.id));
      const names = (e: AuditEvent) =>
        e.type === 'RoundStarted'
          ? e.data.nodes
          : e.type === 'NodeReplied'
            ? [e.data.node]
            : e.type === 'RoundCompleted'
              ? e.data.nodes.map((n) => n.node)
              : e.type === 'ExperimentCreated'
                ? (e.data.federated?.nodes ?? [])
                : [];
      t.deepEqual(key(nodeC), key(all.filter((e) => names(e).includes('node-c'))));
      t.deepEqual(
        nodeC.map((e) => e.type),
        ['RoundStarted', 'NodeReplied', 'RoundCompleted'],
      );
      // A's creation names its nodes.
      const nodeA = (await auditEvents(rl, { nodes: ['node-a'], types: ['ExperimentCreated'] })).events;
      t.deepEqual(
        nodeA.map((e) => e.folder),
        ['Experiment_0000', 'Experiment_0002', 'Experiment_0003'],
      );

      const resumes = (await auditEvents(rl, { types: ['Resumed', 'Rewound'] })).events;
      t.deepEqual(
        resumes.map((e) => [e.folder, e.type]),
        [
          ['Experiment_0000', 'Rewound'],
          ['Experiment_0000', 'Resumed'],
        ],
      );
      const byFolderAndPath = (
        await auditEvents(rl, { experiments: ['Experiment_0001', path.join(h.root, 'experiments', 'Experiment_0003')] })
      ).events;
      t.deepEqual(
        key(byFolderAndPath),
        key(all.filter((e) => e.folder === 'Experiment_0001' || e.folder === 'Experiment_0003')),
      );

      // Time: since <= t < until, at the time of the resume.
      const at = resumes[1]!.time;
      const since = (await auditEvents(rl, { since: at })).events;
      const until = (await auditEvents(rl, { until: at })).events;
      t.deepEqual(key(since), key(all.filter((e) => e.time.getTime() >= at.getTime())));
      t.deepEqual(key(until), key(all.filter((e) => e.time.getTime() < at.getTime())));
      t.is(since.length + until.length, all.length);
      t.true(since.some((e) => e.type === 'Resumed') && !until.some((e) => e.type === 'Resumed'));
      t.true(until.length > 0 && since.length > 0);
      t.deepEqual((await auditEvents(rl, { experiments: [a.id], since: at, until: at })).events, []);

      await t.throwsAsync(auditEvents(rl, { types: ['Resume' as 'Resumed'] }), {
        instanceOf: InvalidArgumentError,
        message: /types must name experiment event types/,
      });
      await t.throwsAsync(auditEvents(rl, { since: new Date(2), until: new Date(1) }), {
        instanceOf: InvalidArgumentError,
      });
      await t.throwsAsync(auditEvents(rl, { experiments: ['Experiment_0099'] }), {
        instanceOf: ExperimentNotFoundError,
      });
    });
  },
);

test('actions: who created, rewound, resumed, forked and pruned what; filtered by type and user', async (t) => {
  const { h, a } = await fixture;
  await withRl(h.root, async (rl) => {
    const { actions } = await auditActions(rl);
    t.deepEqual(
      actions.map((x) => `${x.folder} ${x.type}`),
      [
        'Experiment_0000 ExperimentCreated',
        'Experiment_0000 Rewound',
        'Experiment_0000 Resumed',
        'Experiment_0001 ExperimentCreated',
        'Experiment_0002 ExperimentCreated',
        'Experiment_0000 Forked',
        'Experiment_0003 ExperimentCreated',
        'Experiment_0002 Forked',
        'Experiment_0000 RoundsPruned',
      ],
    );
    t.true(actions.every((x) => x.by.user === ME.user && x.by.host === ME.host && x.by.pid === ME.pid));
    const resumed = (await auditActions(rl, { types: ['Resumed'], experiments: [a.id] })).actions;
    t.is(resumed.length, 1);
    t.deepEqual(resumed[0]!.by, ME);
    t.deepEqual((await auditActions(rl, { users: ['nobody-at-all'] })).actions, []);
    t.is((await auditActions(rl, { hosts: [ME.host] })).actions.length, actions.length);
    await t.throwsAsync(auditActions(rl, { types: ['RoundCompleted' as 'Resumed'] }), {
      instanceOf: InvalidArgumentError,
      message: /must name actions/,
    });
  });
});

test(
  'lineage: ancestors through ForkedFrom, descendants ' + 'through Forked, both ways; an import from another root',
  async (t) => {
    const { h, a, c, d } = await fixture;
    await withRl(h.root, async (rl) => {
      const ofA = await lineage(rl, { experiment: 'Experiment_0000' });
      t.deepEqual(ofA.ancestors, []);
      t.deepEqual(
        ofA.descendants.map((x) => [
          x.id,
          x.folder,
          x.round,
          x.known,
          x.children.map((y) => [y.id, y.folder, y.round, y.children.length]),
        ]),
        [[c.id, c.folder, 0, true, [[d.id, d.folder, 0, 0]]]],
      );
      t.deepEqual(ofA.descendants[0]!.by, ME);

      const ofD = await lineage(rl, { experiment: d.folder });
      t.deepEqual(
        ofD.ancestors.map((x) => [x.via, x.id, x.folder, x.round, x.known, x.currentFolder]),
        [
          ['fork', c.id, c.folder, 0, true, c.folder],
          ['fork', a.id, 'Experiment_0000', 0, true, 'Experiment_0000'],
        ],
      );
      t.deepEqual(ofD.descendants, []);
      const ofC = await lineage(rl, { experiment: c.id });
      t.deepEqual(
        ofC.ancestors.map((x) => x.id),
        [a.id],
      );
      t.deepEqual(
        ofC.descendants.map((x) => x.id),
        [d.id],
      );
    });

    // A breakpoint folder carried to another root: its experiment continues one this root does not hold.
    const elsewhere = tempDir();
    const carried = path.join(tempDir(), 'breakpoint_0001');
    cpSync(path.join(a.dir, 'breakpoint_0001'), carried, { recursive: true });
    const imported = await Experiment.loadBreakpoint(carried, {
      root: elsewhere,
      federation: h.options().federation,
      workspace: h.workspace,
    });
    await imported.close();
    const ofImported = await withRl(elsewhere, (rl) => lineage(rl, { experiment: 'Experiment_0000' }));
    t.deepEqual(
      ofImported.ancestors.map((x) => [x.via, x.id, x.folder, x.round, x.known, x.currentFolder]),
      [['import', a.id, 'Experiment_0000', 1, false, null]],
    );
  },
);

test('followEvents catches up, says so, then delivers what another writer appends, filtered', async (t) => {
  const h = harness();
  const exp = await Experiment.create(h.options());
  await exp.runOnce();
  await exp.close();
  await withRl(h.root, async (rl) => {
    const items: Followed<AuditEvent>[] = [];
    let caughtUp!: () => void;
    const reachedEnd = new Promise<void>((resolve) => (caughtUp = resolve));
    const live = firstValueFrom(
      followEvents(rl, { types: ['Resumed', 'ExperimentCreated'], pollIntervalMs: 5 }).pipe(
        filter((item) => {
          items.push(item);
          if (item.kind === 'caughtUp') caughtUp();
          return item.kind === 'item' && item.live;
        }),
      ),
    );
    await reachedEnd;
    t.deepEqual(
      items.map((i) => (i.kind === 'item' ? `${i.item.type} ${i.live}` : i.kind)),
      ['ExperimentCreated false', 'caughtUp'],
    );
    // Appended after the catch-up, by a writer of its own (the follower only reads the files).
    const resumed = await Experiment.loadBreakpoint(undefined, {
      root: h.root,
      federation: h.options().federation,
      workspace: h.workspace,
    });
    await resumed.runOnce();
    await resumed.close();
    const item = await live;
    t.true(item.kind === 'item' && item.live && item.item.type === 'Resumed' && item.item.folder === 'Experiment_0000');
    if (item.kind === 'item' && item.item.type === 'Resumed') t.deepEqual(item.item.data.by, ME);
  });
});

test(
  'followHistory: the history, caughtUp, then a live round ' +
    'as started then completed; an unknown experiment errors',
  async (t) => {
    const h = harness();
    const exp = await Experiment.create(h.options());
    await exp.runOnce();
    await withRl(h.root, async (rl) => {
      const seen: string[] = [];
      const source = followHistory(rl, { experiment: 'Experiment_0000', pollIntervalMs: 5 });
      let caughtUp!: () => void;
      const reachedEnd = new Promise<void>((resolve) => (caughtUp = resolve));
      const done = firstValueFrom(
        source.pipe(
          filter((item) => {
            seen.push(item.kind === 'item' ? `${item.live ? 'live ' : ''}${brief([item.item])[0]}` : item.kind);
            if (item.kind === 'caughtUp') caughtUp();
            return item.kind === 'item' && item.item.kind === 'round' && item.item.round === 1;
          }),
        ),
      );
      await reachedEnd;
      await exp.runOnce();
      await done;
      t.deepEqual(seen, ['created', 'run-started', 'round 0/1', 'caughtUp', 'live started 1/1', 'live round 1/1']);

      const error = await t.throwsAsync(
        firstValueFrom(followHistory(rl, { experiment: 'nope' }).pipe(take(1), toArray())),
        { instanceOf: ExperimentNotFoundError },
      );
      t.is(error!.code, 'EXPERIMENT_NOT_FOUND');
    });
    await exp.close();
    const created = (await streamOf(h.root, exp.id))[0]!.data as ExperimentCreated;
    t.is(created.folder, 'Experiment_0000');
  },
);
