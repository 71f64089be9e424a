/**
 * What a Nomad task's process gets as its environment: the env block with Nomad's runtime values substituted
 * (`${NOMAD_PORT_http}` ...) plus the `NAME=value` lines of its env templates (`env = true`), rendered with
 * consul-template's `service` answered by a Consul discovery adapter (the Consul double in tests) and
 * `nomadVar` by a given map. Rendering uses the Go template subset of test/helpers/go-template.ts. For tests only.
 */
import type { ConsulDiscovery } from '../../consul/discovery.js'
import { renderTemplate, serviceNames } from './go-template.js'
import type { Json, JsonObject } from './nomad-hcl.js'

const obj = (v: Json | undefined): JsonObject => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {})
const arr = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : [])

/** consul-template's `service "name[@dc][|any]"` lookups of a template, answered through the adapter. */
export async function lookups(d: ConsulDiscovery, tmpl: string): Promise<Map<string, Array<Record<string, unknown>>>> {
  const m = new Map<string, Array<Record<string, unknown>>>()
  for (const spec of serviceNames(tmpl)) {
    const [nameDc, filter] = spec.split('|')
    const [name, dc] = nameDc!.split('@')
    const entries = await d.health(name!, { ...(dc ? { dc } : {}), passing: filter !== 'any' })
    m.set(
      spec,
      entries.map((e) => ({
        ID: e.Service.ID,
        Name: e.Service.Service,
        Address: e.Service.Address || e.Node.Address,
        Port: e.Service.Port,
        Tags: e.Service.Tags,
      })),
    )
  }
  return m
}

/** The first task of the first group of a parsed job. */
export function firstTask(job: JsonObject): JsonObject {
  return obj(arr(obj(arr(job.TaskGroups)[0]).Tasks)[0])
}

/** The environment of `task` (API job JSON) as its process sees it. */
export async function taskEnv(
  d: ConsulDiscovery,
  task: JsonObject,
  runtime: Record<string, string>,
  nomadVars: Record<string, Record<string, unknown>> = {},
): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(obj(task.Env)))
    out[k] = String(v).replace(/\$\{(NOMAD_[A-Za-z0-9_]+)\}/g, (_m, n: string) => runtime[n] ?? `<unset ${n}>`)
  for (const tm of arr(task.Templates).map(obj)) {
    if (tm.Envvars !== true) continue
    const src = String(tm.EmbeddedTmpl)
    const found = await lookups(d, src)
    const text = renderTemplate(
      src,
      { service: (n) => found.get(n) ?? [], env: (n) => runtime[n] ?? '', nomadVar: (p) => nomadVars[p] },
      String(tm.LeftDelim),
      String(tm.RightDelim),
    )
    for (const l of text
      .split('\n')
      .map((x) => x.trim())
      .filter((x) => /^[A-Z_][A-Z0-9_]*=/.test(x)))
      out[l.slice(0, l.indexOf('='))] = l.slice(l.indexOf('=') + 1)
  }
  return out
}
