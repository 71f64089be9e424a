/**
 * HCL2 job file -> Nomad API job JSON, as the Nomad agent's /v1/jobs/parse returns it, for the subset of the
 * jobspec the pitwall jobs use (job, update, group, constraint, restart, network/port, service/check, task,
 * config, env, template, resources, meta). Parsing is @cdktf/hcl2json's; this adds HCL2 variables
 * (`var.x` with defaults, a var file's values, required variables) and the API's field names and units
 * (durations in nanoseconds, MemoryMB, PortLabel ...). Runtime interpolations (`${NOMAD_*}`, `${attr.*}`) are
 * kept verbatim, as Nomad does. Used by the Nomad double and by the job tests.
 *
 * Like Nomad's job parser (jobspec2, HCL2 decoding into the jobspec's schema), an argument or block the jobspec
 * does not define is an error naming it and the block it is in, with HCL's "Did you mean" for a near miss:
 * `job "x" > group "y": Unsupported argument; An argument named "cuont" is not expected here. Did you mean "count"?`
 * The schema below lists every argument and block of https://developer.hashicorp.com/nomad/docs/job-specification
 * for the blocks this maps (job, group, task, update, restart, network/port, service/check, resources, template,
 * constraint) and accepts the others' names without mapping them (affinity, spread, vault, volume ...); config,
 * env and meta are free-form maps, as in Nomad.
 *
 * What it evaluates, and what it refuses instead of passing through (docs/deploy.md, "The HCL parser of the tests"):
 * - variables: a value must suit the declared `type` (string, number, bool; HCL's conversions: 16 -> "16" for a
 *   string, "16" -> 16 for a number, "true" -> true), else `Invalid value for variable`;
 * - interpolations: `${var.<name>}` is substituted, Nomad's runtime interpolations (`${NOMAD_*}`, `${attr.*}`,
 *   `${node.*}`, `${meta.*}`, `${env.*}`, `${device.*}`) are kept, `$${` is a literal `${`; any other expression
 *   (functions, locals, operators, unknown roots) is an error naming it, not kept verbatim as if Nomad would;
 * - numbers of the mapped fields (count, priority, cpu, memory, ports, update and restart counts) must be numbers.
 */
import { parse } from '@cdktf/hcl2json'

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json }
export type JsonObject = { [k: string]: Json }

export class HclError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'HclError'
  }
}

const isObj = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v)

/** A block's arguments and nested blocks; `null` for a block whose content is free-form (or not mapped here). */
interface BlockSchema {
  args: string[]
  blocks: Record<string, BlockSchema | null>
  /** Blocks with a label (`group "name" {}`), as hcl2json gives them: label -> [block]. */
  labelled?: Record<string, BlockSchema | null>
}

const FREE: null = null
const CONSTRAINT: BlockSchema = { args: ['attribute', 'operator', 'value'], blocks: {} }
const UPDATE: BlockSchema = {
  args: [
    'max_parallel',
    'health_check',
    'min_healthy_time',
    'healthy_deadline',
    'progress_deadline',
    'auto_revert',
    'auto_promote',
    'canary',
    'stagger',
  ],
  blocks: {},
}
const RESTART: BlockSchema = { args: ['attempts', 'delay', 'interval', 'mode', 'render_templates'], blocks: {} }
const CHECK: BlockSchema = {
  args: [
    'address_mode',
    'args',
    'command',
    'grpc_service',
    'grpc_use_tls',
    'initial_status',
    'success_before_passing',
    'failures_before_critical',
    'failures_before_warning',
    'interval',
    'method',
    'body',
    'name',
    'path',
    'expose',
    'port',
    'protocol',
    'task',
    'timeout',
    'type',
    'tls_server_name',
    'tls_skip_verify',
    'on_update',
    'notes',
    'header',
  ],
  blocks: { check_restart: FREE, header: FREE },
}
const SERVICE: BlockSchema = {
  args: [
    'name',
    'port',
    'tags',
    'canary_tags',
    'enable_tag_override',
    'address',
    'address_mode',
    'task',
    'on_update',
    'provider',
    'meta',
    'canary_meta',
    'tagged_addresses',
    'cluster',
    'weights',
    'kind',
  ],
  blocks: {
    check: CHECK,
    connect: FREE,
    meta: FREE,
    canary_meta: FREE,
    tagged_addresses: FREE,
    identity: FREE,
    weights: FREE,
  },
}
const TEMPLATE: BlockSchema = {
  args: [
    'change_mode',
    'change_signal',
    'data',
    'destination',
    'env',
    'error_on_missing_key',
    'left_delimiter',
    'perms',
    'uid',
    'gid',
    'right_delimiter',
    'source',
    'splay',
    'vault_grace',
    'once',
  ],
  blocks: { wait: FREE, change_script: FREE },
}
const TASK: BlockSchema = {
  args: ['driver', 'user', 'kill_timeout', 'kill_signal', 'leader', 'shutdown_delay', 'kind', 'meta', 'env', 'config'],
  blocks: {
    config: FREE,
    env: FREE,
    meta: FREE,
    template: TEMPLATE,
    service: SERVICE,
    constraint: CONSTRAINT,
    resources: { args: ['cpu', 'cores', 'memory', 'memory_max', 'secrets'], blocks: { device: FREE, numa: FREE } },
    restart: RESTART,
    artifact: FREE,
    affinity: FREE,
    consul: FREE,
    csi_plugin: FREE,
    dispatch_payload: FREE,
    identity: FREE,
    lifecycle: FREE,
    logs: FREE,
    scaling: FREE,
    vault: FREE,
    volume_mount: FREE,
    schedule: FREE,
    action: FREE,
  },
}
const GROUP: BlockSchema = {
  args: [
    'count',
    'shutdown_delay',
    'stop_after_client_disconnect',
    'max_client_disconnect',
    'prevent_reschedule_on_lost',
    'meta',
  ],
  blocks: {
    constraint: CONSTRAINT,
    update: UPDATE,
    restart: RESTART,
    service: SERVICE,
    meta: FREE,
    network: {
      args: ['mode', 'hostname'],
      blocks: { dns: FREE },
      labelled: { port: { args: ['static', 'to', 'host_network', 'ignore_collision'], blocks: {} } },
    },
    affinity: FREE,
    consul: FREE,
    disconnect: FREE,
    ephemeral_disk: FREE,
    migrate: FREE,
    reschedule: FREE,
    scaling: FREE,
    spread: FREE,
    vault: FREE,
  },
  labelled: { task: TASK, volume: FREE },
}
const JOB: BlockSchema = {
  args: [
    'all_at_once',
    'datacenters',
    'node_pool',
    'namespace',
    'priority',
    'region',
    'type',
    'vault_token',
    'consul_token',
    'meta',
  ],
  blocks: {
    update: UPDATE,
    constraint: CONSTRAINT,
    meta: FREE,
    affinity: FREE,
    spread: FREE,
    periodic: FREE,
    parameterized: FREE,
    multiregion: FREE,
    reschedule: FREE,
    migrate: FREE,
    vault: FREE,
    ui: FREE,
  },
  labelled: { group: GROUP },
}

/** HCL's suggestion for a near miss (Levenshtein distance < 3), or ''. */
function didYouMean(name: string, known: string[]): string {
  const dist = (a: string, b: string): number => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)])
    for (let j = 1; j <= b.length; j++) d[0]![j] = j
    for (let i = 1; i <= a.length; i++) {
      for (let j = 1; j <= b.length; j++)
        d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    return d[a.length]![b.length]!
  }
  const best = known
    .map((k) => [k, dist(name, k)] as const)
    .filter(([, n]) => n < 3)
    .sort((x, y) => x[1] - y[1])[0]
  return best ? ` Did you mean "${best[0]}"?` : ''
}

/** Refuses what `schema` does not define in block `o` (at `where`), recursively, as Nomad's parser does. */
function checkSchema(o: JsonObject, schema: BlockSchema, where: string): void {
  for (const [k, v] of Object.entries(o)) {
    const isBlock = Array.isArray(v) && v.length > 0 && v.every(isObj)
    const lab = schema.labelled?.[k]
    if (lab !== undefined) {
      if (!isObj(v)) throw new HclError(`${where}: Missing name for ${k}; All ${k} blocks must have 1 labels (name).`)
      if (lab)
        for (const [label, list] of Object.entries(v))
          for (const b of Array.isArray(list) ? list.filter(isObj) : [])
            checkSchema(b, lab, `${where} > ${k} "${label}"`)
      continue
    }
    if (isBlock && k in schema.blocks) {
      const sub = schema.blocks[k]
      if (sub) for (const b of v as JsonObject[]) checkSchema(b, sub, `${where} > ${k}`)
      continue
    }
    if (!isBlock && schema.args.includes(k)) continue
    if (isBlock) {
      const known = [...Object.keys(schema.blocks), ...Object.keys(schema.labelled ?? {})]
      throw new HclError(
        `${where}: Unsupported block type; Blocks of type "${k}" are not expected here.${didYouMean(k, known)}`,
      )
    }
    throw new HclError(
      `${where}: Unsupported argument; An argument named "${k}" is not expected here.${didYouMean(k, schema.args)}`,
    )
  }
}

/** Parses a duration like "10s", "2m", "1h30m", "500ms" into nanoseconds. */
export function durationNs(v: Json | undefined): number {
  if (typeof v === 'number') return v
  if (typeof v !== 'string') throw new HclError(`bad duration ${JSON.stringify(v)}`)
  const units: Record<string, number> = { ns: 1, us: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 }
  let total = 0
  let rest = v
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)/.exec(rest)
    if (!m) throw new HclError(`bad duration ${JSON.stringify(v)}`)
    total += Number(m[1]) * (units[m[2]!] ?? 0)
    rest = rest.slice(m[0].length)
  }
  return total
}

/** Nomad's runtime interpolations, left for the client to fill (jobspec2 keeps them as they are). */
const RUNTIME = /^(?:NOMAD_[A-Za-z0-9_]+|(?:attr|node|meta|env|device)\.[A-Za-z0-9_.\-]+)$/

/** The value of one `${...}` expression: a variable, or a runtime interpolation kept as it is; else an error. */
function interpolate(expr: string, vars: Record<string, Json>, where: string): Json {
  const ref = /^var\.([A-Za-z0-9_]+)$/.exec(expr)
  if (ref) {
    const name = ref[1]!
    if (!(name in vars)) throw new HclError(`${where}: Unknown variable: There is no variable named "${name}".`)
    return vars[name]!
  }
  if (RUNTIME.test(expr)) return `\${${expr}}`
  const unknown = [...expr.matchAll(/\bvar\.([A-Za-z0-9_]+)/g)].map((m) => m[1]!).find((n) => !(n in vars))
  if (unknown !== undefined) throw new HclError(`${where}: Unknown variable: There is no variable named "${unknown}".`)
  throw new HclError(
    `${where}: Unsupported expression "\${${expr}}": this parser substitutes var.<name> and keeps Nomad's runtime ` +
      'interpolations (NOMAD_*, attr.*, node.*, meta.*, env.*, device.*); functions, locals and operators are not evaluated here',
  )
}

/** Substitutes `${...}` interpolations in every string of `v` (`$${` is a literal `${`). */
function subst(v: Json, vars: Record<string, Json>, where: string): Json {
  if (typeof v === 'string') {
    const whole = /^\$\{([^{}]*)\}$/.exec(v)
    if (whole) return interpolate(whole[1]!, vars, where)
    return v.replace(/\$?\$\{([^{}]*)\}/g, (m, expr: string) =>
      m.startsWith('$$') ? m.slice(1) : String(interpolate(expr, vars, where)),
    )
  }
  if (Array.isArray(v)) return v.map((x) => subst(x, vars, where))
  if (isObj(v)) {
    const out: JsonObject = {}
    for (const [k, x] of Object.entries(v)) out[k] = subst(x, vars, where)
    return out
  }
  return v
}

function blocks(o: JsonObject, key: string): JsonObject[] {
  const v = o[key]
  if (v === undefined) return []
  if (!Array.isArray(v)) throw new HclError(`${key}: expected a block`)
  return v.filter(isObj)
}

function labelled(o: JsonObject, key: string): Array<[string, JsonObject]> {
  const v = o[key]
  if (v === undefined) return []
  if (!isObj(v)) throw new HclError(`${key}: expected labelled blocks`)
  const out: Array<[string, JsonObject]> = []
  for (const [label, list] of Object.entries(v)) {
    if (!Array.isArray(list)) throw new HclError(`${key} "${label}": expected a block`)
    for (const b of list) if (isObj(b)) out.push([label, b])
  }
  return out
}

const str = (v: Json | undefined): string | undefined => (v === undefined || v === null ? undefined : String(v))
/** A number field (`name`), with HCL's string -> number conversion; anything else is Nomad's "Unsuitable value type". */
const num = (v: Json | undefined, name: string): number | undefined => {
  if (v === undefined || v === null) return undefined
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN
  if (!Number.isFinite(n))
    throw new HclError(
      `${name}: Unsuitable value type; Unsuitable value: a number is required, got ${JSON.stringify(v)}.`,
    )
  return n
}

function stringMap(o: JsonObject | undefined): Record<string, string> | null {
  if (!o) return null
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(o)) out[k] = typeof v === 'string' ? v : JSON.stringify(v)
  return out
}

function check(c: JsonObject): JsonObject {
  return {
    Name: str(c.name) ?? '',
    Type: str(c.type) ?? '',
    Path: str(c.path) ?? '',
    PortLabel: str(c.port) ?? '',
    Interval: durationNs(c.interval ?? '10s'),
    Timeout: durationNs(c.timeout ?? '2s'),
  }
}

function service(s: JsonObject): JsonObject {
  return {
    Name: str(s.name) ?? '',
    PortLabel: str(s.port) ?? '',
    Tags: (s.tags as Json[] | undefined) ?? [],
    Provider: str(s.provider) ?? 'consul',
    Checks: blocks(s, 'check').map(check),
  }
}

function update(u: JsonObject | undefined): JsonObject | null {
  if (!u) return null
  return {
    MaxParallel: num(u.max_parallel, 'update.max_parallel') ?? 1,
    Canary: num(u.canary, 'update.canary') ?? 0,
    AutoRevert: u.auto_revert === true,
    AutoPromote: u.auto_promote === true,
    HealthCheck: str(u.health_check) ?? 'checks',
    MinHealthyTime: durationNs(u.min_healthy_time ?? '10s'),
    HealthyDeadline: durationNs(u.healthy_deadline ?? '5m'),
    ProgressDeadline: durationNs(u.progress_deadline ?? '10m'),
    Stagger: durationNs(u.stagger ?? '30s'),
  }
}

function task(name: string, t: JsonObject): JsonObject {
  const res = blocks(t, 'resources')[0]
  return {
    Name: name,
    Driver: str(t.driver) ?? '',
    Config: blocks(t, 'config')[0] ?? {},
    Env: stringMap(blocks(t, 'env')[0]),
    Templates: blocks(t, 'template').map((x) => ({
      EmbeddedTmpl: str(x.data) ?? '',
      DestPath: str(x.destination) ?? '',
      Envvars: x.env === true,
      ChangeMode: str(x.change_mode) ?? 'restart',
      ChangeSignal: str(x.change_signal) ?? '',
      Splay: durationNs(x.splay ?? '5s'),
      LeftDelim: str(x.left_delimiter) ?? '{{',
      RightDelim: str(x.right_delimiter) ?? '}}',
    })),
    Resources: res
      ? {
          CPU: num(res.cpu, `task "${name}" > resources.cpu`) ?? 100,
          MemoryMB: num(res.memory, `task "${name}" > resources.memory`) ?? 300,
        }
      : null,
    KillTimeout: durationNs(t.kill_timeout ?? '5s'),
    KillSignal: str(t.kill_signal) ?? '',
    Services: blocks(t, 'service').map(service),
  }
}

function group(name: string, g: JsonObject): JsonObject {
  const restart = blocks(g, 'restart')[0]
  return {
    Name: name,
    Count: num(g.count, `group "${name}" > count`) ?? 1,
    Constraints: blocks(g, 'constraint').map((c) => ({
      LTarget: str(c.attribute) ?? '',
      RTarget: str(c.value) ?? '',
      Operand: str(c.operator) ?? '=',
    })),
    RestartPolicy: restart
      ? {
          Attempts: num(restart.attempts, `group "${name}" > restart.attempts`) ?? 2,
          Interval: durationNs(restart.interval ?? '30m'),
          Delay: durationNs(restart.delay ?? '15s'),
          Mode: str(restart.mode) ?? 'fail',
        }
      : null,
    Networks: blocks(g, 'network').map((n) => {
      const ports = labelled(n, 'port')
      return {
        ReservedPorts: ports
          .filter(([, p]) => p.static !== undefined)
          .map(([label, p]) => ({ Label: label, Value: num(p.static, `port "${label}" > static`) ?? 0 })),
        DynamicPorts: ports.filter(([, p]) => p.static === undefined).map(([label]) => ({ Label: label, Value: 0 })),
      }
    }),
    Services: blocks(g, 'service').map(service),
    Update: update(blocks(g, 'update')[0]),
    Tasks: labelled(g, 'task').map(([n, t]) => task(n, t)),
    Meta: stringMap(blocks(g, 'meta')[0]),
  }
}

/** Declared variables of a parsed file: name -> default (undefined when required). */
export function declaredVariables(
  doc: JsonObject,
): Map<string, { default: Json | undefined; description: string | undefined; type: string | undefined }> {
  const out = new Map<
    string,
    { default: Json | undefined; description: string | undefined; type: string | undefined }
  >()
  for (const [name, v] of labelled(doc, 'variable')) {
    const type = typeof v.type === 'string' ? v.type.replace(/^\$\{(.*)\}$/, '$1') : undefined
    out.set(name, { default: v.default, description: str(v.description), type })
  }
  return out
}

/** A variable's value converted to its declared type as HCL converts (string, number, bool), else an error. */
function typed(name: string, type: string | undefined, v: Json): Json {
  const bad = (what: string): HclError =>
    new HclError(
      `Invalid value for variable "${name}": The given value ${JSON.stringify(v)} is not suitable for var.${name}: ${what} is required.`,
    )
  switch (type) {
    case undefined:
    case 'any':
      return v
    case 'string':
      if (typeof v === 'string') return v
      if (typeof v === 'number' || typeof v === 'boolean') return String(v)
      throw bad('string')
    case 'number': {
      const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN
      if (!Number.isFinite(n)) throw bad('a number')
      return n
    }
    case 'bool':
      if (typeof v === 'boolean') return v
      if (v === 'true' || v === 'false') return v === 'true'
      throw bad('bool')
    default:
      if (/^(list|set|tuple)\(/.test(type) && !Array.isArray(v)) throw bad(type)
      if (/^(map|object)\(/.test(type) && !isObj(v)) throw bad(type)
      return v
  }
}

/** Parses a job file with a var file's text; returns the API job (not canonicalized beyond what is listed). */
export async function parseJob(jobHcl: string, varFile = ''): Promise<JsonObject> {
  let doc: JsonObject
  let given: JsonObject
  try {
    doc = (await parse('job.hcl', jobHcl)) as JsonObject
    given = varFile.trim() === '' ? {} : ((await parse('vars.hcl', varFile)) as JsonObject)
  } catch (err) {
    throw new HclError(`error parsing: ${err instanceof Error ? err.message : String(err)}`)
  }
  const declared = declaredVariables(doc)
  const vars: Record<string, Json> = {}
  for (const [name, value] of Object.entries(given)) {
    if (!declared.has(name))
      throw new HclError(
        `Undefined variable: A variable named "${name}" was assigned a value, but the root module does not declare a variable of that name.`,
      )
    vars[name] = typed(name, declared.get(name)?.type, value)
  }
  for (const [name, d] of declared) {
    if (name in vars) continue
    if (d.default === undefined)
      throw new HclError(`Unset variable "${name}": A used variable must be set or have a default value.`)
    vars[name] = typed(name, d.type, d.default)
  }
  for (const k of Object.keys(doc)) {
    if (!['job', 'variable', 'locals'].includes(k))
      throw new HclError(
        `Unsupported block type; Blocks of type "${k}" are not expected here.${didYouMean(k, ['job', 'variable', 'locals'])}`,
      )
  }
  const jobs = labelled(doc, 'job')
  if (jobs.length !== 1) throw new HclError(`expected exactly one job block, found ${jobs.length}`)
  const [id, rawJob] = jobs[0]!
  checkSchema(rawJob, JOB, `job "${id}"`)
  const j = subst(rawJob, vars, `job "${id}"`) as JsonObject
  const up = update(blocks(j, 'update')[0])
  const groups = labelled(j, 'group').map(([n, g]) => {
    const tg = group(n, g)
    // Nomad copies the job's update block into each group without its own.
    if (tg.Update === null) tg.Update = up
    return tg
  })
  return {
    ID: id,
    Name: id,
    Region: str(j.region) ?? 'global',
    Namespace: str(j.namespace) ?? 'default',
    Datacenters: (j.datacenters as Json[] | undefined) ?? ['*'],
    Type: str(j.type) ?? 'service',
    Priority: num(j.priority, 'priority') ?? 50,
    Meta: stringMap(blocks(j, 'meta')[0]),
    Update: up,
    TaskGroups: groups,
  }
}
