/**
 * Series per process with 100,000 entities, for the processes other than the worker (test/integration/metrics.test.ts has the
 * worker): the projector with domain metrics on for every profile, and the gateway. The bounds are stated in
 * docs/metrics.md ("Series per process").
 * - Projector: outputs of 100,000 entities (alerts, scores, laps, windows, recommendations, late readings, over five
 *   profiles, one output per entity) go through planBatch, the rows the projector hands its observer after COMMIT, then the scrape.
 * - Gateway: 100,000 readings of 100,000 distinct entities through the real app on a real nats-server (batch
 *   route), and 1,000 distinct ids through the per-sensor route (route label = the pattern, never the id).
 */
import t from 'tap'
import { jetstreamManager } from '@nats-io/jetstream'
import type { Registry } from 'prom-client'
import { compileConfig, provision } from '../../actors/mod.js'
import { projectorRegistry } from '../../actors/metrics.js'
import { DOMAIN_METRICS_DEFAULTS, DomainMetrics, domainMetricsConfig, planBatch } from '../../projector/mod.js'
import type { Output } from '../../actors/types.js'
import { buildGateway, compileGatewayConfig, GatewayMetrics } from '../../gateway/mod.js'
import { connectTo, startNats } from '../helpers/nats.js'
import { alertOut, lapOut, lateOut, output, scoreOut, subjectOf, T0, windowOut } from '../projector-fixtures.js'

const N = 100_000
// Projector series that do not depend on entities: 6 counters/gauges, rows written for 8 tables, the batch-size
// histogram (9 buckets + Inf + sum + count) and the write-latency histogram (12 buckets + Inf + sum + count).
const PROJECTOR_FIXED = 6 + 8 + 12 + 15
const PROFILES = ['race', 'environment', 'process', 'road', 'asset']

async function series(registry: Registry): Promise<{ ours: number; all: number }> {
  const lines = (await registry.metrics()).split('\n').filter((l) => l && !l.startsWith('#'))
  return { ours: lines.filter((l) => l.startsWith('pitwall_')).length, all: lines.length }
}

/** Feeds outputs of N entities over PROFILES, in batches of planned rows, to `sink`. */
function feed(sink: (rows: ReturnType<typeof planBatch>['rows']) => void): void {
  const enc = new TextEncoder()
  let seq = 0
  const types = ['brake_overheat', 'tire_overheat', 'oil_pressure_drop', 'sudden_speed_loss', 'fuel_anomaly']
  for (let i = 0; i < N; i += 1000) {
    const outs: Output[] = []
    for (let k = i; k < i + 1000; k++) {
      const profile = PROFILES[k % PROFILES.length] as string
      const e = `e${k}`
      // The first 1,000 entities get every output type (so the capped entities carry all their series); after
      // that one output per entity, the type rotating (every type reaches thousands of entities per profile).
      for (const kindOf of k < 1000 ? [0, 1, 2, 3, 4, 5] : [Math.floor(k / PROFILES.length) % 6])
        switch (kindOf) {
          case 0: {
            const a = alertOut(e, T0 + k, 'open', { seq: ++seq, value: 1, profile })
            const type = types[Math.floor(k / 30) % types.length] as string
            outs.push({
              ...a,
              body: { ...a.body, type, alertId: `${a.body.alertId}:${type}`, details: { stage: `stage-${k % 8}` } },
            })
            break
          }
          case 1:
            outs.push(scoreOut(e, { seq: ++seq, value: k % 100, profile }))
            break
          case 2:
            outs.push(lapOut(e, 1 + (k % 50), { seq: ++seq, profile }))
            break
          case 3:
            outs.push(windowOut(e, T0, { seq: ++seq, profile }))
            break
          case 4:
            outs.push(lateOut(e, T0 - 600_000, { seq: ++seq, profile }))
            break
          default:
            outs.push(
              output(
                'recommendation',
                e,
                `rec:${k}`,
                { action: 'pit_now', score: 75, factors: {}, reason: 'r' },
                { seq: ++seq, profile },
              ),
            )
        }
    }
    const msgs = outs.map((o, j) => ({
      seq: seq - outs.length + 1 + j,
      subject: subjectOf(o),
      data: enc.encode(JSON.stringify(o)),
    }))
    sink(planBatch(msgs, msgs[0] ? msgs[0].seq - 1 : 0, new Map()).rows)
  }
}

t.test(`projector with domain metrics off: series bounded with ${N.toLocaleString('en')} entities`, async (t) => {
  const domain = new DomainMetrics()
  const stats = { applied: 0, rejectedStale: 0, rejectedMalformed: 0, duplicates: 0, batches: 0, lastSeq: 0 }
  const registry = projectorRegistry({ stats: () => stats }, { site: 'a', service: 'projector' }, domain)
  const before = await series(registry)
  feed((rows) => domain.committed(rows))
  const after = await series(registry)
  t.comment(
    `projector (domain off) pitwall series: ${before.ours} before, ${after.ours} after ${N} entities; ${after.all} in all`,
  )
  t.equal(before.ours, PROJECTOR_FIXED, `${PROJECTOR_FIXED} fixed series`)
  t.ok(
    after.ours <= PROJECTOR_FIXED + DOMAIN_METRICS_DEFAULTS.maxProfiles,
    `<= ${PROJECTOR_FIXED} + ${DOMAIN_METRICS_DEFAULTS.maxProfiles} (${after.ours})`,
  )
  t.equal(after.ours - before.ours, PROFILES.length, 'one late-readings series per profile appeared')
})

t.test(
  `projector with domain metrics on for ${PROFILES.length} profiles: series bounded with ${N.toLocaleString('en')} entities`,
  async (t) => {
    const domain = new DomainMetrics(domainMetricsConfig({ profiles: PROFILES }))
    const stats = { applied: 0, rejectedStale: 0, rejectedMalformed: 0, duplicates: 0, batches: 0, lastSeq: 0 }
    const registry = projectorRegistry({ stats: () => stats }, { site: 'a', service: 'projector' }, domain)
    const before = await series(registry)
    feed((rows) => domain.committed(rows))
    const after = await series(registry)
    const usage = domain.usage()
    const cfg = domain.cfg
    // Bound: the fixed projector series + late readings per profile (<= 32 profiles) + per enabled profile at most
    // maxSeries label sets and its 2 bookkeeping series (entities tracked, updates dropped).
    const bound = PROJECTOR_FIXED + DOMAIN_METRICS_DEFAULTS.maxProfiles + PROFILES.length * (cfg.maxSeries + 2)
    t.comment(
      `projector pitwall series: ${before.ours} before, ${after.ours} after ${N} entities (bound ${bound}); ${after.all} in all with the default process metrics`,
    )
    t.comment(`per profile: ${JSON.stringify(usage)}`)
    for (const p of PROFILES) {
      t.equal(usage[p]?.entities, cfg.maxEntities, `${p}: ${cfg.maxEntities} entities with series (the cap)`)
      t.ok((usage[p]?.series ?? 0) <= cfg.maxSeries, `${p}: ${usage[p]?.series} label sets <= ${cfg.maxSeries}`)
      t.ok((usage[p]?.dropped ?? 0) > 0, `${p}: the rest counted as dropped (${usage[p]?.dropped})`)
    }
    t.ok(after.ours <= bound, `projector pitwall series ${after.ours} <= ${bound}`)
    t.ok(after.ours < 6_000, `under 6,000 pitwall series per projector with 5 profiles on (${after.ours})`)
  },
)

t.test(`gateway: series bounded with ${N.toLocaleString('en')} distinct entities`, async (t) => {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const cfg = compileGatewayConfig({
    auth: { enabled: false },
    maxItemsPerBatch: 1000,
    runtime: { natsUrl: srv.url, partitions: 8, workerId: 'gw-card' },
  })
  await provision(nc, await jetstreamManager(nc), compileConfig({ natsUrl: srv.url, partitions: 8 }))
  const metrics = new GatewayMetrics({ site: 'a', service: 'gateway' })
  const app = buildGateway({ nc, cfg, metrics, logger: false })
  t.teardown(() => app.close())
  await app.ready()
  const before = await series(metrics.registry)
  const now = Date.now()
  let accepted = 0
  for (let i = 0; i < N; i += 1000) {
    const items = Array.from({ length: 1000 }, (_, k) => ({
      kind: 'sensor',
      id: `c${i + k}`,
      ts: now,
      fields: { v: 1 },
    }))
    const r = await app.inject({
      method: 'POST',
      url: '/v1/readings',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify(items),
    })
    accepted += (r.json() as { accepted?: number }).accepted ?? 0
  }
  for (let i = 0; i < 1000; i++) {
    await app.inject({
      method: 'POST',
      url: `/v1/sensors/s${i}/readings`,
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify([{ ts: now, fields: { v: 1 } }]),
    })
  }
  await app.inject({ method: 'GET', url: '/v1/no/such/route' })
  t.equal(accepted, N, `${N} readings of ${N} distinct entities accepted`)
  const after = await series(metrics.registry)
  t.comment(
    `gateway pitwall series: ${before.ours} before, ${after.ours} after; ${after.all} in all with the default process metrics`,
  )
  const body = await metrics.registry.metrics()
  t.notMatch(body, /id="|entity="|s999|c99999/, 'no entity id in any label')
  // Bound: every route pattern x method x status seen, the histogram's 16 lines per (route, method), a reject
  // code per GW_ERR_* seen; independent of entities. Measured well under 200 here.
  t.ok(after.ours < 200, `gateway pitwall series ${after.ours} < 200`)
  t.ok(after.all < 400, `gateway series in all ${after.all} < 400`)
})
