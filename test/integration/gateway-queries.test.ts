/**
 * Query routes against real PostgreSQL and nats-server: outputs are published to the OUT stream and written by
 * the real projector (raw positions by its writeRawReadings), then read through the gateway: window aggregates
 * (raw and rolled up), alerts with every filter, recommendations, laps, late readings, trips and positions as
 * GeoJSON, roll-ups, cursor pagination, bad query input, and people's fleet/site scoping.
 */
import t from 'tap'
import { jetstream } from '@nats-io/jetstream'
import pg from 'pg'
import { Projector, writeRawReadings } from '../../projector/mod.js'
import type { Output } from '../../actors/types.js'
import { alertOut, lapOut, lateOut, output, recommendationOut, subjectOf, windowOut } from '../projector-fixtures.js'
import { bearer, setupGateway, VIN } from '../helpers/gateway.js'

const VIN2 = '1HGCM82633A004352'
const MIN = 60_000
const NOW = Date.now()
/** Ten recent 1-minute windows of s1, aligned to 5 minutes so a 5-minute roll-up has exactly two buckets. */
const BASE = Math.floor(NOW / 300_000) * 300_000 - 15 * MIN
const T1 = NOW - 3_600_000

type Json = Record<string, unknown>
interface Page {
  items: Json[]
  nextCursor: string | null
}

t.test('queries over the projection', async (t) => {
  const g = await setupGateway(t)
  const { app, nc } = g
  const db = g.db
  if (!db) throw new Error('no database')
  const pool = new pg.Pool({ connectionString: db.url, max: 2 })
  t.teardown(() => pool.end())
  const op = bearer('operator')
  const viewer = bearer('viewer')
  const get = async (
    url: string,
    headers: Record<string, string> = viewer,
  ): Promise<{ status: number; body: Json }> => {
    const res = await app.inject({ method: 'GET', url, headers })
    return { status: res.statusCode, body: res.json<Json>() }
  }
  /** Follows nextCursor to the end; returns every item. */
  const all = async (url: string, headers: Record<string, string> = viewer): Promise<Json[]> => {
    const items: Json[] = []
    let cursor: string | null = null
    for (let i = 0; i < 100; i++) {
      const r = await get(`${url}${url.includes('?') ? '&' : '?'}limit=2${cursor ? `&cursor=${cursor}` : ''}`, headers)
      if (r.status !== 200) throw new Error(`${url}: ${r.status} ${JSON.stringify(r.body)}`)
      const p = r.body as unknown as Page
      items.push(...p.items)
      cursor = p.nextCursor
      if (!cursor) break
    }
    return items
  }

  // registry: two fleets, sensors at two sites and stages, two vehicles
  for (const [url, body] of [
    ['/v1/customers', { id: 'acme', name: 'Acme' }],
    ['/v1/customers', { id: 'beta', name: 'Beta' }],
    [
      '/v1/sensors',
      { id: 's1', type: 'temp', profile: 'environment', site: 'a', processStage: 'mixing', customerId: 'acme' },
    ],
    [
      '/v1/sensors',
      { id: 's2', type: 'temp', profile: 'environment', site: 'b', processStage: 'packing', customerId: 'beta' },
    ],
    ['/v1/sensors', { id: 's3', type: 'temp', profile: 'environment', site: 'a', processStage: 'mixing' }],
    ['/v1/vehicles', { vin: VIN, brand: 'Volvo', model: 'FH', year: 2020, profile: 'road', customerId: 'acme' }],
    ['/v1/vehicles', { vin: VIN2, brand: 'Honda', model: 'Accord', year: 2003, profile: 'race', customerId: 'beta' }],
  ] as const) {
    const res = await app.inject({ method: 'POST', url, headers: op, payload: body })
    t.equal(res.statusCode, 201, `${url} ${res.body}`)
  }

  // outputs, through OUT and the real projector
  let seq = 0
  const outs: Output[] = []
  for (let i = 0; i < 10; i++) outs.push(windowOut('s1', BASE + i * MIN, { seq: ++seq, mean: i }))
  outs.push(windowOut('s2', T1, { seq: ++seq }))
  outs.push(alertOut('s1', T1, 'open', { seq: ++seq, value: 31 }))
  outs.push(alertOut('s2', T1 + MIN, 'open', { seq: ++seq, value: 35 }))
  outs.push(alertOut('s2', T1 + 2 * MIN, 'open', { seq: ++seq, value: 36 }))
  outs.push(alertOut('s2', T1 + 2 * MIN, 'close', { seq: ++seq, value: 20, end: T1 + 3 * MIN }))
  outs.push(
    output(
      'alert',
      VIN,
      `vehicle:${VIN}:low_fuel:${T1}:open:${++seq}`,
      {
        alertId: `vehicle:${VIN}:low_fuel:${T1}`,
        type: 'low_fuel',
        severity: 'warning',
        state: 'open',
        start: T1,
        value: 5,
        threshold: 10,
        explanation: 'fuel 5% < 10%',
      },
      { seq, kind: 'vehicle', profile: 'road', ts: T1 },
    ),
  )
  for (let lap = 1; lap <= 5; lap++) outs.push(lapOut(VIN2, lap, { seq: ++seq }))
  outs.push(recommendationOut(VIN2, { seq: ++seq }), recommendationOut(VIN2, { seq: ++seq, ts: NOW - MIN }))
  for (let i = 0; i < 3; i++) outs.push(lateOut('s1', T1 + i * 1000, { seq: ++seq }))
  outs.push(lateOut('s2', T1, { seq: ++seq }))
  const tripStart = T1
  const tripEnd = T1 + 10 * MIN
  outs.push(
    output(
      'score',
      VIN,
      `vehicle:${VIN}:score:trip:${tripStart}`,
      {
        name: 'trip',
        value: 12.5,
        factors: {
          distance_km: 12.5,
          duration_s: 600,
          max_speed: 90,
          avg_speed: 75,
          start_ts: tripStart,
          end_ts: tripEnd,
        },
      },
      { seq: ++seq, kind: 'vehicle', profile: 'road', ts: tripEnd },
    ),
  )
  const js = jetstream(nc)
  for (const o of outs) await js.publish(subjectOf(o), JSON.stringify(o), { msgID: o.id })
  const projector = new Projector({ nc, pool, site: 'a', batchMs: 5 })
  await projector.start()
  t.teardown(() => projector.stop())
  for (let i = 0; i < 200 && projector.stats().applied < outs.length; i++) await new Promise((r) => setTimeout(r, 25))
  t.equal(projector.stats().applied, outs.length, 'projector wrote every output')
  // positions: 20 points during the trip, 5 after it
  const pts = Array.from({ length: 25 }, (_, i) => ({
    kind: 'vehicle',
    entity: VIN,
    seq: i + 1,
    ts: tripStart + i * 30_000,
    fields: { speed: 70 },
    loc: { lat: 45 + i / 100, lon: 9 + i / 100 },
  }))
  t.equal(await writeRawReadings(pool, pts), 25)

  t.test('window aggregates: raw, paginated, rolled up to a resolution', async (t) => {
    const raw = await all(`/v1/entities/sensor/s1/windows?window=tumbling_1m`)
    t.equal(raw.length, 10, 'every window once over 5 pages')
    t.same(
      raw.map((w) => (w.fields as Record<string, { mean: number }>).temperature?.mean),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      'in time order',
    )
    t.match(raw[0], {
      window: 'tumbling_1m',
      start: new Date(BASE).toISOString(),
      end: new Date(BASE + MIN).toISOString(),
      windows: 1,
      idleClosed: false,
    })
    const ranged = await all(
      `/v1/entities/sensor/s1/windows?window=tumbling_1m&from=${BASE + 2 * MIN}&to=${new Date(BASE + 5 * MIN).toISOString()}`,
    )
    t.equal(ranged.length, 3, 'from inclusive, to exclusive, ISO or ms')
    const r = await get(`/v1/entities/sensor/s1/windows?window=tumbling_1m&resolution=300000`)
    t.equal(r.status, 200, JSON.stringify(r.body))
    const buckets = (r.body as unknown as Page).items
    t.equal(buckets.length, 2)
    t.match(buckets[0], {
      start: new Date(BASE).toISOString(),
      end: new Date(BASE + 5 * MIN).toISOString(),
      windows: 5,
      counts: { alerts: 0, failures: 0 },
    })
    const temp = (buckets[0]?.fields as Record<string, Record<string, number>>).temperature
    // windows of means 0..4, two samples each (mean ± 1), variance 1: count 10, sum 20, min -1, max 5, variance 1 + 2 = 3
    t.match(temp, { count: 10, sum: 20, mean: 2, min: -1, max: 5, first: -1, last: 5 })
    t.ok(Math.abs((temp?.variance ?? 0) - 3) < 1e-9, `combined variance ${temp?.variance}`)
    const paged = await all(`/v1/entities/sensor/s1/windows?window=tumbling_1m&resolution=300000`)
    t.same(
      paged.map((b) => b.windows),
      [5, 5],
      'buckets paginate too',
    )
    t.equal(
      (await get('/v1/entities/sensor/s1/windows?window=tumbling_1m&resolution=10')).body.code,
      'GW_ERR_QUERY_INVALID',
    )
    t.same((await get('/v1/entities/sensor/nobody/windows?window=tumbling_1m')).body, { items: [], nextCursor: null })
  })

  t.test('alerts: filters and pagination', async (t) => {
    const every = await all('/v1/alerts')
    t.equal(every.length, 4, '4 alerts (the s2 close updated its alert)')
    t.equal(new Set(every.map((a) => a.alertId)).size, 4, 'each once')
    t.same(
      every.map((a) => a.startedAt),
      [...every.map((a) => a.startedAt as string)].sort().reverse(),
      'newest first',
    )
    t.equal((await all('/v1/alerts?state=open')).length, 3)
    const closed = await all('/v1/alerts?state=closed')
    t.match(closed, [
      {
        entity: 's2',
        state: 'closed',
        endedAt: new Date(T1 + 3 * MIN).toISOString(),
        type: 'temp_high',
        severity: 'warning',
      },
    ])
    t.equal((await all('/v1/alerts?severity=warning')).length, 4)
    t.equal((await all('/v1/alerts?severity=critical')).length, 0)
    t.equal((await all('/v1/alerts?type=low_fuel')).length, 1)
    t.equal((await all('/v1/alerts?kind=vehicle')).length, 1)
    t.equal((await all('/v1/alerts?entity=s2')).length, 2)
    t.equal((await all(`/v1/alerts?from=${T1 + MIN}`)).length, 2)
    t.equal((await all(`/v1/alerts?to=${T1 + MIN}`)).length, 2)
    t.equal((await all(`/v1/alerts?kind=sensor&state=open&entity=s1`)).length, 1)
  })

  t.test('recommendations, laps, late readings', async (t) => {
    const recs = await all(`/v1/recommendations?entity=${VIN2}`)
    t.equal(recs.length, 2)
    t.match(recs[0], { kind: 'vehicle', entity: VIN2, action: 'pit_now', score: 74.5, reason: String })
    t.equal((await all(`/v1/recommendations?action=box`)).length, 0)
    const laps = await all(`/v1/entities/vehicle/${VIN2}/laps`)
    t.same(
      laps.map((l) => l.lap),
      [1, 2, 3, 4, 5],
    )
    t.match(laps[0], { lapTimeMs: 89_500, maxSpeed: 318, avgSpeed: 210.5, samples: 1790 })
    t.equal((await all('/v1/late-readings?entity=s1')).length, 3)
    t.equal((await all('/v1/late-readings')).length, 4)
    t.match((await all('/v1/late-readings?kind=sensor&entity=s2'))[0], {
      readingTs: new Date(T1).toISOString(),
      fields: { temperature: 21.5 },
    })
  })

  t.test('trips and positions as GeoJSON', async (t) => {
    const trips = await get(`/v1/entities/vehicle/${VIN}/trips`)
    t.equal(trips.status, 200)
    const fc = trips.body as {
      type: string
      features: { type: string; geometry: { type: string; coordinates: number[][] } | null; properties: Json }[]
    }
    t.equal(fc.type, 'FeatureCollection')
    t.equal(fc.features.length, 1)
    const f = fc.features[0]
    t.equal(f?.geometry?.type, 'LineString')
    t.equal(f?.geometry?.coordinates.length, 21, 'positions between trip start and end (inclusive)')
    t.same(f?.geometry?.coordinates[0], [9, 45], '[lon, lat]')
    t.match(f?.properties, {
      distanceKm: 12.5,
      durationS: 600,
      start: new Date(tripStart).toISOString(),
      end: new Date(tripEnd).toISOString(),
    })
    const pos = await get(`/v1/entities/vehicle/${VIN}/positions?limit=10`)
    const pfc = pos.body as {
      features: { geometry: { coordinates: number[] }; properties: Json }[]
      nextCursor: string | null
    }
    t.equal(pfc.features.length, 10)
    t.ok(pfc.nextCursor)
    t.match(pfc.features[0], {
      type: 'Feature',
      geometry: { type: 'Point', coordinates: [9, 45] },
      properties: { seq: 1 },
    })
    let n = 0
    let cursor: string | null = null
    do {
      const r = await get(`/v1/entities/vehicle/${VIN}/positions?limit=7${cursor ? `&cursor=${cursor}` : ''}`)
      const b = r.body as { features: unknown[]; nextCursor: string | null }
      n += b.features.length
      cursor = b.nextCursor
    } while (cursor)
    t.equal(n, 25, 'every position once')
    t.same((await get(`/v1/entities/vehicle/${VIN2}/trips`)).body, {
      type: 'FeatureCollection',
      features: [],
      nextCursor: null,
    })
  })

  t.test('roll-ups: open alerts by type and stage, stale entities', async (t) => {
    const r = await get('/v1/rollups/open-alerts')
    t.equal(r.status, 200)
    t.match(r.body, { total: 3 })
    t.same(r.body.byType, [
      { type: 'temp_high', severity: 'warning', count: 2 },
      { type: 'low_fuel', severity: 'warning', count: 1 },
    ])
    t.same(r.body.byStage, [
      { processStage: 'mixing', count: 1 },
      { processStage: 'packing', count: 1 },
    ])
    t.match((await get('/v1/rollups/open-alerts?kind=vehicle')).body, { total: 1, byStage: [] })
    const stale30 = await all('/v1/rollups/stale?minutes=30')
    t.same(
      stale30.map((e) => `${e.kind}:${e.id}`),
      [`sensor:s2`, 'sensor:s3', `vehicle:${VIN2}`, `vehicle:${VIN}`],
      's1 has recent windows; byte order',
    )
    t.match(stale30[0], { lastSeen: new Date(T1 + MIN).toISOString(), registered: true })
    t.match(stale30[1], { lastSeen: null, registered: true })
    t.equal((await all('/v1/rollups/stale?minutes=1')).length, 5, 'everything is stale for 1 minute')
    t.equal((await all('/v1/rollups/stale?minutes=1&kind=vehicle')).length, 2)
    t.equal((await get('/v1/rollups/stale')).body.code, 'GW_ERR_QUERY_INVALID', 'minutes required')
    t.equal((await get('/v1/rollups/stale?minutes=0')).body.code, 'GW_ERR_QUERY_INVALID')
  })

  t.test('bad query input', async (t) => {
    for (const url of [
      '/v1/alerts?bogus=1',
      '/v1/alerts?limit=0',
      '/v1/alerts?limit=101',
      '/v1/alerts?state=maybe',
      '/v1/alerts?from=yesterday',
      `/v1/alerts?from=${T1}&to=${T1 - 1}`,
      '/v1/alerts?kind=robot',
      '/v1/alerts?entity=a%20b',
      '/v1/entities/sensor/s1/windows',
      '/v1/entities/sensor/s1/laps?limit=x',
      '/v1/rollups/stale?minutes=-1',
    ]) {
      const r = await get(url)
      t.equal(r.status, 400, url)
      t.equal(r.body.code, 'GW_ERR_QUERY_INVALID', url)
    }
    for (const c of [
      'x',
      Buffer.from('[1]').toString('base64url'),
      Buffer.from('{"k":"a"}').toString('base64url'),
      Buffer.from('[1,2]').toString('base64url'),
    ]) {
      t.equal((await get(`/v1/alerts?cursor=${c}`)).body.code, 'GW_ERR_CURSOR_INVALID', c)
    }
    t.equal((await get('/v1/entities/robot/x/laps')).body.code, 'GW_ERR_KIND_INVALID')
  })

  t.test('scoping: a person sees their fleets and sites only; admins everything', async (t) => {
    const acme = bearer('viewer', { fleets: ['acme'] })
    const siteB = bearer('operator', { sites: ['b'] })
    t.same((await all('/v1/alerts', acme)).map((a) => a.entity).sort(), [VIN, 's1'], 'acme: its sensor and its vehicle')
    t.same(
      (await all('/v1/alerts', siteB)).map((a) => a.entity),
      ['s2', 's2'],
      'site b: its sensor',
    )
    t.equal((await all('/v1/alerts', bearer('admin', { fleets: ['nobody'] }))).length, 4, 'admins are not scoped')
    t.equal((await all('/v1/alerts', bearer('viewer', { fleets: [] }))).length, 0, 'empty scope sees nothing')
    t.equal((await all('/v1/recommendations', acme)).length, 0, 'recommendations of the other fleet hidden')
    t.equal((await all('/v1/late-readings', acme)).length, 3)
    for (const url of [
      '/v1/entities/sensor/s2/windows?window=tumbling_1m',
      `/v1/entities/vehicle/${VIN2}/laps`,
      `/v1/entities/vehicle/${VIN2}/trips`,
      `/v1/entities/vehicle/${VIN2}/positions`,
      '/v1/entities/sensor/s2/state',
      '/v1/entities/sensor/unregistered/windows?window=tumbling_1m',
    ]) {
      const r = await get(url, acme)
      t.equal(r.status, 404, `acme: ${url}`)
      t.equal(r.body.code, 'GW_ERR_NOT_FOUND')
    }
    t.equal((await get('/v1/entities/sensor/s1/windows?window=tumbling_1m', acme)).status, 200)
    t.equal((await get(`/v1/entities/vehicle/${VIN}/trips`, acme)).status, 200)
    t.match((await get('/v1/rollups/open-alerts', acme)).body, {
      total: 2,
      byStage: [{ processStage: 'mixing', count: 1 }],
    })
    t.same(
      (await all('/v1/rollups/stale?minutes=30', siteB)).map((e) => e.id),
      ['s2'],
    )
    t.equal(
      (await get('/v1/alerts', { authorization: `Bearer ${bearer('viewer').authorization?.slice(7) ?? ''}` })).status,
      200,
    )
    const badClaim = await get('/v1/alerts', bearer('viewer', { fleets: 'acme' }))
    t.equal(badClaim.status, 401, 'fleets must be a list')
  })
})
