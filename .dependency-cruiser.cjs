/**
 * The layering rule (ARCHITECTURE.md, "Layers"): each layer imports only the layers below it.
 *   ports and adapters (errors, log, blobs, codec, root) <- model <- engine <- projections <- audit
 *   <- federated <- cli / serve; src/index.ts and src/testing sit on top.
 * `npm run lint:deps` fails on any import that runs upward, and on an import cycle.
 */
const layers = [
  { name: 'base', path: '^src/(errors|durable|version|root|confine)\\.ts$|^src/(log|blobs|codec|types)/' },
  { name: 'model', path: '^src/model/' },
  { name: 'engine', path: '^src/engine/' },
  { name: 'projections', path: '^src/projections/' },
  { name: 'audit', path: '^src/audit/' },
  { name: 'federated', path: '^src/federated/' },
  { name: 'cli', path: '^src/(cli|serve)/' },
];

const upward = layers.slice(0, -1).map((layer, i) => ({
  name: `no-upward-from-${layer.name}`,
  comment: `${layer.name} imports only the layers below it`,
  severity: 'error',
  from: { path: layer.path },
  to: {
    path:
      layers
        .slice(i + 1)
        .map((l) => l.path)
        .join('|') + '|^src/(index|testing)',
  },
}));

module.exports = {
  forbidden: [
    ...upward,
    {
      name: 'model-is-a-leaf',
      comment: 'the model imports nothing but the port types, the base errors and its own modules',
      severity: 'error',
      from: { path: '^src/model/' },
      to: {
        path: '^src/',
        pathNot: '^src/model/|^src/log/types\\.ts$|^src/blobs/types\\.ts$|^src/errors\\.ts$',
      },
    },
    {
      name: 'serve-beside-cli',
      comment: 'the HTTP service uses one module of the CLI (listExperiments, what ls --json prints), no command',
      severity: 'error',
      from: { path: '^src/serve/' },
      to: { path: '^src/cli/', pathNot: '^src/cli/experiments\\.ts$' },
    },
    {
      name: 'no-circular-layers',
      comment: 'no import cycle between modules',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'driver-only-in-its-adapter',
      comment: 'the EventStoreDB driver is loaded by the adapter alone, so file-log users never need it',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/log/esdb/' },
      to: { path: '@eventstore/db-client' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
