/**
 * A small typed client of the Nomad HTTP API (https://developer.hashicorp.com/nomad/api-docs): the calls the
 * deploy command needs (parse, plan, register with check-and-set, allocations, deployments, evaluations) and
 * blocking queries (`?index=&wait=`, `X-Nomad-Index`). Token (`X-Nomad-Token`), namespace and region go on every
 * request; TLS with a private CA or client certificates uses node:https, everything else the global fetch.
 */
import { request as httpsRequest } from 'node:https'
import { readFileSync } from 'node:fs'
import { NomadError, NomadErrorCodes } from './errors.js'

export interface NomadTls {
  /** PEM of the CA that signed the agent's certificate (NOMAD_CACERT). */
  ca?: string
  /** Client certificate and key, PEM (NOMAD_CLIENT_CERT / NOMAD_CLIENT_KEY), for agents with verify_https_client. */
  cert?: string
  key?: string
  /** Do not verify the agent's certificate (NOMAD_SKIP_VERIFY); for tests only. */
  insecureSkipVerify?: boolean
}

export interface NomadClientOptions {
  /** Agent address, e.g. http://127.0.0.1:4646 (NOMAD_ADDR). */
  address: string
  /** ACL token (NOMAD_TOKEN). */
  token?: string
  /** Namespace (NOMAD_NAMESPACE); Nomad's default is `default`. */
  namespace?: string
  /** Region (NOMAD_REGION); the agent's own region when unset. */
  region?: string
  tls?: NomadTls
  /** Timeout of a non-blocking request, ms (default 30 s). */
  timeoutMs?: number
}

/** Options from the environment variables the nomad CLI reads. */
export function nomadOptionsFromEnv(env: NodeJS.ProcessEnv): NomadClientOptions {
  const o: NomadClientOptions = { address: env.NOMAD_ADDR ?? 'http://127.0.0.1:4646' }
  if (env.NOMAD_TOKEN) o.token = env.NOMAD_TOKEN
  if (env.NOMAD_NAMESPACE) o.namespace = env.NOMAD_NAMESPACE
  if (env.NOMAD_REGION) o.region = env.NOMAD_REGION
  const tls: NomadTls = {}
  if (env.NOMAD_CACERT) tls.ca = readFileSync(env.NOMAD_CACERT, 'utf8')
  if (env.NOMAD_CLIENT_CERT) tls.cert = readFileSync(env.NOMAD_CLIENT_CERT, 'utf8')
  if (env.NOMAD_CLIENT_KEY) tls.key = readFileSync(env.NOMAD_CLIENT_KEY, 'utf8')
  if (env.NOMAD_SKIP_VERIFY === 'true' || env.NOMAD_SKIP_VERIFY === '1') tls.insecureSkipVerify = true
  if (Object.keys(tls).length > 0) o.tls = tls
  return o
}

/** The result of a (blocking) query: the body and the index to pass to the next one. */
export interface QueryResult<T> {
  body: T
  index: number
}

export interface BlockingOptions {
  /** Return when the index is above this (Nomad's `?index=`). */
  index?: number
  /** Longest wait of the blocking query, ms (Nomad's `?wait=`, at most 10 min). */
  waitMs?: number
}

export interface Job {
  ID: string
  Name: string
  Region?: string
  Namespace?: string
  Datacenters: string[]
  Type?: string
  Version?: number
  Stable?: boolean
  Status?: string
  JobModifyIndex?: number
  TaskGroups: TaskGroup[]
  [k: string]: unknown
}
export interface TaskGroup {
  Name: string
  Count: number
  Update?: { Canary: number; AutoRevert: boolean; AutoPromote: boolean } | null
  Tasks: Array<{
    Name: string
    Driver: string
    Config: Record<string, unknown>
    Env: Record<string, string> | null
    [k: string]: unknown
  }>
  [k: string]: unknown
}

export interface FieldDiff {
  Type: DiffType
  Name: string
  Old: string
  New: string
  Annotations?: string[] | null
}
export interface ObjectDiff {
  Type: DiffType
  Name: string
  Fields: FieldDiff[] | null
  Objects: ObjectDiff[] | null
}
export type DiffType = 'Added' | 'Deleted' | 'Edited' | 'None'
export interface TaskDiff extends ObjectDiff {
  Annotations?: string[] | null
}
export interface TaskGroupDiff extends ObjectDiff {
  Tasks: TaskDiff[] | null
  Updates: Record<string, number> | null
}
export interface JobDiff {
  Type: DiffType
  ID: string
  Fields: FieldDiff[] | null
  Objects: ObjectDiff[] | null
  TaskGroups: TaskGroupDiff[] | null
}

export interface PlanResponse {
  JobModifyIndex: number
  Diff: JobDiff | null
  Annotations: { DesiredTGUpdates: Record<string, Record<string, number>> | null } | null
  FailedTGAllocs: Record<string, unknown> | null
  Warnings: string
}

export interface RegisterResponse {
  EvalID: string
  EvalCreateIndex: number
  JobModifyIndex: number
  Warnings: string
}

export interface AllocListStub {
  ID: string
  Name: string
  JobID: string
  JobVersion: number
  TaskGroup: string
  DesiredStatus: 'run' | 'stop' | 'evict'
  ClientStatus: 'pending' | 'running' | 'complete' | 'failed' | 'lost' | 'unknown'
  DeploymentStatus: { Healthy: boolean | null; Canary: boolean } | null
  CreateIndex: number
  ModifyIndex: number
}

export interface DeploymentState {
  AutoRevert: boolean
  AutoPromote: boolean
  Promoted: boolean
  DesiredCanaries: number
  DesiredTotal: number
  PlacedCanaries: string[] | null
  PlacedAllocs: number
  HealthyAllocs: number
  UnhealthyAllocs: number
}

export interface Deployment {
  ID: string
  JobID: string
  JobVersion: number
  JobModifyIndex: number
  Status: 'running' | 'successful' | 'failed' | 'cancelled' | 'paused' | 'blocked' | 'pending' | 'initializing'
  StatusDescription: string
  TaskGroups: Record<string, DeploymentState>
  CreateIndex: number
  ModifyIndex: number
}

export interface Evaluation {
  ID: string
  JobID: string
  Status: string
  StatusDescription?: string
  DeploymentID?: string
  FailedTGAllocs?: Record<string, unknown> | null
}

const segment = (s: string): string => encodeURIComponent(s)

/** Typed Nomad HTTP API client. */
export class NomadClient {
  private readonly base: string
  constructor(readonly opts: NomadClientOptions) {
    this.base = opts.address.replace(/\/+$/, '')
  }

  /** POST /v1/jobs/parse: HCL (+ var file text) -> job JSON, parsed by the agent. */
  async parseJob(jobHcl: string, variables = ''): Promise<Job> {
    return (
      await this.call<Job>('POST', '/v1/jobs/parse', { JobHCL: jobHcl, Variables: variables, Canonicalize: true })
    ).body
  }

  /** POST /v1/job/:id/plan with Diff: what registering `job` would change (dry run of the scheduler). */
  async planJob(job: Job): Promise<PlanResponse> {
    return (await this.call<PlanResponse>('POST', `/v1/job/${segment(job.ID)}/plan`, { Job: job, Diff: true })).body
  }

  /**
   * POST /v1/jobs: registers `job`. With `enforceIndex`, check-and-set: refused with PW_NOMAD_CAS_CONFLICT unless
   * the job's current JobModifyIndex is exactly it (0: the job must not exist).
   */
  async registerJob(job: Job, enforceIndex?: number): Promise<RegisterResponse> {
    const body: Record<string, unknown> = { Job: job }
    if (enforceIndex !== undefined) {
      body.EnforceIndex = true
      body.JobModifyIndex = enforceIndex
    }
    return (await this.call<RegisterResponse>('POST', '/v1/jobs', body)).body
  }

  /** GET /v1/job/:id (undefined when not registered). */
  async readJob(id: string, b: BlockingOptions = {}): Promise<QueryResult<Job | undefined>> {
    try {
      return await this.call<Job>('GET', `/v1/job/${segment(id)}`, undefined, b)
    } catch (err) {
      if (err instanceof NomadError && err.status === 404) return { body: undefined, index: 0 }
      throw err
    }
  }

  /** GET /v1/job/:id/allocations (blocking). */
  async jobAllocations(id: string, b: BlockingOptions = {}): Promise<QueryResult<AllocListStub[]>> {
    return await this.call<AllocListStub[]>('GET', `/v1/job/${segment(id)}/allocations`, undefined, b)
  }

  /** GET /v1/job/:id/deployment: the latest deployment (null when none), blocking. */
  async latestDeployment(id: string, b: BlockingOptions = {}): Promise<QueryResult<Deployment | null>> {
    return await this.call<Deployment | null>('GET', `/v1/job/${segment(id)}/deployment`, undefined, b)
  }

  /** GET /v1/job/:id/deployments, newest first. */
  async jobDeployments(id: string, b: BlockingOptions = {}): Promise<QueryResult<Deployment[]>> {
    return await this.call<Deployment[]>('GET', `/v1/job/${segment(id)}/deployments`, undefined, b)
  }

  /** GET /v1/deployment/:id (blocking). */
  async deployment(id: string, b: BlockingOptions = {}): Promise<QueryResult<Deployment>> {
    return await this.call<Deployment>('GET', `/v1/deployment/${segment(id)}`, undefined, b)
  }

  /** GET /v1/evaluation/:id. */
  async evaluation(id: string): Promise<Evaluation> {
    return (await this.call<Evaluation>('GET', `/v1/evaluation/${segment(id)}`)).body
  }

  /** One request; query parameters for namespace, region and blocking; errors become NomadError. */
  async call<T>(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    body?: unknown,
    b: BlockingOptions = {},
  ): Promise<QueryResult<T>> {
    const url = new URL(this.base + path)
    if (this.opts.namespace) url.searchParams.set('namespace', this.opts.namespace)
    if (this.opts.region) url.searchParams.set('region', this.opts.region)
    let timeoutMs = this.opts.timeoutMs ?? 30_000
    if (b.index !== undefined) {
      url.searchParams.set('index', String(b.index))
      const waitMs = Math.min(b.waitMs ?? 300_000, 600_000)
      url.searchParams.set('wait', `${Math.max(1, Math.round(waitMs))}ms`)
      // Nomad adds up to wait/16 of jitter to a blocking query.
      timeoutMs = Math.ceil(waitMs + waitMs / 16 + 5_000)
    }
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.opts.token) headers['x-nomad-token'] = this.opts.token
    const payload = body === undefined ? undefined : JSON.stringify(body)
    if (payload !== undefined) headers['content-type'] = 'application/json'
    let res: { status: number; text: string; index: string | null }
    try {
      res =
        this.opts.tls && url.protocol === 'https:'
          ? await this.viaHttps(url, method, headers, payload, timeoutMs, this.opts.tls)
          : await this.viaFetch(url, method, headers, payload, timeoutMs)
    } catch (err) {
      throw new NomadError(
        NomadErrorCodes.UNREACHABLE,
        `${method} ${url.pathname}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err, retryable: true },
      )
    }
    if (res.status < 200 || res.status >= 300) {
      const text = res.text.trim()
      if (/job modify index/i.test(text)) {
        throw new NomadError(
          NomadErrorCodes.CAS_CONFLICT,
          `${method} ${url.pathname}: the job changed since the plan (${text}); plan again`,
          { status: res.status },
        )
      }
      if (path === '/v1/jobs/parse') throw new NomadError(NomadErrorCodes.PARSE, text, { status: res.status })
      throw new NomadError(NomadErrorCodes.HTTP, `${method} ${url.pathname}: HTTP ${res.status}: ${text}`, {
        status: res.status,
        retryable: res.status >= 500,
      })
    }
    return { body: (res.text === '' ? null : JSON.parse(res.text)) as T, index: Number(res.index ?? 0) }
  }

  private async viaFetch(
    url: URL,
    method: string,
    headers: Record<string, string>,
    payload: string | undefined,
    timeoutMs: number,
  ): Promise<{ status: number; text: string; index: string | null }> {
    const init: RequestInit = { method, headers, signal: AbortSignal.timeout(timeoutMs) }
    if (payload !== undefined) init.body = payload
    const r = await fetch(url, init)
    return { status: r.status, text: await r.text(), index: r.headers.get('x-nomad-index') }
  }

  private async viaHttps(
    url: URL,
    method: string,
    headers: Record<string, string>,
    payload: string | undefined,
    timeoutMs: number,
    tls: NomadTls,
  ): Promise<{ status: number; text: string; index: string | null }> {
    return await new Promise((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method,
          headers,
          timeout: timeoutMs,
          rejectUnauthorized: tls.insecureSkipVerify !== true,
          ...(tls.ca ? { ca: tls.ca } : {}),
          ...(tls.cert ? { cert: tls.cert } : {}),
          ...(tls.key ? { key: tls.key } : {}),
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            const idx = res.headers['x-nomad-index']
            resolve({
              status: res.statusCode ?? 0,
              text: Buffer.concat(chunks).toString('utf8'),
              index: typeof idx === 'string' ? idx : null,
            })
          })
          res.on('error', reject)
        },
      )
      req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)))
      req.on('error', reject)
      if (payload !== undefined) req.write(payload)
      req.end()
    })
  }
}
