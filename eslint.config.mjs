// Lint: typed rules that catch the bugs an async runtime breeds (floating promises, misused promises),
// consistent type imports, and no deep imports across top-level folders (STYLE.md rule 1).
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tap/**', '**/*.mjs', '**/*.tmp.ts'] },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.base],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // tap's top-level t.test() calls are collected by the runner; awaiting them would serialise nothing more.
    files: ['test/**/*.test.ts'],
    rules: { '@typescript-eslint/no-floating-promises': 'off' },
  },
  {
    // Product code outside actors/ uses the runtime through its public face only, and nothing imports the
    // gateway (imports go one way: gateway -> actors). Tests and benchmarks may reach inside.
    files: ['gateway/**/*.ts', 'sites/**/*.ts', 'consul/**/*.ts', 'nomad-jobs/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['**/actors/*', '!**/actors/mod.js'], message: 'import the runtime through actors/mod.ts' },
          { group: ['**/actors/*/**'], message: 'import the runtime through actors/mod.ts' },
        ],
      }],
    },
  },
  {
    files: ['actors/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/gateway/**', '**/sites/**'], message: 'imports go one way: gateway/sites -> actors, never back' }] }],
    },
  },
)
