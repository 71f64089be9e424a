/**
 * A small evaluator of the Go text/template subset that Nomad's template block (consul-template) uses in the
 * pitwall jobs: text, `{{ expr }}`, `if`/`else`/`end`, `range $i, $s := expr`, `with expr`, trim markers
 * `{{-`/`-}}`, custom delimiters; expressions: literals, `.`, `.Field`, `$var`, `$var.Field`, and calls of
 * `service`, `env`, `nomadVar`, `index`, `gt`, `ne`, `eq`. Lookups come from a synchronous data source, so a test
 * fetches what the template asks for (see `serviceNames`) first, e.g. from the Consul double. For tests only.
 */
export interface TemplateData {
  service(name: string): Array<Record<string, unknown>>
  env(name: string): string
  nomadVar?(path: string): Record<string, unknown> | undefined
}

type Node =
  | { t: 'text'; v: string }
  | { t: 'out'; e: string }
  | { t: 'if'; e: string; body: Node[]; else: Node[] }
  | { t: 'range'; vars: string[]; e: string; body: Node[] }
  | { t: 'with'; e: string; body: Node[] }

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

function tokens(src: string, l: string, r: string): Array<{ text?: string; action?: string }> {
  const out: Array<{ text?: string; action?: string }> = []
  const re = new RegExp(`${esc(l)}(-?)\\s*([\\s\\S]*?)\\s*(-?)${esc(r)}`, 'g')
  let last = 0
  let trimNext = false
  for (let m = re.exec(src); m; m = re.exec(src)) {
    let text = src.slice(last, m.index)
    if (trimNext) text = text.replace(/^\s+/, '')
    if (m[1] === '-') text = text.replace(/\s+$/, '')
    if (text) out.push({ text })
    out.push({ action: m[2]! })
    trimNext = m[3] === '-'
    last = re.lastIndex
  }
  let text = src.slice(last)
  if (trimNext) text = text.replace(/^\s+/, '')
  if (text) out.push({ text })
  return out
}

function parse(toks: Array<{ text?: string; action?: string }>): Node[] {
  let i = 0
  const block = (): { nodes: Node[]; end: 'end' | 'else' | 'eof' } => {
    const nodes: Node[] = []
    while (i < toks.length) {
      const tk = toks[i++]!
      if (tk.text !== undefined) {
        nodes.push({ t: 'text', v: tk.text })
        continue
      }
      const a = tk.action!
      if (a === 'end') return { nodes, end: 'end' }
      if (a === 'else') return { nodes, end: 'else' }
      let m: RegExpExecArray | null
      if ((m = /^if\s+([\s\S]+)$/.exec(a))) {
        const body = block()
        const els = body.end === 'else' ? block().nodes : []
        nodes.push({ t: 'if', e: m[1]!, body: body.nodes, else: els })
      } else if ((m = /^range\s+(?:(\$\w+)\s*,\s*(\$\w+)\s*:=\s*)?([\s\S]+)$/.exec(a))) {
        nodes.push({ t: 'range', vars: m[1] ? [m[1], m[2]!] : [], e: m[3]!, body: block().nodes })
      } else if ((m = /^with\s+([\s\S]+)$/.exec(a))) {
        nodes.push({ t: 'with', e: m[1]!, body: block().nodes })
      } else nodes.push({ t: 'out', e: a })
    }
    return { nodes, end: 'eof' }
  }
  return block().nodes
}

function args(s: string): string[] {
  const out: string[] = []
  const re = /"((?:[^"\\]|\\.)*)"|`([^`]*)`|\(([^)]*)\)|(\S+)/g
  for (let m = re.exec(s); m; m = re.exec(s)) out.push(m[0])
  return out
}

function field(v: unknown, path: string[]): unknown {
  let cur = v
  for (const p of path) cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[p] : undefined
  return cur
}

function evalExpr(expr: string, dot: unknown, vars: Map<string, unknown>, data: TemplateData): unknown {
  const parts = args(expr.trim())
  const head = parts[0] ?? ''
  const val = (a: string): unknown => {
    if (a.startsWith('"')) return JSON.parse(a) as string
    if (a.startsWith('`')) return a.slice(1, -1)
    if (a.startsWith('(')) return evalExpr(a.slice(1, -1), dot, vars, data)
    if (/^-?\d+(\.\d+)?$/.test(a)) return Number(a)
    if (a === '.') return dot
    if (a.startsWith('.')) return field(dot, a.slice(1).split('.'))
    if (a.startsWith('$')) {
      const [name, ...path] = a.split('.')
      if (!vars.has(name!)) throw new Error(`undefined variable ${name}`)
      return field(vars.get(name!), path)
    }
    throw new Error(`cannot evaluate ${a}`)
  }
  const rest = parts.slice(1).map(val)
  switch (head) {
    case 'service':
      return data.service(String(rest[0]))
    case 'env':
      return data.env(String(rest[0]))
    case 'nomadVar':
      return data.nomadVar?.(String(rest[0]))
    case 'index':
      return (rest[0] as unknown[])[Number(rest[1])]
    case 'gt':
      return Number(rest[0]) > Number(rest[1])
    case 'ne':
      return rest[0] !== rest[1]
    case 'eq':
      return rest[0] === rest[1]
    case 'parseJSON':
      return JSON.parse(String(rest[0])) as unknown
    default:
      if (parts.length !== 1) throw new Error(`unknown function ${head}`)
      return val(head)
  }
}

const truthy = (v: unknown): boolean =>
  !(v === undefined || v === null || v === false || v === 0 || v === '' || (Array.isArray(v) && v.length === 0))

function run(nodes: Node[], dot: unknown, vars: Map<string, unknown>, data: TemplateData): string {
  let s = ''
  for (const n of nodes) {
    if (n.t === 'text') s += n.v
    else if (n.t === 'out') s += String(evalExpr(n.e, dot, vars, data) ?? '')
    else if (n.t === 'if') s += run(truthy(evalExpr(n.e, dot, vars, data)) ? n.body : n.else, dot, vars, data)
    else if (n.t === 'with') {
      const v = evalExpr(n.e, dot, vars, data)
      if (truthy(v)) s += run(n.body, v, vars, data)
    } else {
      const list = evalExpr(n.e, dot, vars, data)
      if (!Array.isArray(list)) continue
      list.forEach((item, i) => {
        const v2 = new Map(vars)
        if (n.vars.length === 2) {
          v2.set(n.vars[0]!, i)
          v2.set(n.vars[1]!, item)
        }
        s += run(n.body, item, v2, data)
      })
    }
  }
  return s
}

/** Renders `src` with delimiters `left`/`right` (default `{{`/`}}`). */
export function renderTemplate(src: string, data: TemplateData, left = '{{', right = '}}'): string {
  return run(parse(tokens(src, left, right)), undefined, new Map(), data)
}

/** The service names a template looks up (`service "name"`), to fetch before rendering. */
export function serviceNames(src: string): string[] {
  return [...new Set([...src.matchAll(/service\s+"([^"]+)"/g)].map((m) => m[1]!))]
}
