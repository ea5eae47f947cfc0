/**
 * A training plan's identity: the digest of its local module closure, the plan file and every
 * file it imports, transitively, that is not installed software. The researcher records it and
 * sends it in each request; a node approves it (`roundlog node approve`) and checks it again before
 * it imports the plan, so a local module the plan imports cannot change after approval unnoticed.
 *
 * Installed software is trusted, as Python packages are by Fed-BioMed: an import by package name
 * (`zod`, `roundlog`: resolved from `node_modules`), Node's built-in modules, any file under a
 * `node_modules` folder, and roundlog's own source (`src/` and `dist/src/` of its package, which
 * the shipped examples import by relative path) are not followed.
 *
 * The imports are found by esbuild (a bundle of the plan, thrown away): it resolves them as tsx
 * does when the plan is imported (TypeScript's `.js`-for-`.ts` specifiers, `package.json`
 * `exports`, `tsconfig` paths), and its load hook hands it the bytes this module read and hashed, so
 * the files hashed are the files esbuild parsed, byte for byte. A type-only import is not code that
 * runs and is not part of the closure. An import whose path is computed at run time
 * (`import(name)`), and files a plan reads as data, are not code esbuild can see: they are not
 * covered.
 *
 * The digest (version 1) is the SHA-256 of `roundlog plan closure v1\n` followed by one line per
 * file, sorted by path: `<SHA-256 of its bytes> <path relative to the plan's folder, as JSON>\n`.
 */
import { createHash } from 'node:crypto';
import { promises as fs, realpathSync } from 'node:fs';
import path from 'node:path';
import type { Loader, Message, Plugin } from 'esbuild';
import { isInside, readRegularFile } from '../confine.ts';
import { RoundlogError } from '../errors.ts';
import { PACKAGE_ROOT } from '../version.ts';

/** The version of the digest: the first line hashed. */
export const PLAN_DIGEST = 'roundlog plan closure v1';

/** A file of a plan's closure: its path relative to the plan's folder (with `/`), its bytes' SHA-256. */
export type PlanClosureFile = Readonly<{ path: string; sha256: string }>;

export type PlanClosure = Readonly<{
  /** The plan file, absolute, symlinks resolved. */
  file: string;
  /** The closure's digest (`closureDigest(files)`): the plan's identity. */
  sha256: string;
  /** Sorted by path; the plan file is among them. */
  files: readonly PlanClosureFile[];
  /** The plan file's bytes, as hashed. */
  source: Buffer;
}>;

/** A plan's local module closure cannot be found: a file it imports cannot be resolved or parsed. */
export class PlanClosureError extends RoundlogError {
  readonly code = 'PLAN_CLOSURE_FAILED' as const;
  constructor(
    readonly file: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(
      `cannot list the local modules training plan ${file} imports: ${reason}; every import of the plan ` +
        `(and of the local files it imports) must resolve from its folder and parse`,
      options,
    );
  }
}

/** The digest of a closure's files (any order). */
export function closureDigest(files: readonly PlanClosureFile[]): string {
  const hash = createHash('sha256').update(`${PLAN_DIGEST}\n`);
  for (const file of sortByPath(files)) hash.update(`${file.sha256} ${JSON.stringify(file.path)}\n`);
  return hash.digest('hex');
}

/** A file of a closure that differs: its path and, in words, how. */
export type ClosureChange = Readonly<{ path: string; change: 'changed' | 'removed' | 'added'; text: string }>;

/** What differs from `before` to `now`, file by file (sorted by path: changed or removed, then added). */
export function closureChanges(before: readonly PlanClosureFile[], now: readonly PlanClosureFile[]): ClosureChange[] {
  const then = new Map(before.map((f) => [f.path, f.sha256]));
  const current = new Map(now.map((f) => [f.path, f.sha256]));
  const changes: ClosureChange[] = [];
  for (const [file, sha256] of [...then].sort(byKey)) {
    const after = current.get(file);
    if (after === undefined) {
      changes.push({ path: file, change: 'removed', text: `${file} is no longer imported (or was removed)` });
    } else if (after !== sha256) {
      const text = `${file} changed (sha256 ${sha256.slice(0, 12)}… approved, ${after.slice(0, 12)}… now)`;
      changes.push({ path: file, change: 'changed', text });
    }
  }
  for (const [file] of [...current].sort(byKey)) {
    if (!then.has(file))
      changes.push({ path: file, change: 'added', text: `${file} is imported now and was not then` });
  }
  return changes;
}

const byKey = ([a]: [string, string], [b]: [string, string]) => (a < b ? -1 : a > b ? 1 : 0);

function sortByPath(files: readonly PlanClosureFile[]): PlanClosureFile[] {
  return [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Folders of trusted (installed) code: roundlog's own source, compiled or not. */
const TRUSTED_ROOTS = (() => {
  const root = (() => {
    try {
      return realpathSync(PACKAGE_ROOT);
    } catch {
      return PACKAGE_ROOT;
    }
  })();
  return [path.join(root, 'src'), path.join(root, 'dist', 'src')];
})();

function trusted(file: string): boolean {
  return file.split(path.sep).includes('node_modules') || TRUSTED_ROOTS.some((root) => isInside(root, file));
}

const LOADERS: Readonly<Record<string, Loader>> = {
  '.ts': 'ts',
  '.mts': 'ts',
  '.cts': 'ts',
  '.tsx': 'tsx',
  '.js': 'js',
  '.mjs': 'js',
  '.cjs': 'js',
  '.jsx': 'jsx',
  '.json': 'json',
};

const SELF = Symbol('plan-closure');

/**
 * The local module closure of the plan file `planFile` and its digest. Throws `PlanClosureError`
 * when an import cannot be resolved or a file cannot be parsed, and the typed errors of
 * `readRegularFile` (a file that is not a regular one) or `ENOENT` for a plan file that is not there.
 */
export async function planClosure(planFile: string): Promise<PlanClosure> {
  const file = await fs.realpath(path.resolve(planFile));
  const folder = path.dirname(file);
  const read = new Map<string, Buffer>();
  const plugin: Plugin = {
    name: 'roundlog-plan-closure',
    setup(build) {
      build.onResolve({ filter: /.*/ }, async (args) => {
        if (args.pluginData === SELF || args.kind === 'entry-point') return undefined;
        // A path into trusted code is not followed, also when it is not there: a shipped example's
        // `../../src/x.ts` in an installed package, where roundlog's source is compiled (dist/src).
        if (
          (args.path.startsWith('.') || path.isAbsolute(args.path)) &&
          trusted(path.resolve(args.resolveDir, args.path))
        ) {
          return { path: args.path, external: true };
        }
        const result = await build.resolve(args.path, {
          kind: args.kind,
          importer: args.importer,
          resolveDir: args.resolveDir,
          namespace: args.namespace,
          pluginData: SELF,
        });
        if (result.errors.length > 0) return { errors: result.errors };
        if (result.external || result.namespace !== 'file' || trusted(result.path)) {
          return { path: args.path, external: true };
        }
        return { path: result.path, sideEffects: result.sideEffects };
      });
      build.onLoad({ filter: /.*/, namespace: 'file' }, async (args) => {
        const bytes = await readRegularFile(args.path, 'training plan module');
        read.set(args.path, bytes);
        return { contents: bytes, loader: LOADERS[path.extname(args.path).toLowerCase()] ?? 'empty' };
      });
    },
  };
  const esbuild = await import('esbuild');
  try {
    await esbuild.build({
      entryPoints: [file],
      absWorkingDir: folder,
      bundle: true,
      write: false,
      platform: 'node',
      format: 'esm',
      target: 'esnext',
      packages: 'external',
      logLevel: 'silent',
      plugins: [plugin],
    });
  } catch (error) {
    const messages = (error as { errors?: Message[] }).errors;
    if (!Array.isArray(messages) || messages.length === 0) throw error;
    // A failure of the load hook (a file that is not a regular one) comes back as it was thrown.
    const thrown = messages.find((m) => m.detail instanceof Error)?.detail as Error | undefined;
    if (thrown !== undefined) throw thrown;
    throw new PlanClosureError(file, messages.map(describeMessage).join('; '), { cause: error });
  }
  const files = [...read].map(([absolute, bytes]) => ({
    path: path.relative(folder, absolute).split(path.sep).join('/'),
    sha256: createHash('sha256').update(bytes).digest('hex'),
  }));
  const sorted = sortByPath(files);
  return { file, sha256: closureDigest(sorted), files: sorted, source: read.get(file)! };
}

function describeMessage(message: Message): string {
  const where = message.location === null ? '' : `${message.location.file}:${message.location.line}: `;
  return `${where}${message.text}`;
}
