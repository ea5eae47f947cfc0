/**
 * `followProjection`'s injected clock is the one time source of what it reports: the checkpoint's
 * `updatedAt` and each update's `lagMs` (clock time minus the event's recorded time).
 */
import test from 'ava';
import { loadProjectionCheckpoint } from '../../src/engine/project.ts';
import { followProjection, type ProjectionUpdate } from '../../src/projections/index.ts';
import { rootWithRounds } from '../support/rounds.ts';
import { removeTempDirs } from '../support/tmp.ts';

test.after.always(removeTempDirs);

test('the injected clock dates the checkpoint and measures the lag of every update', async (t) => {
  const { root } = await rootWithRounds(3);
  const at = new Date('3000-01-01T00:00:00.000Z');
  const controller = new AbortController();
  const updates: ProjectionUpdate[] = [];
  const before = Date.now();
  await followProjection({
    root,
    signal: controller.signal,
    clock: () => at,
    onUpdate: (update) => {
      updates.push(update);
      if (update.kind === 'caughtUp') controller.abort();
    },
  });
  const projected = updates.filter((u) => u.kind === 'projected');
  t.true(projected.length > 0, 'the rounds already in the log are projected');
  for (const update of projected) {
    // The events were recorded before `before`, so the lag by the injected clock is at least this.
    t.true(update.lagMs >= at.getTime() - before, `lagMs ${update.lagMs} is measured by the injected clock`);
  }
  const stored = await loadProjectionCheckpoint(root);
  t.is(stored.kind, 'ok');
  if (stored.kind === 'ok') t.is(stored.checkpoint.updatedAt, at.toISOString());
});
