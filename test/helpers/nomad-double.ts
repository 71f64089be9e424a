/**
 * A stateful in-process double of the Nomad HTTP API (the documented shapes of
 * https://developer.hashicorp.com/nomad/api-docs: jobs, job plan, allocations, deployments, evaluations), served
 * over HTTP on 127.0.0.1 so the real client code runs unchanged. What it keeps and simulates:
 * - /v1/jobs/parse: HCL2 + var file -> job JSON (test/helpers/nomad-hcl.ts over @cdktf/hcl2json); 400 on errors.
 * - /v1/job/:id/plan: a structured Diff against the registered version, DesiredTGUpdates annotations, and the
 *   JobModifyIndex to enforce.
 * - /v1/jobs (register) and /v1/job/:id/plan validate the job as Nomad's Job.Validate does (missing or empty
 *   datacenters, bad type or priority, no task groups, count < 0, a task without a driver, a bad update block:
 *   health_check, max_parallel/canary < 0, min_healthy_time >= healthy_deadline, healthy_deadline >=
 *   progress_deadline ...), refusing with HTTP 500 and Nomad's multierror text ("1 error occurred:\n\t* ...").
 * - register: versions, EnforceIndex check-and-set (a stale index is refused with Nomad's message), an
 *   evaluation, and a deployment run by a small scheduler: the first version places every allocation; later ones
 *   place `canary` canaries, promote them when healthy (auto_promote), then replace the old allocations
 *   max_parallel at a time. Deployment timing follows the group's update block
 *   (https://developer.hashicorp.com/nomad/docs/job-specification/update): an allocation whose tasks run and
 *   checks pass (`healthy(job, alloc)`, after `healthDelayMs`) is marked healthy only after min_healthy_time; one
 *   that never passes is marked unhealthy at healthy_deadline; the deployment fails when no allocation turned
 *   healthy within progress_deadline (reset by each healthy one and by a promotion) - "Failed due to progress
 *   deadline" - or, with progress_deadline = 0, at the first unhealthy allocation - "Failed due to unhealthy
 *   allocations". A failed deployment with auto_revert re-registers the last stable version as a new version
 *   (Nomad's rollback).
 * - Blocking queries: `?index=N&wait=D` hold the request until the state index passes N or D elapses;
 *   X-Nomad-Index on every read.
 * - ACL token (`X-Nomad-Token`, 403 without it when configured), `?region=` checked, `?namespace=` recorded.
 * Not simulated: nodes, resources and placement failures, rescheduling of unhealthy allocations (the deployment
 * then fails at its progress deadline, as Nomad's does when the replacements are no healthier).
 *
 * Timing is the job's own by default (a worker deployment takes min_healthy_time = 10 s per step, as on a real
 * cluster). Tests that run whole deployments opt in with `fastTimingForTests: true`: every update-block duration is
 * divided by 100 (10 s -> 100 ms, 2 m -> 1.2 s, 5 m -> 3 s).
 */
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { type Json, type JsonObject, parseJob } from './nomad-hcl.js'

export interface NomadDoubleOptions {
  /** Required X-Nomad-Token when set. */
  token?: string
  region?: string
  /** Time from placement until the tasks run and their checks pass (or are known to fail), ms (default 30). */
  healthDelayMs?: number
  /** Divide the update block's durations (min_healthy_time, healthy_deadline, progress_deadline) by 100. */
  fastTimingForTests?: boolean
  /** Health verdict of an allocation (default: healthy). */
  healthy?: (job: JsonObject, alloc: Alloc) => boolean
  /** Serve HTTPS with this key and certificate (PEM); `requestCert`: mutual TLS against `ca`. */
  tls?: { key: string; cert: string; ca?: string; requestCert?: boolean }
}

export interface Alloc {
  ID: string
  EvalID: string
  Name: string
  NodeID: string
  JobID: string
  JobVersion: number
  TaskGroup: string
  DesiredStatus: 'run' | 'stop'
  ClientStatus: 'pending' | 'running' | 'complete' | 'failed'
  DeploymentID: string
  DeploymentStatus: { Healthy: boolean | null; Canary: boolean; Timestamp: string } | null
  /** Placement time, ns since the epoch (Nomad's CreateTime). */
  CreateTime: number
  CreateIndex: number
  ModifyIndex: number
}

interface TGState {
  AutoRevert: boolean
  AutoPromote: boolean
  Promoted: boolean
  DesiredCanaries: number
  DesiredTotal: number
  PlacedCanaries: string[]
  PlacedAllocs: number
  HealthyAllocs: number
  UnhealthyAllocs: number
  ProgressDeadline: number
  RequireProgressBy: string
}

interface DeploymentRec {
  ID: string
  Namespace: string
  JobID: string
  JobVersion: number
  JobModifyIndex: number
  JobCreateIndex: number
  Status: 'running' | 'successful' | 'failed' | 'cancelled'
  StatusDescription: string
  TaskGroups: Record<string, TGState>
  CreateIndex: number
  ModifyIndex: number
}

interface JobRec {
  versions: JsonObject[]
  current: JsonObject
}

export interface RequestLog {
  method: string
  path: string
  query: Record<string, string>
  token: string | undefined
}

const RUNTIME_FIELDS = new Set([
  'Version',
  'Stable',
  'Status',
  'StatusDescription',
  'JobModifyIndex',
  'CreateIndex',
  'ModifyIndex',
  'SubmitTime',
  'Stop',
])

const isObj = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Go's time.Duration formatting of nanoseconds, as Nomad's messages print durations (10s, 2m0s, 1h0m0s). */
function goDuration(ns: number): string {
  if (ns === 0) return '0s'
  const sign = ns < 0 ? '-' : ''
  const ms = Math.abs(ns) / 1e6
  if (ms < 1000) return `${sign}${ms}ms`
  const h = Math.floor(ms / 3_600_000)
  const m = Math.floor((ms % 3_600_000) / 60_000)
  const sec = (ms % 60_000) / 1000
  return sign + (h > 0 ? `${h}h${m}m${sec}s` : m > 0 ? `${m}m${sec}s` : `${sec}s`)
}

/** Nomad's multierror text (hashicorp/go-multierror's list format). */
function multierror(errs: string[]): string {
  return `${errs.length} error${errs.length === 1 ? '' : 's'} occurred:\n\t* ${errs.join('\n\t* ')}\n\n`
}

/** UpdateStrategy.Validate (nomad/structs), over the API job's Update object. */
function updateProblems(u: JsonObject): string[] {
  const errs: string[] = []
  const n = (k: string): number => Number(u[k] ?? 0)
  if (!['checks', 'task_states', 'manual'].includes(String(u.HealthCheck ?? 'checks')))
    errs.push(`Invalid health check given: ${JSON.stringify(String(u.HealthCheck))}`)
  if (n('MaxParallel') < 0) errs.push(`Max parallel can not be less than zero: ${n('MaxParallel')} < 0`)
  if (n('Canary') < 0) errs.push(`Canary count can not be less than zero: ${n('Canary')} < 0`)
  if (u.AutoPromote === true && n('Canary') === 0) errs.push('Auto Promote requires a Canary count greater than zero')
  if (n('MinHealthyTime') < 0)
    errs.push(`Minimum healthy time may not be less than zero: ${goDuration(n('MinHealthyTime'))}`)
  if (n('HealthyDeadline') <= 0)
    errs.push(`Healthy deadline must be greater than zero: ${goDuration(n('HealthyDeadline'))}`)
  if (n('ProgressDeadline') < 0)
    errs.push(`Progress deadline must be zero or greater: ${goDuration(n('ProgressDeadline'))}`)
  if (n('MinHealthyTime') >= n('HealthyDeadline'))
    errs.push(
      `Minimum healthy time must be less than healthy deadline: ${goDuration(n('MinHealthyTime'))} > ${goDuration(n('HealthyDeadline'))}`,
    )
  if (n('ProgressDeadline') !== 0 && n('HealthyDeadline') >= n('ProgressDeadline'))
    errs.push(
      `Healthy deadline must be less than progress deadline: ${goDuration(n('HealthyDeadline'))} > ${goDuration(n('ProgressDeadline'))}`,
    )
  if (u.Stagger !== undefined && n('Stagger') <= 0)
    errs.push(`Stagger must be greater than zero: ${goDuration(n('Stagger'))}`)
  return errs
}

/**
 * Job.Validate as Nomad runs it on register and plan (https://developer.hashicorp.com/nomad/api-docs/jobs, the
 * job specification's required fields): the error list, empty when the job is valid.
 */
export function validateJob(job: JsonObject): string[] {
  const errs: string[] = []
  if (job.Region === '') errs.push('Missing job region')
  if (typeof job.ID !== 'string' || job.ID === '') errs.push('Missing job ID')
  else if (job.ID.includes(' ')) errs.push('Job ID contains a space')
  if (job.Name === '') errs.push('Missing job name')
  const type = job.Type ?? 'service'
  if (type === '') errs.push('Missing job type')
  else if (!['service', 'batch', 'system', 'sysbatch'].includes(String(type)))
    errs.push(`Invalid job type: ${JSON.stringify(String(type))}`)
  const prio = Number(job.Priority ?? 50)
  if (!Number.isInteger(prio) || prio < 1 || prio > 100) errs.push('Job priority must be between [1, 100]')
  if (!Array.isArray(job.Datacenters) || job.Datacenters.length === 0) errs.push('Missing job datacenters')
  const groups = Array.isArray(job.TaskGroups) ? job.TaskGroups.filter(isObj) : []
  if (groups.length === 0) errs.push('Missing job task groups')
  const seen = new Map<string, number>()
  groups.forEach((g, i) => {
    const name = String(g.Name ?? '')
    if (name === '') errs.push(`Job task group ${i + 1} missing name`)
    else if (seen.has(name)) errs.push(`Job task group ${i + 1} redefines '${name}' from group ${seen.get(name)! + 1}`)
    else seen.set(name, i)
    const ge: string[] = []
    if (Number(g.Count ?? 1) < 0) ge.push("Task group count can't be negative")
    const tasks = Array.isArray(g.Tasks) ? g.Tasks.filter(isObj) : []
    if (tasks.length === 0) ge.push('Missing tasks for task group')
    if (isObj(g.Update)) ge.push(...updateProblems(g.Update))
    const seenTasks = new Map<string, number>()
    tasks.forEach((tk, j) => {
      const te: string[] = []
      const tn = String(tk.Name ?? '')
      if (tn === '') te.push('Missing task name')
      else if (tn.includes(' ')) te.push('Task name contains a space')
      if (seenTasks.has(tn)) ge.push(`Task ${j + 1} redefines '${tn}' from task ${seenTasks.get(tn)! + 1}`)
      seenTasks.set(tn, j)
      if (typeof tk.Driver !== 'string' || tk.Driver === '') te.push('Missing task driver')
      if (te.length > 0) ge.push(`Task ${tn} validation failed: ${multierror(te)}`)
    })
    if (ge.length > 0) errs.push(`Task group ${name} validation failed: ${multierror(ge)}`)
  })
  return errs
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T

/** Parses "5s", "300ms", "1m" (Go durations as Nomad's ?wait= takes them). */
function waitMs(s: string | undefined): number {
  if (!s) return 300_000
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s)
  if (!m) return 300_000
  const n = Number(m[1])
  return Math.min(600_000, m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000)
}

type DiffType = 'Added' | 'Deleted' | 'Edited' | 'None'
type FieldDiff = { Type: DiffType; Name: string; Old: string; New: string; Annotations: string[] | null }
type ObjectDiff = { Type: DiffType; Name: string; Fields: FieldDiff[] | null; Objects: ObjectDiff[] | null }

function scalar(v: Json | undefined): string {
  if (v === undefined || v === null) return ''
  return typeof v === 'string' ? v : JSON.stringify(v)
}

/** Fields and sub-objects of two objects, in Nomad's diff shape (maps flatten to `Name[key]`). */
function diffObject(
  name: string,
  a: JsonObject | null,
  b: JsonObject | null,
  skip: Set<string> = new Set(),
): ObjectDiff {
  const fields: FieldDiff[] = []
  const objects: ObjectDiff[] = []
  const keys = [...new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})])].filter((k) => !skip.has(k)).sort()
  for (const k of keys) {
    const x = a?.[k]
    const y = b?.[k]
    if (isObj(x) || isObj(y)) {
      const od = diffObject(k, isObj(x) ? x : null, isObj(y) ? y : null)
      if (od.Type !== 'None') objects.push(od)
    } else if (Array.isArray(x) || Array.isArray(y)) {
      const xa = Array.isArray(x) ? x : []
      const ya = Array.isArray(y) ? y : []
      if (xa.some(isObj) || ya.some(isObj)) {
        for (let i = 0; i < Math.max(xa.length, ya.length); i++) {
          const od = diffObject(
            k,
            isObj(xa[i]) ? (xa[i] as JsonObject) : null,
            isObj(ya[i]) ? (ya[i] as JsonObject) : null,
          )
          if (od.Type !== 'None') objects.push(od)
        }
      } else if (JSON.stringify(xa) !== JSON.stringify(ya)) {
        fields.push({
          Type: a === null ? 'Added' : b === null ? 'Deleted' : 'Edited',
          Name: k,
          Old: xa.map(scalar).join(','),
          New: ya.map(scalar).join(','),
          Annotations: null,
        })
      }
    } else if (scalar(x) !== scalar(y)) {
      const t: DiffType = x === undefined || x === null ? 'Added' : y === undefined || y === null ? 'Deleted' : 'Edited'
      fields.push({ Type: t, Name: k, Old: scalar(x), New: scalar(y), Annotations: null })
    }
  }
  const type: DiffType =
    a === null && b !== null
      ? 'Added'
      : b === null && a !== null
        ? 'Deleted'
        : fields.length + objects.length > 0
          ? 'Edited'
          : 'None'
  return { Type: type, Name: name, Fields: fields, Objects: objects }
}

export class NomadDouble {
  readonly requests: RequestLog[] = []
  private server: Server | undefined
  private index = 1
  private readonly jobs = new Map<string, JobRec>()
  private readonly allocs: Alloc[] = []
  private readonly deployments: DeploymentRec[] = []
  private readonly evals = new Map<string, JsonObject>()
  private waiters: Array<() => void> = []
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly healthy: (job: JsonObject, alloc: Alloc) => boolean
  private readonly healthDelayMs: number
  /** Divisor of the update block's durations (100 with fastTimingForTests). */
  private readonly timeDivisor: number
  url = ''

  constructor(private readonly opts: NomadDoubleOptions = {}) {
    this.healthy = opts.healthy ?? (() => true)
    this.healthDelayMs = opts.healthDelayMs ?? 30
    this.timeDivisor = opts.fastTimingForTests === true ? 100 : 1
  }

  /** An update-block duration (ns) as the double waits it, ms. */
  private wait(ns: number): number {
    return ns / 1e6 / this.timeDivisor
  }

  async start(): Promise<string> {
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      this.handle(req, res).catch((err: unknown) => this.send(res, 500, String(err)))
    }
    const tls = this.opts.tls
    this.server = tls
      ? createHttpsServer(
          {
            key: tls.key,
            cert: tls.cert,
            ...(tls.ca ? { ca: tls.ca } : {}),
            requestCert: tls.requestCert === true,
            rejectUnauthorized: tls.requestCert === true,
          },
          handler,
        )
      : createServer(handler)
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    const a = this.server.address()
    this.url = `${tls ? 'https' : 'http'}://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`
    return this.url
  }

  private stopped = false

  async stop(): Promise<void> {
    this.stopped = true
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    for (const w of this.waiters) w()
    this.waiters = []
    if (this.server) {
      this.server.closeAllConnections()
      await new Promise<void>((resolve) => this.server!.close(() => resolve()))
    }
  }

  /** Current state index (what X-Nomad-Index reports). */
  get lastIndex(): number {
    return this.index
  }

  /** Changes the job behind the client's back (another operator's register), bumping its JobModifyIndex. */
  touchJob(id: string): void {
    const rec = this.jobs.get(id)
    if (!rec) throw new Error(`no job ${id}`)
    rec.current = {
      ...rec.current,
      Meta: { ...(isObj(rec.current.Meta) ? rec.current.Meta : {}), touched: String(this.index) },
    }
    this.bump()
    rec.current.JobModifyIndex = this.index
  }

  allocations(jobId: string): Alloc[] {
    return this.allocs.filter((a) => a.JobID === jobId)
  }

  deploymentsOf(jobId: string): DeploymentRec[] {
    return this.deployments.filter((d) => d.JobID === jobId)
  }

  job(jobId: string): JsonObject | undefined {
    return this.jobs.get(jobId)?.current
  }

  private bump(): void {
    this.index++
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  private later(ms: number, f: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t)
      f()
    }, ms)
    this.timers.add(t)
  }

  private send(res: ServerResponse, status: number, body: unknown): void {
    if (res.headersSent) return
    const text = typeof body === 'string' ? body : JSON.stringify(body)
    res.writeHead(status, {
      'content-type': typeof body === 'string' ? 'text/plain' : 'application/json',
      'x-nomad-index': String(this.index),
      'x-nomad-knownleader': 'true',
      'x-nomad-lastcontact': '0',
    })
    res.end(text)
  }

  /** Blocking query: hold until the index passes `min` or `ms` elapse (changes wake every waiter). */
  private async blockUntil(min: number, ms: number): Promise<void> {
    const deadline = Date.now() + ms
    while (this.index <= min && Date.now() < deadline && !this.stopped) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, deadline - Date.now())
        function done(): void {
          clearTimeout(t)
          resolve()
        }
        this.waiters.push(done)
      })
    }
  }

  private async body(req: IncomingMessage): Promise<JsonObject> {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const text = Buffer.concat(chunks).toString('utf8')
    const v = text === '' ? {} : (JSON.parse(text) as Json)
    return isObj(v) ? v : {}
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x')
    const query = Object.fromEntries(url.searchParams)
    const token = typeof req.headers['x-nomad-token'] === 'string' ? req.headers['x-nomad-token'] : undefined
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, query, token })
    if (this.opts.token && token !== this.opts.token) return this.send(res, 403, 'Permission denied')
    if (query.region && this.opts.region && query.region !== this.opts.region)
      return this.send(res, 500, `No path to region "${query.region}"`)
    if (req.method === 'GET' && query.index !== undefined)
      await this.blockUntil(Number(query.index), waitMs(query.wait))
    const p = url.pathname
    let m: RegExpExecArray | null
    if (req.method === 'POST' && p === '/v1/jobs/parse') {
      const b = await this.body(req)
      try {
        return this.send(res, 200, await parseJob(String(b.JobHCL ?? ''), String(b.Variables ?? '')))
      } catch (err) {
        return this.send(res, 400, err instanceof Error ? err.message : String(err))
      }
    }
    if (req.method === 'POST' && p === '/v1/jobs') return this.register(res, await this.body(req))
    if ((m = /^\/v1\/job\/([^/]+)\/plan$/.exec(p)) && req.method === 'POST')
      return this.plan(res, decodeURIComponent(m[1]!), await this.body(req))
    if ((m = /^\/v1\/job\/([^/]+)$/.exec(p)) && req.method === 'GET') {
      const j = this.jobs.get(decodeURIComponent(m[1]!))
      return j ? this.send(res, 200, j.current) : this.send(res, 404, 'job not found')
    }
    if ((m = /^\/v1\/job\/([^/]+)\/allocations$/.exec(p)))
      return this.send(res, 200, this.allocations(decodeURIComponent(m[1]!)))
    if ((m = /^\/v1\/job\/([^/]+)\/deployments$/.exec(p)))
      return this.send(res, 200, [...this.deploymentsOf(decodeURIComponent(m[1]!))].reverse())
    if ((m = /^\/v1\/job\/([^/]+)\/deployment$/.exec(p))) {
      const list = this.deploymentsOf(decodeURIComponent(m[1]!))
      return this.send(res, 200, list[list.length - 1] ?? null)
    }
    if ((m = /^\/v1\/deployment\/([^/]+)$/.exec(p))) {
      const d = this.deployments.find((x) => x.ID === m![1])
      return d ? this.send(res, 200, d) : this.send(res, 404, 'deployment not found')
    }
    if ((m = /^\/v1\/evaluation\/([^/]+)$/.exec(p))) {
      const e = this.evals.get(m[1]!)
      return e ? this.send(res, 200, e) : this.send(res, 404, 'eval not found')
    }
    return this.send(res, 404, `Invalid URL path: ${p}`)
  }

  private diff(cur: JsonObject | undefined, next: JsonObject): JsonObject {
    const skip = new Set([...RUNTIME_FIELDS, 'TaskGroups', 'ID'])
    const top = diffObject('Job', cur ? clone(cur) : null, next, skip)
    const curGroups = new Map<string, JsonObject>()
    for (const g of (cur?.TaskGroups as Json[] | undefined) ?? []) if (isObj(g)) curGroups.set(String(g.Name), g)
    const tgs: JsonObject[] = []
    const nextGroups = ((next.TaskGroups as Json[] | undefined) ?? []).filter(isObj)
    for (const g of nextGroups) {
      const old = curGroups.get(String(g.Name)) ?? null
      const gd = diffObject(String(g.Name), old, g, new Set(['Tasks', 'Name']))
      const oldTasks = new Map<string, JsonObject>()
      for (const t of (old?.Tasks as Json[] | undefined) ?? []) if (isObj(t)) oldTasks.set(String(t.Name), t)
      const tasks = ((g.Tasks as Json[] | undefined) ?? []).filter(isObj).map((t) => {
        const o = oldTasks.get(String(t.Name)) ?? null
        const td = diffObject(String(t.Name), o, t, new Set(['Name', 'Env']))
        // Env flattens into Env[KEY] fields, as in `nomad job plan`.
        const envA = isObj(o?.Env) ? o.Env : {}
        const envB = isObj(t.Env) ? t.Env : {}
        for (const k of [...new Set([...Object.keys(envA), ...Object.keys(envB)])].sort()) {
          if (scalar(envA[k]) !== scalar(envB[k])) {
            td.Fields = [
              ...(td.Fields ?? []),
              {
                Type: envA[k] === undefined ? 'Added' : envB[k] === undefined ? 'Deleted' : 'Edited',
                Name: `Env[${k}]`,
                Old: scalar(envA[k]),
                New: scalar(envB[k]),
                Annotations: ['forces create/destroy update'],
              },
            ]
            if (td.Type === 'None') td.Type = 'Edited'
          }
        }
        return { ...td, Annotations: td.Type === 'Edited' ? ['forces create/destroy update'] : null }
      })
      const changed = gd.Type !== 'None' || tasks.some((t) => t.Type !== 'None')
      const count = Number(g.Count ?? 1)
      const canary = isObj(g.Update) ? Number(g.Update.Canary ?? 0) : 0
      const updates: Record<string, number> = !old
        ? { create: count }
        : !changed
          ? { ignore: count }
          : canary > 0
            ? { canary, 'create/destroy update': count }
            : { 'create/destroy update': count }
      tgs.push({
        ...gd,
        Type: old ? (changed ? 'Edited' : 'None') : 'Added',
        Tasks: tasks as unknown as Json[],
        Updates: updates,
      })
    }
    for (const [name, g] of curGroups) {
      if (!nextGroups.some((x) => x.Name === name))
        tgs.push({ ...diffObject(name, g, null), Tasks: [], Updates: { stop: Number(g.Count ?? 1) } })
    }
    const type: DiffType = !cur
      ? 'Added'
      : top.Type !== 'None' || tgs.some((x) => x.Type !== 'None')
        ? 'Edited'
        : 'None'
    return {
      Type: type,
      ID: String(next.ID),
      Fields: top.Fields as unknown as Json[],
      Objects: top.Objects as unknown as Json[],
      TaskGroups: tgs as unknown as Json[],
    }
  }

  private plan(res: ServerResponse, id: string, b: JsonObject): void {
    const job = isObj(b.Job) ? b.Job : undefined
    if (!job || job.ID !== id) return this.send(res, 400, 'Job ID does not match')
    const problems = validateJob(job)
    if (problems.length > 0) return this.send(res, 500, multierror(problems))
    const cur = this.jobs.get(id)?.current
    const d = this.diff(cur, job)
    const desired: Record<string, Json> = {}
    for (const tg of (d.TaskGroups as Json[]).filter(isObj)) desired[String(tg.Name)] = tg.Updates as Json
    this.send(res, 200, {
      JobModifyIndex: Number(cur?.JobModifyIndex ?? 0),
      Diff: b.Diff === true ? d : null,
      Annotations: { DesiredTGUpdates: desired },
      FailedTGAllocs: null,
      Warnings: '',
      CreatedEvals: null,
      NextPeriodicLaunch: null,
    })
  }

  private register(res: ServerResponse, b: JsonObject): void {
    const job = isObj(b.Job) ? clone(b.Job) : undefined
    if (!job || typeof job.ID !== 'string' || job.ID === '') return this.send(res, 400, 'Job must have a valid ID')
    const problems = validateJob(job)
    if (problems.length > 0) return this.send(res, 500, multierror(problems))
    const rec = this.jobs.get(job.ID)
    if (b.EnforceIndex === true) {
      const want = Number(b.JobModifyIndex ?? 0)
      const have = Number(rec?.current.JobModifyIndex ?? 0)
      if (!rec && want !== 0) return this.send(res, 500, `Enforcing job modify index ${want}: job does not exist`)
      if (rec && want === 0) return this.send(res, 500, `Enforcing job modify index ${want}: job already exists`)
      if (rec && want !== have)
        return this.send(
          res,
          500,
          `Enforcing job modify index ${want}: job exists with conflicting job modify index: ${have}`,
        )
    }
    const evalId = this.registerVersion(job)
    const cur = this.jobs.get(job.ID)!.current
    this.send(res, 200, {
      EvalID: evalId,
      EvalCreateIndex: this.index,
      JobModifyIndex: cur.JobModifyIndex,
      Warnings: '',
      Index: this.index,
      LastContact: 0,
      KnownLeader: true,
    })
  }

  /** Stores `job` as a new version and starts its deployment; returns the eval id. */
  private registerVersion(job: JsonObject): string {
    const id = String(job.ID)
    const rec = this.jobs.get(id)
    const prev = rec?.current
    this.bump()
    const version = prev ? Number(prev.Version) + 1 : 0
    const stored: JsonObject = {
      ...job,
      Version: version,
      Stable: false,
      Status: 'running',
      JobModifyIndex: this.index,
      CreateIndex: prev ? Number(prev.CreateIndex) : this.index,
      ModifyIndex: this.index,
      SubmitTime: Date.now() * 1e6,
    }
    if (rec) {
      rec.versions.push(stored)
      rec.current = stored
    } else this.jobs.set(id, { versions: [stored], current: stored })
    const evalId = randomUUID()
    const dep: DeploymentRec = {
      ID: randomUUID(),
      Namespace: String(job.Namespace ?? 'default'),
      JobID: id,
      JobVersion: version,
      JobModifyIndex: this.index,
      JobCreateIndex: Number(stored.CreateIndex),
      Status: 'running',
      StatusDescription: 'Deployment is running',
      TaskGroups: {},
      CreateIndex: this.index,
      ModifyIndex: this.index,
    }
    for (const d of this.deployments) {
      if (d.JobID === id && d.Status === 'running') {
        d.Status = 'cancelled'
        d.StatusDescription = 'Cancelled due to newer version of job'
        d.ModifyIndex = this.index
      }
    }
    this.deployments.push(dep)
    this.evals.set(evalId, {
      ID: evalId,
      JobID: id,
      Status: 'complete',
      TriggeredBy: 'job-register',
      DeploymentID: dep.ID,
      Type: String(job.Type ?? 'service'),
      CreateIndex: this.index,
      ModifyIndex: this.index,
    })
    for (const g of ((stored.TaskGroups as Json[] | undefined) ?? []).filter(isObj)) {
      const name = String(g.Name)
      const up = isObj(g.Update) ? g.Update : {}
      const running = this.allocs.filter((a) => a.JobID === id && a.TaskGroup === name && a.DesiredStatus === 'run')
      const count = Number(g.Count ?? 1)
      // Allocations of a version whose group spec is identical are updated in place (a rollback to the running
      // spec, a change of job-level fields only): nothing to place.
      const runningVersion = rec?.versions.find((v) => Number(v.Version) === running[0]?.JobVersion)
      const runningGroup = ((runningVersion?.TaskGroups as Json[] | undefined) ?? [])
        .filter(isObj)
        .find((x) => x.Name === name)
      const inPlace =
        running.length === count && runningGroup !== undefined && JSON.stringify(runningGroup) === JSON.stringify(g)
      const canaries = running.length > 0 && !inPlace ? Number(up.Canary ?? 0) : 0
      if (inPlace) {
        for (const a of running) {
          a.JobVersion = version
          a.DeploymentID = dep.ID
          a.ModifyIndex = this.index
        }
      }
      dep.TaskGroups[name] = {
        AutoRevert: up.AutoRevert === true,
        AutoPromote: up.AutoPromote === true,
        Promoted: false,
        DesiredCanaries: canaries,
        DesiredTotal: count,
        PlacedCanaries: [],
        PlacedAllocs: inPlace ? count : 0,
        HealthyAllocs: inPlace ? count : 0,
        UnhealthyAllocs: 0,
        ProgressDeadline: Number(up.ProgressDeadline ?? 600e9),
        RequireProgressBy: new Date(Date.now() + Number(up.ProgressDeadline ?? 600e9) / 1e6).toISOString(),
      }
      this.later(5, () => this.step(dep, stored, name, evalId, Math.max(1, Number(up.MaxParallel ?? 1))))
    }
    return evalId
  }

  private place(
    dep: DeploymentRec,
    job: JsonObject,
    group: string,
    evalId: string,
    canary: boolean,
    idx: number,
  ): Alloc {
    this.bump()
    const a: Alloc = {
      ID: randomUUID(),
      EvalID: evalId,
      Name: `${dep.JobID}.${group}[${idx}]`,
      NodeID: 'node-1',
      JobID: dep.JobID,
      JobVersion: dep.JobVersion,
      TaskGroup: group,
      DesiredStatus: 'run',
      ClientStatus: 'running',
      DeploymentID: dep.ID,
      DeploymentStatus: { Healthy: null, Canary: canary, Timestamp: new Date().toISOString() },
      CreateTime: Date.now() * 1e6,
      CreateIndex: this.index,
      ModifyIndex: this.index,
    }
    this.allocs.push(a)
    const s = dep.TaskGroups[group]!
    s.PlacedAllocs++
    if (canary) s.PlacedCanaries.push(a.ID)
    dep.ModifyIndex = this.index
    const tg = ((job.TaskGroups as Json[] | undefined) ?? []).filter(isObj).find((x) => x.Name === group)
    const up = isObj(tg?.Update) ? tg.Update : {}
    const minHealthy = this.wait(Number(up.MinHealthyTime ?? 10e9))
    const deadline = this.wait(Number(up.HealthyDeadline ?? 300e9))
    if (s.PlacedAllocs === 1 && s.ProgressDeadline > 0) this.armProgress(dep, group)
    const verdict = (ok: boolean): void => {
      if (dep.Status !== 'running' || a.DeploymentStatus?.Healthy !== null) return
      this.bump()
      a.DeploymentStatus = { Healthy: ok, Canary: canary, Timestamp: new Date().toISOString() }
      if (!ok) a.ClientStatus = 'failed'
      a.ModifyIndex = this.index
      if (ok) {
        s.HealthyAllocs++
        if (s.ProgressDeadline > 0) this.armProgress(dep, group)
      } else s.UnhealthyAllocs++
      dep.ModifyIndex = this.index
      this.step(dep, job, group, evalId, Math.max(1, Number(up.MaxParallel ?? 1)))
    }
    // Running with passing checks after healthDelayMs, healthy once that has lasted min_healthy_time; never
    // passing (or not healthy in time): unhealthy at healthy_deadline.
    const ok = this.healthy(job, a)
    if (ok && this.healthDelayMs + minHealthy < deadline)
      this.later(this.healthDelayMs + minHealthy, () => verdict(true))
    else this.later(deadline, () => verdict(false))
    return a
  }

  /** (Re)starts a group's progress deadline; when it passes without a healthy allocation, the deployment fails. */
  private armProgress(dep: DeploymentRec, group: string): void {
    const s = dep.TaskGroups[group]!
    const ms = this.wait(s.ProgressDeadline)
    const by = new Date(Date.now() + ms).toISOString()
    s.RequireProgressBy = by
    this.later(ms, () => {
      // A later arming (progress made since) supersedes this one.
      if (dep.Status !== 'running' || s.RequireProgressBy !== by || s.HealthyAllocs >= s.DesiredTotal) return
      // Healthy canaries waiting for a manual promotion are not a lack of progress.
      if (s.DesiredCanaries > 0 && !s.Promoted && s.HealthyAllocs >= s.DesiredCanaries) return
      this.fail(dep, 'Failed due to progress deadline')
    })
  }

  private stopAlloc(a: Alloc): void {
    this.bump()
    a.DesiredStatus = 'stop'
    if (a.ClientStatus === 'running') a.ClientStatus = 'complete'
    a.ModifyIndex = this.index
  }

  /** One scheduler step for a group of a running deployment. */
  private step(dep: DeploymentRec, job: JsonObject, group: string, evalId: string, maxParallel: number): void {
    if (dep.Status !== 'running') return
    const s = dep.TaskGroups[group]!
    const mine = this.allocs.filter((a) => a.DeploymentID === dep.ID && a.TaskGroup === group)
    const old = this.allocs.filter(
      (a) => a.JobID === dep.JobID && a.TaskGroup === group && a.DesiredStatus === 'run' && a.DeploymentID !== dep.ID,
    )
    // Without a progress deadline the first unhealthy allocation fails the deployment; with one, the deployment
    // waits for it (rescheduling is not simulated, so it fails there).
    if (s.UnhealthyAllocs > 0 && s.ProgressDeadline === 0) return this.fail(dep, 'Failed due to unhealthy allocations')
    if (s.UnhealthyAllocs > 0) return
    const pending = mine.filter((a) => a.DeploymentStatus?.Healthy === null).length
    if (s.DesiredCanaries > 0 && !s.Promoted) {
      if (s.PlacedCanaries.length < s.DesiredCanaries) {
        for (let i = s.PlacedCanaries.length; i < s.DesiredCanaries; i++) this.place(dep, job, group, evalId, true, i)
        return
      }
      if (pending > 0 || s.HealthyAllocs < s.DesiredCanaries) return
      if (!s.AutoPromote) return
      this.bump()
      s.Promoted = true
      dep.ModifyIndex = this.index
      // A promotion resets the progress deadline.
      if (s.ProgressDeadline > 0) this.armProgress(dep, group)
    }
    // Replace old allocations (canaries count as replacements), max_parallel in flight.
    const runningNew = mine.filter((a) => a.DesiredStatus === 'run').length
    let toStop = Math.max(0, old.length + runningNew - s.DesiredTotal)
    for (const a of old) {
      if (toStop-- <= 0) break
      this.stopAlloc(a)
    }
    const want = s.DesiredTotal - runningNew
    for (let i = 0; i < Math.min(want, Math.max(0, maxParallel - pending)); i++)
      this.place(dep, job, group, evalId, false, mine.length + i)
    const allHealthy = Object.values(dep.TaskGroups).every((g) => g.HealthyAllocs >= g.DesiredTotal)
    if (allHealthy) {
      this.bump()
      dep.Status = 'successful'
      dep.StatusDescription = 'Deployment completed successfully'
      dep.ModifyIndex = this.index
      const rec = this.jobs.get(dep.JobID)
      const v = rec?.versions.find((x) => Number(x.Version) === dep.JobVersion)
      if (v) v.Stable = true
      if (rec && Number(rec.current.Version) === dep.JobVersion) rec.current.Stable = true
    }
  }

  private fail(dep: DeploymentRec, reason: string): void {
    if (dep.Status !== 'running') return
    const rec = this.jobs.get(dep.JobID)!
    const revert = Object.values(dep.TaskGroups).some((g) => g.AutoRevert)
    const stable = [...rec.versions].reverse().find((v) => v.Stable === true && Number(v.Version) !== dep.JobVersion)
    this.bump()
    dep.Status = 'failed'
    dep.StatusDescription =
      revert && stable ? `${reason} - rolling back to job version ${Number(stable.Version)}` : reason
    dep.ModifyIndex = this.index
    // The failed version's allocations stop (canaries) ...
    for (const a of this.allocs.filter((x) => x.DeploymentID === dep.ID && x.DesiredStatus === 'run')) this.stopAlloc(a)
    // ... and auto_revert registers the last stable version again, as a new version.
    if (revert && stable) {
      const copy = clone(stable)
      for (const k of RUNTIME_FIELDS) delete copy[k]
      this.later(5, () => {
        this.registerVersion(copy)
      })
    }
  }
}
