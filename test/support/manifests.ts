/** Copied breakpoint manifests edited by hand, for tests of what an import must refuse. */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BreakpointManifest } from '../../src/model/manifest.ts';
import { sealManifest } from '../../src/projections/breakpoints/schema.ts';

/** A parsed manifest as a hand with a text editor sees it (loosely typed on purpose). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Loose = Record<string, any>;

/**
 * Edits the `breakpoint.json` of `folder` in place (the file replaced, not written through) and
 * recomputes its checksum, as whoever edits a manifest to attack can: it proves no authenticity.
 */
export function editManifest(folder: string, edit: (manifest: Loose) => void): void {
  const file = path.join(folder, 'breakpoint.json');
  const manifest = JSON.parse(readFileSync(file, 'utf8')) as Loose;
  edit(manifest);
  rmSync(file);
  writeFileSync(file, JSON.stringify(sealManifest(manifest as BreakpointManifest), null, 2) + '\n');
}
