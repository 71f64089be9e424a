// Builds the operator console into dist/console (run by `npm run build`, no network): one JS bundle and one CSS
// bundle with content-hashed names, and index.html naming them. The gateway serves the directory (gateway/console.ts).
import { build } from 'esbuild'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'
import { readdir } from 'node:fs/promises'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const out = join(here, '..', 'dist', 'console')
await rm(out, { recursive: true, force: true })
await mkdir(out, { recursive: true })
const result = await build({
  entryPoints: { app: join(here, 'src', 'main.tsx') },
  bundle: true,
  minify: true,
  // PITWALL_CONSOLE_NAMES=1 keeps function names (a build for the profiler: PITWALL_CONSOLE_PROFILE in the browser test).
  minifyIdentifiers: process.env.PITWALL_CONSOLE_NAMES !== '1',
  format: 'esm',
  target: ['es2022', 'chrome110', 'firefox115', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  entryNames: '[name]-[hash]',
  chunkNames: '[name]-[hash]',
  splitting: true,
  outdir: out,
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
})
const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p))
const js = outputs.find((n) => /^app-.*\.js$/.test(n))
const css = outputs.find((n) => /^app-.*\.css$/.test(n))
if (!js || !css) throw new Error(`console build: no app bundle in ${outputs.join(', ')}`)
const html = (await readFile(join(here, 'index.html'), 'utf8')).replace('%APP_JS%', js).replace('%APP_CSS%', css)
await writeFile(join(out, 'index.html'), html)
await writeFile(join(out, 'favicon.svg'), await readFile(join(here, 'favicon.svg')))
// MapLibre loads its tile worker from ./maplibre-gl-worker.mjs next to the bundle (a module worker, same origin).
await writeFile(
  join(out, 'maplibre-gl-worker.mjs'),
  await readFile(join(here, '..', 'node_modules', 'maplibre-gl', 'dist', 'maplibre-gl-worker.mjs')),
)
// Pre-compressed copies: the gateway sends the .br or .gz one to a browser that accepts it (no work per request).
for (const name of await readdir(out)) {
  if (!/\.(js|mjs|css|html|svg)$/.test(name)) continue
  const body = await readFile(join(out, name))
  await writeFile(
    join(out, `${name}.br`),
    brotliCompressSync(body, {
      params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: body.length },
    }),
  )
  await writeFile(join(out, `${name}.gz`), gzipSync(body, { level: 9 }))
}
console.log(`console: dist/console/${js}, ${css}`)
