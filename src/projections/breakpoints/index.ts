/**
 * The breakpoint folder format, owned here: names and scans (`folder.ts`), the manifest's schema,
 * limits, format versions and checksum (`schema.ts`), checks (`check.ts`),
 * writes (`write.ts`) and the projection behind the engine's port (`projection.ts`). The manifest
 * itself is a pure function of the log, in `src/model/manifest.ts`.
 */
export * from '../../model/manifest.ts';
export * from './check.ts';
export * from './folder.ts';
export * from './projection.ts';
export * from './schema.ts';
export * from './write.ts';
