/**
 * The domain as pure code, the public surface of `src/model`: the event catalogue, the state and
 * its fold (`evolve`, `replay`, `upcast`), the deciders (`decideX(state, command, context)`), the
 * retention policy, and the model's typed errors. Imports nothing but the log's and the blob
 * store's types and the error base.
 */
export * from './events.ts';
export * from './state.ts';
export * from './errors.ts';
export * from './rounds.ts';
export * from './settings.ts';
export * from './retention.ts';
export * from './concurrent.ts';
export * from './status.ts';
export * from './decide/index.ts';
