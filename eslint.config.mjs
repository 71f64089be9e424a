// Lint: typed rules that catch the bugs an async runtime breeds (floating promises, misused promises),
// consistent type imports, and no deep imports across top-level folders (STYLE.md rule 1).
import tseslint from 'typescript-eslint'

/** Each room and the rooms it may import (all below it; no arrow runs back up). */
const ROOMS = {
  actors: [],
  projector: ['actors'],
  sites: ['actors'],
  simulators: ['actors'],
  monitoring: ['actors'],
  consul: ['actors', 'sites'],
  ansible: ['actors', 'sites'],
  'nomad-jobs': ['actors', 'sites', 'ansible'],
  gateway: ['actors', 'projector'],
  cmd: ['actors', 'projector', 'sites', 'simulators', 'monitoring', 'consul', 'ansible', 'nomad-jobs', 'gateway'],
}
/** Rooms used by others only through their face, `<room>/mod.ts`. */
const FACES = ['actors', 'projector']

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
    // The operator console (browser code, console/tsconfig.json): the same typed rules for its .tsx views, and it
    // talks to the product over HTTP only, never by importing it.
    files: ['console/**/*.ts', 'console/**/*.tsx'],
    extends: [tseslint.configs.base],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': [
        'error',
        { checksVoidReturn: { arguments: false, attributes: false } },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/actors/**', '**/gateway/**', '**/sites/**'],
              message: 'the console uses the HTTP API, not the server code',
            },
          ],
        },
      ],
    },
  },
  {
    // tap's top-level t.test() calls are collected by the runner; awaiting them would serialise nothing more.
    files: ['test/**/*.test.ts'],
    rules: { '@typescript-eslint/no-floating-promises': 'off' },
  },
  // Rooms and their arrows (docs/architecture.md): a room imports only the rooms below it, the runtime and the
  // projector only through their faces (mod.ts). Nothing imports cmd/ (the entrypoints) but cmd/ itself.
  ...Object.entries(ROOMS).map(([room, below]) => ({
    files: [`${room}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...Object.keys(ROOMS)
              .filter((r) => r !== room && !below.includes(r))
              .map((r) => ({
                group: [`**/${r}/**`],
                message: `${room}/ may import only ${below.length > 0 ? below.join(', ') : 'no other room'} (docs/architecture.md)`,
              })),
            ...FACES.filter((f) => f !== room && below.includes(f)).flatMap((f) => [
              { group: [`**/${f}/*`, `!**/${f}/mod.js`], message: `import ${f}/ through ${f}/mod.ts` },
              { group: [`**/${f}/*/**`], message: `import ${f}/ through ${f}/mod.ts` },
            ]),
          ],
        },
      ],
    },
  })),
)
