/**
 * Two local sites for the two-site tests, started the same way each time: the local topology on free loopback ports,
 * both sites' nats-servers (sites/servers.ts LocalSites) in a temp dir, b dialling a's leafnode (through a
 * CuttableProxy the test can cut, with `proxy`), a connection to each site once the leafnode link is up both ways,
 * each site's runtime config (worker `<site>-1`, heartbeat 250 ms, lease 2 s, checkpoints every 250 ms) provisioned,
 * and the environment a worker process of that config gets. Everything stops at the scope's teardown (a tap test,
 * or a scenario's own `finally`): first the test's own `cleanups` (last first), then the servers, the proxy and the
 * temp dir. `startProjectorPair` gives a site its projectors (its own OUT and its mirror of the peer's) into a
 * database of its own.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { jetstreamManager } from '@nats-io/jetstream'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { compileConfig, type RuntimeConfig } from '../../actors/config.js'
import { provision } from '../../actors/provision.js'
import { peerStreams } from '../../actors/sitemap.js'
import { Projector } from '../../projector/mod.js'
import { localTopology } from '../../sites/local-topology.js'
import { LocalSites, waitForLink } from '../../sites/servers.js'
import { siteOf, type Topology } from '../../sites/topology.js'
import { freePort } from './nats.js'
import { createTestDb } from './pg.js'
import { CuttableProxy } from './proxy.js'

/** Where teardown work is registered: a tap `Test`, or a scenario that runs it in its own `finally`. */
export interface Scope {
  teardown(fn: () => unknown): void
}

export type Site = 'a' | 'b'

export interface TwoSitesOptions {
  partitions: number
  /** Temp dir prefix, e.g. `pw-strays-`. */
  tmpPrefix: string
  /** b dials a's leafnode through a CuttableProxy (`proxy` of the result). */
  proxy?: boolean
  /** More ports per site (e.g. `mqtt`) and a change of the topology that uses them. */
  extraPorts?: readonly string[]
  shape?: (topo: Topology, ports: ReadonlyMap<string, number>) => Topology
  /** Called with the topology and the temp dir before the servers start (e.g. to write a topology file). */
  beforeStart?: (topo: Topology, dir: string) => Promise<void>
  /** The runtimes' tick interval (default: the runtime's). */
  tickIntervalMs?: number
}

export interface TwoSites {
  topo: Topology
  dir: string
  ports: ReadonlyMap<string, number>
  sites: LocalSites
  proxy: CuttableProxy | undefined
  /** The first connection to each site. */
  nc: Record<Site, NatsConnection>
  cfg: Record<Site, RuntimeConfig>
  /** A new connection to a site (after a restart), closed at teardown. */
  conn(site: Site): Promise<NatsConnection>
  /** The environment of a worker process of `c`. */
  envOf(c: RuntimeConfig): Record<string, string>
  /** Run at teardown, last first, before the servers stop. */
  cleanups: Array<() => Promise<unknown>>
}

/** Starts two sites as described above; stops them at `t`'s teardown. */
export async function startTwoSites(t: Scope, o: TwoSitesOptions): Promise<TwoSites> {
  const ports = new Map<string, number>()
  for (const s of ['a', 'b'])
    for (const k of ['client', 'cluster', 'leafnode', ...(o.extraPorts ?? [])]) ports.set(`${s}/${k}`, await freePort())
  const base = localTopology({ partitions: o.partitions, port: (s, _i, k) => ports.get(`${s}/${k}`) as number })
  const topo = o.shape ? o.shape(base, ports) : base
  const dir = await mkdtemp(join(tmpdir(), o.tmpPrefix))
  await o.beforeStart?.(topo, dir)
  const proxy = o.proxy ? new CuttableProxy({ host: '127.0.0.1', port: ports.get('a/leafnode') as number }) : undefined
  await proxy?.start()
  const sites = new LocalSites(topo, dir, undefined, proxy ? `nats-leaf://127.0.0.1:${proxy.port}` : undefined)
  const cleanups: Array<() => Promise<unknown>> = []
  t.teardown(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined)
    await sites.stopAll()
    await proxy?.stop()
    await rm(dir, { recursive: true, force: true })
  })
  await sites.start()
  const conn = async (site: Site): Promise<NatsConnection> => {
    const nc = await connect({
      servers: sites.natsUrl(site),
      noAsyncTraces: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    })
    cleanups.push(() => nc.close())
    return nc
  }
  const nc = { a: await conn('a'), b: await conn('b') }
  await waitForLink(nc.b, 'a')
  await waitForLink(nc.a, 'b')
  const cfgOf = (site: Site): RuntimeConfig =>
    compileConfig({
      site,
      natsUrl: sites.natsUrl(site),
      partitions: o.partitions,
      peer: { site: site === 'a' ? 'b' : 'a' },
      homePartitions: siteOf(topo, site).homePartitions,
      heartbeatMs: 250,
      leaseTtlMs: 2_000,
      checkpointIntervalMs: 250,
      ...(o.tickIntervalMs === undefined ? {} : { tickIntervalMs: o.tickIntervalMs }),
      workerId: `${site}-1`,
    })
  const cfg = { a: cfgOf('a'), b: cfgOf('b') }
  for (const s of ['a', 'b'] as const) await provision(nc[s], await jetstreamManager(nc[s]), cfg[s])
  const envOf = (c: RuntimeConfig): Record<string, string> => ({
    PITWALL_SITE: c.site,
    PITWALL_NATS_URL: c.natsUrl,
    PITWALL_PARTITIONS: String(o.partitions),
    PITWALL_PEER_SITE: c.peer?.site ?? '',
    PITWALL_HOME_PARTITIONS: c.homePartitions.join(','),
    PITWALL_HEARTBEAT_MS: '250',
    PITWALL_LEASE_TTL_MS: '2000',
    PITWALL_CHECKPOINT_INTERVAL_MS: '250',
  })
  return { topo, dir, ports, sites, proxy, nc, cfg, conn, envOf, cleanups }
}

/** A new test database (dropped at teardown) and a pool on it, for one site's projectors. */
export async function siteDatabase(cleanups: Array<() => Promise<unknown>>): Promise<pg.Pool> {
  const db = await createTestDb()
  const pool = new pg.Pool({ connectionString: db.url, max: 4 })
  cleanups.push(
    () => db.drop(),
    () => pool.end(),
  )
  return pool
}

export interface SiteProjector {
  p: Projector
  nc: NatsConnection
  stream: string
}

/** A site's projectors, as in production: its own OUT and its mirror of the peer's, into `pool`. */
export async function startProjectorPair(
  cleanups: Array<() => Promise<unknown>>,
  nc: NatsConnection,
  cfg: RuntimeConfig,
  pool: pg.Pool,
  log?: ConstructorParameters<typeof Projector>[0]['log'],
): Promise<SiteProjector[]> {
  const peer = cfg.peer?.site
  if (!peer) throw new Error(`site ${cfg.site} has no peer`)
  const list: SiteProjector[] = []
  for (const [from, stream] of [
    [cfg.site, cfg.streams.out],
    [peer, peerStreams(cfg, peer).out],
  ] as const) {
    const p = new Projector({ nc, pool, site: from, stream, durable: `projector_${from}`, ...(log ? { log } : {}) })
    await p.start()
    list.push({ p, nc, stream })
    cleanups.push(() => p.stop())
  }
  return list
}

/** A worker's `pitwall_site_awaiting_peer_map` gauge from its metrics port (undefined while it does not answer). */
export async function awaitingPeerMap(metricsPort: number): Promise<number | undefined> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
    const m = /^pitwall_site_awaiting_peer_map\{[^}]*\} (\d+)/m.exec(text)
    return m ? Number(m[1]) : undefined
  } catch {
    return undefined
  }
}
