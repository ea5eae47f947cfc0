/**
 * The `roundlog` command and data that tries to lead it elsewhere: a definition module recorded in
 * a carried breakpoint folder is never imported, and a FIFO in place of `breakpoint.json` never
 * blocks `ls`, `verify` or `resume` (each runs as a real process, bounded in time).
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO, roundlog, startRoundlog } from '../support/cli.ts';
import { editManifest } from '../support/manifests.ts';
import { removeTempDirs, tempDir } from '../support/tmp.ts';
import { killSpawned } from '../support/child.ts';

test.after.always(killSpawned);
test.after.always(removeTempDirs);

const EXAMPLE = 'examples/logistic-regression/experiment.ts';
/** Generous: several tsx processes start at once on a shared machine. A hang never ends. */
const BOUND_MS = 90_000;

/** A root where `roundlog run` wrote two rounds, made once; tests copy from it. */
let made = '';
test.before(async () => {
  made = tempDir();
  const run = await roundlog(['run', EXAMPLE, '--rounds', '2', '--root', made]);
  if (run.code !== 0) throw new Error(run.stderr + run.stdout);
});

/** An empty root for a carried folder to be imported into. */
function emptyRoot(): string {
  const root = path.join(tempDir(), 'root');
  mkdirSync(root);
  return root;
}

const folderOf = (root: string, round: number) =>
  path.join(root, 'experiments', 'Experiment_0000', `breakpoint_000${round}`);

/** A definition module that leaves a mark beside itself when it is imported, and is otherwise the example. */
const MARKING_DEFINITION = `import { writeFileSync } from 'node:fs';
writeFileSync(new URL('./RAN', import.meta.url), 'the carried code ran');
export { default } from ${JSON.stringify(path.join(REPO, EXAMPLE))};
`;

/** Puts the marking module into `folder` as `evil.ts`, listed in the manifest with its hash. */
function plantModule(folder: string): void {
  const bytes = Buffer.from(MARKING_DEFINITION);
  writeFileSync(path.join(folder, 'evil.ts'), bytes);
  editManifest(folder, (m) => (m.files['evil.ts'] = createHash('sha256').update(bytes).digest('hex')));
}

test('resume never imports a definition module recorded inside the carried folder', async (t) => {
  const work = tempDir();
  const carried = path.join(work, 'carried');
  cpSync(folderOf(made, 1), carried, { recursive: true });
  plantModule(carried);
  editManifest(carried, (m) => (m.experiment.config.definition.module = 'carried/evil.ts'));
  const resume = await roundlog(
    ['resume', 'carried', '--root', emptyRoot(), '--rounds', '1'],
    {},
    {
      cwd: work,
    },
  );
  t.is(resume.code, 1, resume.stdout);
  t.regex(resume.stderr, /definition\.module "carried\/evil\.ts".*never imported/);
  t.false(existsSync(path.join(carried, 'RAN')), 'the module in the carried folder never ran');
});

test('resume never imports a definition module from another breakpoint folder of the workspace', async (t) => {
  const work = tempDir();
  const carried = path.join(work, 'carried');
  const stash = path.join(work, 'stash');
  cpSync(folderOf(made, 1), carried, { recursive: true });
  cpSync(folderOf(made, 0), stash, { recursive: true });
  plantModule(stash);
  editManifest(carried, (m) => (m.experiment.config.definition.module = 'stash/evil.ts'));
  const resume = await roundlog(
    ['resume', 'carried', '--root', emptyRoot(), '--rounds', '1'],
    {},
    {
      cwd: work,
    },
  );
  t.is(resume.code, 1, resume.stdout);
  t.regex(resume.stderr, /inside the breakpoint folder .*stash/);
  t.false(existsSync(path.join(stash, 'RAN')), 'the module in the other breakpoint folder never ran');
});

test('resume refuses an absolute definition module path recorded in a carried folder', async (t) => {
  const work = tempDir();
  const carried = path.join(work, 'carried');
  cpSync(folderOf(made, 1), carried, { recursive: true });
  editManifest(carried, (m) => (m.experiment.config.definition.module = path.join(REPO, EXAMPLE)));
  const resume = await roundlog(
    ['resume', 'carried', '--root', emptyRoot(), '--rounds', '1'],
    {},
    {
      cwd: work,
    },
  );
  t.is(resume.code, 1, resume.stdout);
  t.regex(resume.stderr, /definition\.module .* is absolute/);
});

/** Runs `roundlog <args>` as a real process; fails the test if it has not exited within the bound. */
async function bounded(t: import('ava').ExecutionContext, args: string[]) {
  const child = startRoundlog(args);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), BOUND_MS)));
  const outcome = await Promise.race([child.exited, timeout]);
  clearTimeout(timer);
  if (outcome === 'hung') {
    child.process.kill('SIGKILL');
    await child.exited;
    t.fail(`roundlog ${args.join(' ')} was still running after ${BOUND_MS} ms`);
    return { code: null, stdout: '', stderr: '' };
  }
  return { code: outcome.code, stdout: child.lines.join('\n'), stderr: child.stderr() };
}

test('a FIFO named breakpoint.json never blocks ls, verify or resume', async (t) => {
  const root = tempDir();
  cpSync(made, root, { recursive: true });
  const manifest = path.join(folderOf(root, 1), 'breakpoint.json');
  rmSync(manifest);
  execFileSync('mkfifo', [manifest]);

  const carriedWork = tempDir();
  const carried = path.join(carriedWork, 'carried');
  cpSync(folderOf(made, 1), carried, { recursive: true });
  rmSync(path.join(carried, 'breakpoint.json'));
  execFileSync('mkfifo', [path.join(carried, 'breakpoint.json')]);

  const [ls, verify, resume, resumeCarried] = await Promise.all([
    bounded(t, ['ls', '--root', root]),
    bounded(t, ['verify', '--root', root]),
    bounded(t, ['resume', folderOf(root, 1), '--root', root, '--rounds', '1']),
    bounded(t, ['resume', carried, '--root', emptyRoot(), '--rounds', '1']),
  ]);
  t.is(ls.code, 0, ls.stderr);
  t.regex(ls.stdout, /damaged: run roundlog verify/);
  t.is(verify.code, 1, verify.stdout + verify.stderr);
  t.regex(verify.stdout, /breakpoint\.json.*FIFO, not a regular file/);
  t.is(resume.code, 1, resume.stdout);
  t.regex(resume.stderr, /breakpoint\.json.*FIFO, not a regular file/);
  t.is(resumeCarried.code, 1, resumeCarried.stdout);
  t.regex(resumeCarried.stderr, /breakpoint\.json.*FIFO, not a regular file/);
});
