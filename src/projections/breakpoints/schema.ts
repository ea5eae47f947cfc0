/**
 * `breakpoint.json` as it crosses the boundary: read with a size cap, its nesting depth bounded
 * before `JSON.parse` sees it, its format version one of the table below (integers only), every
 * field checked against a zod schema, its fields in agreement with each other, and its own
 * checksum (`manifestSha256`, format version 2) over a canonical serialization of the rest.
 * What passes is a `BreakpointManifest` the rest of the code may use without another check.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { readConfinedFile } from '../../confine.ts';
import { RoundlogError } from '../../errors.ts';
import { z } from 'zod';
import {
  BREAKPOINT_FORMAT,
  BREAKPOINT_FORMAT_VERSION,
  breakpointManifest,
  paramsFileOf,
  type BreakpointManifest,
} from '../../model/manifest.ts';
import type { ExperimentCreated } from '../../model/events.ts';
import {
  blobRef,
  count,
  decimal,
  experimentCreated,
  folderName,
  planRef,
  record,
  retention,
  sha256,
  text,
  valueAt,
} from '../../model/schemas.ts';
import type { RoundRecord } from '../../model/state.ts';

/** The largest `breakpoint.json` read (bytes): a manifest holds references and small state, never tensors. */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;
/** The deepest nesting of arrays and objects a manifest may have. */
export const MAX_MANIFEST_DEPTH = 64;

/**
 * The format versions this release reads, each with what it lacks against the current one.
 * 1: no `manifestSha256` (checked for the agreement of its fields only); 2: the current format.
 */
export const MANIFEST_VERSIONS: Readonly<Record<number, string>> = {
  1: 'written before manifests carried their own checksum: its fields are checked for agreement only',
  2: 'current',
};

// ---- the schema -------------------------------------------------------------------------------------

// Text, hashes, counts, references and the creation event the manifest carries are the event schemas'
// (src/model/schemas.ts), so a manifest is checked as the log's events are.
const fileName = z
  .string()
  .min(1)
  .max(255)
  .refine((name) => !name.includes('/') && !name.includes('\\') && name !== '.' && name !== '..', {
    message: 'expected the name of a file inside the breakpoint folder, not a path',
  });
const settings = z.looseObject({
  roundLimit: count.nullable(),
  retention: retention.nullable(),
  saveBreakpoints: z.boolean(),
  trainingArgs: record,
  trainingPlan: planRef.nullable(),
});
const manifestSchema = z.looseObject({
  format: z.literal(BREAKPOINT_FORMAT),
  formatVersion: z.number().int(),
  experimentId: text.min(1),
  experimentFolder: folderName,
  stream: text,
  round: count,
  roundCurrent: count,
  roundLimit: count.nullable(),
  logPosition: decimal,
  streamRevision: decimal,
  settings,
  state: z.unknown(),
  metrics: z.record(z.string().max(4096), z.number().nullable()),
  params: blobRef.extend({ file: fileName }),
  trainingPlan: z.looseObject({ module: text, export: text, sha256, file: fileName }).nullable(),
  experiment: experimentCreated,
  files: z.record(z.string().max(255), sha256),
  manifestSha256: sha256.optional(),
});

// ---- reading --------------------------------------------------------------------------------------

/**
 * A manifest read on its own. `manifest` is null when it cannot be used at all (unreadable, too
 * large or deep, not JSON, unknown format or version, a field of the wrong type or shape), and
 * `problems` then holds that one reason. Otherwise `manifest` is schema-valid and `problems` lists
 * the disagreements of its fields with each other, then a wrong checksum: resume refuses it on the
 * first, verify reports them all.
 */
export type ReadManifest = Readonly<{
  manifest: BreakpointManifest | null;
  problems: readonly string[];
  text: string | null;
  /** The typed error of a read refused by confinement (a path out of the folder, not a regular file). */
  error?: RoundlogError;
}>;

/**
 * Reads and checks `breakpoint.json` on its own, never throwing for its content: the size cap
 * (before reading), the depth cap (before parsing), JSON, the format and its version, the
 * schema, the agreement of its fields, and its checksum.
 */
export async function readManifestFile(file: string): Promise<ReadManifest> {
  let text: string;
  try {
    // A regular file inside its folder (never a FIFO, a device or a symlink out), bounded.
    const bytes = await readConfinedFile(path.dirname(file), path.basename(file), path.basename(file), {
      maxBytes: MAX_MANIFEST_BYTES,
    });
    text = bytes.toString('utf8');
  } catch (error) {
    if (error instanceof RoundlogError) return { manifest: null, text: null, problems: [error.message], error };
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    return { manifest: null, text: null, problems: [`cannot be read (${code})`] };
  }
  return parseManifestText(text);
}

/** `readManifestFile` for text already read. */
export function parseManifestText(text: string): ReadManifest {
  const fail = (reason: string): ReadManifest => ({ manifest: null, problems: [reason], text });
  if (text.length > MAX_MANIFEST_BYTES) return fail(`is larger than ${MAX_MANIFEST_BYTES} bytes`);
  if (nestingExceeds(text, MAX_MANIFEST_DEPTH)) {
    return fail(`is nested deeper than ${MAX_MANIFEST_DEPTH} levels of arrays and objects`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return fail(`is not valid JSON: ${(error as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return fail(`is ${describe(value)}, not a roundlog breakpoint manifest (a JSON object)`);
  }
  const object = value as Record<string, unknown>;
  if (object.format !== BREAKPOINT_FORMAT) {
    return fail(
      `format is ${describe(object.format)}, not ${JSON.stringify(BREAKPOINT_FORMAT)}: ` +
        'not a roundlog breakpoint manifest',
    );
  }
  const version = object.formatVersion;
  const known = Object.keys(MANIFEST_VERSIONS).join(', ');
  if (typeof version === 'number' && Number.isInteger(version) && version > BREAKPOINT_FORMAT_VERSION) {
    return fail(`formatVersion is ${version}; this release reads format versions ${known}: upgrade roundlog`);
  }
  if (typeof version !== 'number' || !Number.isInteger(version) || MANIFEST_VERSIONS[version] === undefined) {
    return fail(`formatVersion is ${describe(version)}; this release reads the integer format versions ${known}`);
  }
  const checked = manifestSchema.safeParse(object);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    return fail(`${fieldPath(issue.path)} is ${describe(valueAt(object, issue.path))}: ${issue.message.toLowerCase()}`);
  }
  const manifest = object as unknown as BreakpointManifest;
  const problems = disagreements(manifest);
  if (version >= 2) {
    const actual = manifestChecksum(manifest);
    if (manifest.manifestSha256 === undefined)
      problems.push(`manifestSha256 is missing (format version ${version} has it)`);
    else if (actual !== manifest.manifestSha256) {
      problems.push(
        `manifestSha256 is ${manifest.manifestSha256}, but the content hashes to ${actual}: ` +
          'the manifest was changed after it was written',
      );
    }
  } else if (manifest.manifestSha256 !== undefined) {
    problems.push(`manifestSha256 is present, which format version ${version} does not have`);
  }
  return { manifest, problems, text };
}

/**
 * Fields of a schema-valid manifest that disagree with each other (each names both fields). A
 * manifest of any version must pass these; a forged one that passes them is caught by its checksum.
 */
export function disagreements(m: BreakpointManifest): string[] {
  const found: string[] = [];
  const differ = (a: string, av: unknown, b: string, bv: unknown) => {
    if (JSON.stringify(av) !== JSON.stringify(bv)) found.push(`${a} is ${describe(av)} but ${b} is ${describe(bv)}`);
  };
  if (m.roundCurrent !== m.round + 1) {
    found.push(`round is ${m.round} but roundCurrent is ${m.roundCurrent} (roundCurrent is always round + 1)`);
  }
  differ('roundLimit', m.roundLimit, 'settings.roundLimit', m.settings.roundLimit);
  differ('experimentId', m.experimentId, 'experiment.experimentId', m.experiment.experimentId);
  differ('experimentFolder', m.experimentFolder, 'experiment.folder', m.experiment.folder);
  differ('stream', m.stream, "the experiment's stream", `experiment-${m.experimentId}`);
  differ(
    'params.file',
    m.params.file,
    `the parameters file of encoding ${JSON.stringify(m.params.encoding)}`,
    paramsFileOf(m.params.encoding),
  );
  differ(`files[${JSON.stringify(m.params.file)}]`, m.files[m.params.file], 'params.sha256', m.params.sha256);
  const plan = m.settings.trainingPlan;
  if ((plan === null) !== (m.trainingPlan === null)) {
    differ('trainingPlan', m.trainingPlan, 'settings.trainingPlan', plan);
  } else if (plan !== null && m.trainingPlan !== null) {
    differ('trainingPlan.module', m.trainingPlan.module, 'settings.trainingPlan.module', plan.module);
    differ('trainingPlan.export', m.trainingPlan.export, 'settings.trainingPlan.export', plan.export);
    differ('trainingPlan.sha256', m.trainingPlan.sha256, 'settings.trainingPlan.sha256', plan.sha256);
    const file = `files[${JSON.stringify(m.trainingPlan.file)}]`;
    differ(file, m.files[m.trainingPlan.file], 'settings.trainingPlan.source.sha256', plan.source.sha256);
  }
  if ((m.experiment.federated === null) !== (plan === null)) {
    differ('settings.trainingPlan', plan, 'experiment.federated', m.experiment.federated);
  }
  const imported = m.experiment.importedFrom;
  if (imported !== null && m.round < imported.round) {
    found.push(
      `round is ${m.round}, before round ${imported.round} the experiment was imported at ` +
        '(experiment.importedFrom.round)',
    );
  }
  if (m.experiment.federated !== null) {
    const state = m.state as Record<string, unknown> | null;
    if (
      state === null ||
      typeof state !== 'object' ||
      Array.isArray(state) ||
      !('aggregator' in state) ||
      !('strategy' in state)
    ) {
      found.push(`state is ${describe(m.state)}: a federated round's state is an object with aggregator and strategy`);
    }
  }
  return found;
}

// ---- the checksum ---------------------------------------------------------------------------------

/**
 * The SHA-256 of a manifest's canonical serialization without `manifestSha256`: the JSON form
 * (what `JSON.stringify` then `JSON.parse` give) with object keys sorted by UTF-16 code units,
 * arrays in order, no whitespace, strings and numbers as `JSON.stringify` writes them.
 */
export function manifestChecksum(manifest: BreakpointManifest): string {
  const { manifestSha256: _own, ...rest } = manifest;
  return createHash('sha256')
    .update(canonicalJson(JSON.parse(JSON.stringify(rest))))
    .digest('hex');
}

/** The manifest with its checksum, as format version 2 writes it. */
export function sealManifest(manifest: BreakpointManifest): BreakpointManifest {
  const { manifestSha256: _old, ...rest } = manifest;
  return { ...rest, manifestSha256: manifestChecksum(rest) };
}

/**
 * The manifest of a completed round as the log says it must be, in `formatVersion` (default the
 * current one, sealed with its checksum), and the name of the training plan copy.
 */
export function manifestOfRound(
  created: ExperimentCreated,
  record: RoundRecord,
  formatVersion: number = BREAKPOINT_FORMAT_VERSION,
): { manifest: BreakpointManifest; planFile: string | null } {
  const { manifest, planFile } = breakpointManifest(created, record, formatVersion);
  return { manifest: formatVersion >= 2 ? sealManifest(manifest) : manifest, planFile };
}

/** JSON with object keys sorted: equal for equal content, whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  return `{${Object.keys(value)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
    .join(',')}}`;
}

// ---- helpers --------------------------------------------------------------------------------------

/** Whether JSON text nests arrays and objects deeper than `max`, by one pass over it (strings skipped). */
export function nestingExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

function fieldPath(at: readonly PropertyKey[]): string {
  let out = '';
  for (const key of at) {
    out += typeof key === 'number' ? `[${key}]` : out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? 'the manifest' : out;
}

/** A value as a message shows it: JSON, cut at 80 characters; `missing` for undefined. */
export function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
