/**
 * Bytes on disk per retained round vs the raw parameter bytes of the round.
 *
 * Candidate: a round log root after R rounds (default 20) of P MB (default 10) of NEW float32
 * parameters each (perturbed every round), every round committed with a breakpoint folder:
 * `recordRound({ ..., breakpoint: true })` + `materializeBreakpoint(...)`. No initial parameters
 * (the `Experiment` facade stores those too: one more blob of P MB per experiment, and the
 * facade also stores every node's reply as a blob; neither is counted here).
 * Baselines, built in the same repetition:
 *   - the raw bytes of each round as one plain file (write + fsync), R files;
 *   - a Fed-BioMed-style naive save per round (folder + msgpack params + state JSON).
 * Disk usage of a tree: every inode counted once (hard links are the same inode: a breakpoint's
 * parameters are a hard link to their blob), directories included; both the apparent size
 * (st_size) and the allocated size (st_blocks × 512) are summed.
 * Reports usage ÷ (R × raw bytes per round) for each (target for the round log: at most 1.05x
 * allocated), the marginal usage of the second half of the rounds ÷ their raw bytes (the
 * per-round cost without the fixed cost of a root), and each part of the root (log, blobs,
 * breakpoint folders). Repetitions build fresh trees alternately; the figures are medians.
 *
 *   npx tsx bench/disk-usage.ts [--quick] [--reps=N] [--rounds=20] [--mb=10]
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Packr } from 'msgpackr';
import { openRoundLog } from '../src/projections/index.ts';
import { rootLayout } from '../src/root.ts';
import { listBreakpointFolders } from '../src/projections/breakpoints/index.ts';
import {
  argValue,
  describeMode,
  formatNumber,
  formatTable,
  heading,
  isQuick,
  makeTempDir,
  median,
  removeTempDir,
  repsOr,
} from './lib.ts';
import {
  fedBiomedSave,
  modelParams,
  mulberry32,
  perturb,
  rawViews,
  roundMetrics,
  roundState,
  writeAndFsync,
} from './round-commit.ts';

const TARGET = 1.05;

export type DiskUsage = {
  apparent: number;
  allocated: number;
  inodes: number;
  files: number;
  dirs: number;
  linkedFiles: number;
};

type Seen = Set<string>;

/**
 * Apparent (st_size) and allocated (st_blocks × 512) bytes of every inode under `dir`, the
 * directory itself included, each inode counted once across calls sharing `seen`.
 */
export async function diskUsage(dir: string, seen: Seen = new Set()): Promise<DiskUsage> {
  const usage: DiskUsage = { apparent: 0, allocated: 0, inodes: 0, files: 0, dirs: 0, linkedFiles: 0 };
  const visit = async (p: string): Promise<void> => {
    const st = await fsp.lstat(p);
    const key = `${st.dev}:${st.ino}`;
    if (!seen.has(key)) {
      seen.add(key);
      usage.apparent += st.size;
      usage.allocated += st.blocks * 512;
      usage.inodes++;
      if (st.isFile()) {
        usage.files++;
        if (st.nlink > 1) usage.linkedFiles++;
      }
    }
    if (st.isDirectory()) {
      usage.dirs++;
      for (const name of (await fsp.readdir(p)).sort()) await visit(path.join(p, name));
    }
  };
  await visit(dir);
  return usage;
}

function add(a: DiskUsage, b: DiskUsage): DiskUsage {
  return {
    apparent: a.apparent + b.apparent,
    allocated: a.allocated + b.allocated,
    inodes: a.inodes + b.inodes,
    files: a.files + b.files,
    dirs: a.dirs + b.dirs,
    linkedFiles: a.linkedFiles + b.linkedFiles,
  };
}

/**
 * A round log root's usage by part; the blobs are walked before the breakpoint folders, so hard
 * links count under blobs.
 */
async function rootUsage(
  root: string,
): Promise<{ total: DiskUsage; log: DiskUsage; blobs: DiskUsage; experiments: DiskUsage; rootDir: DiskUsage }> {
  const seen: Seen = new Set();
  const layout = rootLayout(root);
  const st = await fsp.lstat(root);
  seen.add(`${st.dev}:${st.ino}`);
  const rootDir: DiskUsage = {
    apparent: st.size,
    allocated: st.blocks * 512,
    inodes: 1,
    files: 0,
    dirs: 1,
    linkedFiles: 0,
  };
  const log = await diskUsage(layout.log, seen);
  const blobs = await diskUsage(layout.blobs, seen);
  const experiments = await diskUsage(layout.experiments, seen);
  const total = [log, blobs, experiments].reduce(add, rootDir);
  // Nothing else may be in the root, or the total above would miss it.
  const names = (await fsp.readdir(root)).sort().join(',');
  if (names !== 'blobs,experiments,log') throw new Error(`unexpected entries in the root: ${names}`);
  return { total, log, blobs, experiments, rootDir };
}

type RunResult = { half: DiskUsage; full: DiskUsage };
type RoundlogResult = RunResult & {
  parts: Awaited<ReturnType<typeof rootUsage>>;
  blobFiles: number;
  breakpointLinks: number;
};

async function runRoundlog(dir: string, rounds: number, elements: number, seed: number): Promise<RoundlogResult> {
  const root = path.join(dir, 'roundlog');
  const params = modelParams(elements, seed);
  const random = mulberry32(seed);
  const rl = await openRoundLog({ root });
  let half: DiskUsage | undefined;
  try {
    const handle = await rl.createExperiment({ seed, saveBreakpoints: true });
    for (let round = 0; round < rounds; round++) {
      perturb(params, random);
      await handle.recordRound({
        round,
        params,
        state: roundState(round),
        metrics: roundMetrics(round),
        breakpoint: true,
      });
      if (round + 1 === Math.floor(rounds / 2)) half = (await rootUsage(root)).total;
    }
    const folders = await listBreakpointFolders(path.join(rootLayout(root).experiments, handle.state.folder));
    if (folders.length !== rounds) throw new Error(`${folders.length} breakpoint folders for ${rounds} rounds`);
  } finally {
    await rl.close();
  }
  const parts = await rootUsage(root);
  const blobFiles = (await diskUsage(path.join(root, 'blobs'))).files;
  return { half: half!, full: parts.total, parts, blobFiles, breakpointLinks: parts.blobs.linkedFiles };
}

async function runBaseline(dir: string, rounds: number, elements: number, seed: number): Promise<RunResult> {
  const base = path.join(dir, 'baseline');
  await fsp.mkdir(base);
  const params = modelParams(elements, seed);
  const random = mulberry32(seed);
  let half: DiskUsage | undefined;
  for (let round = 0; round < rounds; round++) {
    perturb(params, random);
    writeAndFsync(path.join(base, `round-${String(round).padStart(4, '0')}.bin`), rawViews(params));
    if (round + 1 === Math.floor(rounds / 2)) half = await diskUsage(base);
  }
  return { half: half!, full: await diskUsage(base) };
}

async function runFedBiomed(dir: string, rounds: number, elements: number, seed: number): Promise<RunResult> {
  const base = path.join(dir, 'fedbiomed', 'Experiment_0000');
  await fsp.mkdir(base, { recursive: true });
  const params = modelParams(elements, seed);
  const random = mulberry32(seed);
  const packr = new Packr({ useRecords: false });
  let half: DiskUsage | undefined;
  for (let round = 0; round < rounds; round++) {
    perturb(params, random);
    await fedBiomedSave(base, round, params, roundState(round), packr);
    if (round + 1 === Math.floor(rounds / 2)) half = await diskUsage(base);
  }
  return { half: half!, full: await diskUsage(base) };
}

export async function main(): Promise<void> {
  const quick = isQuick();
  const reps = repsOr(quick ? 1 : 3);
  const roundsArg = Number(argValue('rounds'));
  const rounds = Number.isInteger(roundsArg) && roundsArg >= 2 ? roundsArg : quick ? 10 : 20;
  const mbArg = Number(argValue('mb'));
  const mb = Number.isFinite(mbArg) && mbArg > 0 ? mbArg : 10;
  const elements = Math.floor((mb * 1e6) / 4);
  const halfRounds = Math.floor(rounds / 2);

  heading(
    `disk-usage: a root after ${rounds} rounds of ${formatNumber(mb)} MB float32 parameters, each with a breakpoint`,
  );
  console.log(`${describeMode()}; ${reps} repetition(s), each building the three trees afresh, in rotated order`);

  /** modelParams(elements) holds exactly `elements` float32. */
  const raw = elements * 4;
  const roundlog: RoundlogResult[] = [];
  const baseline: RunResult[] = [];
  const fed: RunResult[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const runs = [
      async (dir: string) => roundlog.push(await runRoundlog(dir, rounds, elements, 100 + rep)),
      async (dir: string) => baseline.push(await runBaseline(dir, rounds, elements, 100 + rep)),
      async (dir: string) => fed.push(await runFedBiomed(dir, rounds, elements, 100 + rep)),
    ];
    for (let k = 0; k < runs.length; k++) {
      const dir = await makeTempDir('disk-usage');
      try {
        await runs[(k + rep) % runs.length]!(dir);
      } finally {
        await removeTempDir(dir);
      }
    }
  }

  const totalRaw = rounds * raw;
  const marginalRaw = (rounds - halfRounds) * raw;
  const med = (results: RunResult[], pick: (r: RunResult) => number) => median(results.map(pick));
  const row = (label: string, results: RunResult[]) => {
    const allocated = med(results, (r) => r.full.allocated);
    const apparent = med(results, (r) => r.full.apparent);
    const marginal = med(results, (r) => r.full.allocated - r.half.allocated);
    return [
      label,
      String(allocated),
      String(apparent),
      `${(allocated / totalRaw).toFixed(4)}x`,
      `${(apparent / totalRaw).toFixed(4)}x`,
      `${(marginal / marginalRaw).toFixed(4)}x`,
      String(med(results, (r) => r.full.inodes)),
    ];
  };
  console.log(`raw parameter bytes: ${raw} per round, ${totalRaw} for ${rounds} rounds`);
  console.log();
  console.log(
    formatTable(
      [
        'tree after all rounds',
        'allocated B',
        'apparent B',
        'allocated ÷ raw',
        'apparent ÷ raw',
        `marginal alloc. ÷ raw (rounds ${halfRounds + 1}-${rounds})`,
        'inodes',
      ],
      [
        row('roundlog root (log + blobs + breakpoint folders)', roundlog),
        row('baseline: one plain file per round', baseline),
        row('Fed-BioMed-style naive folders', fed),
      ],
    ),
  );
  console.log();
  const last = roundlog.at(-1)!;
  const total = last.parts.total;
  const part = (label: string, u: DiskUsage) => [
    label,
    String(u.allocated),
    String(u.apparent),
    `${((u.allocated / total.allocated) * 100).toFixed(2)}%`,
    formatNumber(u.allocated / rounds),
    String(u.files),
    String(u.dirs),
  ];
  console.log(
    formatTable(
      [
        'roundlog root by part (last repetition)',
        'allocated B',
        'apparent B',
        'share of alloc.',
        'alloc. B per round',
        'files',
        'dirs',
      ],
      [
        part('log/ (event log segments, index, lock)', last.parts.log),
        part('blobs/ (parameter blobs, fan-out dirs, tmp/)', last.parts.blobs),
        part('experiments/ (breakpoint folders; params are hard links)', last.parts.experiments),
        part('the root folder itself', last.parts.rootDir),
        part('total', total),
      ],
    ),
  );
  console.log(
    `${last.blobFiles} blob files for ${rounds} rounds; ` +
      `${last.breakpointLinks} of them hard-linked from a breakpoint folder (counted once)`,
  );
  const ratio = med(roundlog, (r) => r.full.allocated) / totalRaw;
  const overhead = med(roundlog, (r) => r.full.allocated) - med(baseline, (r) => r.full.allocated);
  console.log();
  console.log(
    `RATIO roundlog allocated bytes ÷ raw parameter bytes = ${ratio.toFixed(4)}x ` +
      `(target <= ${TARGET}x: ${ratio <= TARGET ? 'met' : 'NOT met'}); ` +
      'vs the plain-file baseline: ' +
      `${(med(roundlog, (r) => r.full.allocated) / med(baseline, (r) => r.full.allocated)).toFixed(4)}x, ` +
      `${formatNumber(overhead / rounds)} B more per round`,
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
