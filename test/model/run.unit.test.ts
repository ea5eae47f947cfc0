/**
 * The run lease: `decideStartRun` (refused while a live process runs the experiment, unless taken
 * over, which is recorded), `decideHeartbeat`, `decideEndRun`, and the status they fold to.
 */
import test from 'ava';
import { InvalidArgumentError } from '../../src/errors.ts';
import type { RecordedEvent } from '../../src/log/types.ts';
import {
  ExperimentNotCreatedError,
  ExperimentRunningError,
  RunNotOwnedError,
  experimentStatus,
  replay,
  type ExperimentEvent,
  type RunOwner,
} from '../../src/model/index.ts';
import { given, GIVEN_TIMESTAMP } from '../../src/testing/index.ts';
import { ACTOR, completed, created, table } from './support.ts';

const first: RunOwner = { user: 'ada', host: 'lab-7', pid: 4242, processStart: 'boot-a:1000' };
const second: RunOwner = { user: 'bob', host: 'lab-9', pid: 77, processStart: null };
const runStarted = (runId: string, owner: RunOwner, tookOver: ExperimentEvent['data'] | null = null): ExperimentEvent =>
  ({ type: 'RunStarted', data: { v: 1, runId, owner, heartbeatMs: 1000, tookOver } }) as ExperimentEvent;
const start = (liveness: 'alive' | 'dead' | 'unknown', ms = 0, takeOver = false) =>
  ({
    type: 'StartRun',
    runId: 'run-2',
    owner: second,
    heartbeatMs: 1000,
    liveness,
    now: new Date(GIVEN_TIMESTAMP.getTime() + ms),
    takeOver,
  }) as const;

table([
  {
    title: 'no run open: RunStarted',
    given: [created(), completed(0)],
    when: start('unknown'),
    then: [runStarted('run-2', second)],
  },
  {
    title: 'the open run is alive: refused, naming its owner and since when',
    given: [created(), runStarted('run-1', first)],
    when: start('alive'),
    throws: ExperimentRunningError,
    fields: { experiment: 'Experiment_0000', owner: first, since: GIVEN_TIMESTAMP, lastSeen: GIVEN_TIMESTAMP },
    message: /process 4242 on host lab-7 \(user ada\).*--take-over/,
  },
  {
    title: 'the open run is alive and taken over: RunStarted names the run taken over',
    given: [created(), runStarted('run-1', first)],
    when: start('alive', 0, true),
    then: [runStarted('run-2', second, { runId: 'run-1', owner: first } as unknown as ExperimentEvent['data'])],
  },
  {
    title: 'the open run is dead (crashed): replaced, nothing taken over',
    given: [created(), runStarted('run-1', first)],
    when: start('dead'),
    then: [runStarted('run-2', second)],
  },
  {
    title: 'liveness unknown (another host), heartbeat within 3 intervals: refused',
    given: [created(), runStarted('run-1', first)],
    when: start('unknown', 3000),
    throws: ExperimentRunningError,
  },
  {
    title: 'liveness unknown, silent for more than 3 heartbeat intervals: crashed, replaced',
    given: [created(), runStarted('run-1', first)],
    when: start('unknown', 3001),
    then: [runStarted('run-2', second)],
  },
  {
    title: 'a heartbeat interval that is not a positive integer: refused',
    given: [created()],
    when: { ...start('unknown'), heartbeatMs: 0 },
    throws: InvalidArgumentError,
    fields: { argument: 'heartbeatMs' },
  },
  {
    title: 'no experiment: refused',
    given: [],
    when: start('unknown'),
    throws: ExperimentNotCreatedError,
  },
  {
    title: 'a heartbeat of the open run',
    given: [created(), runStarted('run-1', first)],
    when: { type: 'Heartbeat', runId: 'run-1' },
    then: [{ type: 'RunHeartbeat', data: { v: 1, runId: 'run-1' } }],
  },
  {
    title: 'a heartbeat of a run taken over: refused, naming the run that holds it now',
    given: [created(), runStarted('run-1', first), runStarted('run-2', second)],
    when: { type: 'Heartbeat', runId: 'run-1' },
    throws: RunNotOwnedError,
    fields: { runId: 'run-1', current: { runId: 'run-2', owner: second } },
    message: /process 77 on host lab-9 took it over/,
  },
  {
    title: 'the end of the open run: RunEnded at roundCurrent',
    given: [created(), runStarted('run-1', first), completed(0)],
    when: { type: 'EndRun', runId: 'run-1' },
    then: [{ type: 'RunEnded', data: { v: 1, runId: 'run-1', roundCurrent: 1 } }],
  },
  {
    title: 'the end of a run a signal stopped: RunEnded names the signal',
    given: [created(), runStarted('run-1', first), completed(0)],
    when: { type: 'EndRun', runId: 'run-1', signal: 'SIGTERM' },
    then: [{ type: 'RunEnded', data: { v: 1, runId: 'run-1', roundCurrent: 1, signal: 'SIGTERM' } }],
  },
  {
    title: 'the end of a run taken over: nothing',
    given: [created(), runStarted('run-1', first), runStarted('run-2', second)],
    when: { type: 'EndRun', runId: 'run-1' },
    then: [],
  },
]);

test('statuses: created, running, crashed, stopped, finished, by liveness and by heartbeat age', (t) => {
  const at = (ms: number) => new Date(GIVEN_TIMESTAMP.getTime() + ms);
  const status = (events: ExperimentEvent[], liveness: 'alive' | 'dead' | 'unknown', ms = 0) =>
    experimentStatus(given(events).state, { liveness, now: at(ms) });
  const run = [created(), runStarted('run-1', first)];
  t.is(status([created()], 'unknown'), 'created');
  t.is(status(run, 'alive', 10 ** 9), 'running', 'a live owner runs it, however old its last sign');
  t.is(status(run, 'dead'), 'crashed');
  t.is(status(run, 'unknown', 3000), 'running');
  t.is(status(run, 'unknown', 3001), 'crashed');
  const ended = [...run, completed(0), { type: 'RunEnded', data: { v: 1, runId: 'run-1', roundCurrent: 1 } }];
  t.is(status(ended as ExperimentEvent[], 'unknown'), 'stopped');
  const finished = [...ended, { type: 'ExperimentFinished', data: { v: 1, roundCurrent: 1 } }];
  t.is(status(finished as ExperimentEvent[], 'unknown'), 'finished');
  // An attempt left open by a loop without a lease: crashed, not "running".
  const open = [created(), { type: 'RoundStarted', data: { v: 1, round: 0, attempt: 1, nodes: [] } }];
  t.is(status(open as ExperimentEvent[], 'unknown'), 'crashed');
});

test("a heartbeat of the run, a round's start and completion are signs of life; pruning and others' are not", (t) => {
  const later = (event: RecordedEvent, seconds: number): RecordedEvent => ({
    ...event,
    timestamp: new Date(GIVEN_TIMESTAMP.getTime() + seconds * 1000),
  });
  const lastSeen = (extra: ExperimentEvent) => {
    const { recorded } = given([created(), runStarted('run-1', first), extra]);
    return (
      replay([recorded[0]!, recorded[1]!, later(recorded[2]!, 5)]).run!.lastSeen.getTime() - GIVEN_TIMESTAMP.getTime()
    );
  };
  t.is(lastSeen({ type: 'RunHeartbeat', data: { v: 1, runId: 'run-1' } }), 5000);
  t.is(lastSeen({ type: 'RoundStarted', data: { v: 1, round: 0, attempt: 1, nodes: [] } }), 5000);
  t.is(lastSeen(completed(0)), 5000);
  t.is(lastSeen({ type: 'RunHeartbeat', data: { v: 1, runId: 'run-0' } }), 0);
  const pruned: ExperimentEvent = {
    type: 'RoundsPruned',
    data: { v: 1, rounds: [], retention: { keepLast: 1, keepEvery: null }, by: ACTOR },
  };
  t.is(lastSeen(pruned), 0);
});
