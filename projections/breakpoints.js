/**
 * The breakpoint-folder projection: `<root>/experiments/<folder>/breakpoint_RRRR/` for every
 * round whose `RoundCompleted` asked for a breakpoint. A folder is self-contained and
 * relocatable: `breakpoint.json` (relative paths only, SHA-256 of every file), the parameters
 * (a hard link to their blob, so no byte is stored twice) and a copy of the training plan source.
 * Folders are written under a temporary name and renamed into place; the projection is
 * idempotent and can be rebuilt from the log at any time.
 */
import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { BreakpointCorruptError } from "../src/engine/errors.js";
import { breakpointFolderName } from "../src/experiment/events.js";
export const MANIFEST_FILE = 'breakpoint.json';
export const PARAMS_FILE = 'aggregated_params.tensors';
export const SUPERSEDED_DIR = 'superseded';
export const BREAKPOINT_FORMAT = 'roundlog-breakpoint';
export const BREAKPOINT_FORMAT_VERSION = 1;
const TEMP_PREFIX = '.tmp-';
/** Writes the breakpoint folder of one round, unless it is already there. */
export async function materializeBreakpoint(ctx, state, round, experimentFolder) {
    const created = state.created;
    const record = state.rounds[round];
    if (record === undefined)
        throw new Error(`experiment ${created.folder} has no completed round ${round}`);
    const dir = path.join(ctx.experimentsDir, experimentFolder ?? created.folder);
    const final = path.join(dir, breakpointFolderName(round));
    const existing = await readManifestIfAny(final);
    if (existing !== null) {
        if (existing.experimentId === created.experimentId && existing.logPosition === String(record.position)) {
            return { path: final, created: false };
        }
        // A folder of another history (a round done again after a rewind): keep it, aside.
        await moveAside(dir, final);
    }
    await fs.mkdir(dir, { recursive: true });
    const temp = path.join(dir, `${TEMP_PREFIX}${breakpointFolderName(round)}-${process.pid}-${randomUUID()}`);
    await fs.mkdir(temp);
    try {
        await ctx.blobs.link(record.params.sha256, path.join(temp, PARAMS_FILE));
        const plan = record.settings.trainingPlan;
        let planFile = null;
        if (plan !== null) {
            planFile = `training_plan${path.extname(plan.module) || '.txt'}`;
            await ctx.blobs.link(plan.source.sha256, path.join(temp, planFile));
        }
        const files = { [PARAMS_FILE]: record.params.sha256 };
        if (plan !== null && planFile !== null)
            files[planFile] = plan.source.sha256;
        const manifest = {
            format: BREAKPOINT_FORMAT,
            formatVersion: BREAKPOINT_FORMAT_VERSION,
            experimentId: created.experimentId,
            experimentFolder: created.folder,
            stream: `experiment-${created.experimentId}`,
            round,
            roundCurrent: round + 1,
            roundLimit: record.settings.roundLimit,
            logPosition: String(record.position),
            streamRevision: String(record.revision),
            settings: record.settings,
            state: record.state,
            metrics: record.metrics,
            params: { ...record.params, file: PARAMS_FILE },
            trainingPlan: plan === null || planFile === null ? null : { module: plan.module, export: plan.export, sha256: plan.sha256, file: planFile },
            experiment: created,
            files,
        };
        await writeDurably(path.join(temp, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
        await syncDir(temp);
        await fs.rename(temp, final);
        await syncDir(dir);
    }
    catch (error) {
        await fs.rm(temp, { recursive: true, force: true });
        throw error;
    }
    return { path: final, created: true };
}
/** Moves the breakpoint folders of rounds `>= fromRound` into the experiment's `superseded/` area. */
export async function supersedeBreakpoints(ctx, experimentFolder, fromRound) {
    const dir = path.join(ctx.experimentsDir, experimentFolder);
    const moved = [];
    for (const name of await listBreakpointFolders(dir)) {
        if (roundOfFolder(name) >= fromRound)
            moved.push(await moveAside(dir, path.join(dir, name)));
    }
    return moved;
}
/**
 * Brings an experiment's folders in line with its history: every breakpoint of the current
 * branch materialized, no superseded round left among them, no temp folder of a crash left over.
 */
export async function projectExperiment(ctx, state, experimentFolder) {
    const folder = experimentFolder ?? state.created.folder;
    const dir = path.join(ctx.experimentsDir, folder);
    await removeStaleTemps(dir);
    const wanted = new Map();
    for (const record of state.rounds)
        if (record?.breakpoint)
            wanted.set(breakpointFolderName(record.round), record);
    for (const name of await listBreakpointFolders(dir)) {
        const manifest = await readManifestIfAny(path.join(dir, name));
        const record = wanted.get(name);
        if (record === undefined || manifest === null || manifest.logPosition !== String(record.position)) {
            await moveAside(dir, path.join(dir, name));
        }
    }
    let written = 0;
    for (const record of wanted.values()) {
        if ((await materializeBreakpoint(ctx, state, record.round, folder)).created)
            written++;
    }
    return { written };
}
export async function listBreakpointFolders(experimentDir) {
    const names = await fs.readdir(experimentDir).catch(() => []);
    return names.filter((name) => roundOfFolder(name) !== null).sort();
}
export function roundOfFolder(name) {
    const match = /^breakpoint_(\d{4,})$/.exec(name);
    return match ? Number(match[1]) : null;
}
/**
 * Reads a breakpoint folder and checks every file against the SHA-256 its manifest records.
 * Throws `BreakpointCorruptError` naming the file that is missing, unreadable or different.
 */
export async function readBreakpoint(folder) {
    const manifestPath = path.join(folder, MANIFEST_FILE);
    let text;
    try {
        text = await fs.readFile(manifestPath, 'utf8');
    }
    catch (error) {
        throw new BreakpointCorruptError(folder, MANIFEST_FILE, `cannot be read (${error.code ?? String(error)})`);
    }
    let manifest;
    try {
        manifest = JSON.parse(text);
    }
    catch (error) {
        throw new BreakpointCorruptError(folder, MANIFEST_FILE, `is not valid JSON: ${error.message}`);
    }
    if (manifest?.format !== BREAKPOINT_FORMAT || typeof manifest.formatVersion !== 'number') {
        throw new BreakpointCorruptError(folder, MANIFEST_FILE, 'is not a roundlog breakpoint manifest');
    }
    if (manifest.formatVersion > BREAKPOINT_FORMAT_VERSION) {
        throw new BreakpointCorruptError(folder, MANIFEST_FILE, `has format version ${manifest.formatVersion}; this release reads up to ${BREAKPOINT_FORMAT_VERSION}: upgrade roundlog`);
    }
    if (typeof manifest.files !== 'object' || manifest.files === null || manifest.files[PARAMS_FILE] !== manifest.params?.sha256) {
        throw new BreakpointCorruptError(folder, MANIFEST_FILE, 'does not list the parameters file with its hash');
    }
    for (const [file, expected] of Object.entries(manifest.files)) {
        if (file !== path.basename(file))
            throw new BreakpointCorruptError(folder, MANIFEST_FILE, `names a file outside the folder: ${file}`);
        let actual;
        try {
            actual = createHash('sha256').update(await fs.readFile(path.join(folder, file))).digest('hex');
        }
        catch (error) {
            throw new BreakpointCorruptError(folder, file, `cannot be read (${error.code ?? String(error)})`);
        }
        if (actual !== expected)
            throw new BreakpointCorruptError(folder, file, `has SHA-256 ${actual}, the manifest records ${expected}`);
    }
    return manifest;
}
async function readManifestIfAny(folder) {
    try {
        return JSON.parse(await fs.readFile(path.join(folder, MANIFEST_FILE), 'utf8'));
    }
    catch {
        return null;
    }
}
async function moveAside(experimentDir, folder) {
    const area = path.join(experimentDir, SUPERSEDED_DIR);
    await fs.mkdir(area, { recursive: true });
    const base = path.basename(folder);
    const names = new Set(await fs.readdir(area));
    let n = 1;
    while (names.has(`${base}.${n}`))
        n++;
    const target = path.join(area, `${base}.${n}`);
    await fs.rename(folder, target);
    await syncDir(area);
    await syncDir(experimentDir);
    return target;
}
/** Removes temp folders whose writer process is gone: a crash mid-write never looks like a breakpoint. */
async function removeStaleTemps(experimentDir) {
    for (const name of await fs.readdir(experimentDir).catch(() => [])) {
        const match = /^\.tmp-breakpoint_\d+-(\d+)-/.exec(name);
        if (match === null)
            continue;
        let alive = true;
        try {
            process.kill(Number(match[1]), 0);
        }
        catch (error) {
            alive = error.code !== 'ESRCH';
        }
        if (!alive)
            await fs.rm(path.join(experimentDir, name), { recursive: true, force: true });
    }
}
async function writeDurably(file, text) {
    const handle = await fs.open(file, 'wx');
    try {
        await handle.writeFile(text);
        await handle.sync();
    }
    finally {
        await handle.close();
    }
}
async function syncDir(dir) {
    const handle = await fs.open(dir, 'r');
    try {
        await handle.sync();
    }
    finally {
        await handle.close();
    }
}
//# sourceMappingURL=breakpoints.js.map