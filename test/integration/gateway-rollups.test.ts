/**
 * The period roll-ups the console's Sensors trend reads, against real PostgreSQL and nats-server with the rows
 * written by the real projector: `GET /v1/rollups/alerts` (alerts started in [from, to) by type and severity and per
 * time bucket) and `GET /v1/rollups/late-readings` (late readings per entity). The expected numbers are counted
 * by the test from the outputs it published, with the documented rules (gateway/README.md), never read back.
 * Also: bad input gets GW_ERR_QUERY_INVALID with the item, and a person sees only their fleets' entities.
 */
import t from 'tap'
import { jetstream } from '@nats-io/jetstream'
import pg from 'pg'
import { Projector } from '../../projector/mod.js'
import type { AlertBody, Output } from '../../actors/types.js'
import { lateOut, output, subjectOf } from '../projector-fixtures.js'
import { bearer, setupGateway } from '../helpers/gateway.js'

type Json = Record<string, unknown>
const HOUR = 3_600_000
/** A whole hour, 30 hours ago: the buckets below are aligned to it. */
const H0 = Math.floor((Date.now() - 30 * HOUR) / HOUR) * HOUR

t.test('alert and late-reading roll-ups over a period', async (t) => {
  const g = await setupGateway(t)
  const { app, nc } = g
  if (!g.db) throw new Error('no database')
  const pool = new pg.Pool({ connectionString: g.db.url, max: 2 })
  t.teardown(() => pool.end())
  const op = bearer('operator')
  const get = async (
    url: string,
    headers: Record<string, string> = bearer('viewer'),
  ): Promise<{ status: number; body: Json }> => {
    const res = await app.inject({ method: 'GET', url, headers })
    return { status: res.statusCode, body: res.json<Json>() }
  }
  for (const [url, body] of [
    ['/v1/customers', { id: 'acme', name: 'Acme' }],
    ['/v1/sensors', { id: 'e1', type: 'climate', profile: 'environment', site: 'a', customerId: 'acme' }],
    ['/v1/sensors', { id: 'e2', type: 'climate', profile: 'environment', site: 'a' }],
    ['/v1/sensors', { id: 'p1', type: 'ph', profile: 'process', site: 'a', customerId: 'acme' }],
  ] as const)
    t.equal((await app.inject({ method: 'POST', url, headers: op, payload: body })).statusCode, 201)

  // Alerts: environment ones over three hours (two types, three severities), a process one, one before the period.
  let seq = 0
  const outs: Output[] = []
  const plan: {
    entity: string
    profile: string
    type: string
    severity: 'info' | 'warning' | 'critical'
    at: number
  }[] = [
    { entity: 'e1', profile: 'environment', type: 'temp_high', severity: 'warning', at: H0 + 5 * 60_000 },
    { entity: 'e1', profile: 'environment', type: 'temp_high', severity: 'warning', at: H0 + 50 * 60_000 },
    { entity: 'e2', profile: 'environment', type: 'co2_high', severity: 'critical', at: H0 + 20 * 60_000 },
    { entity: 'e2', profile: 'environment', type: 'temp_high', severity: 'warning', at: H0 + 2 * HOUR + 1_000 },
    { entity: 'e2', profile: 'environment', type: 'battery_low', severity: 'info', at: H0 + 2 * HOUR + 30 * 60_000 },
    { entity: 'p1', profile: 'process', type: 'value_anomaly', severity: 'warning', at: H0 + 10 * 60_000 },
    { entity: 'e1', profile: 'environment', type: 'temp_high', severity: 'critical', at: H0 - 10 * 60_000 },
  ]
  for (const a of plan) {
    const body: AlertBody = {
      alertId: `sensor:${a.entity}:${a.type}:${a.at}`,
      type: a.type,
      severity: a.severity,
      state: 'open',
      start: a.at,
      value: 1,
      threshold: 0,
      explanation: a.type,
    }
    outs.push(output('alert', a.entity, `${body.alertId}:open`, body, { seq: ++seq, profile: a.profile, ts: a.at }))
  }
  // Late readings: e1 three (one before the period), e2 one, p1 two.
  const late: { entity: string; profile: string; at: number }[] = [
    { entity: 'e1', profile: 'environment', at: H0 + 60_000 },
    { entity: 'e1', profile: 'environment', at: H0 + 2 * HOUR },
    { entity: 'e1', profile: 'environment', at: H0 - 60_000 },
    { entity: 'e2', profile: 'environment', at: H0 + HOUR },
    { entity: 'p1', profile: 'process', at: H0 + 60_000 },
    { entity: 'p1', profile: 'process', at: H0 + 120_000 },
  ]
  for (const l of late) outs.push(lateOut(l.entity, l.at, { seq: ++seq, profile: l.profile }))
  const js = jetstream(nc)
  for (const o of outs) await js.publish(subjectOf(o), JSON.stringify(o), { msgID: o.id })
  const projector = new Projector({ nc, pool, site: 'a', batchMs: 5 })
  await projector.start()
  t.teardown(() => projector.stop())
  for (let i = 0; i < 400 && projector.stats().applied < outs.length; i++) await new Promise((r) => setTimeout(r, 25))
  t.equal(projector.stats().applied, outs.length, 'projector wrote every output')

  const from = H0
  const to = H0 + 3 * HOUR
  t.test('alerts: by type and severity, per bucket', async (t) => {
    const r = await get(`/v1/rollups/alerts?kind=sensor&profile=environment&from=${from}&to=${to}`)
    t.equal(r.status, 200, JSON.stringify(r.body))
    const inPeriod = plan.filter((a) => a.profile === 'environment' && a.at >= from && a.at < to)
    t.equal(r.body.total, inPeriod.length)
    const types = new Map<string, number>()
    for (const a of inPeriod) types.set(`${a.type}/${a.severity}`, (types.get(`${a.type}/${a.severity}`) ?? 0) + 1)
    t.same(
      new Map(
        (r.body.byType as { type: string; severity: string; count: number }[]).map((x) => [
          `${x.type}/${x.severity}`,
          x.count,
        ]),
      ),
      types,
      'counts by type and severity',
    )
    // hourly buckets (the default), empty hours left out
    const hours = new Map<number, { count: number; info: number; warning: number; critical: number }>()
    for (const a of inPeriod) {
      const h = Math.floor(a.at / HOUR) * HOUR
      const b = hours.get(h) ?? { count: 0, info: 0, warning: 0, critical: 0 }
      b.count++
      b[a.severity]++
      hours.set(h, b)
    }
    t.same(
      r.body.byBucket,
      [...hours.entries()].sort((x, y) => x[0] - y[0]).map(([h, b]) => ({ start: new Date(h).toISOString(), ...b })),
      'per hour, oldest first',
    )
    const half = await get(`/v1/rollups/alerts?profile=environment&from=${from}&to=${to}&bucket=1800000`)
    const halves = new Map<number, number>()
    for (const a of inPeriod) {
      const h = Math.floor(a.at / 1_800_000) * 1_800_000
      halves.set(h, (halves.get(h) ?? 0) + 1)
    }
    t.same(
      (half.body.byBucket as { start: string; count: number }[]).map((b) => [Date.parse(b.start), b.count]),
      [...halves.entries()].sort((x, y) => x[0] - y[0]),
      '30-minute buckets',
    )
    t.equal(half.body.total, inPeriod.length, 'the same alerts')
    const all = await get(`/v1/rollups/alerts?from=${from}&to=${to}`)
    t.equal(all.body.total, inPeriod.length + 1, 'without a profile: the process alert too')
    t.equal(
      (await get(`/v1/rollups/alerts?profile=environment`)).body.total,
      plan.filter((a) => a.profile === 'environment').length,
      'without a range: every one',
    )
    // fleet scope: a person of fleet acme sees e1 and p1 only
    const acme = bearer('viewer', { fleets: ['acme'] })
    t.equal(
      (await get(`/v1/rollups/alerts?profile=environment&from=${from}&to=${to}`, acme)).body.total,
      inPeriod.filter((a) => a.entity === 'e1').length,
    )
  })

  t.test('late readings: per entity', async (t) => {
    const r = await get(`/v1/rollups/late-readings?kind=sensor&profile=environment&from=${from}&to=${to}`)
    t.equal(r.status, 200, JSON.stringify(r.body))
    t.match(r.body, {
      total: 3,
      byEntity: [
        { kind: 'sensor', entity: 'e1', count: 2, last: new Date(H0 + 2 * HOUR).toISOString(), maxBehindMs: 120_000 },
        { entity: 'e2', count: 1 },
      ],
    })
    t.equal((r.body.byEntity as Json[]).length, 2)
    t.equal((await get(`/v1/rollups/late-readings?from=${from}&to=${to}`)).body.total, 5, 'every profile')
    t.equal((await get('/v1/rollups/late-readings?profile=environment')).body.total, 4, 'no range: all')
    t.same((await get('/v1/rollups/late-readings?profile=nothing')).body, { total: 0, byEntity: [] })
    const acme = bearer('viewer', { fleets: ['acme'] })
    t.same(
      ((await get('/v1/rollups/late-readings', acme)).body.byEntity as Json[]).map((e) => e.entity).sort(),
      ['e1', 'p1'],
      "scoped to the person's fleets",
    )
  })

  t.test('bad input: a coded error naming the item', async (t) => {
    for (const [url, item] of [
      ['/v1/rollups/alerts?bucket=1000', 'querystring.bucket'],
      ['/v1/rollups/alerts?bucket=x', 'querystring.bucket'],
      [`/v1/rollups/alerts?from=0&to=${86_400_000 * 100}&bucket=60000`, 'querystring.bucket'],
      ['/v1/rollups/alerts?from=yesterday', 'querystring.from'],
      [`/v1/rollups/alerts?from=${to}&to=${from}`, 'querystring.to'],
      ['/v1/rollups/late-readings?kind=boat', 'querystring.kind'],
      ['/v1/rollups/late-readings?limit=5', 'querystring'],
    ] as const) {
      const r = await get(url)
      t.match(r, { status: 400, body: { code: 'GW_ERR_QUERY_INVALID' } }, url)
      t.match(String(r.body.item ?? ''), item.replace('querystring.', ''), `${url}: names ${item}`)
    }
  })
})
