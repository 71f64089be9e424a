/**
 * Domain metrics of the projector (projector/domain-metrics.ts): under a simulated load through real
 * workers, a real nats-server and PostgreSQL, the gauges agree with the tables the projector wrote (open alerts by
 * profile/type/severity, per-car pit-stop scores and lap maxima); the per-profile entity cap holds and counts
 * what it drops; a restarted projector seeds open alerts from PostgreSQL; profiles not enabled export nothing.
 * Also the pure bookkeeping on planned batches: replayed opens, closes of unknown alerts, the series cap.
 */
import t from 'tap'
import { jetstream } from '@nats-io/jetstream'
import type { Registry } from 'prom-client'
import { METRICS } from '../../actors/metrics.js'
import { DomainMetrics, domainMetricsConfig, domainMetricsFromEnv, planBatch } from '../../projector/mod.js'
import { ConfigError } from '../../actors/errors.js'
import { Registry as PromRegistry } from 'prom-client'
import type { Output } from '../../actors/types.js'
import { startStack } from '../metrics-stack.js'
import { alertOut, lapOut, lateOut, scoreOut, subjectOf, T0 } from '../projector-fixtures.js'

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Parses the text exposition of `registry` into samples. */
async function samples(registry: Registry): Promise<Sample[]> {
  const out: Sample[] = []
  for (const line of (await registry.metrics()).split('\n')) {
    const m = /^([a-z_:][a-z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) continue
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string
    out.push({ name: m[1] as string, labels, value: Number(m[3]) })
  }
  return out
}
const of = (s: Sample[], name: string): Sample[] => s.filter((x) => x.name === name)

function registryOf(d: DomainMetrics): Registry {
  const r = new PromRegistry()
  d.register(r)
  return r
}

function batch(outputs: Output[], from = 1): ReturnType<typeof planBatch>['rows'] {
  const msgs = outputs.map((o, i) => ({
    seq: from + i,
    subject: subjectOf(o),
    data: new TextEncoder().encode(JSON.stringify(o)),
  }))
  return planBatch(msgs, from - 1, new Map()).rows
}

t.test('settings: PITWALL_DOMAIN_METRICS and the entity cap', async (t) => {
  const c = domainMetricsFromEnv({
    PITWALL_DOMAIN_METRICS: ' race, process ,',
    PITWALL_DOMAIN_METRICS_MAX_ENTITIES: '10',
  })
  t.same([...c.profiles], ['race', 'process'])
  t.equal(c.maxEntities, 10)
  t.equal(domainMetricsFromEnv({}).profiles.size, 0, 'off by default')
  t.equal(domainMetricsFromEnv({}).maxEntities, 64)
  t.throws(() => domainMetricsFromEnv({ PITWALL_DOMAIN_METRICS: 'Race!' }), ConfigError)
  t.throws(() => domainMetricsFromEnv({ PITWALL_DOMAIN_METRICS_MAX_ENTITIES: '0' }), ConfigError)
  t.throws(() => domainMetricsFromEnv({ PITWALL_DOMAIN_METRICS_MAX_ENTITIES: 'many' }), ConfigError)
})

t.test('bookkeeping on committed batches: opens, replays, closes, caps, disabled profiles', async (t) => {
  const d = new DomainMetrics(domainMetricsConfig({ profiles: ['environment', 'race'], maxEntities: 2 }))
  const reg = registryOf(d)
  const e = { profile: 'environment' }
  d.committed(
    batch([
      alertOut('s1', T0, 'open', { seq: 1, value: 35, ...e }),
      alertOut('s2', T0, 'open', { seq: 2, value: 36, ...e }),
      // A replayed open (same alert id, later in the stream) must not count twice.
      { ...alertOut('s1', T0, 'open', { seq: 3, value: 35, ...e }), id: 'replay-of-s1' },
      // Third entity: over the per-entity cap of 2, the per-entity series is dropped, the aggregate still counts.
      alertOut('s3', T0, 'open', { seq: 4, value: 37, ...e }),
      // A close of an alert never seen open is ignored.
      alertOut('s9', T0 - 5, 'close', { seq: 5, value: 20, end: T0, ...e }),
      lateOut('s1', T0 - 600_000, { seq: 6, ...e }),
      lateOut('s1', T0 - 600_000, { seq: 7, profile: 'road', kind: 'vehicle' }),
    ]),
  )
  let s = await samples(reg)
  const open = of(s, METRICS.domainAlertsOpen)
  t.same(
    open.map((x) => [x.labels.profile, x.labels.type, x.labels.severity, x.value]),
    [['environment', 'temp_high', 'warning', 3]],
  )
  t.same(
    of(s, METRICS.domainEntityAlertsOpen).map((x) => [x.labels.entity, x.value]),
    [
      ['s1', 1],
      ['s2', 1],
    ],
    'per-entity series for the first 2 entities only',
  )
  t.equal(
    of(s, METRICS.domainDropped).find((x) => x.labels.profile === 'environment')?.value,
    1,
    'the third entity counted as dropped',
  )
  t.equal(of(s, METRICS.domainAlertsOpened)[0]?.value, 3)
  t.same(
    of(s, METRICS.projectorLateReadings).map((x) => [x.labels.profile, x.value]),
    [
      ['environment', 1],
      ['road', 1],
    ],
    'late readings of every profile',
  )

  d.committed(
    batch(
      [
        alertOut('s1', T0, 'close', { seq: 10, value: 20, end: T0 + 60_000, ...e }),
        alertOut('s1', T0, 'close', { seq: 11, value: 20, end: T0 + 60_000, ...e }),
        scoreOut('car-01', { seq: 12, value: 42.5 }),
        scoreOut('car-01', { seq: 13, value: 71.25 }),
        lapOut('car-01', 3, { seq: 14 }),
        scoreOut('car-x', { seq: 15, value: 1, profile: 'road' }),
      ],
      10,
    ),
  )
  s = await samples(reg)
  t.equal(of(s, METRICS.domainAlertsOpen)[0]?.value, 2, 'closed once, even when the close is repeated')
  t.same(
    of(s, METRICS.domainEntityAlertsOpen).map((x) => [x.labels.entity, x.value]),
    [
      ['s1', 0],
      ['s2', 1],
    ],
  )
  t.same(
    of(s, METRICS.domainEntityScore).map((x) => [x.labels.profile, x.labels.entity, x.labels.name, x.value]),
    [['race', 'car-01', 'pit', 71.25]],
    'latest score; road is not enabled',
  )
  t.equal(of(s, METRICS.domainLapBrakeTempMax)[0]?.value, 880)
  t.equal(of(s, METRICS.domainLapTyreTempMax)[0]?.value, 112)
  t.equal(of(s, METRICS.domainLapSeconds)[0]?.value, 89.5)
  t.notOk(
    s.some((x) => x.labels.profile === 'road' && x.name.startsWith('pitwall_domain_')),
    'nothing for a profile not enabled',
  )

  // Plant stages: anomalies per stage from details.stage, a replayed open counted once.
  const plant = new DomainMetrics(domainMetricsConfig({ profiles: ['process'] }))
  const plantReg = registryOf(plant)
  const staged = (entity: string, stage: string, seq: number, id?: string): Output => {
    const o = alertOut(entity, T0, 'open', { seq, value: 9, profile: 'process' })
    return {
      ...o,
      ...(id ? { id } : {}),
      body: { ...o.body, type: 'sensor_drift', details: { stage, sensorType: 'ph' } },
    }
  }
  plant.committed(
    batch([
      staged('bio-01', 'biological', 1),
      staged('bio-01', 'biological', 2, 'replayed'),
      staged('out-01', 'outlet', 3),
    ]),
  )
  const ps = of(await samples(plantReg), METRICS.domainStageAnomalies).map((x) => [
    x.labels.stage,
    x.labels.type,
    x.value,
  ])
  t.same(
    ps,
    [
      ['biological', 'sensor_drift', 1],
      ['outlet', 'sensor_drift', 1],
    ],
    'anomalies per stage, the replay not counted',
  )

  const off = new DomainMetrics()
  const offReg = registryOf(off)
  off.committed(
    batch([alertOut('s1', T0, 'open', { seq: 1, value: 35, ...e }), lateOut('s1', T0 - 600_000, { seq: 2, ...e })]),
  )
  const offS = await samples(offReg)
  t.notOk(
    offS.some((x) => x.name.startsWith('pitwall_domain_')),
    'off: no domain series',
  )
  t.equal(of(offS, METRICS.projectorLateReadings)[0]?.value, 1, 'off: late readings per profile still counted')
})

t.test('under a simulated load the gauges agree with PostgreSQL; cap and restart', async (t) => {
  const stack = await startStack({ workers: 1, domainProfiles: ['race', 'environment'], maxEntities: 3 })
  t.teardown(() => stack.stop())
  const { sent } = await stack.load({ cars: 5, sensors: 6, durationS: 400 })
  t.ok(sent > 20_000, `${sent} readings published`)
  const reg = stack.projectorMetrics
  const s = await samples(reg)

  const openDb = await stack.pool.query<{ profile: string; type: string; severity: string; n: string }>(
    `SELECT profile, type, severity, count(*) AS n FROM alerts WHERE state = 'open' AND profile IN ('race', 'environment') GROUP BY 1, 2, 3`,
  )
  const openedDb = await stack.pool.query<{ n: string }>(
    `SELECT count(DISTINCT alert_id) AS n FROM alert_events WHERE profile IN ('race', 'environment') AND event = 'open'`,
  )
  t.ok(Number(openedDb.rows[0]?.n) > 0, `the load opened alerts (${openedDb.rows[0]?.n})`)
  const gauge = new Map(
    of(s, METRICS.domainAlertsOpen).map((x) => [`${x.labels.profile}/${x.labels.type}/${x.labels.severity}`, x.value]),
  )
  for (const r of openDb.rows)
    t.equal(
      gauge.get(`${r.profile}/${r.type}/${r.severity}`),
      Number(r.n),
      `open ${r.profile}/${r.type}/${r.severity} = ${r.n}`,
    )
  const gaugeTotal = [...gauge.values()].reduce((a, b) => a + b, 0)
  t.equal(
    gaugeTotal,
    openDb.rows.reduce((a, r) => a + Number(r.n), 0),
    'no open alert the database does not have',
  )
  const openedTotal = of(s, METRICS.domainAlertsOpened).reduce((a, x) => a + x.value, 0)
  t.equal(openedTotal, Number(openedDb.rows[0]?.n), 'alerts opened = distinct alerts opened in alert_events')

  // Per car: only the first 3 cars have series; each agrees with scores_latest and the last lap in lap_stats.
  const scores = of(s, METRICS.domainEntityScore).filter(
    (x) => x.labels.profile === 'race' && x.labels.name === 'pit_stop',
  )
  t.equal(scores.length, 3, 'pit-stop score series for 3 cars (the cap)')
  for (const x of scores) {
    const r = await stack.pool.query<{ value: number }>(
      `SELECT value FROM scores_latest WHERE entity = $1 AND name = 'pit_stop'`,
      [x.labels.entity],
    )
    t.equal(x.value, r.rows[0]?.value, `${x.labels.entity} pit-stop score = scores_latest`)
  }
  const brakes = of(s, METRICS.domainLapBrakeTempMax)
  t.ok(brakes.length > 0 && brakes.length <= 3, `lap brake maxima for ${brakes.length} cars`)
  for (const x of brakes) {
    const r = await stack.pool.query<{ max_brake_temp: number }>(
      `SELECT max_brake_temp FROM lap_stats WHERE entity = $1 ORDER BY seq DESC LIMIT 1`,
      [x.labels.entity],
    )
    t.equal(x.value, r.rows[0]?.max_brake_temp, `${x.labels.entity} brake max = its last lap`)
  }
  const usage = stack.domain.usage()
  t.equal(usage.race?.entities, 3, 'race: 3 entities tracked')
  t.ok((usage.race?.dropped ?? 0) > 0, `race: updates of the other cars counted as dropped (${usage.race?.dropped})`)
  t.equal(of(s, METRICS.domainEntitiesTracked).find((x) => x.labels.profile === 'race')?.value, 3)
  t.notOk(
    s.some((x) => x.labels.profile === 'asset'),
    'no series for profiles not enabled',
  )

  // Projector writes: rows by table at least the rows in each table (upserts count each time), one histogram
  // observation per batch.
  for (const table of ['lap_stats', 'scores_latest', 'window_aggregates', 'alert_events']) {
    const r = await stack.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)
    const written = of(s, METRICS.projectorRows).find((x) => x.labels.table === table)?.value ?? -1
    t.ok(
      Number(r.rows[0]?.n) > 0 && written >= Number(r.rows[0]?.n),
      `${table}: ${written} rows written >= ${r.rows[0]?.n} in the table`,
    )
  }
  const batches = of(s, `${METRICS.projectorBatchMessages}_count`)[0]?.value ?? 0
  const messages = of(s, `${METRICS.projectorBatchMessages}_sum`)[0]?.value ?? 0
  t.ok(
    batches > 0 && batches === of(s, `${METRICS.projectorWriteSeconds}_count`)[0]?.value,
    `${batches} batches observed in both histograms`,
  )
  t.ok(
    messages >= stack.projector.stats().applied,
    `${messages} messages in batches >= ${stack.projector.stats().applied} outputs applied`,
  )

  t.equal(of(s, METRICS.projectorLag)[0]?.value, 0, 'projector lag 0 once caught up')

  // Two alerts left open (published to OUT like a worker would, with a token above any real one).
  const js = jetstream(stack.nc)
  for (const [i, ent] of ['s-open-1', 's-open-2'].entries()) {
    const o = alertOut(ent, T0 + i, 'open', { seq: 900_000 + i, value: 45, profile: 'environment', token: 1e9 })
    await js.publish(subjectOf(o), JSON.stringify(o), { msgID: o.id })
  }
  await stack.projector.caughtUp(10_000)
  const openNow = await stack.pool.query<{ profile: string; type: string; severity: string; n: string }>(
    `SELECT profile, type, severity, count(*) AS n FROM alerts WHERE state = 'open' AND profile IN ('race', 'environment') GROUP BY 1, 2, 3`,
  )
  t.ok(openNow.rows.length > 0, 'open alerts in PostgreSQL')
  const live = new Map(
    of(await samples(reg), METRICS.domainAlertsOpen).map((x) => [
      `${x.labels.profile}/${x.labels.type}/${x.labels.severity}`,
      x.value,
    ]),
  )
  for (const r of openNow.rows)
    t.equal(
      live.get(`${r.profile}/${r.type}/${r.severity}`),
      Number(r.n),
      `open ${r.profile}/${r.type}/${r.severity} = ${r.n}`,
    )

  // A new projector (fresh metrics) seeds open alerts from PostgreSQL.
  const fresh = new DomainMetrics(domainMetricsConfig({ profiles: ['race', 'environment'] }))
  await fresh.start(stack.pool)
  const seeded = new Map(
    of(await samples(registryOf(fresh)), METRICS.domainAlertsOpen).map((x) => [
      `${x.labels.profile}/${x.labels.type}/${x.labels.severity}`,
      x.value,
    ]),
  )
  for (const r of openNow.rows)
    t.equal(seeded.get(`${r.profile}/${r.type}/${r.severity}`), Number(r.n), `seeded ${r.profile}/${r.type}`)
})
