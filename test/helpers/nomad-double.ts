/**
 * A stateful in-process double of the Nomad HTTP API (the documented shapes of
 * https://developer.hashicorp.com/nomad/api-docs: jobs, job plan, allocations, deployments, evaluations), served
 * over HTTP on 127.0.0.1 so the real client code runs unchanged. What it keeps and simulates:
 * - /v1/jobs/parse: HCL2 + var file -> job JSON (test/helpers/nomad-hcl.ts over @cdktf/hcl2json); 400 on errors.
 * - /v1/job/:id/plan: a structured Diff against the registered version, DesiredTGUpdates annotations, and the
 *   JobModifyIndex to enforce.
 * - /v1/jobs (register): versions, EnforceIndex check-and-set (a stale index is refused with Nomad's message), an
 *   evaluation, and a deployment run by a small scheduler: the first version places every allocation; later ones
 *   place `canary` canaries, promote them when healthy (auto_promote), then replace the old allocations
 *   max_parallel at a time. Allocation health comes from `healthy(job, alloc)`; an unhealthy canary fails the
 *   deployment and, with auto_revert, re-registers the last stable version as a new version (Nomad's rollback).
 * - Blocking queries: `?index=N&wait=D` hold the request until the state index passes N or D elapses;
 *   X-Nomad-Index on every read.
 * - ACL token (`X-Nomad-Token`, 403 without it when configured), `?region=` checked, `?namespace=` recorded.
 * Not simulated: nodes, resources and placement failures, min_healthy_time (health is `healthDelayMs`), progress
 * deadlines.
 */
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { type Json, type JsonObject, parseJob } from './nomad-hcl.js'

export interface NomadDoubleOptions {
  /** Required X-Nomad-Token when set. */
  token?: string
  region?: string
  /** Time from placement to a health verdict, ms. */
  healthDelayMs?: number
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

const RUNTIME_FIELDS = new Set(['Version', 'Stable', 'Status', 'StatusDescription', 'JobModifyIndex', 'CreateIndex', 'ModifyIndex', 'SubmitTime', 'Stop'])

const isObj = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v)
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
function diffObject(name: string, a: JsonObject | null, b: JsonObject | null, skip: Set<string> = new Set()): ObjectDiff {
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
          const od = diffObject(k, isObj(xa[i]) ? xa[i] as JsonObject : null, isObj(ya[i]) ? ya[i] as JsonObject : null)
          if (od.Type !== 'None') objects.push(od)
        }
      } else if (JSON.stringify(xa) !== JSON.stringify(ya)) {
        fields.push({ Type: a === null ? 'Added' : b === null ? 'Deleted' : 'Edited', Name: k, Old: xa.map(scalar).join(','), New: ya.map(scalar).join(','), Annotations: null })
      }
    } else if (scalar(x) !== scalar(y)) {
      const t: DiffType = x === undefined || x === null ? 'Added' : y === undefined || y === null ? 'Deleted' : 'Edited'
      fields.push({ Type: t, Name: k, Old: scalar(x), New: scalar(y), Annotations: null })
    }
  }
  const type: DiffType = a === null && b !== null ? 'Added' : b === null && a !== null ? 'Deleted' : fields.length + objects.length > 0 ? 'Edited' : 'None'
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
  url = ''

  constructor(private readonly opts: NomadDoubleOptions = {}) {
    this.healthy = opts.healthy ?? (() => true)
    this.healthDelayMs = opts.healthDelayMs ?? 30
  }

  async start(): Promise<string> {
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      this.handle(req, res).catch((err: unknown) => this.send(res, 500, String(err)))
    }
    const tls = this.opts.tls
    this.server = tls
      ? createHttpsServer({ key: tls.key, cert: tls.cert, ...(tls.ca ? { ca: tls.ca } : {}), requestCert: tls.requestCert === true, rejectUnauthorized: tls.requestCert === true }, handler)
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
    rec.current = { ...rec.current, Meta: { ...(isObj(rec.current.Meta) ? rec.current.Meta : {}), touched: String(this.index) } }
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
    res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json', 'x-nomad-index': String(this.index), 'x-nomad-knownleader': 'true', 'x-nomad-lastcontact': '0' })
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
    const v = text === '' ? {} : JSON.parse(text) as Json
    return isObj(v) ? v : {}
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x')
    const query = Object.fromEntries(url.searchParams)
    const token = typeof req.headers['x-nomad-token'] === 'string' ? req.headers['x-nomad-token'] : undefined
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, query, token })
    if (this.opts.token && token !== this.opts.token) return this.send(res, 403, 'Permission denied')
    if (query.region && this.opts.region && query.region !== this.opts.region) return this.send(res, 500, `No path to region "${query.region}"`)
    if (req.method === 'GET' && query.index !== undefined) await this.blockUntil(Number(query.index), waitMs(query.wait))
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
    if ((m = /^\/v1\/job\/([^/]+)\/plan$/.exec(p)) && req.method === 'POST') return this.plan(res, decodeURIComponent(m[1]!), await this.body(req))
    if ((m = /^\/v1\/job\/([^/]+)$/.exec(p)) && req.method === 'GET') {
      const j = this.jobs.get(decodeURIComponent(m[1]!))
      return j ? this.send(res, 200, j.current) : this.send(res, 404, 'job not found')
    }
    if ((m = /^\/v1\/job\/([^/]+)\/allocations$/.exec(p))) return this.send(res, 200, this.allocations(decodeURIComponent(m[1]!)))
    if ((m = /^\/v1\/job\/([^/]+)\/deployments$/.exec(p))) return this.send(res, 200, [...this.deploymentsOf(decodeURIComponent(m[1]!))].reverse())
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
            td.Fields = [...(td.Fields ?? []), { Type: envA[k] === undefined ? 'Added' : envB[k] === undefined ? 'Deleted' : 'Edited', Name: `Env[${k}]`, Old: scalar(envA[k]), New: scalar(envB[k]), Annotations: ['forces create/destroy update'] }]
            if (td.Type === 'None') td.Type = 'Edited'
          }
        }
        return { ...td, Annotations: td.Type === 'Edited' ? ['forces create/destroy update'] : null }
      })
      const changed = gd.Type !== 'None' || tasks.some((t) => t.Type !== 'None')
      const count = Number(g.Count ?? 1)
      const canary = isObj(g.Update) ? Number(g.Update.Canary ?? 0) : 0
      const updates: Record<string, number> = !old ? { create: count } : !changed ? { ignore: count } : canary > 0 ? { canary, 'create/destroy update': count } : { 'create/destroy update': count }
      tgs.push({ ...gd, Type: old ? (changed ? 'Edited' : 'None') : 'Added', Tasks: tasks as unknown as Json[], Updates: updates })
    }
    for (const [name, g] of curGroups) {
      if (!nextGroups.some((x) => x.Name === name)) tgs.push({ ...diffObject(name, g, null), Tasks: [], Updates: { stop: Number(g.Count ?? 1) } })
    }
    const type: DiffType = !cur ? 'Added' : top.Type !== 'None' || tgs.some((x) => x.Type !== 'None') ? 'Edited' : 'None'
    return { Type: type, ID: String(next.ID), Fields: top.Fields as unknown as Json[], Objects: top.Objects as unknown as Json[], TaskGroups: tgs as unknown as Json[] }
  }

  private plan(res: ServerResponse, id: string, b: JsonObject): void {
    const job = isObj(b.Job) ? b.Job : undefined
    if (!job || job.ID !== id) return this.send(res, 400, 'Job ID does not match')
    const cur = this.jobs.get(id)?.current
    const d = this.diff(cur, job)
    const desired: Record<string, Json> = {}
    for (const tg of (d.TaskGroups as Json[]).filter(isObj)) desired[String(tg.Name)] = tg.Updates as Json
    this.send(res, 200, {
      JobModifyIndex: Number(cur?.JobModifyIndex ?? 0), Diff: b.Diff === true ? d : null,
      Annotations: { DesiredTGUpdates: desired }, FailedTGAllocs: null, Warnings: '', CreatedEvals: null, NextPeriodicLaunch: null,
    })
  }

  private register(res: ServerResponse, b: JsonObject): void {
    const job = isObj(b.Job) ? clone(b.Job) : undefined
    if (!job || typeof job.ID !== 'string' || job.ID === '') return this.send(res, 400, 'Job must have a valid ID')
    const rec = this.jobs.get(job.ID)
    if (b.EnforceIndex === true) {
      const want = Number(b.JobModifyIndex ?? 0)
      const have = Number(rec?.current.JobModifyIndex ?? 0)
      if (!rec && want !== 0) return this.send(res, 500, `Enforcing job modify index ${want}: job does not exist`)
      if (rec && want === 0) return this.send(res, 500, `Enforcing job modify index ${want}: job already exists`)
      if (rec && want !== have) return this.send(res, 500, `Enforcing job modify index ${want}: job exists with conflicting job modify index: ${have}`)
    }
    const evalId = this.registerVersion(job)
    const cur = this.jobs.get(job.ID)!.current
    this.send(res, 200, { EvalID: evalId, EvalCreateIndex: this.index, JobModifyIndex: cur.JobModifyIndex, Warnings: '', Index: this.index, LastContact: 0, KnownLeader: true })
  }

  /** Stores `job` as a new version and starts its deployment; returns the eval id. */
  private registerVersion(job: JsonObject): string {
    const id = String(job.ID)
    const rec = this.jobs.get(id)
    const prev = rec?.current
    this.bump()
    const version = prev ? Number(prev.Version) + 1 : 0
    const stored: JsonObject = { ...job, Version: version, Stable: false, Status: 'running', JobModifyIndex: this.index, CreateIndex: prev ? Number(prev.CreateIndex) : this.index, ModifyIndex: this.index, SubmitTime: Date.now() * 1e6 }
    if (rec) {
      rec.versions.push(stored)
      rec.current = stored
    } else this.jobs.set(id, { versions: [stored], current: stored })
    const evalId = randomUUID()
    const dep: DeploymentRec = {
      ID: randomUUID(), Namespace: String(job.Namespace ?? 'default'), JobID: id, JobVersion: version, JobModifyIndex: this.index,
      JobCreateIndex: Number(stored.CreateIndex), Status: 'running', StatusDescription: 'Deployment is running', TaskGroups: {},
      CreateIndex: this.index, ModifyIndex: this.index,
    }
    for (const d of this.deployments) {
      if (d.JobID === id && d.Status === 'running') {
        d.Status = 'cancelled'
        d.StatusDescription = 'Cancelled due to newer version of job'
        d.ModifyIndex = this.index
      }
    }
    this.deployments.push(dep)
    this.evals.set(evalId, { ID: evalId, JobID: id, Status: 'complete', TriggeredBy: 'job-register', DeploymentID: dep.ID, Type: String(job.Type ?? 'service'), CreateIndex: this.index, ModifyIndex: this.index })
    for (const g of ((stored.TaskGroups as Json[] | undefined) ?? []).filter(isObj)) {
      const name = String(g.Name)
      const up = isObj(g.Update) ? g.Update : {}
      const running = this.allocs.filter((a) => a.JobID === id && a.TaskGroup === name && a.DesiredStatus === 'run')
      const count = Number(g.Count ?? 1)
      // Allocations of a version whose group spec is identical are updated in place (a rollback to the running
      // spec, a change of job-level fields only): nothing to place.
      const runningVersion = rec?.versions.find((v) => Number(v.Version) === running[0]?.JobVersion)
      const runningGroup = ((runningVersion?.TaskGroups as Json[] | undefined) ?? []).filter(isObj).find((x) => x.Name === name)
      const inPlace = running.length === count && runningGroup !== undefined && JSON.stringify(runningGroup) === JSON.stringify(g)
      const canaries = running.length > 0 && !inPlace ? Number(up.Canary ?? 0) : 0
      if (inPlace) {
        for (const a of running) {
          a.JobVersion = version
          a.DeploymentID = dep.ID
          a.ModifyIndex = this.index
        }
      }
      dep.TaskGroups[name] = {
        AutoRevert: up.AutoRevert === true, AutoPromote: up.AutoPromote === true, Promoted: false, DesiredCanaries: canaries,
        DesiredTotal: count, PlacedCanaries: [], PlacedAllocs: inPlace ? count : 0, HealthyAllocs: inPlace ? count : 0, UnhealthyAllocs: 0,
        ProgressDeadline: Number(up.ProgressDeadline ?? 600e9), RequireProgressBy: new Date(Date.now() + Number(up.ProgressDeadline ?? 600e9) / 1e6).toISOString(),
      }
      this.later(5, () => this.step(dep, stored, name, evalId, Math.max(1, Number(up.MaxParallel ?? 1))))
    }
    return evalId
  }

  private place(dep: DeploymentRec, job: JsonObject, group: string, evalId: string, canary: boolean, idx: number): Alloc {
    this.bump()
    const a: Alloc = {
      ID: randomUUID(), EvalID: evalId, Name: `${dep.JobID}.${group}[${idx}]`, NodeID: 'node-1', JobID: dep.JobID, JobVersion: dep.JobVersion,
      TaskGroup: group, DesiredStatus: 'run', ClientStatus: 'running', DeploymentID: dep.ID,
      DeploymentStatus: { Healthy: null, Canary: canary, Timestamp: new Date().toISOString() }, CreateIndex: this.index, ModifyIndex: this.index,
    }
    this.allocs.push(a)
    const s = dep.TaskGroups[group]!
    s.PlacedAllocs++
    if (canary) s.PlacedCanaries.push(a.ID)
    dep.ModifyIndex = this.index
    this.later(this.healthDelayMs, () => {
      if (dep.Status !== 'running') return
      this.bump()
      const ok = this.healthy(job, a)
      a.DeploymentStatus = { Healthy: ok, Canary: canary, Timestamp: new Date().toISOString() }
      if (!ok) a.ClientStatus = 'failed'
      a.ModifyIndex = this.index
      if (ok) s.HealthyAllocs++
      else s.UnhealthyAllocs++
      dep.ModifyIndex = this.index
      const tg = ((job.TaskGroups as Json[] | undefined) ?? []).filter(isObj).find((x) => x.Name === group)
      this.step(dep, job, group, evalId, Math.max(1, Number(isObj(tg?.Update) ? tg.Update.MaxParallel ?? 1 : 1)))
    })
    return a
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
    const old = this.allocs.filter((a) => a.JobID === dep.JobID && a.TaskGroup === group && a.DesiredStatus === 'run' && a.DeploymentID !== dep.ID)
    if (s.UnhealthyAllocs > 0) return this.fail(dep)
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
    }
    // Replace old allocations (canaries count as replacements), max_parallel in flight.
    const runningNew = mine.filter((a) => a.DesiredStatus === 'run').length
    let toStop = Math.max(0, old.length + runningNew - s.DesiredTotal)
    for (const a of old) {
      if (toStop-- <= 0) break
      this.stopAlloc(a)
    }
    const want = s.DesiredTotal - runningNew
    for (let i = 0; i < Math.min(want, Math.max(0, maxParallel - pending)); i++) this.place(dep, job, group, evalId, false, mine.length + i)
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

  private fail(dep: DeploymentRec): void {
    if (dep.Status !== 'running') return
    const rec = this.jobs.get(dep.JobID)!
    const revert = Object.values(dep.TaskGroups).some((g) => g.AutoRevert)
    const stable = [...rec.versions].reverse().find((v) => v.Stable === true && Number(v.Version) !== dep.JobVersion)
    this.bump()
    dep.Status = 'failed'
    dep.StatusDescription = revert && stable
      ? `Failed due to unhealthy allocations - rolling back to job version ${Number(stable.Version)}`
      : 'Failed due to unhealthy allocations'
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
