/**
 * The house's rules that lint cannot see (docs/architecture.md): no import cycle among product modules (value
 * imports; a cycle makes load order matter and rooms inseparable), and the entrypoints in cmd/ are imported by
 * nothing but cmd/, tests and benchmarks. The room arrows themselves are lint rules (eslint.config.mjs).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, normalize, relative } from 'node:path'
import t from 'tap'

const root = join(import.meta.dirname, '..', '..')
const SKIP = new Set(['node_modules', 'dist', 'test', 'bench', 'docs', '.git', '.tap'])
const walk = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? SKIP.has(e.name) || e.name.startsWith('.')
        ? []
        : walk(join(dir, e.name))
      : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')
        ? [relative(root, join(dir, e.name))]
        : [],
  )
const files = walk(root)
const known = new Set(files)
const VALUE_IMPORT = /^(?:import|export)\s+(?!type\s)[^'\n;]*?from\s+'(\.{1,2}\/[^']+)'/gm

function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>()
  for (const f of files) {
    const deps: string[] = []
    for (const m of readFileSync(join(root, f), 'utf8').matchAll(VALUE_IMPORT)) {
      const target = normalize(join(dirname(f), m[1] as string)).replace(/\.js$/, '.ts')
      if (known.has(target)) deps.push(target)
    }
    g.set(f, deps)
  }
  return g
}

/** Strongly connected components with more than one module (Tarjan). */
function cycles(g: Map<string, string[]>): string[][] {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const on = new Set<string>()
  const out: string[][] = []
  let n = 0
  const visit = (v: string): void => {
    index.set(v, n)
    low.set(v, n++)
    stack.push(v)
    on.add(v)
    for (const w of g.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number))
      } else if (on.has(w)) low.set(v, Math.min(low.get(v) as number, index.get(w) as number))
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = []
      for (let w = stack.pop(); w !== undefined; w = stack.pop()) {
        on.delete(w)
        comp.push(w)
        if (w === v) break
      }
      if (comp.length > 1) out.push(comp.sort())
    }
  }
  for (const v of g.keys()) if (!index.has(v)) visit(v)
  return out
}

t.test('no import cycle among product modules', async (t) => {
  const g = graph()
  t.ok(g.size > 100, `read ${g.size} modules`)
  t.same(cycles(g), [])
  // The detector itself finds a cycle when there is one.
  t.same(
    cycles(
      new Map([
        ['a', ['b']],
        ['b', ['c']],
        ['c', ['a']],
        ['d', ['a']],
      ]),
    ),
    [['a', 'b', 'c']],
  )
})

t.test('only cmd/ imports cmd/', async (t) => {
  const g = graph()
  const bad = [...g].flatMap(([f, deps]) =>
    f.startsWith('cmd/') ? [] : deps.filter((d) => d.startsWith('cmd/')).map((d) => `${f} -> ${d}`),
  )
  t.same(bad, [])
})
