/**
 * Imports a user module by path: an experiment definition, a training plan. `roundlog run`
 * records the path and `resume` imports it again, so both go through here.
 *
 * - JavaScript is imported as it is.
 * - TypeScript that ships compiled with roundlog (`examples/…/x.ts`, compiled to
 *   `dist/examples/…/x.js` in the package) is imported from the compiled file.
 * - Any other TypeScript is imported through tsx's `tsImport` (tsx is a dependency of roundlog);
 *   when roundlog itself runs from source under a TypeScript loader, that loader does it.
 *
 * Failures are a `ModuleLoadError` naming the file and what to do.
 */
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PathOutsideError, isInside, resolvedPath } from '../confine.ts';
import { RoundlogError } from '../errors.ts';
import { MANIFEST_FILE } from '../model/manifest.ts';
import type { RootLayout } from '../root.ts';
import { PACKAGE_ROOT } from '../version.ts';

/** A module could not be imported: the file, why, and what to do. */
export class ModuleLoadError extends RoundlogError {
  readonly code = 'MODULE_LOAD_FAILED' as const;
  constructor(
    readonly file: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot load ${file}: ${reason}`, options);
  }
}

const TYPESCRIPT = /\.(c|m)?ts$/;
/** This module is itself TypeScript: roundlog runs from source, so a TypeScript loader is active. */
const LOADER_ACTIVE = TYPESCRIPT.test(new URL(import.meta.url).pathname);

type TsImport = (specifier: string, parent: string) => Promise<Record<string, unknown>>;
let tsImport: Promise<TsImport> | null = null;

/** The module at `file` (absolute, or relative to the current directory), imported. */
export async function importModule(file: string): Promise<Record<string, unknown>> {
  const absolute = path.resolve(file);
  if (!existsSync(absolute)) throw new ModuleLoadError(file, 'no such file');
  let target = absolute;
  let load = (url: string): Promise<Record<string, unknown>> => import(url) as Promise<Record<string, unknown>>;
  if (TYPESCRIPT.test(absolute) && !LOADER_ACTIVE) {
    const compiled = compiledTwin(absolute);
    if (compiled !== null) target = compiled;
    else {
      const viaTsx = await typescriptImporter(file);
      load = (url) => viaTsx(url, import.meta.url);
    }
  }
  try {
    const namespace = await load(pathToFileURL(target).href);
    // TypeScript compiled as CommonJS (a folder whose package.json says "type": "commonjs")
    // comes back as { default: module.exports }: its exports are those of module.exports.
    const exports = namespace.default as { __esModule?: unknown } | null | undefined;
    return typeof exports === 'object' && exports !== null && exports.__esModule === true
      ? (exports as Record<string, unknown>)
      : namespace;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const hint = TYPESCRIPT.test(target)
      ? ' (loaded through tsx: check its syntax, and that its imports resolve from its folder)'
      : '';
    throw new ModuleLoadError(file, `${message}${hint}`, { cause: error });
  }
}

/** The compiled JavaScript of a TypeScript file of roundlog's own package (its examples), if shipped. */
function compiledTwin(file: string): string | null {
  const relative = path.relative(PACKAGE_ROOT, file);
  if (relative.startsWith('..') || path.isAbsolute(relative) || relative.startsWith(`dist${path.sep}`)) return null;
  const twin = path.join(
    PACKAGE_ROOT,
    'dist',
    relative.replace(TYPESCRIPT, (ext) => ext.replace('ts', 'js')),
  );
  return existsSync(twin) ? twin : null;
}

/**
 * tsx's `tsImport`: it compiles the module (as ESM or CommonJS, by its extension and nearest
 * package.json) without changing how the rest of this process loads modules.
 */
function typescriptImporter(file: string): Promise<TsImport> {
  tsImport ??= import('tsx/esm/api').then(
    (api) => api.tsImport as TsImport,
    (error: unknown) => {
      tsImport = null;
      throw new ModuleLoadError(
        file,
        'it is TypeScript and the TypeScript loader tsx is not installed: npm install tsx, ' +
          'or compile the module to JavaScript and give the .js file',
        { cause: error },
      );
    },
  );
  return tsImport;
}

/**
 * Where a module path recorded relative to the workspace is: in the workspace, or, for the
 * examples that ship with roundlog (`examples/…`) when the workspace has no such file, in the
 * installed package, so that `roundlog demo`'s experiments resume from any folder.
 */
export function workspaceModule(workspace: string, module: string): string {
  const file = path.resolve(workspace, module);
  if (existsSync(file) || path.isAbsolute(module)) return file;
  const normalized = path.posix.normalize(module.split(path.sep).join('/'));
  if (!normalized.startsWith('examples/')) return file;
  const shipped = path.join(PACKAGE_ROOT, normalized);
  return existsSync(shipped) ? shipped : file;
}

/**
 * The folders of a root that hold data, never code: a module inside one of them is never imported.
 */
export function dataAreas(layout: RootLayout): string[] {
  return [layout.experiments, layout.replays, layout.log, layout.blobs, layout.snapshots];
}

/**
 * The file of a module path that comes from data (an experiment's recorded definition or training
 * plan module, or one given to create it), confined: a relative path that resolves, symlinks
 * resolved, inside the workspace (or, for `examples/…`, roundlog's shipped examples), not inside
 * any of `forbidden` (a root's data areas, the folder being resumed), and in no breakpoint folder
 * (no folder between it and the workspace holds a `breakpoint.json`). Anything else is a
 * `PathOutsideError` naming `field` and the value, before the file is read or imported.
 */
export async function confinedModule(
  workspace: string,
  module: unknown,
  field: string,
  forbidden: readonly string[] = [],
): Promise<string> {
  if (typeof module !== 'string' || module.length === 0 || module.includes('\0')) {
    throw new PathOutsideError(field, module, workspace, null, 'must be a module path relative to the workspace');
  }
  if (path.isAbsolute(module) || /^[A-Za-z]:[\\/]/.test(module)) {
    throw new PathOutsideError(
      field,
      module,
      workspace,
      null,
      `is absolute; modules are recorded relative to the workspace (${workspace}) and resolved inside it`,
    );
  }
  const file = workspaceModule(workspace, module);
  const real = await resolvedPath(file);
  const bases = [await resolvedPath(workspace), await resolvedPath(path.join(PACKAGE_ROOT, 'examples'))];
  const base = bases.find((b) => isInside(b, real) && b !== real);
  if (base === undefined) {
    throw new PathOutsideError(
      field,
      module,
      workspace,
      real,
      `leads outside the workspace ${workspace}: modules are imported only from the workspace`,
    );
  }
  for (const area of forbidden) {
    if (isInside(await resolvedPath(area), real)) {
      throw new PathOutsideError(
        field,
        module,
        area,
        real,
        `is inside ${area}: code is never imported from a root's data or a breakpoint folder, ` +
          'only from the workspace; it must be in the workspace, not inside an experiment or breakpoint folder',
      );
    }
  }
  for (let dir = path.dirname(real); dir !== base && isInside(base, dir); dir = path.dirname(dir)) {
    if ((await fs.lstat(path.join(dir, MANIFEST_FILE)).catch(() => null)) !== null) {
      throw new PathOutsideError(
        field,
        module,
        dir,
        real,
        `is inside the breakpoint folder ${dir}: code is never imported from a breakpoint folder, ` +
          'only from the workspace; it must be in the workspace, not inside an experiment or breakpoint folder',
      );
    }
  }
  return real;
}
