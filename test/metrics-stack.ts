/**
 * A small real pitwall stack for the observability tests: a private nats-server, a fresh PostgreSQL database,
 * real workers (every registered profile) and the projector (with domain metrics), each serving `/metrics` on a
 * free loopback port, and a simulated load (simulators/simulator.ts) published through JetStream. Not a test file.
 */
import type { Server } from 'node:http'
import pg from 'pg'
import type { Registry } from 'prom-client'
import { jetstream } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { compileConfig } from '../actors/config.js'
import { PROFILES } from '../actors/kinds/registry.js'
import { projectorRegistry, serveMetrics, WorkerObserver, workerRegistry } from '../actors/metrics.js'
import { DomainMetrics, domainMetricsConfig, Projector } from '../projector/mod.js'
import { partitionOf, tlmSubject, type EntityKind } from '../actors/subjects.js'
import type { Reading } from '../actors/types.js'
import { Worker } from '../actors/worker.js'
import { runSimulator, SIM_EPOCH, type SimOptions } from '../simulators/simulator.js'
import { connectTo, startNats, type NatsServer } from './helpers/nats.js'
import { createTestDb, type TestDb } from './helpers/pg.js'

export interface Stack {
  srv: NatsServer
  nc: NatsConnection
  db: TestDb
  pool: pg.Pool
  workers: Worker[]
  /** Each worker's metrics observer (same order as `workers`). */
  observers: WorkerObserver[]
  projector: Projector
  domain: DomainMetrics
  /** The projector's registry (projector counters, domain metrics), as served. */
  projectorMetrics: Registry
  /** `host:port` of each worker's and the projector's metrics endpoint. */
  targets: { worker: string[]; projector: string }
  partitions: number
  /** Publishes simulated readings and waits until the workers processed them and the projector committed. */
  load(opts?: Partial<SimOptions> & { durationS?: number }): Promise<{ sent: number }>
  /** Publishes readings of any simulator (plant, road, ...) with tlmSubject/partitionOf, then waits as `load` does. */
  publish(items: Iterable<{ kind: EntityKind; id: string; reading: Reading }>): Promise<{ sent: number }>
  stop(): Promise<void>
}

export interface StackOptions {
  workers?: number
  partitions?: number
  domainProfiles?: string[]
  maxEntities?: number
}

const quiet = (): void => undefined

/** Starts the stack; call `stop()` (e.g. in a teardown) to stop everything and drop the database. */
export async function startStack(o: StackOptions = {}): Promise<Stack> {
  const partitions = o.partitions ?? 4
  const stops: Array<() => Promise<void>> = []
  const stop = async (): Promise<void> => {
    for (const s of stops.splice(0).reverse()) await s().catch(() => undefined)
  }
  try {
    const srv = await startNats()
    stops.push(() => srv.stop())
    const nc = await connectTo(srv.url)
    stops.push(() => nc.close())
    const db = await createTestDb()
    stops.push(() => db.drop())
    const pool = new pg.Pool({ connectionString: db.url, max: 4 })
    stops.push(() => pool.end())
    const closeServer = (server: Server) => () => new Promise<void>((r) => server.close(() => r()))
    const workers: Worker[] = []
    const observers: WorkerObserver[] = []
    const workerTargets: string[] = []
    for (let i = 0; i < (o.workers ?? 2); i++) {
      const workerId = `w${i + 1}`
      const cfg = compileConfig({
        natsUrl: srv.url,
        partitions,
        heartbeatMs: 200,
        leaseTtlMs: 2000,
        checkpointIntervalMs: 500,
        workerId,
        metricsPort: 0,
      })
      const observer = new WorkerObserver()
      const w = new Worker({ cfg, profiles: PROFILES, log: quiet, observe: observer })
      await w.start()
      stops.push(() => w.stop())
      workers.push(w)
      observers.push(observer)
      const { registry } = workerRegistry(w, { site: 'a', worker: workerId }, observer)
      const { server, port } = await serveMetrics(registry, 0)
      stops.push(closeServer(server))
      workerTargets.push(`127.0.0.1:${port}`)
    }
    const domainOpts =
      o.maxEntities === undefined
        ? { profiles: o.domainProfiles ?? [] }
        : { profiles: o.domainProfiles ?? [], maxEntities: o.maxEntities }
    const domain = new DomainMetrics(domainMetricsConfig(domainOpts))
    const projector = new Projector({ nc, pool, site: 'a', batchMs: 5, observer: domain, log: quiet })
    await projector.start()
    stops.push(() => projector.stop())
    const projectorMetrics = projectorRegistry(projector, { site: 'a', service: 'projector' }, domain)
    const { server, port } = await serveMetrics(projectorMetrics, 0)
    stops.push(closeServer(server))
    const processed = (): number =>
      workers.reduce((n, w) => n + w.stats.processed + w.stats.skippedReplay + w.stats.invalid, 0)
    /** Waits until the workers handled `sent` more readings and the projector has been quiet for 1.5 s. */
    const settle = async (before: number, sent: number): Promise<void> => {
      for (let i = 0; i < 600 && processed() - before < sent; i++) await new Promise((res) => setTimeout(res, 50))
      // Outputs are published at checkpoints; give the last ones time to land, then wait for the projector.
      await new Promise((res) => setTimeout(res, 1_200))
      await projector.caughtUp(30_000)
      // Quiet: outputs from processing-time ticks keep coming for a while; wait until none arrived for 1.5 s.
      for (let last = -1, i = 0; i < 20 && projector.stats().lastSeq !== last; i++) {
        last = projector.stats().lastSeq
        await new Promise((res) => setTimeout(res, 1_500))
        await projector.caughtUp(30_000)
      }
    }
    return {
      srv,
      nc,
      db,
      pool,
      workers,
      observers,
      projector,
      domain,
      projectorMetrics,
      partitions,
      targets: { worker: workerTargets, projector: `127.0.0.1:${port}` },
      async load(sim = {}) {
        const before = processed()
        const r = await runSimulator(nc, {
          seed: 7,
          sensors: 10,
          cars: 4,
          sensorHz: 1,
          carHz: 10,
          site: 'a',
          partitions,
          anomalies: true,
          startTs: SIM_EPOCH,
          durationS: 300,
          ...sim,
        })
        await settle(before, r.sent)
        return r
      },
      async publish(items) {
        const before = processed()
        const js = jetstream(nc)
        let pending: Array<Promise<unknown>> = []
        let sent = 0
        for (const it of items) {
          pending.push(
            js.publish(
              tlmSubject('a', partitionOf(it.kind, it.id, partitions), it.kind, it.id),
              JSON.stringify(it.reading),
            ),
          )
          sent++
          if (pending.length >= 500) {
            await Promise.all(pending)
            pending = []
          }
        }
        await Promise.all(pending)
        await settle(before, sent)
        return { sent }
      },
      stop,
    }
  } catch (err) {
    await stop()
    throw err
  }
}
