/**
 * A stateful in-process double of the Consul HTTP API for federated datacenters, following the documented
 * shapes (https://developer.hashicorp.com/consul/api-docs): one `ConsulCluster` holds every datacenter's state;
 * each `ConsulAgentDouble` is the HTTP agent of one datacenter on 127.0.0.1 (requests with `?dc=` are forwarded to
 * that datacenter, as a server would over the WAN; an unknown or cut-off one answers 500 "No path to datacenter").
 * Kept and simulated:
 * - agent service register/deregister with checks; TTL checks (`/v1/agent/check/pass|warn|fail|update/:id`) that
 *   turn critical when their TTL runs out; DeregisterCriticalServiceAfter (raised to its 1 minute minimum, reaped
 *   by a reaper that runs every 30 s); HTTP/TCP/script/gRPC checks without an Interval are refused (400);
 * - /v1/health/service/:name with ?passing, ?tag, ?dc, and blocking queries (?index=&wait=, X-Consul-Index per
 *   service, returning on a change or when the wait ends);
 * - sessions (create with TTL + behavior release/delete, renew, destroy, info) and KV (get/put/delete, ?acquire= /
 *   ?release= / ?cas=, LockIndex, Session); a TTL outside 10s..24h is refused; a session whose TTL runs out is
 *   invalidated at twice its TTL after the last renew (the server's timer: never before the TTL, up to 2x);
 *   the lock-delay of an invalidated session (default 15s, at most 60s) is enforced: its keys cannot be acquired
 *   by any session until it has passed (acquire answers false), an explicit ?release= sets no delay;
 * - prepared queries (create/list/get/delete, execute by ID or name, OnlyPassing, Failover.Datacenters in order:
 *   the result's Datacenter and Failovers say where the answer came from);
 * - ACL token: with `token` set, requests without X-Consul-Token (or ?token=) get 403 "ACL not found".
 * Not simulated: HTTP/TCP check execution (those checks keep their registered Status), Raft, DNS, Near sorting.
 *
 * Timing is Consul's by default (`CONSUL_BOUNDS`). A test that must watch an expiry happen opts in with
 * `fastTimingForTests: true`, which divides every bound by 100 (session TTL >= 100 ms, DeregisterCriticalService-
 * After >= 600 ms, reaper every 300 ms); what a client asks for (TTLs, lock-delay) is never shortened.
 * Bounds from https://developer.hashicorp.com/consul/api-docs/session (TTL "between 10s and 86400s", "Consul may
 * choose to lazily invalidate ... up to double", LockDelay default 15s, max 60s),
 * https://developer.hashicorp.com/consul/docs/automate/session (lock-delay after invalidation) and
 * https://developer.hashicorp.com/consul/api-docs/agent/check (DeregisterCriticalServiceAfter: "The minimum
 * timeout is 1 minute, and the process that reaps critical services runs every 30 seconds"; Interval "required"
 * for script, HTTP, TCP and gRPC checks).
 */
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'

type CheckStatus = 'passing' | 'warning' | 'critical'

/** The agent's and servers' timing bounds, ms (see the header for the documentation they come from). */
export const CONSUL_BOUNDS = {
  sessionTtlMinMs: 10_000,
  sessionTtlMaxMs: 86_400_000,
  /** A session is invalidated at most this many TTLs after its last renew (and never before one TTL). */
  sessionTtlMultiplier: 2,
  lockDelayDefaultMs: 15_000,
  lockDelayMaxMs: 60_000,
  deregisterCriticalMinMs: 60_000,
  reapIntervalMs: 30_000,
} as const

/** Go's time.Duration formatting for the bounds quoted in error messages (10s, 24h0m0s, 1m0s, 100ms). */
function goDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`
  const h = Math.floor(ms / 3_600_000)
  const m = Math.floor((ms % 3_600_000) / 60_000)
  const sec = (ms % 60_000) / 1000
  return h > 0 ? `${h}h${m}m${sec}s` : m > 0 ? `${m}m${sec}s` : `${sec}s`
}

interface CheckRec {
  CheckID: string
  Name: string
  Status: CheckStatus
  Output: string
  ServiceID: string
  ServiceName: string
  Node: string
  ttlMs?: number
  deregisterAfterMs?: number
  /** When the check last turned critical (the reaper compares it with deregisterAfterMs). */
  criticalSince?: number
  timer?: NodeJS.Timeout
}

interface ServiceRec {
  ID: string
  Service: string
  Tags: string[]
  Address: string
  Port: number
  Meta: Record<string, string>
  node: string
}

interface SessionRec {
  ID: string
  Name: string
  TTL: string
  Behavior: 'release' | 'delete'
  LockDelay: number
  Node: string
  CreateIndex: number
  ModifyIndex: number
  timer?: NodeJS.Timeout
}

interface KvRec {
  Key: string
  Value: string | null
  Flags: number
  Session?: string
  LockIndex: number
  CreateIndex: number
  ModifyIndex: number
}

interface QueryRec {
  ID: string
  Name: string
  Service: {
    Service: string
    OnlyPassing: boolean
    Tags: string[]
    Failover: { NearestN: number; Datacenters: string[] }
  }
  CreateIndex: number
  ModifyIndex: number
}

class Datacenter {
  index = 1
  readonly services = new Map<string, ServiceRec>()
  readonly checks = new Map<string, CheckRec>()
  readonly sessions = new Map<string, SessionRec>()
  readonly kv = new Map<string, KvRec>()
  readonly queries = new Map<string, QueryRec>()
  /** Keys under lock-delay after their session was invalidated: key -> until (epoch ms). */
  readonly lockDelays = new Map<string, number>()
  /** Index of the last change per service name (health blocking queries), and of the KV. */
  readonly serviceIndex = new Map<string, number>()
  kvIndex = 1
  waiters: Array<() => void> = []
  constructor(
    readonly name: string,
    readonly node: string,
    readonly address: string,
  ) {}

  bump(service?: string): number {
    this.index++
    if (service !== undefined) this.serviceIndex.set(service, this.index)
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
    return this.index
  }
}

function durationMs(s: unknown): number | undefined {
  if (typeof s !== 'string' || s === '') return undefined
  const m = /^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)$/.exec(s)
  if (!m) return undefined
  const n = Number(m[1])
  const f: Record<string, number> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
  return n * (f[m[2]!] ?? 1)
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** A registered check's initial status: its Status if valid, else critical (the agent's default). */
function checkStatus(cd: Record<string, unknown>): CheckStatus {
  return (
    ['passing', 'warning', 'critical'].includes(String(cd.Status)) ? String(cd.Status) : 'critical'
  ) as CheckStatus
}

/** Why the agent refuses a check definition (CheckType.Validate's messages), or undefined. */
function checkProblem(cd: Record<string, unknown>): string | undefined {
  const given = (k: string): boolean => cd[k] !== undefined && cd[k] !== '' && cd[k] !== null
  const interval = durationMs(cd.Interval) ?? 0
  const ttl = durationMs(cd.TTL) ?? 0
  if (given('Interval') && durationMs(cd.Interval) === undefined)
    return `time: invalid duration ${JSON.stringify(String(cd.Interval))}`
  if (given('TTL') && durationMs(cd.TTL) === undefined)
    return `time: invalid duration ${JSON.stringify(String(cd.TTL))}`
  const intervalCheck = ['HTTP', 'TCP', 'UDP', 'GRPC', 'H2PING', 'Args', 'ScriptArgs'].some(given)
  if (interval > 0 && ttl > 0) return 'Interval and TTL cannot both be specified'
  if (intervalCheck && interval <= 0) return 'Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or gRPC checks'
  if (!intervalCheck && !given('AliasService') && !given('AliasNode') && ttl <= 0)
    return 'TTL must be > 0 for TTL checks'
  return undefined
}

/** The datacenters of a federation and the WAN between them. */
export class ConsulCluster {
  readonly dcs = new Map<string, Datacenter>()
  /** Datacenters cut off from the WAN (forwarded requests to or from them fail). */
  readonly partitioned = new Set<string>()
  private readonly agents: ConsulAgentDouble[] = []
  /** The bounds in force: CONSUL_BOUNDS, or divided by 100 with `fastTimingForTests`. */
  readonly bounds: { -readonly [K in keyof typeof CONSUL_BOUNDS]: number }
  private reaper: NodeJS.Timeout | undefined
  /**
   * `token`: the ACL token every request must carry. `fastTimingForTests`: divide Consul's timing bounds by 100,
   * for the few tests that watch a session expire or a critical service get reaped (see the header).
   */
  constructor(readonly opts: { token?: string; fastTimingForTests?: boolean } = {}) {
    const f = opts.fastTimingForTests === true ? 100 : 1
    this.bounds = {
      ...CONSUL_BOUNDS,
      sessionTtlMinMs: CONSUL_BOUNDS.sessionTtlMinMs / f,
      deregisterCriticalMinMs: CONSUL_BOUNDS.deregisterCriticalMinMs / f,
      reapIntervalMs: CONSUL_BOUNDS.reapIntervalMs / f,
    }
  }

  /** Starts the HTTP agent of datacenter `dc` (node `node-<dc>`). */
  async agent(dc: string): Promise<ConsulAgentDouble> {
    if (!this.dcs.has(dc)) this.dcs.set(dc, new Datacenter(dc, `node-${dc}`, '127.0.0.1'))
    const a = new ConsulAgentDouble(this, dc)
    await a.start()
    this.agents.push(a)
    this.reaper ??= setInterval(() => this.reap(), this.bounds.reapIntervalMs)
    return a
  }

  /** The agent's reaper: deregisters the service of every check critical for longer than its timeout. */
  private reap(): void {
    const now = Date.now()
    for (const dc of this.dcs.values()) {
      for (const c of [...dc.checks.values()]) {
        if (
          c.deregisterAfterMs === undefined ||
          c.criticalSince === undefined ||
          now - c.criticalSince <= c.deregisterAfterMs
        )
          continue
        const s = dc.services.get(c.ServiceID)
        if (!s) continue
        dc.services.delete(s.ID)
        for (const [cid, x] of dc.checks) {
          if (x.ServiceID !== s.ID) continue
          clearTimeout(x.timer)
          dc.checks.delete(cid)
        }
        dc.bump(s.Service)
      }
    }
  }

  stopped = false

  async stop(): Promise<void> {
    this.stopped = true
    clearInterval(this.reaper)
    for (const a of this.agents) await a.stop()
    for (const dc of this.dcs.values()) {
      for (const c of dc.checks.values()) clearTimeout(c.timer)
      for (const s of dc.sessions.values()) clearTimeout(s.timer)
      for (const w of dc.waiters) w()
      dc.waiters = []
    }
  }

  dc(name: string): Datacenter | undefined {
    return this.dcs.get(name)
  }
}

export class ConsulAgentDouble {
  url = ''
  readonly requests: Array<{ method: string; path: string; query: Record<string, string>; token: string | undefined }> =
    []
  private server: Server | undefined
  constructor(
    private readonly cluster: ConsulCluster,
    readonly datacenter: string,
  ) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => this.send(res, 500, String(err), 0))
    })
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    const a = this.server.address()
    this.url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`
  }

  get port(): number {
    return Number(new URL(this.url).port)
  }

  async stop(): Promise<void> {
    if (!this.server) return
    for (const dc of this.cluster.dcs.values()) {
      const w = dc.waiters
      dc.waiters = []
      for (const f of w) f()
    }
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server!.close(() => resolve()))
    this.server = undefined
  }

  private send(res: ServerResponse, status: number, body: unknown, index: number): void {
    if (res.headersSent) return
    const text = typeof body === 'string' ? body : JSON.stringify(body)
    res.writeHead(status, {
      'content-type': typeof body === 'string' ? 'text/plain' : 'application/json',
      'x-consul-index': String(index),
      'x-consul-knownleader': 'true',
      'x-consul-lastcontact': '0',
    })
    res.end(text)
  }

  private async body(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    return Buffer.concat(chunks).toString('utf8')
  }

  private json(text: string): Record<string, unknown> {
    if (text === '') return {}
    const v: unknown = JSON.parse(text)
    return isObj(v) ? v : {}
  }

  /** Blocks until `current()` passes `min` or the wait ends. */
  private async block(dc: Datacenter, min: number, waitMs: number, current: () => number): Promise<void> {
    const deadline = Date.now() + waitMs
    while (current() <= min && Date.now() < deadline && !this.cluster.stopped) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, deadline - Date.now())
        function done(): void {
          clearTimeout(t)
          resolve()
        }
        dc.waiters.push(done)
      })
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x')
    const q = Object.fromEntries(url.searchParams)
    const token = typeof req.headers['x-consul-token'] === 'string' ? req.headers['x-consul-token'] : q.token
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, query: q, token })
    const local = this.cluster.dc(this.datacenter)!
    if (this.cluster.opts.token && token !== this.cluster.opts.token)
      return this.send(res, 403, 'ACL not found', local.index)
    const dcName = q.dc ?? this.datacenter
    const dc = this.cluster.dc(dcName)
    if (
      !dc ||
      (dcName !== this.datacenter &&
        (this.cluster.partitioned.has(dcName) || this.cluster.partitioned.has(this.datacenter)))
    ) {
      return this.send(res, 500, `No path to datacenter`, local.index)
    }
    const p = url.pathname
    const method = req.method ?? 'GET'
    let m: RegExpExecArray | null
    const wait = durationMs(q.wait) ?? 300_000
    // Agent endpoints act on this agent's datacenter.
    if (method === 'PUT' && p === '/v1/agent/service/register')
      return this.register(res, local, this.json(await this.body(req)))
    if (method === 'PUT' && (m = /^\/v1\/agent\/service\/deregister\/(.+)$/.exec(p))) {
      const id = decodeURIComponent(m[1]!)
      if (!local.services.has(id))
        return this.send(
          res,
          404,
          `Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`,
          local.index,
        )
      this.deregister(local, id)
      return this.send(res, 200, '', local.index)
    }
    if (method === 'GET' && p === '/v1/agent/services') {
      const out: Record<string, unknown> = {}
      for (const s of local.services.values())
        out[s.ID] = {
          ID: s.ID,
          Service: s.Service,
          Tags: s.Tags,
          Address: s.Address,
          Port: s.Port,
          Meta: s.Meta,
          Datacenter: local.name,
        }
      return this.send(res, 200, out, local.index)
    }
    if (method === 'GET' && p === '/v1/agent/checks') {
      const out: Record<string, unknown> = {}
      for (const c of local.checks.values()) out[c.CheckID] = this.checkView(c)
      return this.send(res, 200, out, local.index)
    }
    if (method === 'PUT' && (m = /^\/v1\/agent\/check\/(pass|warn|fail|update)\/(.+)$/.exec(p))) {
      const id = decodeURIComponent(m[2]!)
      const c = local.checks.get(id)
      if (!c)
        return this.send(
          res,
          404,
          `Unknown check ID "${id}". Ensure that the check ID is passed, not the check name.`,
          local.index,
        )
      if (c.ttlMs === undefined) return this.send(res, 500, `CheckID "${id}" does not have associated TTL`, local.index)
      let status: CheckStatus
      let output = q.note ?? ''
      if (m[1] === 'update') {
        const b = this.json(await this.body(req))
        const s = String(b.Status ?? '')
        if (!['passing', 'warning', 'critical'].includes(s))
          return this.send(res, 400, `Invalid check status: "${s}"`, local.index)
        status = s as CheckStatus
        output = String(b.Output ?? '')
      } else status = m[1] === 'pass' ? 'passing' : m[1] === 'warn' ? 'warning' : 'critical'
      this.setStatus(local, c, status, output)
      this.armTtl(local, c)
      return this.send(res, 200, '', local.index)
    }
    if (method === 'GET' && (m = /^\/v1\/health\/service\/(.+)$/.exec(p))) {
      const name = decodeURIComponent(m[1]!)
      const cur = (): number => dc.serviceIndex.get(name) ?? 1
      if (q.index !== undefined) await this.block(dc, Number(q.index), wait, cur)
      return this.send(
        res,
        200,
        this.healthEntries(dc, name, q.passing !== undefined && q.passing !== 'false', q.tag),
        cur(),
      )
    }
    if (method === 'PUT' && p === '/v1/session/create') {
      const b = this.json(await this.body(req))
      const bounds = this.cluster.bounds
      // LockDelay: a Go duration string, or a number (nanoseconds; below 1000 taken as seconds, as the agent does).
      const lockDelay =
        b.LockDelay === undefined
          ? bounds.lockDelayDefaultMs
          : typeof b.LockDelay === 'number'
            ? b.LockDelay < 1000
              ? b.LockDelay * 1000
              : b.LockDelay / 1e6
            : durationMs(b.LockDelay)
      if (lockDelay === undefined)
        return this.send(
          res,
          400,
          `Request decode failed: time: invalid duration ${JSON.stringify(String(b.LockDelay))}`,
          dc.index,
        )
      if (lockDelay > bounds.lockDelayMaxMs)
        return this.send(
          res,
          500,
          `Session lock delay must be less than or equal to ${goDuration(bounds.lockDelayMaxMs)}`,
          dc.index,
        )
      const s: SessionRec = {
        ID: randomUUID(),
        Name: String(b.Name ?? ''),
        TTL: String(b.TTL ?? ''),
        Behavior: b.Behavior === 'delete' ? 'delete' : 'release',
        LockDelay: lockDelay,
        Node: dc.node,
        CreateIndex: 0,
        ModifyIndex: 0,
      }
      const ttl = durationMs(s.TTL)
      if (s.TTL !== '' && ttl === undefined)
        return this.send(res, 400, `Request decode failed: time: invalid duration ${JSON.stringify(s.TTL)}`, dc.index)
      // The server's check and message (HTTP 500, the TTL in nanoseconds, the bounds as Go durations).
      if (ttl !== undefined && ttl !== 0 && (ttl < bounds.sessionTtlMinMs || ttl > bounds.sessionTtlMaxMs)) {
        return this.send(
          res,
          500,
          `Invalid Session TTL '${Math.round(ttl * 1e6)}', must be between [${goDuration(bounds.sessionTtlMinMs)}=${goDuration(bounds.sessionTtlMaxMs)}]`,
          dc.index,
        )
      }
      s.CreateIndex = s.ModifyIndex = dc.bump()
      dc.sessions.set(s.ID, s)
      this.armSession(dc, s)
      return this.send(res, 200, { ID: s.ID }, dc.index)
    }
    if (method === 'PUT' && (m = /^\/v1\/session\/renew\/(.+)$/.exec(p))) {
      const s = dc.sessions.get(m[1]!)
      if (!s) return this.send(res, 404, `Session id '${m[1]}' not found`, dc.index)
      this.armSession(dc, s)
      return this.send(res, 200, [this.sessionView(s)], dc.index)
    }
    if (method === 'PUT' && (m = /^\/v1\/session\/destroy\/(.+)$/.exec(p))) {
      this.invalidate(dc, m[1]!)
      return this.send(res, 200, true, dc.index)
    }
    if (method === 'GET' && (m = /^\/v1\/session\/info\/(.+)$/.exec(p))) {
      const s = dc.sessions.get(m[1]!)
      return this.send(res, 200, s ? [this.sessionView(s)] : null, dc.index)
    }
    if ((m = /^\/v1\/kv\/(.*)$/.exec(p))) return this.kv(req, res, dc, decodeURIComponent(m[1]!), q, wait)
    if (p === '/v1/query' && method === 'POST') return this.createQuery(res, dc, this.json(await this.body(req)))
    if (p === '/v1/query' && method === 'GET') return this.send(res, 200, [...dc.queries.values()], dc.index)
    if ((m = /^\/v1\/query\/([^/]+)\/execute$/.exec(p)) && method === 'GET')
      return this.execute(res, dc, decodeURIComponent(m[1]!))
    if ((m = /^\/v1\/query\/([^/]+)$/.exec(p))) {
      const qr = dc.queries.get(m[1]!)
      if (!qr) return this.send(res, 404, 'Query not found', dc.index)
      if (method === 'DELETE') {
        dc.queries.delete(qr.ID)
        dc.bump()
        return this.send(res, 200, '', dc.index)
      }
      return this.send(res, 200, [qr], dc.index)
    }
    return this.send(res, 404, `Invalid URL path: ${p}`, local.index)
  }

  private checkView(c: CheckRec): Record<string, unknown> {
    return {
      Node: c.Node,
      CheckID: c.CheckID,
      Name: c.Name,
      Status: c.Status,
      Notes: '',
      Output: c.Output,
      ServiceID: c.ServiceID,
      ServiceName: c.ServiceName,
      Type: c.ttlMs !== undefined ? 'ttl' : '',
    }
  }

  private sessionView(s: SessionRec): Record<string, unknown> {
    return {
      ID: s.ID,
      Name: s.Name,
      Node: s.Node,
      TTL: s.TTL,
      Behavior: s.Behavior,
      LockDelay: s.LockDelay * 1e6,
      CreateIndex: s.CreateIndex,
      ModifyIndex: s.ModifyIndex,
    }
  }

  private register(res: ServerResponse, dc: Datacenter, b: Record<string, unknown>): void {
    const name = typeof b.Name === 'string' ? b.Name : ''
    if (name === '') return this.send(res, 400, 'Missing service name', dc.index)
    const defs = Array.isArray(b.Checks) ? b.Checks.filter(isObj) : isObj(b.Check) ? [b.Check] : []
    for (const cd of defs) {
      const problem = checkProblem(cd)
      if (problem) return this.send(res, 400, `Invalid check: ${problem}`, dc.index)
    }
    const id = typeof b.ID === 'string' && b.ID !== '' ? b.ID : name
    if (dc.services.has(id)) this.deregister(dc, id, false)
    const s: ServiceRec = {
      ID: id,
      Service: name,
      Tags: Array.isArray(b.Tags) ? b.Tags.map(String) : [],
      Address: typeof b.Address === 'string' ? b.Address : '',
      Port: Number(b.Port ?? 0),
      Meta: isObj(b.Meta) ? Object.fromEntries(Object.entries(b.Meta).map(([k, v]) => [k, String(v)])) : {},
      node: dc.node,
    }
    dc.services.set(id, s)
    defs.forEach((cd, i) => {
      const ttlMs = durationMs(cd.TTL)
      const deregisterAfter = durationMs(cd.DeregisterCriticalServiceAfter)
      const c: CheckRec = {
        CheckID:
          typeof cd.CheckID === 'string' ? cd.CheckID : defs.length > 1 ? `service:${id}:${i + 1}` : `service:${id}`,
        Name: typeof cd.Name === 'string' ? cd.Name : `Service '${name}' check`,
        // TTL checks start critical (Consul's default) unless a Status is given; others keep their Status.
        Status: checkStatus(cd),
        Output: '',
        ServiceID: id,
        ServiceName: name,
        Node: dc.node,
        ...(ttlMs !== undefined ? { ttlMs } : {}),
        // The agent raises a shorter timeout to its minimum (with a warning in its log), it does not refuse it.
        ...(deregisterAfter !== undefined && deregisterAfter > 0
          ? { deregisterAfterMs: Math.max(deregisterAfter, this.cluster.bounds.deregisterCriticalMinMs) }
          : {}),
        ...(checkStatus(cd) === 'critical' ? { criticalSince: Date.now() } : {}),
      }
      dc.checks.set(c.CheckID, c)
    })
    dc.bump(name)
    this.send(res, 200, '', dc.index)
  }

  private deregister(dc: Datacenter, id: string, bump = true): void {
    const s = dc.services.get(id)
    if (!s) return
    dc.services.delete(id)
    for (const [cid, c] of dc.checks) {
      if (c.ServiceID === id) {
        clearTimeout(c.timer)
        dc.checks.delete(cid)
      }
    }
    if (bump) dc.bump(s.Service)
  }

  private setStatus(dc: Datacenter, c: CheckRec, status: CheckStatus, output: string): void {
    const changed = c.Status !== status || c.Output !== output
    if (status === 'critical') c.criticalSince ??= Date.now()
    else delete c.criticalSince
    c.Status = status
    c.Output = output
    if (changed) dc.bump(c.ServiceName)
  }

  private armTtl(dc: Datacenter, c: CheckRec): void {
    clearTimeout(c.timer)
    if (c.ttlMs === undefined) return
    c.timer = setTimeout(() => this.setStatus(dc, c, 'critical', `TTL expired`), c.ttlMs)
  }

  private healthEntries(dc: Datacenter, name: string, passing: boolean, tag: string | undefined): unknown[] {
    const out: unknown[] = []
    for (const s of dc.services.values()) {
      if (s.Service !== name) continue
      if (tag !== undefined && !s.Tags.includes(tag)) continue
      const checks = [
        {
          Node: dc.node,
          CheckID: 'serfHealth',
          Name: 'Serf Health Status',
          Status: 'passing',
          Output: 'Agent alive and reachable',
          ServiceID: '',
          ServiceName: '',
        },
        ...[...dc.checks.values()].filter((c) => c.ServiceID === s.ID).map((c) => this.checkView(c)),
      ]
      if (passing && checks.some((c) => c.Status !== 'passing')) continue
      out.push({
        Node: { ID: randomUUID(), Node: dc.node, Address: dc.address, Datacenter: dc.name },
        Service: { ID: s.ID, Service: s.Service, Tags: s.Tags, Address: s.Address, Port: s.Port, Meta: s.Meta },
        Checks: checks,
      })
    }
    return out
  }

  private armSession(dc: Datacenter, s: SessionRec): void {
    clearTimeout(s.timer)
    const ttl = durationMs(s.TTL)
    if (ttl === undefined) return
    // The server arms its timer at TTL x SessionTTLMultiplier (2) on create and on every renew: a session whose
    // holder stopped renewing outlives its TTL, and a takeover must not count on less.
    s.timer = setTimeout(() => this.invalidate(dc, s.ID), ttl * this.cluster.bounds.sessionTtlMultiplier)
  }

  /**
   * Destroys a session (expiry or destroy); its locks are released (or their keys deleted, behavior delete) and
   * stay under the session's lock-delay: no session can acquire them before it has passed.
   */
  private invalidate(dc: Datacenter, id: string): void {
    const s = dc.sessions.get(id)
    if (!s) return
    clearTimeout(s.timer)
    dc.sessions.delete(id)
    const idx = dc.bump()
    for (const [k, e] of [...dc.kv]) {
      if (e.Session !== id) continue
      if (s.LockDelay > 0) dc.lockDelays.set(k, Date.now() + s.LockDelay)
      if (s.Behavior === 'delete') dc.kv.delete(k)
      else {
        delete e.Session
        e.ModifyIndex = idx
      }
      dc.kvIndex = idx
    }
  }

  private kvView(e: KvRec): Record<string, unknown> {
    return {
      Key: e.Key,
      Value: e.Value,
      Flags: e.Flags,
      LockIndex: e.LockIndex,
      CreateIndex: e.CreateIndex,
      ModifyIndex: e.ModifyIndex,
      ...(e.Session ? { Session: e.Session } : {}),
    }
  }

  private async kv(
    req: IncomingMessage,
    res: ServerResponse,
    dc: Datacenter,
    key: string,
    q: Record<string, string>,
    wait: number,
  ): Promise<void> {
    const method = req.method ?? 'GET'
    if (method === 'GET') {
      if (q.index !== undefined) await this.block(dc, Number(q.index), wait, () => dc.kvIndex)
      const list =
        q.recurse !== undefined
          ? [...dc.kv.values()].filter((e) => e.Key.startsWith(key)).sort((a, b) => a.Key.localeCompare(b.Key))
          : dc.kv.has(key)
            ? [dc.kv.get(key)!]
            : []
      if (list.length === 0) return this.send(res, 404, '', dc.kvIndex)
      if (q.raw !== undefined) {
        res.writeHead(200, { 'x-consul-index': String(dc.kvIndex) })
        res.end(Buffer.from(list[0]!.Value ?? '', 'base64'))
        return
      }
      return this.send(
        res,
        200,
        list.map((e) => this.kvView(e)),
        dc.kvIndex,
      )
    }
    if (method === 'DELETE') {
      const cur = dc.kv.get(key)
      if (q.cas !== undefined && Number(q.cas) !== (cur?.ModifyIndex ?? 0))
        return this.send(res, 200, false, dc.kvIndex)
      if (q.recurse !== undefined) {
        for (const k of [...dc.kv.keys()]) if (k.startsWith(key)) dc.kv.delete(k)
      } else dc.kv.delete(key)
      dc.kvIndex = dc.bump()
      return this.send(res, 200, true, dc.kvIndex)
    }
    if (method !== 'PUT') return this.send(res, 405, 'method not allowed', dc.kvIndex)
    const value = Buffer.from(await this.body(req), 'utf8').toString('base64')
    const cur = dc.kv.get(key)
    if (q.cas !== undefined && Number(q.cas) !== (cur?.ModifyIndex ?? 0)) return this.send(res, 200, false, dc.kvIndex)
    if (q.acquire !== undefined) {
      const s = dc.sessions.get(q.acquire)
      if (!s) return this.send(res, 500, `invalid session "${q.acquire}"`, dc.kvIndex)
      if (cur?.Session && cur.Session !== s.ID) return this.send(res, 200, false, dc.kvIndex)
      const delayedUntil = dc.lockDelays.get(key)
      if (delayedUntil !== undefined && Date.now() < delayedUntil) return this.send(res, 200, false, dc.kvIndex)
      dc.lockDelays.delete(key)
      const idx = dc.bump()
      const lockIndex = cur?.Session === s.ID ? cur.LockIndex : (cur?.LockIndex ?? 0) + 1
      dc.kv.set(key, {
        Key: key,
        Value: value,
        Flags: Number(q.flags ?? 0),
        Session: s.ID,
        LockIndex: lockIndex,
        CreateIndex: cur?.CreateIndex ?? idx,
        ModifyIndex: idx,
      })
      dc.kvIndex = idx
      return this.send(res, 200, true, dc.kvIndex)
    }
    if (q.release !== undefined) {
      if (!cur || cur.Session !== q.release) return this.send(res, 200, false, dc.kvIndex)
      const idx = dc.bump()
      const { Session: _released, ...rest } = cur
      dc.kv.set(key, { ...rest, Value: value, ModifyIndex: idx })
      dc.kvIndex = idx
      return this.send(res, 200, true, dc.kvIndex)
    }
    const idx = dc.bump()
    dc.kv.set(key, {
      Key: key,
      Value: value,
      Flags: Number(q.flags ?? 0),
      LockIndex: cur?.LockIndex ?? 0,
      CreateIndex: cur?.CreateIndex ?? idx,
      ModifyIndex: idx,
      ...(cur?.Session ? { Session: cur.Session } : {}),
    })
    dc.kvIndex = idx
    return this.send(res, 200, true, dc.kvIndex)
  }

  private createQuery(res: ServerResponse, dc: Datacenter, b: Record<string, unknown>): void {
    const svc = isObj(b.Service) ? b.Service : {}
    if (typeof svc.Service !== 'string' || svc.Service === '')
      return this.send(res, 400, 'Must provide a Service name to query', dc.index)
    const name = typeof b.Name === 'string' ? b.Name : ''
    if (name !== '' && [...dc.queries.values()].some((x) => x.Name === name))
      return this.send(res, 400, `name "${name}" aliases an existing query name`, dc.index)
    const fo = isObj(svc.Failover) ? svc.Failover : {}
    const idx = dc.bump()
    const qr: QueryRec = {
      ID: randomUUID(),
      Name: name,
      Service: {
        Service: svc.Service,
        OnlyPassing: svc.OnlyPassing === true,
        Tags: Array.isArray(svc.Tags) ? svc.Tags.map(String) : [],
        Failover: {
          NearestN: Number(fo.NearestN ?? 0),
          Datacenters: Array.isArray(fo.Datacenters) ? fo.Datacenters.map(String) : [],
        },
      },
      CreateIndex: idx,
      ModifyIndex: idx,
    }
    dc.queries.set(qr.ID, qr)
    this.send(res, 200, { ID: qr.ID }, dc.index)
  }

  /** Executes a prepared query: local datacenter first, then Failover.Datacenters in order. */
  private execute(res: ServerResponse, dc: Datacenter, idOrName: string): void {
    const qr = dc.queries.get(idOrName) ?? [...dc.queries.values()].find((x) => x.Name === idOrName)
    if (!qr) return this.send(res, 404, 'Query not found', dc.index)
    const pick = (d: Datacenter): unknown[] =>
      (
        this.healthEntries(d, qr.Service.Service, false, undefined) as Array<{
          Service: { Tags: string[] }
          Checks: Array<{ Status: string }>
        }>
      )
        .filter((e) =>
          qr.Service.Tags.every((t) =>
            t.startsWith('!') ? !e.Service.Tags.includes(t.slice(1)) : e.Service.Tags.includes(t),
          ),
        )
        .filter((e) =>
          qr.Service.OnlyPassing
            ? e.Checks.every((c) => c.Status === 'passing')
            : e.Checks.every((c) => c.Status !== 'critical'),
        )
    let nodes = pick(dc)
    let from = dc.name
    let failovers = 0
    if (nodes.length === 0) {
      for (const name of qr.Service.Failover.Datacenters) {
        const other = this.cluster.dc(name)
        failovers++
        if (!other || this.cluster.partitioned.has(name) || this.cluster.partitioned.has(dc.name)) continue
        nodes = pick(other)
        if (nodes.length > 0) {
          from = name
          break
        }
      }
    }
    this.send(
      res,
      200,
      { Service: qr.Service.Service, Nodes: nodes, DNS: { TTL: '' }, Datacenter: from, Failovers: failovers },
      dc.index,
    )
  }
}
