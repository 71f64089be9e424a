/**
 * The whole pipeline for end-to-end tests, all real and on loopback: a private nats-server (with an MQTT listener
 * and the runtime's partition mapping) and a fresh PostgreSQL database with the gateway app (auth on) from
 * setupGateway, a Worker with every registered profile, and the projector writing that worker's OUT stream into the
 * gateway's database. `simulate` publishes a seeded `pitwall simulate` run (cmd/simulate.ts) over NATS or
 * MQTT and also returns the same readings regenerated in memory
 * (the simulators are deterministic), so a test can compute exact expectations from them. `settle` waits until
 * every published reading is processed and every output is projected. Torn down with the test.
 */
import { jetstreamManager, type ConsumerInfo, type JetStreamManager } from '@nats-io/jetstream'
import pg from 'pg'
import { compileConfig, mappingFor, PROFILES, Worker, type EntityKind, type RuntimeConfig } from '../../actors/mod.js'
import { Projector } from '../../projector/mod.js'
import { makeSimulator, parseSimulateArgs, runSimulate } from '../../cmd/simulate.js'
import type { DomainItem, Episode } from '../../simulators/truth.js'
import { bearer, setupGateway, type TestGateway } from './gateway.js'
import { freePort } from './nats.js'

type Json = Record<string, unknown>
type Teardown = { teardown(fn: () => unknown): void }

export interface SimRun {
  sent: number
  /** Ground truth as written by the simulator, clipped to the end of the run. */
  episodes: Episode[]
  /** The readings published, in publish order (regenerated with the same options). */
  items: DomainItem[]
  startTs: number
  endTs: number
  /** Event time of the last reading: ground truth is clipped to it, so an episode ending there is still running. */
  lastTs: number
}

export interface Pipeline {
  gw: TestGateway
  worker: Worker
  projector: Projector
  pool: pg.Pool
  cfg: RuntimeConfig
  /** nats-server's MQTT listener (with the runtime's partition mapping), `mqtt://127.0.0.1:<port>`. */
  mqttUrl: string
  /**
   * Runs `pitwall simulate --profile <profile> ...` (event time from startTs for durationS) into this pipeline,
   * over NATS, or over MQTT through the server's listener with `mqtt`.
   */
  simulate(o: {
    profile: string
    seed: number
    entities: number
    startTs: number
    durationS: number
    mqtt?: boolean
    extra?: string[]
  }): Promise<SimRun>
  /** Waits until `readings` readings are processed, then until OUT stops growing and the projector has it all. */
  settle(readings: number, timeoutMs?: number): Promise<void>
  /** GET through the gateway (viewer JWT unless other headers are given). */
  get(url: string, headers?: Record<string, string>): Promise<{ status: number; body: Json }>
  /** GET following nextCursor to the end (limit 100); the items of every page. */
  all(url: string, headers?: Record<string, string>): Promise<Json[]>
}

const P = 4
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Starts the pipeline (partitions 4, site a). */
export async function startPipeline(t: Teardown): Promise<Pipeline> {
  const mqttPort = await freePort()
  const map = mappingFor('a', P)
  const gw = await setupGateway(t, {
    natsConfig: [
      'server_name: "pw-e2e"',
      `mqtt { listen: "127.0.0.1:${mqttPort}" }`,
      `mappings { "${map.from}": "${map.to}" }`,
    ].join('\n'),
  })
  const mqttUrl = `mqtt://127.0.0.1:${mqttPort}`
  const db = gw.db
  if (!db) throw new Error('setupGateway gave no database')
  const cfg = compileConfig({
    natsUrl: gw.srv.url,
    partitions: P,
    heartbeatMs: 500,
    leaseTtlMs: 10_000,
    checkpointIntervalMs: 500,
    workerId: 'e2e-w1',
  })
  const quiet = (): void => undefined
  const worker = new Worker({ cfg, profiles: PROFILES, log: quiet })
  await worker.start()
  t.teardown(() => worker.stop())
  const pool = new pg.Pool({ connectionString: db.url, max: 4 })
  t.teardown(() => pool.end())
  const projector = new Projector({ nc: gw.nc, pool, site: cfg.site, batchMs: 20 })
  await projector.start()
  // Registered after the pool's teardown, so it runs first (LIFO).
  t.teardown(() => projector.stop())
  const jsm: JetStreamManager = await jetstreamManager(gw.nc)
  const viewer = bearer('viewer')

  const get = async (
    url: string,
    headers: Record<string, string> = viewer,
  ): Promise<{ status: number; body: Json }> => {
    const res = await gw.app.inject({ method: 'GET', url, headers })
    return { status: res.statusCode, body: res.json<Json>() }
  }

  return {
    gw,
    worker,
    projector,
    pool,
    cfg,
    get,
    mqttUrl,
    async simulate(o) {
      const argv = [
        '--profile',
        o.profile,
        '--seed',
        String(o.seed),
        '--entities',
        String(o.entities),
        '--start',
        String(o.startTs),
        '--duration',
        String(o.durationS),
        ...(o.mqtt ? ['--mqtt-url', mqttUrl] : ['--nats', gw.srv.url]),
        '--partitions',
        String(P),
        ...(o.extra ?? []),
      ]
      const opts = parseSimulateArgs(argv, {})
      const r = await runSimulate(opts)
      const endTs = o.startTs + o.durationS * 1000
      // The same simulator again, in memory: what runSimulate published, item for item.
      const sim = makeSimulator({ ...opts, startTs: o.startTs })
      const items: DomainItem[] = []
      for (let it = sim.next(); it.at < endTs; it = sim.next()) items.push(it)
      if (items.length !== r.sent) throw new Error(`regenerated ${items.length} readings, the run sent ${r.sent}`)
      const lastTs = items.reduce((m, it) => Math.max(m, it.reading.ts), -Infinity)
      return { sent: r.sent, episodes: r.episodes, items, startTs: o.startTs, endTs, lastTs }
    },
    async settle(readings, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs
      while (worker.stats.processed < readings) {
        if (Date.now() > deadline)
          throw new Error(`worker processed ${worker.stats.processed} of ${readings} readings in ${timeoutMs} ms`)
        await sleep(100)
      }
      // `processed` counts a reading again after a lease lapse and a replay, so also wait until the partition
      // consumers have delivered everything and hold at most a few unacked messages (processing-time ticks arrive
      // every second and are acked at the next checkpoint); a consumer left behind by an earlier owner of the
      // partition is ignored (the newest per partition is the live one). Outputs are published after processing:
      // then wait for OUT to stand still over two polls, and for the projector to commit it.
      let last = -1
      for (let still = 0; still < 2;) {
        const newest = new Map<string, ConsumerInfo>()
        for await (const c of jsm.consumers.list(cfg.streams.tlm)) {
          const key = c.config.filter_subject ?? ''
          const prev = newest.get(key)
          if (!prev || Date.parse(c.created) > Date.parse(prev.created)) newest.set(key, c)
        }
        const busy = [...newest.values()].some((c) => c.num_pending > 0 || c.num_ack_pending > 10)
        const seq = (await jsm.streams.info(cfg.streams.out)).state.last_seq
        still = !busy && seq === last ? still + 1 : 0
        last = seq
        if (Date.now() > deadline)
          throw new Error(`not settled in ${timeoutMs} ms: consumers busy ${busy}, OUT at ${seq}`)
        await sleep(300)
      }
      await projector.caughtUp(Math.max(1_000, deadline - Date.now()))
    },
    async all(url, headers = viewer) {
      const items: Json[] = []
      let cursor: string | null = null
      for (let i = 0; i < 1000; i++) {
        const r = await get(
          `${url}${url.includes('?') ? '&' : '?'}limit=100${cursor ? `&cursor=${cursor}` : ''}`,
          headers,
        )
        if (r.status !== 200) throw new Error(`${url}: ${r.status} ${JSON.stringify(r.body)}`)
        const page = r.body as { items?: Json[]; features?: Json[]; nextCursor: string | null }
        items.push(...(page.items ?? page.features ?? []))
        cursor = page.nextCursor
        if (!cursor) return items
      }
      throw new Error(`${url}: more than 1000 pages`)
    },
  }
}

/** Alerts of `kind` from GET /v1/alerts (every page), optionally of one type. */
export async function alertsOf(p: Pipeline, kind: EntityKind, type?: string): Promise<Json[]> {
  return await p.all(`/v1/alerts?kind=${kind}${type === undefined ? '' : `&type=${type}`}`)
}

/** Epoch ms of an ISO time from a reply. */
export const msOf = (iso: unknown): number => Date.parse(String(iso))
