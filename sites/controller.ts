/**
 * The failover controller of one site (docs/sites.md, "Failover"). Every `checkMs` it probes the peer: its
 * JetStream API over the leafnode link (`$JS.<peer domain>.API`) and, when configured, the peer controller's
 * HTTP health URL (or Consul health, through `peerHealthy`). When every probe has failed for `failoverAfterMs`,
 * it takes over the peer's partitions (actors/handover.ts `takeOver`). It never fails back by itself: failback
 * is an operator's decision (`pitwall site failback`), made when the returned site has caught up.
 *
 * It also serves `/healthz` (the peer probes it), `/status` (JSON) and `/metrics` (METRICS.site*), and the operator
 * commands `POST /failover` and `POST /failback` (body `{"by", "reason"}`; the console reaches them through the
 * gateway, which checks the caller is an admin and audits the command). A command runs the same code as
 * `pitwall site failover|failback` (site-cli.ts failoverCommand/failbackCommand), one at a time; its report lines,
 * state and result are in `/status` under `operation` while it runs and after. With a command token set, a command
 * without `Authorization: Bearer <token>` is refused (401).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { jetstreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import type { NatsConnection } from '@nats-io/transport-node'
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import {
  checkDeployment,
  METRICS,
  peerMapGate,
  peerStreams,
  type RuntimeConfig,
  type SiteMap,
  SiteMapView,
  SITE_ROLES,
  siteRole,
  type SiteRole,
  StrayRelay,
  takeOver,
  type MoveResult,
} from '../actors/mod.js'
import { peerReachable } from './servers.js'
import { failbackCommand, failoverCommand, waitProcessing } from './site-cli.js'

export interface ControllerOptions {
  nc: NatsConnection
  cfg: RuntimeConfig
  /** Probe period. */
  checkMs?: number
  /**
   * How long one probe (the link's JetStream request, the health URL) may take; default min(1 s, checkMs). Over a
   * WAN, an HTTP probe needs two round trips (connect, request): set it above twice the round trip time.
   */
  probeTimeoutMs?: number
  /** Peer down (link and health) this long -> failover. 0 disables automatic failover. */
  failoverAfterMs?: number
  /** The peer controller's health URL (e.g. http://127.0.0.1:9481/healthz); unset: link only. */
  peerHealthUrl?: string
  /** Extra health source (Consul): resolves false when the peer datacenter has no passing instance. */
  peerHealthy?: () => Promise<boolean>
  /** HTTP port for /healthz, /status, /metrics (0: any; unset: none). */
  port?: number
  /**
   * Run this site's stray relay (actors/relay.ts): readings devices sent here for partitions the peer owns are
   * forwarded to it. Default true; one controller per site runs it.
   */
  relay?: boolean
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void
  /** Required in `Authorization: Bearer` by POST /failover and /failback when set (PITWALL_CONTROLLER_COMMAND_TOKEN). */
  commandToken?: string
  /** The failback's grace, release timeout and the wait for processing, as `pitwall site failback` defaults them. */
  commandTimings?: { graceMs?: number; timeoutMs?: number; waitMs?: number }
}

/** An operator command (POST /failover or /failback) and its progress, as `/status` reports it. */
export interface SiteOperation {
  id: string
  command: 'failover' | 'failback'
  by: string
  reason: string
  startedAt: number
  finishedAt?: number
  state: 'running' | 'succeeded' | 'failed'
  /** The exit code `pitwall site` would return (0 ok, 1 failed or timed out). */
  exitCode?: number
  error?: string
  /** The report lines `pitwall site` prints, as they come (the first 200). */
  lines: string[]
}

const OPERATION_LINES = 200
const COMMAND_BODY_BYTES = 4_096

export interface SiteStatus {
  site: string
  peer: string
  epoch: number
  role: SiteRole
  owned: number[]
  peerOwned: number[]
  peerLinkUp: boolean
  peerDownForMs: number
  mirrorLag: Record<string, number>
  failovers: number
  /** The last failover; `processingAgainMs`: from its start until every moved partition was processed again. */
  lastMove?: MoveResult & { at: number; processingAgainMs?: number }
  /** The stray relay: readings sent here for the peer's partitions, forwarded (undefined until it runs). */
  relay?: { active: number; forwarded: number; failures: number }
  /** The last operator command, running or finished. */
  operation?: SiteOperation
}

async function httpOk(url: string, timeoutMs: number): Promise<boolean> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
    return r.ok
  } catch {
    return false
  }
}

export class SiteController {
  private readonly o: ControllerOptions
  private readonly cfg: RuntimeConfig
  private view: SiteMapView | undefined
  private timer: NodeJS.Timeout | undefined
  private server: Server | undefined
  private downSince: number | undefined
  private linkUp = true
  private failovers = 0
  private lastMove: (MoveResult & { at: number; processingAgainMs?: number }) | undefined
  private moving: Promise<unknown> | undefined
  private mirrorLag: Record<string, number> = {}
  private relay: StrayRelay | undefined
  private relayStarting: Promise<void> | undefined
  private stopped = false
  private operation: SiteOperation | undefined
  private operationRun: Promise<void> | undefined
  readonly registry = new Registry()
  port = 0

  constructor(o: ControllerOptions) {
    if (!o.cfg.peer) throw new Error('the site controller needs a peer site (PITWALL_PEER_SITE)')
    this.o = o
    this.cfg = o.cfg
    const labels = { site: o.cfg.site }
    this.registry.setDefaultLabels({ ...labels, service: 'controller' })
    collectDefaultMetrics({ register: this.registry })
    const self = (): SiteController => this
    new Gauge({
      name: METRICS.siteEpoch,
      help: 'Epoch of the effective site map.',
      registers: [this.registry],
      collect() {
        this.set(self().map().epoch)
      },
    })
    new Gauge({
      name: METRICS.sitePeerLinkUp,
      help: '1 when the peer site answers over the leafnode link.',
      registers: [this.registry],
      collect() {
        this.set(self().linkUp ? 1 : 0)
      },
    })
    new Gauge({
      name: METRICS.sitePartitionsOwned,
      help: 'Partitions the effective site map gives to this site.',
      registers: [this.registry],
      collect() {
        this.set(
          self()
            .map()
            .owners.filter((s) => s === self().cfg.site).length,
        )
      },
    })
    new Gauge({
      name: METRICS.siteRole,
      help: "1 for the current role of this site (normal, survivor: holds the peer's home partitions, degraded: lost its own).",
      labelNames: ['role'],
      registers: [this.registry],
      collect() {
        const role = self().role()
        for (const r of SITE_ROLES) this.set({ role: r }, r === role ? 1 : 0)
      },
    })
    new Gauge({
      name: METRICS.siteMirrorLag,
      help: 'Messages the local mirror of a peer stream is behind (as last reported by the server).',
      labelNames: ['stream'],
      registers: [this.registry],
      collect() {
        for (const [s, v] of Object.entries(self().mirrorLag)) this.set({ stream: s }, v)
      },
    })
    new Gauge({
      name: METRICS.siteStrayPartitions,
      help: 'Partitions whose stray readings (sent to this site, owned by the peer) the relay is forwarding now.',
      registers: [this.registry],
      collect() {
        this.set(self().relay?.stats.active ?? 0)
      },
    })
    let forwarded = 0
    new Counter({
      name: METRICS.siteStraysForwarded,
      help: 'Readings sent to this site for partitions the peer owns, forwarded to the peer by the stray relay.',
      registers: [this.registry],
      collect() {
        const n = self().relay?.stats.forwarded ?? 0
        if (n > forwarded) this.inc(n - forwarded)
        forwarded = n
      },
    })
    let relayFailures = 0
    new Counter({
      name: METRICS.siteStrayRelayFailures,
      help: 'Stray relay batches that failed to forward (retried) or lanes that stopped.',
      registers: [this.registry],
      collect() {
        const n = self().relay?.stats.failures ?? 0
        if (n > relayFailures) this.inc(n - relayFailures)
        relayFailures = n
      },
    })
    let seen = 0
    new Counter({
      name: METRICS.siteFailovers,
      help: 'Automatic and operator failovers performed by this site.',
      registers: [this.registry],
      collect() {
        const n = self().failovers
        if (n > seen) this.inc(n - seen)
        seen = n
      },
    })
  }

  private map(): SiteMap {
    return this.view?.map ?? { epoch: 0, owners: [], since: [], at: 0, reason: 'initial' }
  }

  private role(): SiteRole {
    return siteRole(this.map(), this.cfg.site, this.cfg.homePartitions)
  }

  async start(): Promise<void> {
    const jsm = await jetstreamManager(this.o.nc)
    await checkDeployment(this.o.nc, jsm, this.cfg)
    const kv = await new Kvm(this.o.nc).open(this.cfg.streams.stateBucket)
    this.view = new SiteMapView(this.cfg, kv, jsm)
    await this.view.refresh()
    this.timer = setInterval(() => void this.tick(), this.o.checkMs ?? 500)
    if (this.o.port !== undefined) await this.serve(this.o.port)
    if (this.o.relay !== false) this.relayStarting = this.startRelay(jsm, kv)
  }

  /** The stray relay starts once the peer-map gate is open: a site coming back must not act on its old map. */
  private async startRelay(
    jsm: Awaited<ReturnType<typeof jetstreamManager>>,
    kv: Awaited<ReturnType<Kvm['open']>>,
  ): Promise<void> {
    let waitedLogged = 0
    while (!this.stopped) {
      const gate = await peerMapGate(this.o.nc, jsm, kv, this.cfg).catch(() => ({
        open: false,
        reason: 'timeout' as const,
      }))
      if (gate.open) break
      if (Date.now() - waitedLogged > 5_000) {
        waitedLogged = Date.now()
        this.o.log?.('info', "stray relay waits for the peer site's map", { reason: gate.reason })
      }
      await new Promise((r) => setTimeout(r, 2_000))
    }
    if (this.stopped) return
    const relay = new StrayRelay({ nc: this.o.nc, cfg: this.cfg, ...(this.o.log ? { log: this.o.log } : {}) })
    await relay.start()
    this.relay = relay
  }

  private async tick(): Promise<void> {
    const peer = this.cfg.peer
    if (!peer || !this.view) return
    try {
      await this.view.refresh()
      const jsm = await jetstreamManager(this.o.nc)
      for (const name of Object.values(peerStreams(this.cfg, peer.site))) {
        const info = await jsm.streams.info(name).catch(() => undefined)
        if (info?.mirror) this.mirrorLag[name] = info.mirror.lag
      }
    } catch (err) {
      this.o.log?.('warn', 'site map refresh failed', { err: String(err) })
    }
    const timeout = this.o.probeTimeoutMs ?? Math.min(1_000, this.o.checkMs ?? 500)
    const link = await peerReachable(this.o.nc, peer.domain, timeout)
    this.linkUp = link
    let healthy = link
    if (!link && this.o.peerHealthUrl) healthy = await httpOk(this.o.peerHealthUrl, timeout)
    if (!link && this.o.peerHealthy) healthy = healthy || (await this.o.peerHealthy().catch(() => false))
    if (healthy) {
      this.downSince = undefined
      return
    }
    this.downSince ??= Date.now()
    const after = this.o.failoverAfterMs ?? 5_000
    if (after > 0 && Date.now() - this.downSince >= after && !this.moving && this.map().owners.includes(peer.site)) {
      this.o.log?.('warn', 'peer site lost: failing over', { peer: peer.site, downForMs: Date.now() - this.downSince })
      await this.failover('automatic failover').catch((err: unknown) =>
        this.o.log?.('error', 'failover failed', { err: String(err) }),
      )
    }
  }

  /** Takes the peer's partitions now (the operator command and the automatic path). */
  async failover(reason = 'operator failover'): Promise<MoveResult> {
    const started = Date.now()
    const p = takeOver(this.o.nc, this.cfg, reason)
    this.moving = p
    try {
      const r = await p
      if (r.partitions.length > 0) this.failovers++
      const move: NonNullable<SiteStatus['lastMove']> = { ...r, at: Date.now() }
      this.lastMove = move
      await this.view?.refresh()
      this.o.log?.(
        'info',
        'failover: records and map written (the workers take the partitions at their next heartbeat)',
        { ...r },
      )
      if (r.partitions.length > 0) void this.watchProcessing(move, started)
      return r
    } finally {
      this.moving = undefined
    }
  }

  /**
   * After a failover: when is every moved partition processed again (a message of its new segment applied)?
   * That, not the time to write the records, is what the operator waits for; logged and kept in `lastMove`.
   */
  private async watchProcessing(move: NonNullable<SiteStatus['lastMove']>, started: number): Promise<void> {
    try {
      const kv = await new Kvm(this.o.nc).open(this.cfg.streams.stateBucket)
      const done = await waitProcessing(kv, move.partitions, move.epoch, move.from, started, 120_000)
      const missing = move.partitions.filter((p) => !done.has(p))
      if (missing.length === 0) {
        move.processingAgainMs = Math.max(...done.values())
        this.o.log?.('info', 'failover: every moved partition is processed again', {
          partitions: move.partitions,
          afterMs: move.processingAgainMs,
        })
      } else {
        this.o.log?.(
          'warn',
          'failover: moved partitions not processed after 120 s (are the workers running and past the peer-map gate?)',
          { missing },
        )
      }
    } catch (err) {
      this.o.log?.('warn', 'failover: could not watch the moved partitions', { err: String(err) })
    }
  }

  status(): SiteStatus {
    const m = this.map()
    const peer = this.cfg.peer?.site ?? ''
    return {
      site: this.cfg.site,
      peer,
      epoch: m.epoch,
      role: this.role(),
      owned: m.owners.flatMap((s, p) => (s === this.cfg.site ? [p] : [])),
      peerOwned: m.owners.flatMap((s, p) => (s === peer ? [p] : [])),
      peerLinkUp: this.linkUp,
      peerDownForMs: this.downSince ? Date.now() - this.downSince : 0,
      mirrorLag: { ...this.mirrorLag },
      failovers: this.failovers,
      ...(this.lastMove ? { lastMove: this.lastMove } : {}),
      ...(this.relay
        ? {
            relay: {
              active: this.relay.stats.active,
              forwarded: this.relay.stats.forwarded,
              failures: this.relay.stats.failures,
            },
          }
        : {}),
      ...(this.operation ? { operation: { ...this.operation, lines: [...this.operation.lines] } } : {}),
    }
  }

  /**
   * Starts an operator command unless one is running (then undefined): `pitwall site failover|failback`'s code,
   * its lines collected into the operation. The failover goes through `failover()` so it counts like any other.
   */
  command(command: SiteOperation['command'], by: string, reason: string): SiteOperation | undefined {
    if (this.operation?.state === 'running' || this.moving) return undefined
    const op: SiteOperation = {
      id: `op_${randomBytes(6).toString('hex')}`,
      command,
      by,
      reason,
      startedAt: Date.now(),
      state: 'running',
      lines: [],
    }
    this.operation = op
    this.o.log?.('info', `operator ${command}`, { by, reason, operation: op.id })
    this.operationRun = this.runCommand(op)
    return op
  }

  private async runCommand(op: SiteOperation): Promise<void> {
    const line = (l: string): void => {
      if (op.lines.length < OPERATION_LINES) op.lines.push(l)
    }
    const io = { out: line, err: line }
    const t = this.o.commandTimings ?? {}
    try {
      const kv = await new Kvm(this.o.nc).open(this.cfg.streams.stateBucket)
      const waitMs = t.waitMs ?? 60_000
      op.exitCode =
        op.command === 'failover'
          ? await failoverCommand(this.o.nc, kv, this.cfg, io, {
              waitMs,
              move: async () => this.failover(`operator failover by ${op.by}: ${op.reason}`),
            })
          : await failbackCommand(this.o.nc, kv, this.cfg, io, {
              graceMs: t.graceMs ?? 6_500,
              timeoutMs: t.timeoutMs ?? 60_000,
              waitMs,
            })
      op.state = op.exitCode === 0 ? 'succeeded' : 'failed'
    } catch (err) {
      op.state = 'failed'
      op.exitCode = 1
      op.error = err instanceof Error ? err.message : String(err)
    }
    op.finishedAt = Date.now()
    await this.view?.refresh().catch(() => undefined)
    this.o.log?.(op.state === 'succeeded' ? 'info' : 'warn', `operator ${op.command} ${op.state}`, {
      by: op.by,
      operation: op.id,
      ms: op.finishedAt - op.startedAt,
      ...(op.error ? { err: op.error } : {}),
    })
  }

  /** POST /failover|/failback: token, body `{by, reason}`, one command at a time. */
  private async onCommand(req: IncomingMessage, res: ServerResponse, command: SiteOperation['command']): Promise<void> {
    const reply = (code: number, body: unknown): void => {
      res.writeHead(code, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }
    if (!this.tokenOk(req.headers.authorization))
      return reply(401, {
        code: 'CONTROLLER_UNAUTHORIZED',
        message: "commands need the controller's command token (Authorization: Bearer)",
      })
    let body: { by?: unknown; reason?: unknown }
    try {
      body = JSON.parse(await readBody(req, COMMAND_BODY_BYTES)) as typeof body
    } catch (err) {
      return reply(400, {
        code: 'CONTROLLER_BODY_INVALID',
        message: `the body must be JSON {"by", "reason"} of at most ${COMMAND_BODY_BYTES} bytes (${String(err)})`,
      })
    }
    const text = (v: unknown, max: number): string | undefined =>
      typeof v === 'string' && v.trim() !== '' && v.length <= max ? v.trim() : undefined
    const by = text(body.by, 200)
    const reason = text(body.reason, 500)
    if (by === undefined || reason === undefined)
      return reply(400, {
        code: 'CONTROLLER_BODY_INVALID',
        message: '"by" (1..200 characters) and "reason" (1..500) are required',
      })
    const op = this.command(command, by, reason)
    if (!op)
      return reply(409, {
        code: 'CONTROLLER_BUSY',
        message: `a ${this.operation?.command ?? 'failover'} is running (${this.operation?.id ?? 'automatic'})`,
      })
    reply(202, op)
  }

  private tokenOk(header: string | undefined): boolean {
    const token = this.o.commandToken
    if (token === undefined || token === '') return true
    const got = Buffer.from(header ?? '')
    const want = Buffer.from(`Bearer ${token}`)
    return got.length === want.length && timingSafeEqual(got, want)
  }

  private async serve(port: number): Promise<void> {
    this.server = createServer((req, res) => {
      if (req.url === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' })
        res.end('ok\n')
      } else if (req.url === '/status') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify(this.status()))
      } else if (req.method === 'POST' && (req.url === '/failover' || req.url === '/failback')) {
        this.onCommand(req, res, req.url === '/failover' ? 'failover' : 'failback').catch((err: unknown) => {
          if (!res.headersSent) res.writeHead(500)
          res.end(String(err))
        })
      } else if (req.url === '/metrics') {
        this.registry.metrics().then(
          (body) => {
            res.writeHead(200, { 'content-type': this.registry.contentType })
            res.end(body)
          },
          (err: unknown) => {
            res.writeHead(500)
            res.end(String(err))
          },
        )
      } else {
        res.writeHead(404)
        res.end()
      }
    })
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject)
      this.server?.listen(port, this.cfg.metricsHost, () => resolve())
    })
    const a = this.server.address()
    this.port = typeof a === 'object' && a ? a.port : port
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearInterval(this.timer)
    await this.relayStarting?.catch(() => undefined)
    await this.relay?.stop()
    await this.moving?.catch(() => undefined)
    await this.operationRun
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()))
  }
}

/** A request body up to `max` bytes (more is an error). */
async function readBody(req: IncomingMessage, max: number): Promise<string> {
  const chunks: Buffer[] = []
  let n = 0
  for await (const c of req) {
    n += (c as Buffer).length
    if (n > max) throw new Error('body too large')
    chunks.push(c as Buffer)
  }
  return Buffer.concat(chunks).toString()
}
