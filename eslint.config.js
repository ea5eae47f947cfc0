// Lint rules: typescript-eslint's recommended set and a 120-character line limit. Formatting is
// prettier's (`.prettierrc.json`); `npm run lint` checks both, and `npm test` runs it.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'var/', 'bench/results/', 'bench/node_modules/', '.tmp/'] },
  // Files written by older releases, kept byte for byte (their training plan copies are not this tree's code).
  { ignores: ['test/fixtures/'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      'max-len': ['error', { code: 120, ignoreUrls: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
);
