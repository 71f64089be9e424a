/**
 * A worker: announces itself, computes its share of partitions over the live workers, acquires and runs them,
 * hands them off when the assignment changes, and on stop drains (checkpoint + release every partition).
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import type { NatsConnection, Subscription } from '@nats-io/transport-node'
import type { RuntimeConfig } from './config.js'
import { PartitionRunner } from './partition.js'
import { placementOf, tryAcquire } from './placement.js'
import { provision, verify } from './provision.js'
import { openReferenceBucket, ReferenceStore } from './references.js'
import { createLog, type LogFn } from './log.js'
import { connectNats } from './process.js'
import {
  type AnyActorDefinition,
  buildProfiles,
  newStats,
  type RuntimeDeps,
  type RuntimeObserver,
  type RuntimeStats,
} from './runtime.js'
import { type GateState, peerMapGate, readOwnMap, type SiteMap, SiteMapView, siteSlot } from './sitemap.js'
import { LoopStats, type ProcessStatsSnapshot } from './loop-stats.js'
import { heartbeatSubject, heartbeatWildcard, statsSubject } from './subjects.js'

export interface WorkerOptions {
  cfg: RuntimeConfig
  profiles: readonly AnyActorDefinition[]
  /** Create streams and buckets when missing (default true); false: fail when they are missing. */
  provision?: boolean
  nc?: NatsConnection
  /**
   * The connection for checkpoint snapshots (RuntimeDeps.snapshotNc). With `snapshotConnection: 'own'`, a worker
   * that opens its own connection opens a second one for them; otherwise, and with an injected `nc` and none given
   * here, snapshots share `nc`.
   */
  snapshotNc?: NatsConnection
  log?: LogFn
  /** Observations for histograms and per-profile metrics (see actors/metrics.ts WorkerObserver). */
  observe?: RuntimeObserver
}

/** What a worker announces every heartbeat (also read by the benchmark and operators' tools). */
export interface Heartbeat {
  worker: string
  draining: boolean
  partitions: number[]
  at: number
  processed: number
  activeActors: number
}

/**
 * Reply on `pw.<site>.stats.<worker>`: the event-loop delay histogram and GC pauses since start or the last
 * reset (request body `{"reset":true}` starts a new interval after answering), with the processed count.
 */
export interface WorkerStatsReply extends ProcessStatsSnapshot {
  worker: string
  processed: number
  activeActors: number
}

const td = new TextDecoder()

export class Worker {
  readonly cfg: RuntimeConfig
  readonly stats: RuntimeStats = newStats()
  private readonly opts: WorkerOptions
  private deps: RuntimeDeps | undefined
  private ownsConnection = false
  private ownsSnapshotConnection = false
  private readonly runners = new Map<number, PartitionRunner>()
  private readonly acquiring = new Set<number>()
  private readonly peers = new Map<string, { seenAt: number; draining: boolean }>()
  private hbSub: Subscription | undefined
  private statsSub: Subscription | undefined
  private loopStats: LoopStats | undefined
  private timer: NodeJS.Timeout | undefined
  private draining = false
  private startedAt = 0
  private placing: Promise<void> | undefined
  /** Two sites: which partitions this site owns now (refreshed every placement round). */
  private view: SiteMapView | undefined
  /** Two sites: true until the peer-map gate opened (no partition is taken while this site's map may be stale). */
  private gateClosed = false
  private gating: Promise<void> | undefined
  private readonly log: LogFn
  /** Reference data (geofences) the gateway publishes, followed without a restart. */
  private refs: ReferenceStore | undefined

  constructor(opts: WorkerOptions) {
    this.opts = opts
    this.cfg = opts.cfg
    this.log = opts.log ?? createLog('worker', { site: opts.cfg.site, worker: opts.cfg.workerId })
  }

  get id(): string {
    return this.cfg.workerId
  }
  /** Partitions currently owned, ascending. */
  owned(): number[] {
    return [...this.runners.keys()].sort((a, b) => a - b)
  }
  /** Consumer lag per owned partition (messages behind the last one received). */
  lags(): Array<[number, number]> {
    return [...this.runners].map(([p, r]) => [p, r.lag])
  }
  activeActors(): number {
    let n = 0
    for (const r of this.runners.values()) n += r.activeActors
    return n
  }

  async start(): Promise<void> {
    const cfg = this.cfg
    let nc = this.opts.nc
    if (!nc) {
      nc = await connectNats(cfg.natsUrl, `pitwall-worker-${cfg.workerId}`)
      this.ownsConnection = true
    }
    const js = jetstream(nc)
    let state
    try {
      const jsm = await jetstreamManager(nc)
      state = (this.opts.provision === false ? await verify(nc, jsm, cfg) : await provision(nc, jsm, cfg)).state
    } catch (err) {
      // Fail fast, and do not leave a connection behind that keeps the process alive.
      if (this.ownsConnection) await nc.close()
      throw err
    }
    const jsm = await jetstreamManager(nc)
    // Loaded before any partition is taken, so the first message already sees the revisions in effect.
    this.refs = await ReferenceStore.open(
      await openReferenceBucket(nc, cfg.streams.refBucket, cfg.replicas),
      cfg.refActivationMs,
      this.log,
    )
    let snapshotNc = this.opts.snapshotNc
    if (!snapshotNc && this.ownsConnection && cfg.snapshotConnection === 'own') {
      snapshotNc = await connectNats(cfg.natsUrl, `pitwall-worker-${cfg.workerId}-snapshots`)
      this.ownsSnapshotConnection = true
    }
    this.deps = {
      nc,
      snapshotNc,
      js,
      jsm,
      kv: state,
      cfg,
      profiles: buildProfiles(this.opts.profiles, cfg),
      log: this.log,
      observe: this.observer(),
      refs: this.refs.lookup,
    }
    if (cfg.peer) {
      this.view = new SiteMapView(cfg, state, jsm)
      // The peer-map gate (docs/sites.md, "Restarting a site"), waited on in the background so heartbeats,
      // stats and metrics run meanwhile; place() takes nothing until it opened.
      this.gateClosed = true
      this.gating = this.waitForGate()
    }
    this.hbSub = nc.subscribe(heartbeatWildcard(cfg.site), {
      callback: (err, msg) => {
        if (err) return
        try {
          const hb = JSON.parse(td.decode(msg.data)) as Heartbeat
          this.peers.set(hb.worker, { seenAt: Date.now(), draining: hb.draining })
        } catch (e) {
          this.log('warn', 'bad heartbeat', { err: String(e) })
        }
      },
    })
    const loopStats = (this.loopStats = new LoopStats())
    this.statsSub = nc.subscribe(statsSubject(cfg.site, cfg.workerId), {
      callback: (err, msg) => {
        if (err || !msg.reply) return
        let reset = false
        try {
          reset = msg.data.length > 0 && (JSON.parse(td.decode(msg.data)) as { reset?: unknown }).reset === true
        } catch (e) {
          this.log('warn', 'bad stats request', { err: String(e) })
        }
        const reply: WorkerStatsReply = {
          worker: cfg.workerId,
          processed: this.stats.processed,
          activeActors: this.activeActors(),
          ...loopStats.snapshot(reset),
        }
        msg.respond(JSON.stringify(reply))
      },
    })
    this.startedAt = Date.now()
    this.heartbeat()
    this.timer = setInterval(() => {
      this.heartbeat()
      if (!this.placing)
        this.placing = this.place()
          .catch((err: unknown) => this.log('error', 'placement failed', { err: String(err) }))
          .finally(() => {
            this.placing = undefined
          })
    }, cfg.heartbeatMs)
    this.log('info', 'worker started', { worker: cfg.workerId, site: cfg.site, partitions: cfg.partitions })
  }

  /** 1 while this worker waits for the peer's map before taking partitions (pitwall_site_awaiting_peer_map). */
  awaitingPeerMap(): number {
    return this.gateClosed ? 1 : 0
  }

  private async waitForGate(): Promise<void> {
    const deps = this.deps
    const peer = this.cfg.peer
    if (!deps || !peer) return
    const since = Date.now()
    let loggedAt = 0
    // This site's map when the wait began: a move written here meanwhile (a failover) is this site's decision.
    const ownAtStart = (await readOwnMap(deps.kv).catch(() => undefined))?.revision ?? 0
    while (!this.draining) {
      let g: GateState | undefined
      let failure: string | undefined
      try {
        g = await peerMapGate(deps.nc, deps.jsm, deps.kv, this.cfg, undefined, ownAtStart)
      } catch (err) {
        failure = String(err)
      }
      if (g?.open) {
        this.gateClosed = false
        this.log(g.reason === 'synced' ? 'info' : 'warn', 'peer-map gate open: taking partitions', {
          peer: peer.site,
          reason: g.reason,
          waitedMs: Date.now() - since,
          ...(g.override ? { override: g.override } : {}),
        })
        return
      }
      // Every few seconds, so an operator looking at a site that does nothing sees why and what to do.
      if (Date.now() - loggedAt >= 5_000) {
        loggedAt = Date.now()
        this.log('warn', "waiting for the peer site's map before taking any partition", {
          peer: peer.site,
          reason: g?.reason ?? 'check-failed',
          ...(failure ? { err: failure } : {}),
          waitedMs: Date.now() - since,
          action: `bring the leafnode link to ${peer.site} up; only if ${peer.site} is gone for good: pitwall site assume-peer-lost --site ${this.cfg.site} --confirm (docs/sites.md)`,
        })
      }
      await new Promise((r) => setTimeout(r, 1_000))
    }
  }

  /** The caller's observer, with each alert's stored -> emitted time also kept for the stats reply (`alert_ms`). */
  private observer(): RuntimeObserver {
    const inner = this.opts.observe
    return {
      checkpoint: (seconds) => inner?.checkpoint(seconds),
      checkpointBytes: (bytes) => inner?.checkpointBytes?.(bytes),
      reading: (profile) => inner?.reading?.(profile),
      output: (partition, o, eventMs, ingestMs, takenMs, receivedMs) => {
        if (o.type === 'alert')
          this.loopStats?.alertEmitted(
            Date.now() - ingestMs,
            takenMs === undefined ? undefined : takenMs - ingestMs,
            receivedMs === undefined ? undefined : receivedMs - ingestMs,
          )
        inner?.output?.(partition, o, eventMs, ingestMs, takenMs, receivedMs)
      },
      partitionClosed: (partition) => inner?.partitionClosed?.(partition),
    }
  }

  private heartbeat(): void {
    if (!this.deps) return
    const hb: Heartbeat = {
      worker: this.cfg.workerId,
      draining: this.draining,
      partitions: this.owned(),
      at: Date.now(),
      processed: this.stats.processed,
      activeActors: this.activeActors(),
    }
    this.deps.nc.publish(heartbeatSubject(this.cfg.site, this.cfg.workerId), JSON.stringify(hb))
  }

  /** Live, non-draining workers (including this one unless draining). */
  liveWorkers(): string[] {
    const cutoff = Date.now() - this.cfg.heartbeatMs * 3
    const out: string[] = []
    for (const [w, p] of this.peers) if (p.seenAt >= cutoff && !p.draining && w !== this.cfg.workerId) out.push(w)
    if (!this.draining) out.push(this.cfg.workerId)
    return out.sort()
  }

  private async place(): Promise<void> {
    const deps = this.deps
    if (!deps || this.draining || this.gateClosed) return
    // Learn the peers for a moment before claiming, so a joining worker does not grab everything.
    if (Date.now() - this.startedAt < this.cfg.heartbeatMs * 1.5) return
    let map: SiteMap | undefined
    try {
      map = await this.view?.refresh()
    } catch (err) {
      // Keep the last map: a failed read must not make us drop partitions.
      this.log('warn', 'site map read failed', { err: String(err) })
      map = this.view?.map
    }
    const mine: number[] = []
    for (let p = 0; p < this.cfg.partitions; p++) if (!map || map.owners[p] === this.cfg.site) mine.push(p)
    const want = new Set<number>()
    for (const [p, w] of placementOf(mine, this.liveWorkers())) if (w === this.cfg.workerId) want.add(p)
    const releases: Array<Promise<void>> = []
    for (const [p, r] of this.runners) {
      if (!want.has(p)) {
        this.runners.delete(p)
        releases.push(
          r.stop().catch((err: unknown) => this.log('warn', 'release failed', { partition: p, err: String(err) })),
        )
      }
    }
    await Promise.all(releases)
    await Promise.all(
      [...want]
        .filter((p) => !this.runners.has(p) && !this.acquiring.has(p))
        .map((p) => this.acquire(p, map?.since[p] ?? 0)),
    )
  }

  private async acquire(p: number, minEpoch: number): Promise<void> {
    const deps = this.deps
    if (!deps) return
    this.acquiring.add(p)
    try {
      const at = Date.now()
      const held = await tryAcquire(deps.kv, p, this.cfg.workerId, this.cfg.leaseTtlMs, at, {
        minEpoch,
        slot: siteSlot(this.cfg),
        exportCopy: this.cfg.peer !== null,
      })
      if (!held) return
      const r = new PartitionRunner(deps, this.stats, p, held, at)
      // The active-actor bound is per worker: each partition gets an equal share.
      r.activeBound = () => Math.max(1, Math.floor(this.cfg.maxActiveActors / Math.max(1, this.runners.size)))
      r.onExit = (runner) => {
        if (this.runners.get(p) === runner) this.runners.delete(p)
      }
      this.runners.set(p, r)
      this.stats.leaseAcquired++
      try {
        await r.start()
      } catch (err) {
        this.runners.delete(p)
        this.log('error', 'partition start failed', { partition: p, err: String(err) })
        await r
          .stop()
          .catch((e: unknown) =>
            this.log('warn', 'release after a failed start failed', { partition: p, err: String(e) }),
          )
        return
      }
      this.log('info', 'partition acquired', { partition: p, token: held.record.token, cursor: held.record.cursor })
    } finally {
      this.acquiring.delete(p)
    }
  }

  /** Graceful stop: announce draining, checkpoint and release every partition, close. */
  async stop(): Promise<void> {
    this.draining = true
    if (this.timer) clearInterval(this.timer)
    await this.placing
    await this.gating
    this.heartbeat()
    const all = [...this.runners.values()]
    this.runners.clear()
    await Promise.all(
      all.map((r) =>
        r
          .stop()
          .catch((err: unknown) => this.log('warn', 'release failed', { partition: r.partition, err: String(err) })),
      ),
    )
    this.hbSub?.unsubscribe()
    this.statsSub?.unsubscribe()
    this.loopStats?.stop()
    await this.refs?.stop()
    if (this.deps?.snapshotNc && this.ownsSnapshotConnection) await this.deps.snapshotNc.drain()
    if (this.deps && this.ownsConnection) await this.deps.nc.drain()
    this.log('info', 'worker stopped', { worker: this.cfg.workerId })
  }
}
