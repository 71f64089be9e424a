// Lint: typed rules that catch the bugs an async runtime breeds (floating promises, misused promises),
// consistent type imports, and no deep imports across top-level folders (STYLE.md rule 1).
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tap/**', '**/*.mjs'] },
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
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['../gateway/*', '../../gateway/*'], message: 'imports go one way: gateway -> actors, never back' },
          { group: ['**/actors/*/**', '!**/actors/mod.js'], message: 'import actors through actors/mod.ts' },
        ],
      }],
    },
  },
  {
    // Inside actors/ the folder's own modules import each other freely.
    files: ['actors/**/*.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
)
