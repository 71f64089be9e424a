/**
 * The dashboards and alert rules against a real Prometheus: a private nats-server and PostgreSQL database, two
 * real workers, the projector (domain metrics on for every profile), the gateway and a site controller, each
 * serving /metrics on loopback; a short simulated load (race cars and environment sensors, the 127-sensor plant and a small fleet
 * through JetStream, batches through the gateway with a few bad items); then the
 * `prometheus` binary (monitoring/prometheus.ts) scraping them every second with the rules loaded. Every
 * expression of every dashboard panel and every rule goes through GET /api/v1/query: all must parse, and the ones
 * in EXPECT_DATA must return data. Skipped when prometheus is not installed.
 */
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { jetstreamManager } from '@nats-io/jetstream'
import { compileConfig } from '../../actors/config.js'
import { peerStreams } from '../../actors/sitemap.js'
import { SiteController } from '../../sites/controller.js'
import { buildGateway, compileGatewayConfig } from '../../gateway/mod.js'
import { DASHBOARDS, expressions } from '../../monitoring/dashboards/mod.js'
import {
  findBinary,
  localJobs,
  renderPrometheusConfig,
  startPrometheus,
  type RunningPrometheus,
} from '../../monitoring/prometheus.js'
import { simulate, SIM_EPOCH } from '../../simulators/simulator.js'
import { PlantSimulator } from '../../simulators/plant.js'
import { RoadSimulator } from '../../simulators/road.js'
import type { DomainItem, DomainSimulator } from '../../simulators/truth.js'
import { freePort } from '../helpers/nats.js'
import { startStack, type Stack } from '../metrics-stack.js'
import { METRICS as M } from '../../actors/metrics.js'
import { LATEST_POSITIONS_SQL } from '../../monitoring/dashboards/fleet.js'

const SKIP = findBinary('prometheus') === null ? 'prometheus is not installed (apt-get install -y prometheus)' : false

/** Panels (`<dashboard uid>/<title>`) whose every expression must return data after the load. */
const EXPECT_DATA = [
  'pitwall-sre/Readings processed /s',
  'pitwall-sre/Gateway requests /s',
  'pitwall-sre/Outputs /s',
  'pitwall-sre/Projector writes /s',
  'pitwall-sre/Outputs published and projected /s',
  'pitwall-sre/Gateway readings accepted and rejected /s',
  'pitwall-sre/Projector rows written /s by table',
  'pitwall-sre/Projector batch size P50/P95',
  'pitwall-sre/Projector lag (OUT messages not yet in PostgreSQL)',
  'pitwall-sre/Projector write latency P50/P95/P99',
  'pitwall-sre/Gateway request bytes /s',
  'pitwall-sre/Gateway request latency P50/P95/P99',
  'pitwall-sre/Gateway JetStream publish latency P50/P95/P99',
  'pitwall-sre/Checkpoint duration P50/P95/P99',
  'pitwall-sre/Gateway P95 by route',
  'pitwall-sre/Projector committed OUT sequence /s',
  'pitwall-sre/Outputs published minus projected /s',
  'pitwall-sre/Alerts firing',
  'pitwall-sre/Targets down',
  'pitwall-sre/Gateway 4xx/5xx /s',
  'pitwall-sre/Projector rejects /s',
  'pitwall-sre/CPU per process',
  'pitwall-sre/Resident memory per process',
  'pitwall-sre/Event loop lag P99',
  'pitwall-sre/Active actors per worker',
  'pitwall-sre/Partitions owned per worker',
  'pitwall-sre/Partitions owned (all workers)',
  'pitwall-sre/Activations and passivations /s',
  'pitwall-sre/Live feed clients',
  'pitwall-sre/Scrape targets',
  // Worker output latency, per-profile counters, replays, checkpoint size, open alerts (WorkerObserver).
  'pitwall-sre/Ingest to output latency P50/P95/P99',
  'pitwall-sre/Event time to output latency P50/P95/P99',
  'pitwall-sre/Ingest to output P95 by profile',
  'pitwall-sre/Checkpoint size P50/P95',
  'pitwall-sre/Readings processed /s by profile',
  'pitwall-sre/Replayed readings skipped /s by worker',
  'pitwall-sre/Late readings share by profile (workers)',
  'pitwall-sre/Open alerts by type and severity (workers)',
  // The site controller.
  'pitwall-sre/Site roles',
  'pitwall-sre/Peer link up',
  'pitwall-sre/Epoch',
  'pitwall-sre/Mirror lag',
  'pitwall-sre/Failovers (15 min)',
  'pitwall-sre/Partitions owned per site',
  'pitwall-race/Pit-stop score by car',
  'pitwall-race/Pit-stop score',
  'pitwall-race/Cars tracked',
  'pitwall-race/Brake temperature, max of last lap',
  'pitwall-race/Tyre temperature, max of last lap',
  'pitwall-race/Lap time',
  'pitwall-race/Brake overheat (cars)',
  'pitwall-race/Tyre overheat (cars)',
  'pitwall-race/Open anomalies',
  'pitwall-environment/Temperature (mean of sensors)',
  'pitwall-environment/Humidity (mean)',
  'pitwall-environment/CO2 (mean, ppm)',
  'pitwall-environment/Open alerts',
  'pitwall-environment/Latest window mean per sensor',
  'pitwall-environment/Temperature per sensor',
  'pitwall-environment/Battery per sensor',
  'pitwall-environment/Temperature, hourly average of sensors',
  'pitwall-environment/Humidity and CO2, hourly average',
  'pitwall-environment/Sensor comparison: temperature vs. the mean',
  'pitwall-plant/Open anomalies',
  'pitwall-plant/Sensors tracked',
  'pitwall-plant/Anomalies per stage (1 h)',
  'pitwall-plant/Anomalies per stage and type (24 h)',
  'pitwall-plant/Anomalies opened by type (1 h)',
  'pitwall-plant/Treatment efficiency',
  'pitwall-plant/Compliance',
  'pitwall-plant/Treatment efficiency and compliance',
  'pitwall-fleet/Stale units (offline)',
  'pitwall-fleet/Open DTC alerts',
  'pitwall-fleet/Engine overheat',
  'pitwall-fleet/Low fuel',
]

/** Recording rules that must have data. */
const EXPECT_RULE_DATA = [
  'pitwall:partitions:expected',
  'pitwall:partitions_owned:sum',
  'pitwall:worker_outputs:rate5m',
  'pitwall:worker_readings_processed:rate5m',
  'pitwall:worker_messages_invalid:rate5m',
  'pitwall:gateway_request_duration_seconds:p95_1m',
  'pitwall:worker_late_readings:rate5m',
  'pitwall:late_readings:ratio5m',
  'pitwall:worker_ingest_to_output_seconds:p95_5m',
]

/** A simulator's items with event time before `end`. */
function until(sim: DomainSimulator, end: number): DomainItem[] {
  const out: DomainItem[] = []
  for (let it = sim.next(); it.reading.ts < end; it = sim.next()) out.push(it)
  return out
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

t.test(
  'every dashboard and rule expression against a real Prometheus scraping the real services',
  { skip: SKIP },
  async (t) => {
    const started = Date.now()
    // Per-entity domain series for every simulated entity (127 plant sensors): with the default cap of 64, which
    // sensors get series depends on arrival order across the workers, and the plant KPI panels (sensors with an
    // inlet reference only) could have none.
    const stack: Stack = await startStack({
      workers: 2,
      domainProfiles: ['race', 'environment', 'process', 'road', 'asset'],
      maxEntities: 256,
    })
    t.teardown(() => stack.stop())

    const cfg = compileGatewayConfig({
      auth: { enabled: false },
      publishTimeoutMs: 2_000,
      runtime: { natsUrl: stack.srv.url, partitions: stack.partitions, workerId: 'gw-live' },
    })
    const app: FastifyInstance = buildGateway({ nc: stack.nc, cfg, logger: false })
    t.teardown(() => app.close())
    const gwPort = await freePort()
    await app.listen({ port: gwPort, host: '127.0.0.1' })

    // The site controller of site a, configured with a peer b that has no server here: the link probe fails
    // (peer_link_up 0, failover off), the site map is the initial one (epoch, role, partitions owned). Its mirror
    // of the peer's TLM is a real JetStream mirror, of this site's TLM on the same server, so the mirror-lag gauge
    // reads what the server reports for a real mirror.
    const ctlCfg = compileConfig({
      natsUrl: stack.srv.url,
      partitions: stack.partitions,
      workerId: 'ctl-a',
      peer: { site: 'b' },
      homePartitions: Array.from({ length: stack.partitions }, (_, p) => p),
    })
    const jsm = await jetstreamManager(stack.nc)
    await jsm.streams.add({ name: peerStreams(ctlCfg, 'b').tlm, mirror: { name: ctlCfg.streams.tlm } })
    const controller = new SiteController({ nc: stack.nc, cfg: ctlCfg, checkMs: 250, failoverAfterMs: 0, port: 0 })
    await controller.start()
    t.teardown(() => controller.stop())

    const port = await freePort()
    const portOf = (hostPort: string): number => Number(hostPort.split(':')[1])
    const configText = renderPrometheusConfig({
      jobs: localJobs({
        workerPorts: stack.targets.worker.map(portOf),
        projectorPort: portOf(stack.targets.projector),
        gatewayPort: gwPort,
        sitePort: controller.port,
      }),
      scrapeIntervalS: 1,
    })
    const prom: RunningPrometheus = await startPrometheus({ configText, port })
    t.teardown(() => prom.stop())
    const targets = await prom.targetsUp(5, 30_000)
    t.same(
      targets.map((x) => x.job).sort(),
      ['pitwall-gateway', 'pitwall-projector', 'pitwall-site', 'pitwall-worker', 'pitwall-worker'],
      'all five targets up',
    )

    // Load: readings through JetStream (cars and sensors), then batches through the gateway, some items bad.
    const { sent } = await stack.load({ durationS: 300 })
    t.ok(sent > 10_000, `${sent} readings published to JetStream`)
    // The plant (127 sensors, one reading each 30 s for 20 min, anomalies from the start) and a small fleet.
    const plant = new PlantSimulator({
      seed: 5,
      periodMs: 30_000,
      startTs: SIM_EPOCH,
      anomalies: true,
      warmupMs: 0,
      anomalyShare: 0.3,
    })
    const road = new RoadSimulator({ seed: 5, vehicles: 6, periodMs: 5_000, startTs: SIM_EPOCH, anomalies: true })
    const more = [...until(plant, SIM_EPOCH + 20 * 60_000), ...until(road, SIM_EPOCH + 20 * 60_000)]
    const extra = await stack.publish(more)
    t.ok(extra.sent > 5_000, `${extra.sent} plant and fleet readings published`)
    const gen = simulate({
      seed: 99,
      sensors: 4,
      cars: 0,
      sensorHz: 1,
      carHz: 10,
      site: 'a',
      partitions: stack.partitions,
      startTs: Date.now() - 60_000,
    })
    let accepted = 0
    for (let b = 0; b < 20; b++) {
      const items: unknown[] = []
      for (let i = 0; i < 25; i++) {
        const it = gen.next().value
        items.push({ kind: it.kind, id: `gw-${it.id}`, ts: it.reading.ts, fields: it.reading.fields })
      }
      items.push({ kind: 'sensor', id: 'bad id!', ts: 1, fields: {} })
      const r = await fetch(`http://127.0.0.1:${gwPort}/v1/readings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(items),
      })
      const body = await r.text()
      if (b === 0) t.comment(`gateway batch reply ${r.status}: ${body.slice(0, 300)}`)
      if (r.status < 300) accepted += 25
    }
    const bad = await fetch(`http://127.0.0.1:${gwPort}/v1/readings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{',
    })
    await bad.arrayBuffer()
    t.equal(bad.status, 400, 'a malformed batch is refused (a 4xx for the error panels)')
    t.ok(accepted > 0, `${accepted} readings accepted by the gateway`)
    // A few scrapes after the load, so rates over [1m] see the increase.
    await sleep(4_000)

    // Every panel expression parses; the expected ones have data.
    const empty: string[] = []
    let parsed = 0
    for (const d of DASHBOARDS) {
      for (const { panel, expr } of expressions(d)) {
        const r = await prom.query(expr)
        t.equal(r.status, 'success', `${panel}: ${expr} ${r.error ?? ''}`)
        if (r.status === 'success') parsed++
        const n = r.data?.result.length ?? 0
        if (EXPECT_DATA.includes(panel)) t.ok(n > 0, `${panel}: data (${n} series) for ${expr}`)
        else if (n === 0) empty.push(panel)
      }
    }
    for (const p of EXPECT_DATA)
      t.ok(
        DASHBOARDS.some((d) => expressions(d).some((e) => e.panel === p)),
        `${p} is a panel`,
      )
    t.comment(`${parsed} panel expressions parsed; without data (not expected here): ${[...new Set(empty)].join(', ')}`)

    // Every rule, as Prometheus loaded it, evaluates without error and its expression parses in a query.
    const rules = await fetch(`${prom.url}/api/v1/rules`).then(
      async (r) =>
        (await r.json()) as {
          data: {
            groups: Array<{
              name: string
              rules: Array<{ name: string; query: string; health: string; lastError?: string; type: string }>
            }>
          }
        },
    )
    const all = rules.data.groups.flatMap((g) => g.rules)
    t.ok(all.length >= 25, `${all.length} rules loaded`)
    for (const rule of all) {
      t.not(rule.health, 'err', `${rule.name}: evaluates (${rule.lastError ?? ''})`)
      const r = await prom.query(rule.query)
      t.equal(r.status, 'success', `${rule.name}: ${rule.query} ${r.error ?? ''}`)
      if (EXPECT_RULE_DATA.includes(rule.name)) t.ok((r.data?.result.length ?? 0) > 0, `${rule.name}: data`)
    }
    for (const name of EXPECT_RULE_DATA)
      t.ok(
        all.some((r) => r.name === name),
        `${name} is a rule`,
      )

    // The worker histograms carry what the workers observed: Prometheus' counts equal the observers' own.
    const count = async (expr: string): Promise<number> => {
      const r = await prom.query(expr)
      const v = (r.data?.result[0] as { value?: [number, string] } | undefined)?.value?.[1]
      return v === undefined ? Number.NaN : Number(v)
    }
    const observed = stack.observers.reduce(
      (n, o) => n + [...o.profiles.values()].reduce((m, p) => m + p.ingestToOutput.count, 0),
      0,
    )
    const outputs = stack.workers.reduce((n, w) => n + w.stats.outputs, 0)
    t.equal(observed, outputs, `every output observed ingest -> output (${outputs})`)
    // Quiet since the load settled: the last scrape (1 s) saw the same numbers, unless a processing-time tick
    // emitted a few more outputs meanwhile (never fewer).
    const scraped = await count(`sum(max_over_time(${M.ingestToOutputSeconds}_count[1m]))`)
    t.ok(
      scraped > 0 && scraped <= observed,
      `Prometheus scraped ${scraped} of the ${observed} ingest -> output observations`,
    )
    const late = stack.observers.reduce((n, o) => n + [...o.profiles.values()].reduce((m, p) => m + p.late, 0), 0)
    t.comment(
      `${late} late readings counted by the workers; ${await count(`sum(max_over_time(${M.lateReadings}[1m]))`)} scraped`,
    )
    t.equal(
      await count(`max(${M.sitePeerLinkUp})`),
      0,
      'the controller reports the peer link down (no peer server here)',
    )
    t.equal(
      await count(`sum(${M.sitePartitionsOwned})`),
      stack.partitions,
      'the controller reports every partition owned by its site',
    )

    // The fleet geomap's SQL over what the real projector wrote from the road actors' position outputs.
    const range = `ts BETWEEN '${new Date(SIM_EPOCH - 3600_000).toISOString()}' AND '${new Date(SIM_EPOCH + 6 * 3600_000).toISOString()}'`
    const positions = await stack.pool.query<{ vehicle: string; time: Date; lat: number; lon: number }>(
      LATEST_POSITIONS_SQL.replace('$__timeFilter(ts)', range),
    )
    // The same answer computed another way: the newest positioned row per road vehicle.
    const latest = await stack.pool.query<{ entity: string; ts: Date }>(`SELECT entity, max(ts) AS ts FROM raw_readings
    WHERE kind = 'vehicle' AND profile = 'road' AND lat IS NOT NULL AND lon IS NOT NULL AND ${range} GROUP BY entity`)
    t.ok(
      positions.rows.length > 0,
      `the fleet geomap has positions (${positions.rows.length} of the 6 simulated vehicles reported a fix)`,
    )
    t.same(
      positions.rows.map((r) => [r.vehicle, r.time.getTime()]).sort(),
      latest.rows.map((r) => [r.entity, r.ts.getTime()]).sort(),
      'one row per vehicle, at its newest position',
    )
    t.ok(
      positions.rows.every((r) => Math.abs(r.lat) <= 90 && Math.abs(r.lon) <= 180),
      'with valid coordinates',
    )
    t.comment(`live monitoring test took ${Date.now() - started} ms`)
  },
)
