/**
 * Discovery of a site's dependencies: the NATS URLs of the site, its PostgreSQL, the peer site's leafnode URLs and
 * gateway, and whether the peer is healthy. Two implementations behind one interface:
 * - `staticDiscovery(topology, site)`: from sites/ (the embedded default; no Consul needed);
 * - `ConsulDiscovery`: through the `consul` npm client: health queries with ?passing and ?dc, blocking queries
 *   (X-Consul-Index) for watches, the pitwall-gateway prepared query (nearest healthy site, failover to the
 *   peer), TTL checks, and sessions + KV acquire/release for locks (the failover controller's).
 */
import { EventEmitter } from 'node:events'
import Consul from 'consul'
import { clientUrls, peerOf, siteOf, type Topology } from '../sites/topology.js'
import { DiscoveryError, DiscoveryErrorCodes } from './errors.js'
import type { PreparedQueryDef } from './queries.js'
import { GATEWAY_QUERY, SERVICES } from './services.js'

/** What workers, projectors, gateways and the failover controller ask. */
export interface Discovery {
  readonly kind: 'static' | 'consul'
  /** NATS client URLs of this site (comma-joined form for PITWALL_NATS_URL: `.join(',')`). */
  natsUrls(): Promise<string[]>
  /** PostgreSQL URL of this site. */
  pgUrl(): Promise<string>
  /** Leafnode URLs of the peer site (what this site dials). */
  peerLeafUrls(): Promise<string[]>
  /**
   * Whether the peer site is healthy by its service health: true / false, or null when this discovery cannot
   * know (static). The failover controller combines it with the state of the leafnode link.
   */
  peerHealthy(dc?: string): Promise<boolean | null>
  /** Calls `onChange` with the site's NATS URLs now and whenever they change; returns a stop function. */
  watchNats(onChange: (urls: string[]) => void, onError?: (err: Error) => void): () => void
  close(): void
}

/** Static discovery from the sites/ topology. */
export function staticDiscovery(topo: Topology, site: string): Discovery {
  const s = siteOf(topo, site)
  const peer = peerOf(topo, site)
  const urls = clientUrls(s).split(',')
  return {
    kind: 'static',
    natsUrls: async () => urls,
    pgUrl: async () => s.pgUrl,
    peerLeafUrls: async () => peer.members.map((m) => `nats-leaf://${m.host}:${m.leafnodePort}`),
    peerHealthy: async () => null,
    watchNats(onChange) {
      onChange(urls)
      return () => undefined
    },
    close: () => undefined,
  }
}

/** Discovery modes: `static` (sites/, the embedded default) or `consul`. */
export type DiscoveryMode = 'static' | 'consul'

/**
 * The discovery of `site` for `mode` (e.g. from PITWALL_DISCOVERY, validated by the caller's config): static from
 * the topology, or Consul at CONSUL_HTTP_ADDR / CONSUL_HTTP_TOKEN with the topology's datacenters.
 */
export function createDiscovery(mode: string, topo: Topology, site: string, env: NodeJS.ProcessEnv): Discovery {
  if (mode === 'static') return staticDiscovery(topo, site)
  if (mode === 'consul') return new ConsulDiscovery(consulOptionsFromTopology(topo, site, env))
  throw new DiscoveryError(DiscoveryErrorCodes.CONFIG, `discovery: 'static' or 'consul', got ${JSON.stringify(mode)}`)
}

export interface ConsulDiscoveryOptions {
  /** Consul HTTP address, e.g. http://127.0.0.1:8500 (CONSUL_HTTP_ADDR). */
  address: string
  /** ACL token (CONSUL_HTTP_TOKEN). */
  token?: string
  /** Consul datacenter of this site. */
  datacenter: string
  /** Consul datacenter of the peer site. */
  peerDatacenter: string
  /** PostgreSQL user and database of this site (the address comes from Consul). */
  pgUser: string
  pgDatabase: string
  /** Longest blocking query of a watch, ms (default 5 min). */
  watchWaitMs?: number
}

/** Options from CONSUL_HTTP_ADDR / CONSUL_HTTP_TOKEN and the topology's datacenters. */
export function consulOptionsFromTopology(
  topo: Topology,
  site: string,
  env: NodeJS.ProcessEnv,
): ConsulDiscoveryOptions {
  const s = siteOf(topo, site)
  const u = new URL(s.pgUrl)
  const addr = env.CONSUL_HTTP_ADDR ?? 'http://127.0.0.1:8500'
  const o: ConsulDiscoveryOptions = {
    address: /^https?:\/\//.test(addr) ? addr : `http://${addr}`,
    datacenter: s.consulDatacenter,
    peerDatacenter: peerOf(topo, site).consulDatacenter,
    pgUser: decodeURIComponent(u.username) || 'postgres',
    pgDatabase: u.pathname.replace(/^\//, '') || 'postgres',
  }
  if (env.CONSUL_HTTP_TOKEN) o.token = env.CONSUL_HTTP_TOKEN
  return o
}

/**
 * Options from the environment alone, for processes that have no topology at hand (the site controller in its
 * Nomad job): CONSUL_HTTP_ADDR (default http://127.0.0.1:8500), CONSUL_HTTP_TOKEN, PITWALL_CONSUL_DATACENTER,
 * PITWALL_PEER_CONSUL_DATACENTER (both required), user and database from PITWALL_PG_URL when set.
 */
export function consulOptionsFromEnv(env: NodeJS.ProcessEnv): ConsulDiscoveryOptions {
  const need = (name: string): string => {
    const v = env[name]
    if (v === undefined || !/^[A-Za-z0-9_-]{1,64}$/.test(v)) {
      throw new DiscoveryError(
        DiscoveryErrorCodes.CONFIG,
        `${name}: a Consul datacenter name is required with PITWALL_DISCOVERY=consul, got ${JSON.stringify(v ?? null)}`,
      )
    }
    return v
  }
  const addr = env.CONSUL_HTTP_ADDR ?? 'http://127.0.0.1:8500'
  let pgUser = 'postgres'
  let pgDatabase = 'postgres'
  if (env.PITWALL_PG_URL) {
    try {
      const u = new URL(env.PITWALL_PG_URL)
      pgUser = decodeURIComponent(u.username) || pgUser
      pgDatabase = u.pathname.replace(/^\//, '') || pgDatabase
    } catch {
      throw new DiscoveryError(DiscoveryErrorCodes.CONFIG, 'PITWALL_PG_URL: not a URL')
    }
  }
  const o: ConsulDiscoveryOptions = {
    address: /^https?:\/\//.test(addr) ? addr : `http://${addr}`,
    datacenter: need('PITWALL_CONSUL_DATACENTER'),
    peerDatacenter: need('PITWALL_PEER_CONSUL_DATACENTER'),
    pgUser,
    pgDatabase,
  }
  if (env.CONSUL_HTTP_TOKEN) o.token = env.CONSUL_HTTP_TOKEN
  return o
}

/**
 * The site controller's Consul health source (cmd/controller.ts): with PITWALL_DISCOVERY=consul, a
 * `peerHealthy` that resolves true while the peer datacenter has a passing pitwall-nats instance and false when
 * it has none or cannot be reached (WAN down); errors of the local agent resolve false too (the controller then
 * relies on its other probes, which have failed as well when it asks). Unset or `static`: none (null).
 */
export function peerHealthFromEnv(
  env: NodeJS.ProcessEnv,
): { discovery: ConsulDiscovery; peerHealthy: () => Promise<boolean> } | null {
  const mode = env.PITWALL_DISCOVERY ?? 'static'
  if (mode === 'static') return null
  if (mode !== 'consul')
    throw new DiscoveryError(
      DiscoveryErrorCodes.CONFIG,
      `PITWALL_DISCOVERY: 'static' or 'consul', got ${JSON.stringify(mode)}`,
    )
  const discovery = new ConsulDiscovery(consulOptionsFromEnv(env))
  return { discovery, peerHealthy: async () => await discovery.peerHealthy().catch(() => false) }
}

/** One instance from /v1/health/service. */
export interface ServiceEntry {
  Node: { Node: string; Address: string; Datacenter?: string }
  Service: {
    ID: string
    Service: string
    Tags: string[] | null
    Address: string
    Port: number
    Meta?: Record<string, string> | null
  }
  Checks: Array<{
    CheckID: string
    Name: string
    Status: 'passing' | 'warning' | 'critical'
    ServiceID: string
    Output?: string
  }>
}

export interface PreparedQueryResult {
  Service: string
  Nodes: ServiceEntry[]
  Datacenter: string
  Failovers: number
}

/** A service this process registers with its local agent, health by a TTL check it must keep passing. */
export interface TtlService {
  name: string
  id: string
  port: number
  address?: string
  tags?: string[]
  /** TTL of the check, e.g. "10s"; without a pass within it the check turns critical. */
  ttl: string
  /** Deregister after being critical this long (Consul's DeregisterCriticalServiceAfter), e.g. "1m". */
  deregisterAfter?: string
}

/** A held lock: a session with a TTL renewed in the background, and the KV key acquired with it. */
export interface Lock {
  key: string
  session: string
  /** Releases the key and destroys the session. */
  release(): Promise<void>
}

const addressOf = (e: ServiceEntry): string => (e.Service.Address !== '' ? e.Service.Address : e.Node.Address)

/**
 * The request context the `consul` client (papi) accepts: an EventEmitter (emit 'cancel' aborts the request)
 * whose `includeResponse` makes calls resolve to [response, body], so X-Consul-Index is readable.
 */
type RequestCtx = EventEmitter & { includeResponse: true }
const requestCtx = (): RequestCtx => Object.assign(new EventEmitter(), { includeResponse: true as const })
type WithResponse = { ctx: RequestCtx }
type RawResponse = { headers: Record<string, string | undefined> }

/** The `consul` client's calls with the raw response (for X-Consul-Index): its documented `ctx.includeResponse`. */
interface HealthWithResponse {
  service(
    o: {
      service: string
      passing?: boolean
      dc?: string
      index?: string
      wait?: string
      timeout?: number
    } & WithResponse,
  ): Promise<[RawResponse, ServiceEntry[]]>
}

/** Discovery through Consul. */
export class ConsulDiscovery implements Discovery {
  readonly kind = 'consul'
  readonly consul: Consul
  private readonly renewals = new Set<NodeJS.Timeout>()
  private readonly watches = new Set<() => void>()

  constructor(readonly opts: ConsulDiscoveryOptions) {
    const u = new URL(opts.address)
    if (!['http:', 'https:'].includes(u.protocol))
      throw new DiscoveryError(
        DiscoveryErrorCodes.CONFIG,
        `CONSUL_HTTP_ADDR: http(s) URL expected, got ${opts.address}`,
      )
    this.consul = new Consul({
      host: u.hostname,
      port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)),
      secure: u.protocol === 'https:',
      ...(opts.token ? { defaults: { token: opts.token } } : {}),
    })
  }

  private async call<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f()
    } catch (err) {
      throw new DiscoveryError(
        DiscoveryErrorCodes.CONSUL,
        `consul ${what}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err, retryable: true },
      )
    }
  }

  /** Instances of `service` (only passing ones unless `passing` is false) in `dc` (default: this site's). */
  async health(service: string, o: { dc?: string; passing?: boolean } = {}): Promise<ServiceEntry[]> {
    return (await this.healthBlocking(service, { ...o, index: undefined })).entries
  }

  /**
   * A blocking health query: returns when the service's health index moves past `index` (a change) or after
   * `waitMs` (same index, same answer). Pass the returned index to the next call.
   */
  async healthBlocking(
    service: string,
    o: { dc?: string; passing?: boolean; index: string | undefined; waitMs?: number; ctx?: RequestCtx },
  ): Promise<{ entries: ServiceEntry[]; index: string }> {
    const health = this.consul.health as unknown as HealthWithResponse
    const q: Parameters<HealthWithResponse['service']>[0] = {
      service,
      passing: o.passing ?? true,
      dc: o.dc ?? this.opts.datacenter,
      ctx: o.ctx ?? requestCtx(),
    }
    if (o.index !== undefined) {
      const waitMs = o.waitMs ?? this.opts.watchWaitMs ?? 300_000
      q.index = o.index
      q.wait = `${Math.max(1, Math.round(waitMs))}ms`
      // Consul adds up to wait/16 of jitter.
      q.timeout = Math.ceil(waitMs + waitMs / 16 + 5_000)
    }
    const [res, entries] = await this.call(`health ${service}`, () => health.service(q))
    return { entries: entries ?? [], index: res.headers['x-consul-index'] ?? '0' }
  }

  async natsUrls(): Promise<string[]> {
    const e = await this.health(SERVICES.nats)
    if (e.length === 0)
      throw new DiscoveryError(
        DiscoveryErrorCodes.NO_INSTANCE,
        `no passing ${SERVICES.nats} in ${this.opts.datacenter}`,
        { retryable: true },
      )
    return e.map((x) => `nats://${addressOf(x)}:${x.Service.Port}`)
  }

  async pgUrl(): Promise<string> {
    const e = await this.health(SERVICES.postgres)
    const first = e[0]
    if (!first)
      throw new DiscoveryError(
        DiscoveryErrorCodes.NO_INSTANCE,
        `no passing ${SERVICES.postgres} in ${this.opts.datacenter}`,
        { retryable: true },
      )
    return `postgres://${encodeURIComponent(this.opts.pgUser)}@${addressOf(first)}:${first.Service.Port}/${this.opts.pgDatabase}`
  }

  async peerLeafUrls(): Promise<string[]> {
    const e = await this.health(SERVICES.natsLeaf, { dc: this.opts.peerDatacenter })
    return e.map((x) => `nats-leaf://${addressOf(x)}:${x.Service.Port}`)
  }

  /**
   * The peer site is healthy when its NATS servers have a passing instance in the peer datacenter. An unreachable
   * peer datacenter (WAN down: "No path to datacenter") counts as unhealthy; an unreachable local agent throws.
   */
  async peerHealthy(dc = this.opts.peerDatacenter): Promise<boolean> {
    try {
      return (await this.health(SERVICES.nats, { dc })).length > 0
    } catch (err) {
      if (err instanceof DiscoveryError && /no path to datacenter|rpc error/i.test(err.message)) return false
      throw err
    }
  }

  /** The nearest healthy gateway: executes the prepared query (it fails over to the peer datacenter). */
  async gateway(): Promise<PreparedQueryResult> {
    return (await this.call('query execute', () =>
      this.consul.query.execute({ query: GATEWAY_QUERY, near: '_agent' } as never),
    )) as PreparedQueryResult
  }

  watchNats(onChange: (urls: string[]) => void, onError?: (err: Error) => void): () => void {
    return this.watch(
      SERVICES.nats,
      {},
      (e) => onChange(e.map((x) => `nats://${addressOf(x)}:${x.Service.Port}`)),
      onError,
    )
  }

  /**
   * Watches a service's passing instances with blocking queries: `onChange` now and after every change of the
   * set (not on wait timeouts). Errors back off (1 s doubling to 30 s). Returns a stop function.
   */
  watch(
    service: string,
    o: { dc?: string },
    onChange: (entries: ServiceEntry[]) => void,
    onError?: (err: Error) => void,
  ): () => void {
    let stopped = false
    let ctx: RequestCtx | undefined
    let index: string | undefined
    let last = ''
    let backoff = 1000
    const loop = async (): Promise<void> => {
      while (!stopped) {
        try {
          ctx = requestCtx()
          const r = await this.healthBlocking(service, {
            ...o,
            index: index ?? '0',
            ctx,
            ...(index === undefined ? { waitMs: 1 } : {}),
          })
          if (stopped) return
          // A lower index means the agent restarted: start over (Consul's documented reset rule).
          index = BigInt(r.index) < BigInt(index ?? '0') ? '0' : r.index
          const key = JSON.stringify(r.entries.map((e) => [e.Service.ID, addressOf(e), e.Service.Port]).sort())
          if (key !== last) {
            last = key
            onChange(r.entries)
          }
          backoff = 1000
        } catch (err) {
          if (stopped) return
          onError?.(err instanceof Error ? err : new Error(String(err)))
          await new Promise((r) => setTimeout(r, backoff))
          backoff = Math.min(backoff * 2, 30_000)
        }
      }
    }
    void loop()
    const stop = (): void => {
      stopped = true
      // Aborts the blocking query in flight.
      ctx?.emit('cancel')
      this.watches.delete(stop)
    }
    this.watches.add(stop)
    return stop
  }

  /** Registers a service with the local agent, with a TTL check `service:<id>`. */
  async register(s: TtlService): Promise<void> {
    await this.call(`register ${s.id}`, () =>
      this.consul.agent.service.register({
        name: s.name,
        id: s.id,
        port: s.port,
        tags: s.tags ?? [],
        ...(s.address ? { address: s.address } : {}),
        check: {
          checkid: `service:${s.id}`,
          name: `${s.name} TTL`,
          ttl: s.ttl,
          ...(s.deregisterAfter ? { deregistercriticalserviceafter: s.deregisterAfter } : {}),
        } as never,
      }),
    )
  }

  async deregister(id: string): Promise<void> {
    await this.call(`deregister ${id}`, () => this.consul.agent.service.deregister(id))
  }

  /** Marks a TTL check passing (or failing) until its TTL runs out. */
  async ttl(checkId: string, status: 'pass' | 'warn' | 'fail', note?: string): Promise<void> {
    const c = this.consul.agent.check
    const o = note ? { id: checkId, note } : { id: checkId }
    await this.call(`check ${status} ${checkId}`, () =>
      status === 'pass' ? c.pass(o) : status === 'warn' ? c.warn(o) : c.fail(o),
    )
  }

  /**
   * Acquires `key` with a new session (TTL `ttl`, 10s..24h, renewed every ttl/2; released on session loss,
   * behavior `release`, with lock-delay `lockDelay`, default 1s). Throws PW_LOCK_HELD when the key is held by
   * another session, or still under the lock-delay of a session that was invalidated holding it; with `waitMs`,
   * retries (every `retryMs`, default 250 ms) for that long first.
   *
   * Takeover timing under Consul's rules (https://developer.hashicorp.com/consul/api-docs/session): a holder that
   * stops renewing keeps the lock until the agent invalidates its session, at one to two TTLs after the last
   * renew, and then nobody gets it for the lock-delay: a takeover happens at most 2 x ttl + lockDelay after the
   * holder's last renew (`lockTakeoverBoundMs`), and never earlier than ttl + lockDelay.
   */
  async lock(
    key: string,
    o: { ttl?: string; lockDelay?: string; value?: string; name?: string; waitMs?: number; retryMs?: number } = {},
  ): Promise<Lock> {
    const ttl = o.ttl ?? '15s'
    const lockdelay = o.lockDelay ?? '1s'
    parseDurationMs(ttl)
    parseDurationMs(lockdelay)
    const created = (await this.call('session create', () =>
      this.consul.session.create({ name: o.name ?? `pitwall lock ${key}`, ttl, behavior: 'release', lockdelay }),
    )) as { ID: string }
    const session = created.ID
    const deadline = Date.now() + (o.waitMs ?? 0)
    let ok = false
    for (;;) {
      ok = (await this.call(`kv acquire ${key}`, () =>
        this.consul.kv.set({ key, value: o.value ?? session, acquire: session }),
      )) as boolean
      if (ok || Date.now() >= deadline) break
      await new Promise((r) => setTimeout(r, Math.min(o.retryMs ?? 250, Math.max(1, deadline - Date.now()))))
    }
    if (!ok) {
      await this.call('session destroy', () => this.consul.session.destroy(session))
      throw new DiscoveryError(
        DiscoveryErrorCodes.LOCK_HELD,
        `${key} is held by another session (or under the lock-delay of one that lost it)`,
        { retryable: true },
      )
    }
    const ms = Math.max(500, parseDurationMs(ttl) / 2)
    const timer = setInterval(() => {
      this.consul.session.renew(session).catch(() => undefined)
    }, ms)
    timer.unref()
    this.renewals.add(timer)
    let released = false
    return {
      key,
      session,
      release: async () => {
        if (released) return
        released = true
        clearInterval(timer)
        this.renewals.delete(timer)
        await this.call(`kv release ${key}`, () => this.consul.kv.set({ key, value: '', release: session }))
        await this.call('session destroy', () => this.consul.session.destroy(session))
      },
    }
  }

  /**
   * Creates the prepared queries in this datacenter, replacing same-named ones (delete + create: a query's name
   * is unique, so the replacement is never ambiguous). Plain HTTP instead of the npm client here: its
   * query.create moves the ACL token into the query's stored `Token` (the request itself then goes without one)
   * and cannot set `Service.Near`.
   */
  async ensurePreparedQueries(defs: PreparedQueryDef[]): Promise<string[]> {
    const http = async (method: string, path: string, body?: unknown): Promise<unknown> => {
      const headers: Record<string, string> = { 'content-type': 'application/json' }
      if (this.opts.token) headers['x-consul-token'] = this.opts.token
      const init: RequestInit = { method, headers, signal: AbortSignal.timeout(30_000) }
      if (body !== undefined) init.body = JSON.stringify(body)
      const r = await this.call(`${method} ${path}`, () =>
        fetch(new URL(`/v1${path}?dc=${encodeURIComponent(this.opts.datacenter)}`, this.opts.address), init),
      )
      const text = await r.text()
      if (!r.ok)
        throw new DiscoveryError(DiscoveryErrorCodes.CONSUL, `consul ${method} ${path}: HTTP ${r.status}: ${text}`, {
          retryable: r.status >= 500,
        })
      return text === '' ? null : (JSON.parse(text) as unknown)
    }
    const existing = ((await http('GET', '/query')) ?? []) as Array<{ ID: string; Name: string }>
    const ids: string[] = []
    for (const d of defs) {
      for (const e of existing.filter((x) => x.Name === d.Name))
        await http('DELETE', `/query/${encodeURIComponent(e.ID)}`)
      const r = (await http('POST', '/query', d)) as { ID: string }
      ids.push(r.ID)
    }
    return ids
  }

  close(): void {
    for (const stop of [...this.watches]) stop()
    for (const t of this.renewals) clearInterval(t)
    this.renewals.clear()
    this.consul.destroy()
  }
}

/**
 * The longest a lock taken with `lock(key, { ttl, lockDelay })` stays unavailable after its holder's last renew:
 * the agent invalidates the session at most 2 x TTL later, then the lock-delay runs.
 */
export function lockTakeoverBoundMs(ttl: string, lockDelay = '1s'): number {
  return 2 * parseDurationMs(ttl) + parseDurationMs(lockDelay)
}

function parseDurationMs(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s)
  if (!m) throw new DiscoveryError(DiscoveryErrorCodes.CONFIG, `bad duration '${s}' (e.g. 15s)`)
  const n = Number(m[1])
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000
}
