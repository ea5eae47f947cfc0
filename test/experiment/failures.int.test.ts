/**
 * Failed rounds, in process, on a real root: a node whose training throws, rejects, replies
 * nonsense or never replies fails the round with `NodeFailedError` and nothing of that round is
 * committed (only its `RoundStarted` stays, as an aborted attempt); the next try is the round's
 * next attempt. Also the states a crash can leave between two writes of the facade, and a resume
 * racing a live process, each rebuilt exactly.
 */
import test from 'ava';
import { promises as fsPromises, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConcurrentModificationError, NoBreakpointError, NodeFailedError } from '../../src/model/errors.ts';
import { openRoundLog } from '../../src/projections/index.ts';
import { REGISTRY_STREAM, type NodeReplied, type Resumed, type RoundStarted } from '../../src/model/events.ts';
import { Experiment, type ExperimentOptions } from '../../src/federated/experiment.ts';
import { replay } from '../../src/model/state.ts';
import type { TrainResult } from '../../src/federated/training-plan.ts';
import { openFileEventLog } from '../../src/log/file/index.ts';
import type { RecordedEvent } from '../../src/log/types.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';

test.after.always(removeTempDirs);

/**
 * A plan that leaves training to the node: `data.train(params)`. What a node does (train,
 * throw, hang) is then decided by the test through the federation, as a real node's failure is.
 */
const NODE_PLAN = `export const plan = {
  init: () => ({ w: { dtype: 'float32', shape: [2], data: new Float32Array(2) } }),
  train: (params, data) => data.train(params),
};
`;

type Behaviour = 'ok' | 'throw' | 'reject' | 'hang' | 'bad-sample-size';
type NodeData = { train: (params: { w: { data: Float32Array } }) => TrainResult | Promise<TrainResult> };

const NODES = ['node-a', 'node-b', 'node-c'] as const;
const SAMPLES: Record<string, number> = { 'node-a': 1, 'node-b': 2, 'node-c': 5 };

/** Every node adds (its index + 1) to each weight; FedAvg weights them 1, 2 and 5: +2.5 a round. */
function trained(node: string, params: { w: { data: Float32Array } }): TrainResult {
  const step = NODES.indexOf(node as (typeof NODES)[number]) + 1;
  return {
    params: { w: { dtype: 'float32', shape: [2], data: params.w.data.map((x) => x + step) } },
    sampleSize: SAMPLES[node]!,
    metrics: { loss: step },
  };
}

type Harness = {
  root: string;
  workspace: string;
  behaviour: Record<string, Behaviour>;
  /** Calls of each node's training. */
  calls: Record<string, number>;
  /** Releases every hanging training with a valid reply; resolves when they have all replied. */
  releaseHung(): Promise<void>;
  options(overrides?: Partial<ExperimentOptions>): ExperimentOptions;
  federation: ExperimentOptions['federation'];
};

function harness(): Harness {
  const root = tempDir();
  const workspace = tempDir();
  mkdirSync(path.join(workspace, 'plan'));
  writeFileSync(path.join(workspace, 'plan/node-plan.ts'), NODE_PLAN);
  const behaviour: Record<string, Behaviour> = Object.fromEntries(NODES.map((n) => [n, 'ok']));
  const calls: Record<string, number> = Object.fromEntries(NODES.map((n) => [n, 0]));
  const hung: Array<{ release: () => void; replied: Promise<unknown> }> = [];
  const federation = {
    nodes: NODES.map((id) => ({
      id,
      datasets: [
        {
          id: `${id}/data`,
          tags: ['#t'],
          data: {
            train: (params) => {
              calls[id]!++;
              switch (behaviour[id]) {
                case 'throw':
                  throw new Error(`${id}: CUDA out of memory`);
                case 'reject':
                  return Promise.reject(new Error(`${id}: connection reset`));
                case 'bad-sample-size':
                  return { ...trained(id, params), sampleSize: -1 };
                case 'hang': {
                  let release!: () => void;
                  const gate = new Promise<void>((resolve) => (release = resolve));
                  const replied = gate.then(() => trained(id, params));
                  hung.push({ release, replied });
                  return replied;
                }
                default:
                  return trained(id, params);
              }
            },
          } satisfies NodeData,
        },
      ],
    })),
  };
  return {
    root,
    workspace,
    behaviour,
    calls,
    federation,
    async releaseHung() {
      for (const h of hung) h.release();
      await Promise.all(hung.splice(0).map((h) => h.replied));
    },
    options: (overrides = {}) => ({
      tags: ['#t'],
      trainingPlan: { module: 'plan/node-plan.ts', export: 'plan' },
      federation,
      roundLimit: 6,
      saveBreakpoints: true,
      seed: 9,
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

/** Every file under the blob store (not its temp area): what a round wrote there. */
function blobFiles(root: string): string[] {
  const dir = path.join(root, 'blobs');
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => !f.startsWith('tmp') && statSync(path.join(dir, f)).isFile())
    .sort();
}

const summary = (events: readonly RecordedEvent[]) =>
  events.map((e) => {
    const d = e.data as Partial<RoundStarted & NodeReplied>;
    return d.round === undefined ? e.type : `${e.type} ${d.round}/${d.attempt}${d.node ? ` ${d.node}` : ''}`;
  });

const WHOLE_ROUND = (round: number, attempt: number) => [
  `RoundStarted ${round}/${attempt}`,
  ...NODES.map((n) => `NodeReplied ${round}/${attempt} ${n}`),
  `RoundCompleted ${round}/${attempt}`,
];

test(
  'a node whose training throws fails the round, names ' + 'node and round, commits nothing; the retry is attempt 2',
  async (t) => {
    const h = harness();
    const exp = await Experiment.create(h.options());
    await exp.runOnce();
    // FedAvg of +1, +2, +3 weighted 1, 2, 5: (1 + 4 + 15) / 8 = 2.5 per round.
    t.deepEqual([...(await exp.parameters()).w!.data], [2.5, 2.5]);
    const before = await streamOf(h.root, exp.id);
    const blobsBefore = blobFiles(h.root);

    h.behaviour['node-b'] = 'throw';
    const error = await t.throwsAsync(exp.runOnce(), { instanceOf: NodeFailedError });
    t.is(error!.node, 'node-b');
    t.is(error!.round, 1);
    t.is(error!.experiment, exp.state.folder);
    t.is(
      error!.message,
      `node "node-b" failed in round 1 of experiment ${exp.state.folder}: training threw: node-b: CUDA out of ` +
        `memory; nothing of this round was committed: run 'roundlog resume ${exp.state.folder}' to retry it`,
    );
    t.is((error!.cause as Error).message, 'node-b: CUDA out of memory');

    // Nothing of round 1 is committed: not in this instance, not in the log, not in the blob store.
    t.is(exp.roundCurrent(), 1);
    // The failure is recorded with its cause, and closes the attempt (aborted).
    t.is(exp.state.openAttempt, null);
    t.is(exp.state.attempts[1], 1);
    const after = await streamOf(h.root, exp.id);
    t.deepEqual(
      summary(after.slice(before.length)),
      ['RoundStarted 1/1', 'RunFailed 1/1'],
      'only the aborted start of round 1, and the failure',
    );
    t.like(after.at(-1)!.data, { code: 'NODE_FAILED', round: 1, attempt: 1 });
    t.deepEqual(blobFiles(h.root), blobsBefore, 'no reply parameters were stored');
    t.false(readdirSync(exp.experimentationPath()).includes('breakpoint_0001'));
    const rl = await openRoundLog({ root: h.root });
    try {
      const fresh = await rl.openExperiment(exp.id);
      t.is(fresh.roundCurrent(), 1);
      t.deepEqual(fresh.state.attempts, { 0: 1, 1: 1 });
      t.is(fresh.state.openAttempt, null);
    } finally {
      await rl.close();
    }

    // The node recovers: the same instance retries round 1, as its second attempt.
    h.behaviour['node-b'] = 'ok';
    const record = await exp.runOnce();
    t.is(record.round, 1);
    t.is(record.attempt, 2);
    t.is(exp.roundCurrent(), 2);
    t.is(exp.state.openAttempt, null);
    // Going on after a failure starts a new run (its lease) before the retry.
    t.deepEqual(summary((await streamOf(h.root, exp.id)).slice(after.length)), ['RunStarted', ...WHOLE_ROUND(1, 2)]);
    t.deepEqual([...(await exp.parameters()).w!.data], [5, 5]);
    t.true(readdirSync(exp.experimentationPath()).includes('breakpoint_0001'));
    await exp.close();
  },
);

test(
  'a node whose training rejects, run after run: loading the ' +
    'breakpoint with a healthy federation retries the round as attempt 2',
  async (t) => {
    const h = harness();
    const exp = await Experiment.create(h.options());
    await exp.runOnce();
    h.behaviour['node-c'] = 'reject';
    for (let attempt = 1; attempt <= 2; attempt++) {
      const error = await t.throwsAsync(exp.runOnce(), { instanceOf: NodeFailedError });
      t.is(error!.node, 'node-c');
      t.is(error!.round, 1);
      t.regex(error!.message, /training threw: node-c: connection reset/);
      t.is(exp.state.attempts[1], attempt);
    }
    t.is(exp.roundCurrent(), 1);
    await exp.close();

    // Another process (another instance, another federation object) continues from the breakpoint.
    const healthy = harness();
    const loaded = await Experiment.loadBreakpoint(undefined, {
      root: h.root,
      federation: healthy.federation,
      workspace: h.workspace,
    });
    t.is(loaded.roundCurrent(), 1);
    t.is(loaded.state.openAttempt, null, 'the resume closes the aborted attempt');
    const record = await loaded.runOnce();
    t.is(record.attempt, 3, 'the third attempt of round 1');
    t.deepEqual(healthy.calls, { 'node-a': 1, 'node-b': 1, 'node-c': 1 });
    const events = await streamOf(h.root, loaded.id);
    const resumedAt = events.findIndex((e) => e.type === 'Resumed');
    t.deepEqual(summary(events.slice(resumedAt - 5)), [
      'RoundStarted 1/1',
      'RunFailed 1/1',
      'RunStarted',
      'RoundStarted 1/2',
      'RunFailed 1/2',
      'Resumed',
      'RunStarted',
      ...WHOLE_ROUND(1, 3),
    ]);
    t.deepEqual([...(await loaded.parameters()).w!.data], [5, 5]);
    await loaded.close();
  },
);

test(
  'a node that does not reply within nodeTimeoutMs fails the ' +
    'round naming the timeout; its late reply commits nothing',
  async (t) => {
    const h = harness();
    const exp = await Experiment.create(h.options({ nodeTimeoutMs: 300 }));
    await exp.runOnce();
    const before = await streamOf(h.root, exp.id);
    const blobsBefore = blobFiles(h.root);

    h.behaviour['node-a'] = 'hang';
    const started = Date.now();
    const error = await t.throwsAsync(exp.runOnce(), { instanceOf: NodeFailedError });
    t.true(Date.now() - started >= 290, 'failed by the timeout, not before');
    t.is(error!.node, 'node-a');
    t.is(error!.round, 1);
    t.is(error!.reason, "no reply within 300 ms (if the node is only slow, raise the experiment's nodeTimeoutMs)");
    t.regex(error!.message, /node "node-a" failed in round 1 of experiment \S+: no reply within 300 ms/);

    // The node answers after all: too late, nothing of it is recorded.
    await h.releaseHung();
    await new Promise((resolve) => setImmediate(resolve));
    t.is(exp.roundCurrent(), 1);
    t.deepEqual(summary((await streamOf(h.root, exp.id)).slice(before.length)), ['RoundStarted 1/1', 'RunFailed 1/1']);
    t.deepEqual(blobFiles(h.root), blobsBefore);

    h.behaviour['node-a'] = 'ok';
    const record = await exp.runOnce();
    t.is(record.attempt, 2);
    t.deepEqual([...(await exp.parameters()).w!.data], [5, 5]);
    await exp.close();
  },
);

test('a node replying with an invalid sample size fails the round, and nothing is committed', async (t) => {
  const h = harness();
  const exp = await Experiment.create(h.options());
  h.behaviour['node-b'] = 'bad-sample-size';
  const error = await t.throwsAsync(exp.runOnce(), { instanceOf: NodeFailedError });
  t.is(error!.node, 'node-b');
  t.is(error!.round, 0);
  t.regex(error!.message, /replied with sample size -1/);
  t.is(exp.roundCurrent(), 0);
  t.deepEqual(summary((await streamOf(h.root, exp.id)).slice(1)), ['RunStarted', 'RoundStarted 0/1', 'RunFailed 0/1']);
  // No round was completed, so there is no breakpoint: the experiment resumes from its initial parameters.
  await exp.close();
  const again = await Experiment.loadBreakpoint(undefined, {
    root: h.root,
    federation: h.federation,
    workspace: h.workspace,
  });
  t.is(again.id, exp.id);
  t.is(again.roundCurrent(), 0);
  const resumes = (await streamOf(h.root, exp.id)).filter((e) => e.type === 'Resumed');
  t.deepEqual(
    resumes.map((e) => [(e.data as Resumed).roundCurrent, (e.data as Resumed).breakpoint]),
    [[0, null]],
  );
  await again.close();
});

// A SIGKILL after a round's RoundCompleted is durable and before its breakpoint folder is in
// place: the log has the round, so loading the last breakpoint writes the folder and keeps it.
test('loadBreakpoint() keeps a committed round whose breakpoint folder a crash left unwritten', async (t) => {
  const h = harness();
  const exp = await Experiment.create(h.options());
  await exp.run({ rounds: 3 });
  const expected = await exp.parameters();
  const dir = exp.experimentationPath();
  await exp.close();
  // The state a SIGKILL leaves between the RoundCompleted of round 2 and its folder.
  rmSync(path.join(dir, 'breakpoint_0002'), { recursive: true });

  const loaded = await Experiment.loadBreakpoint(undefined, {
    root: h.root,
    federation: h.federation,
    workspace: h.workspace,
  });
  try {
    const events = await streamOf(h.root, loaded.id);
    t.deepEqual(
      events.filter((e) => e.type === 'Rewound').map((e) => e.data),
      [],
      'a committed round was rewound',
    );
    t.is(loaded.roundCurrent(), 3);
    t.deepEqual(await loaded.parameters(), expected);
    t.true(readdirSync(dir).includes('breakpoint_0002'));
  } finally {
    await loaded.close();
  }
});

// A resume racing a live process: the loader picks its breakpoint from what it read; the other
// process commits a round before the loader appends. That commit must make the loader fail with
// ConcurrentModificationError, never be superseded by it. (Until e47d66d the loader appended
// against a second, later read and superseded the round with a Rewound: seen with real processes
// in concurrency.e2e.test.ts.) The loader is paused through node:fs, the roundlog code untouched,
// when it opens the chosen breakpoint's parameters to hash them, while the other instance commits.
test(
  'a resume racing a round that another process commits ' + 'fails with CONCURRENT_MODIFICATION and supersedes nothing',
  async (t) => {
    const h = harness();
    const running = await Experiment.create(h.options());
    await running.run({ rounds: 2 });
    const id = running.id;

    const open = fsPromises.open;
    let paused = false;
    (fsPromises as { open: unknown }).open = async function (this: unknown, ...args: unknown[]) {
      if (
        !paused &&
        typeof args[0] === 'string' &&
        args[0].startsWith(h.root + path.sep) &&
        args[0].endsWith(`${path.sep}params.safetensors`)
      ) {
        paused = true;
        // The loader has picked breakpoint_0001 from what it read; the live process commits round 2 now.
        await running.runOnce();
      }
      return (open as (...a: unknown[]) => Promise<unknown>).apply(this, args);
    };
    let loaded: Experiment | null = null;
    let loadError: unknown = null;
    try {
      loaded = await Experiment.loadBreakpoint(undefined, {
        root: h.root,
        federation: h.federation,
        workspace: h.workspace,
        // The running instance is in this process and holds the run: taking it over is what reaches the race.
        takeOver: true,
      });
    } catch (error) {
      loadError = error;
    } finally {
      (fsPromises as { open: unknown }).open = open;
    }
    t.true(paused, 'the loader was paused after choosing its breakpoint');
    const events = await streamOf(h.root, id);
    const outcome = loaded
      ? `resumed at round ${loaded.roundCurrent()}`
      : `failed with ${(loadError as { code?: string })?.code}`;
    t.log(`loader: ${outcome}; stream tail: ${summary(events.slice(-7)).join(', ')}`);
    try {
      t.true(
        loadError instanceof ConcurrentModificationError,
        `the loader should have been refused: ${String(loadError ?? 'it resumed')}`,
      );
      t.deepEqual(
        summary(events.filter((e) => e.type === 'Rewound' || e.type === 'Resumed')),
        [],
        'the loader wrote nothing',
      );
      t.is(
        replay(events).rounds[2]?.attempt,
        1,
        'round 2 as the running process committed it stays on the current branch',
      );
      // The running process was not disturbed: its next round goes through.
      t.is((await running.runOnce()).round, 3);
    } finally {
      await loaded?.close();
      await running.close();
    }
  },
);

// createExperiment now writes ExperimentCreated before the registry entry, so a SIGKILL between the
// two leaves an unregistered stream, never a registration without a history. A registration with
// no stream (other tooling, a damaged store) is still skipped by readers: this test writes one.
test(
  'a crash between registering an experiment and its first ' +
    'event leaves loadBreakpoint() answering NoBreakpointError',
  async (t) => {
    const h = harness();
    // The first of createExperiment's two appends, exactly as it writes it; the process dies before the second.
    const log = await openFileEventLog({ dir: path.join(h.root, 'log') });
    const experimentId = '00000000-0000-4000-8000-000000000000';
    await log.append(
      REGISTRY_STREAM,
      [
        {
          type: 'ExperimentRegistered',
          data: { v: 1, number: 0, experimentId, folder: 'Experiment_0000', stream: `experiment-${experimentId}` },
        },
      ],
      { expectedRevision: 'no_stream' },
    );
    await log.close();

    await t.throwsAsync(
      Experiment.loadBreakpoint(undefined, { root: h.root, federation: h.federation, workspace: h.workspace }),
      {
        instanceOf: NoBreakpointError,
      },
    );
    // What the user does next: create the experiment again. It gets the next number.
    const again = await Experiment.create(h.options({ saveBreakpoints: false }));
    t.is(again.experimentationFolder(), 'Experiment_0001');
    await again.runOnce();
    await again.close();
    const error = await t.throwsAsync(
      Experiment.loadBreakpoint(undefined, { root: h.root, federation: h.federation, workspace: h.workspace }),
      {
        instanceOf: NoBreakpointError,
      },
    );
    t.is(error!.experiment, 'Experiment_0001');
  },
);
