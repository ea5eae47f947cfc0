/**
 * A node's approved training plans, as in Fed-BioMed: the node's operator reviews a plan's source
 * and approves it (`roundlog node approve FILE`), which records the digest of the plan's local
 * module closure (`plan-closure.ts`: the plan file and every local file it imports, each with the
 * SHA-256 of its bytes) and where the plan file is in `<node dir>/approved-plans.json`. The node
 * trains only with a plan whose digest a request names and its list holds, and imports the plan
 * from the approved file itself (after computing the closure's digest again), so what runs is what
 * was approved; a file of the closure changed since is named in the refusal.
 *
 * Entries written before approvals covered the imported files (no `digest` field) hold the plan
 * file's SHA-256 only: no request names such a hash any more, so those plans must be approved again.
 *
 * The list is replaced whole and durably (a temporary file fsynced, renamed over, the folder
 * fsynced): a crash leaves the old list or the new one, never a torn one.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isReadRefusal, readRegularFileIfAny } from '../../confine.ts';
import { syncDir, writeStep } from '../../durable.ts';
import { importModule } from '../load-module.ts';
import { PLAN_DIGEST, planClosure, type PlanClosure, type PlanClosureFile } from '../plan-closure.ts';
import { ApprovalListError, NodeDirError, PlanFileError, nodeFileError } from './errors.ts';

export const APPROVALS_FILE = 'approved-plans.json';

/** The extensions of a module roundlog imports as a training plan. */
export const PLAN_EXTENSIONS = ['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs'] as const;

export type ApprovedPlan = Readonly<{
  /** The closure's digest (`closureDigest`); for an entry without `digest`, the plan file's SHA-256. */
  sha256: string;
  /** The plan file, absolute. */
  file: string;
  approvedAt: string;
  /** `PLAN_DIGEST` when `sha256` is a closure digest; absent in entries that hashed the plan file only. */
  digest?: string;
  /** The closure approved (with `digest`): paths relative to the plan's folder, sorted. */
  files?: readonly PlanClosureFile[];
}>;

type ApprovalList = { version: 1; plans: ApprovedPlan[] };

/** The SHA-256 (hex) of `bytes`. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

const HEX64 = /^[0-9a-f]{64}$/;

/** The approved plans of the node whose folder is `nodeDir` (none when it has no list yet). */
export async function readApprovals(nodeDir: string): Promise<ApprovedPlan[]> {
  const file = path.join(nodeDir, APPROVALS_FILE);
  let bytes: Buffer | null;
  try {
    bytes = await readRegularFileIfAny(file, null);
  } catch (error) {
    if (isReadRefusal(error)) throw error;
    const typed = nodeFileError(
      error,
      file,
      "the node's approval list",
      'check --node-dir (or $ROUNDLOG_NODE_DIR): it names the folder the node keeps its approvals in',
    );
    if (typed !== error) throw typed;
    throw new ApprovalListError(file, `cannot be read (${String(error)})`);
  }
  if (bytes === null) return [];
  let list: unknown;
  try {
    list = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new ApprovalListError(file, `is not JSON (${(error as Error).message})`);
  }
  const { version, plans } = (typeof list === 'object' && list !== null ? list : {}) as Partial<ApprovalList>;
  if (version !== 1 || !Array.isArray(plans)) {
    throw new ApprovalListError(file, 'is not { "version": 1, "plans": [...] }');
  }
  plans.forEach((plan, i) => {
    const ok =
      typeof plan === 'object' &&
      plan !== null &&
      typeof plan.sha256 === 'string' &&
      HEX64.test(plan.sha256) &&
      typeof plan.file === 'string' &&
      path.isAbsolute(plan.file) &&
      typeof plan.approvedAt === 'string' &&
      (plan.digest === undefined ||
        (typeof plan.digest === 'string' &&
          Array.isArray(plan.files) &&
          plan.files.every(
            (f) => typeof f?.path === 'string' && typeof f.sha256 === 'string' && HEX64.test(f.sha256),
          )));
    if (!ok) {
      throw new ApprovalListError(
        file,
        `has an entry plans[${i}] that is not { sha256, file, approvedAt, digest, files }`,
      );
    }
  });
  return plans;
}

/**
 * Checks that `planFile` is a module roundlog can import as a training plan (an extension of
 * `PLAN_EXTENSIONS`, an export with a `train()` function: the module is imported, since its
 * operator is approving it to run) and computes its closure. Throws `PlanFileError` naming the
 * file and what is expected, `PlanClosureError` when an import does not resolve, `ModuleLoadError`
 * when it fails to import.
 */
export async function checkPlanFile(planFile: string): Promise<PlanClosure & { exports: string[] }> {
  const file = path.resolve(planFile);
  const extension = path.extname(file).toLowerCase();
  if (!(PLAN_EXTENSIONS as readonly string[]).includes(extension)) {
    throw new PlanFileError(file, `is not a module (${extension === '' ? 'no extension' : `a ${extension} file`})`);
  }
  let closure: PlanClosure;
  try {
    closure = await planClosure(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new PlanFileError(file, 'does not exist');
    if (code === 'EACCES' || code === 'EISDIR') throw new PlanFileError(file, `cannot be read (${code})`);
    throw error;
  }
  const module = await importModule(closure.file);
  const exports = Object.keys(module).filter((name) => {
    const value = module[name] as { train?: unknown } | null | undefined;
    return (typeof value === 'object' || typeof value === 'function') && typeof value?.train === 'function';
  });
  if (exports.length === 0) {
    const names = Object.keys(module);
    const has = names.length === 0 ? 'it exports nothing' : `its exports (${names.join(', ')}) have no train()`;
    throw new PlanFileError(file, `exports no training plan: ${has}`);
  }
  return { ...closure, exports };
}

/**
 * Approves the plan file `planFile` on the node of `nodeDir` (created if needed), once checked
 * (`checkPlanFile`): the digest of its closure, the closure's files and the plan file's absolute
 * path are recorded, replacing an entry of the same digest. Returns the entry.
 */
export async function approvePlan(nodeDir: string, planFile: string, now = new Date()): Promise<ApprovedPlan> {
  const closure = await checkPlanFile(planFile);
  const entry: ApprovedPlan = {
    sha256: closure.sha256,
    file: closure.file,
    approvedAt: now.toISOString(),
    digest: PLAN_DIGEST,
    files: closure.files,
  };
  try {
    await fs.mkdir(nodeDir, { recursive: true });
  } catch (error) {
    throw new NodeDirError(nodeDir, `cannot be created (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  const plans = (await readApprovals(nodeDir)).filter((plan) => plan.sha256 !== entry.sha256);
  plans.push(entry);
  const list: ApprovalList = { version: 1, plans };
  const target = path.join(nodeDir, APPROVALS_FILE);
  const temp = `${target}.${process.pid}.tmp`;
  await writeStep(target, 'writing the approval list', async () => {
    const handle = await fs.open(temp, 'w');
    try {
      await handle.writeFile(`${JSON.stringify(list, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temp, target);
    await syncDir(nodeDir);
  });
  return entry;
}
