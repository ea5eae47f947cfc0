/**
 * A node's approved training plans, as in Fed-BioMed: the node's operator reviews a plan's source
 * and approves it (`roundlog node approve FILE`), which records the SHA-256 of the file's bytes and
 * where the file is in `<node dir>/approved-plans.json`. The node trains only with a plan whose
 * hash a request names and its list holds, and imports the plan from the approved file itself
 * (after checking the file still has that hash), so what runs is what was approved.
 *
 * The list is replaced whole and durably (a temporary file fsynced, renamed over, the folder
 * fsynced): a crash leaves the old list or the new one, never a torn one.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readRegularFile, readRegularFileIfAny } from '../../confine.ts';
import { syncDir, writeStep } from '../../durable.ts';
import { ApprovalListError } from './errors.ts';

export const APPROVALS_FILE = 'approved-plans.json';

export type ApprovedPlan = Readonly<{ sha256: string; file: string; approvedAt: string }>;

type ApprovalList = { version: 1; plans: ApprovedPlan[] };

/** The SHA-256 (hex) of `bytes`. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The approved plans of the node whose folder is `nodeDir` (none when it has no list yet). */
export async function readApprovals(nodeDir: string): Promise<ApprovedPlan[]> {
  const file = path.join(nodeDir, APPROVALS_FILE);
  const bytes = await readRegularFileIfAny(file, null);
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
      /^[0-9a-f]{64}$/.test(plan.sha256) &&
      typeof plan.file === 'string' &&
      path.isAbsolute(plan.file) &&
      typeof plan.approvedAt === 'string';
    if (!ok) throw new ApprovalListError(file, `has an entry plans[${i}] that is not { sha256, file, approvedAt }`);
  });
  return plans;
}

/**
 * Approves the plan file `planFile` on the node of `nodeDir` (created if needed): its hash and
 * absolute path are recorded, replacing an entry of the same hash. Returns the entry.
 */
export async function approvePlan(nodeDir: string, planFile: string, now = new Date()): Promise<ApprovedPlan> {
  const file = path.resolve(planFile);
  const source = await readRegularFile(file, 'plan file');
  const entry: ApprovedPlan = { sha256: sha256Hex(source), file, approvedAt: now.toISOString() };
  await fs.mkdir(nodeDir, { recursive: true });
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
