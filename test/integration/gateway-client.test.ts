/**
 * The generated client against a real gateway (issue 19): a listening gateway with auth on, a real Worker running
 * every profile of the build, and the real projector writing its outputs to PostgreSQL; every call goes through
 * the typed client generated from gateway/openapi.json (gateway/client/), and every reply, success or error, is
 * checked against the document's schema for its status (ContractChecker). A reply the document does not
 * describe (a status it does not list, a property of the wrong type, an alert type or a profile's live state
 * shaped otherwise, an error code not listed for the route) fails here, so the document cannot drift from the
 * server. The committed client types must be what openapi-typescript generates from the committed document.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import pg from 'pg'
import openapiTS, { astToString } from 'openapi-typescript'
import { PROFILES, Worker } from '../../actors/mod.js'
import { Projector } from '../../projector/mod.js'
import { createPitwallClient, type Alert, type LiveState } from '../../gateway/client/mod.js'
import { ContractChecker } from '../../gateway/client/contract-check.js'
import { OPENAPI_FILE } from '../../gateway/openapi-export.js'
import { jwt, setupGateway, SVC_KEY, VIEW_KEY } from '../helpers/gateway.js'

const quiet = (): void => undefined
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const RACE_VIN = '1HGCM82633A004352'
const ROAD_VIN = '1M8GDM9AXKP042788'

t.test('gateway/client/openapi.d.ts is what openapi-typescript generates from the committed document', async (t) => {
  const doc = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as Parameters<typeof openapiTS>[0]
  const generated = astToString(await openapiTS(doc))
  const committed = readFileSync('gateway/client/openapi.d.ts', 'utf8')
  // The CLI adds a header comment; compare the declarations.
  const body = (s: string): string => s.slice(s.indexOf('export interface paths'))
  t.ok(body(committed) === body(generated), 'up to date (npm run build regenerates it)')
})

t.test('the typed client against a real gateway, worker and projector; every reply fits the document', async (t) => {
  const g = await setupGateway(t)
  const { app, cfg, nc } = g
  if (!g.db) throw new Error('no database')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const checker = ContractChecker.fromFile(OPENAPI_FILE)
  const mw = { middleware: [checker.middleware()] }
  const person = (role: string): string => jwt({ sub: `u-${role}`, role })
  const op = createPitwallClient(base, { bearer: person('operator') }, mw)
  const viewer = createPitwallClient(base, { bearer: person('viewer') }, mw)
  const admin = createPitwallClient(base, { bearer: person('admin') }, mw)
  const svc = createPitwallClient(base, { apiKey: SVC_KEY }, mw)
  const dash = createPitwallClient(base, { apiKey: VIEW_KEY }, mw)
  const anon = createPitwallClient(base, undefined, mw)

  const pool = new pg.Pool({ connectionString: g.db.url, max: 2 })
  t.teardown(() => pool.end())
  const worker = new Worker({ cfg: cfg.runtime, profiles: PROFILES, log: quiet })
  await worker.start()
  t.teardown(() => worker.stop())
  for (let i = 0; i < 100 && worker.owned().length < 4; i++) await sleep(50)
  const projector = new Projector({ nc, pool, site: 'a', batchMs: 5 })
  await projector.start()
  t.teardown(() => projector.stop())

  // ---- health (public, no credential) ----
  t.equal((await anon.GET('/healthz')).data?.status, 'ok')
  const ready = await anon.GET('/readyz')
  t.equal(ready.response.status, 200, JSON.stringify(ready.error))

  // ---- registry writes and reads ----
  t.equal((await op.POST('/v1/customers', { body: { id: 'acme', name: 'ACME Logistics' } })).response.status, 201)
  const sensors = [
    {
      id: 'env-1',
      type: 'air',
      profile: 'environment',
      site: 'a',
      location: { lat: 48.85, lon: 2.35 },
      customerId: 'acme',
    },
    { id: 'loco-1', type: 'bogie', profile: 'asset', site: 'a' },
    { id: 'ph-1', type: 'ph', profile: 'process', site: 'a', processStage: 'biological' },
  ]
  for (const s of sensors) {
    const r = await op.POST('/v1/sensors', { body: s })
    t.equal(r.response.status, 201, `sensor ${s.id}`)
    t.equal(r.data?.id, s.id)
  }
  for (const v of [
    { vin: RACE_VIN, brand: 'Honda', model: 'Accord', year: 2003, profile: 'race' as const },
    { vin: ROAD_VIN, brand: 'Volvo', model: 'FH', year: 2020, profile: 'road' as const, customerId: 'acme' },
  ]) {
    t.equal((await op.POST('/v1/vehicles', { body: v })).response.status, 201, `vehicle ${v.vin}`)
  }
  const dup = await op.POST('/v1/customers', { body: { id: 'acme', name: 'again' } })
  t.equal(dup.response.status, 409)
  t.equal(dup.error?.code, 'GW_ERR_CONFLICT', 'typed error code')
  const list = await viewer.GET('/v1/sensors', { params: { query: { limit: '2' } } })
  t.equal(list.data?.items.length, 2)
  const next = list.data?.nextCursor
  t.ok(next, 'a next page')
  t.equal(
    (await viewer.GET('/v1/sensors', { params: { query: { limit: '2', cursor: next ?? '' } } })).data?.items.length,
    1,
  )
  const patched = await op.PATCH('/v1/sensors/{id}', {
    params: { path: { id: 'env-1' } },
    body: { processStage: 'roof' },
  })
  t.equal(patched.data?.processStage, 'roof')
  const missing = await viewer.GET('/v1/sensors/{id}', { params: { path: { id: 'nope' } } })
  t.equal(missing.response.status, 404)
  t.equal(missing.error?.code, 'GW_ERR_NOT_FOUND')
  const veh = await viewer.GET('/v1/vehicles/{vin}', { params: { path: { vin: RACE_VIN } } })
  t.equal(veh.data?.profile, 'race')

  // ---- refusals, in the document's error shape ----
  const unauth = await anon.GET('/v1/alerts')
  t.equal(unauth.response.status, 401)
  t.equal(unauth.error?.code, 'GW_ERR_UNAUTHENTICATED')
  const forbidden = await viewer.POST('/v1/customers', { body: { id: 'x', name: 'x' } })
  t.equal(forbidden.response.status, 403)
  t.equal(forbidden.error?.code, 'GW_ERR_FORBIDDEN')
  const badQuery = await dash.GET('/v1/alerts', { params: { query: { from: 'yesterday' } } })
  t.equal(badQuery.error?.code, 'GW_ERR_QUERY_INVALID')

  // ---- a device credential, issued by an admin, sends its own sensor's readings ----
  const cred = await admin.POST('/v1/admin/devices/{kind}/{id}/credentials', {
    params: { path: { kind: 'sensor', id: 'env-1' } },
  })
  t.equal(cred.response.status, 201)
  const device = createPitwallClient(base, { device: cred.data?.token ?? '' }, mw)

  // ---- ingest: every profile, through the three ingest routes ----
  const now = Date.now()
  const t0 = now - 240_000
  // environment: 4 minutes at 5 s, above 40 °C for the last 100 s (temperature_high after 60 s)
  const env = Array.from({ length: 48 }, (_, i) => ({
    ts: t0 + i * 5_000,
    fields: { temperature: i >= 28 ? 45 : 21 + (i % 3) * 0.1, humidity: 48, co2: 600, battery: 80, status: 'ok' },
    rid: `env-${i}`,
  }))
  const envRes = await device.POST('/v1/sensors/{id}/readings', { params: { path: { id: 'env-1' } }, body: env })
  t.equal(envRes.data?.accepted, env.length, JSON.stringify(envRes.error))
  const other = await device.POST('/v1/sensors/{id}/readings', {
    params: { path: { id: 'loco-1' } },
    body: [{ ts: now, fields: { vibration: 2 } }],
  })
  t.equal(other.error?.code, 'GW_ERR_FORBIDDEN_ENTITY', 'a device writes its own entity only')
  // race: brake over 950 °C for 3 s (brake_overheat after 2 s)
  const race = Array.from({ length: 40 }, (_, i) => {
    const hot = i >= 10 && i < 40
    return {
      ts: t0 + i * 100,
      profile: 'race',
      fields: {
        speed: 280 - i,
        rpm: 11_000,
        gear: 7,
        lap: 1,
        lap_distance: i * 8,
        brake_temp_fl: hot ? 980 : 600,
        brake_temp_fr: 600,
        brake_temp_rl: 550,
        brake_temp_rr: 550,
        tyre_temp_fl: 100,
        tyre_temp_fr: 100,
        tyre_temp_rl: 95,
        tyre_temp_rr: 95,
        fuel: 80 - i * 0.001,
        oil_pressure: 4.5,
        tyre_wear: 10,
      },
    }
  })
  const raceRes = await svc.POST('/v1/vehicles/{vin}/telemetry', { params: { path: { vin: RACE_VIN } }, body: race })
  t.equal(raceRes.data?.accepted, race.length, JSON.stringify(raceRes.error))
  const mixed = await op.POST('/v1/readings', {
    body: [
      ...Array.from({ length: 6 }, (_, i) => ({
        kind: 'sensor' as const,
        id: 'loco-1',
        profile: 'asset',
        ts: t0 + i * 10_000,
        fields: { vibration: 2 + i * 0.1, temperature: 45, pressure: 6, flow: 30 },
      })),
      ...Array.from({ length: 6 }, (_, i) => ({
        kind: 'sensor' as const,
        id: 'ph-1',
        profile: 'process',
        ts: t0 + i * 5_000,
        fields: { type: 'ph', stage: 'biological', value: 7.1 + i * 0.01, flow: 900, temp: 18 },
      })),
      ...Array.from({ length: 6 }, (_, i) => ({
        kind: 'vehicle' as const,
        id: ROAD_VIN,
        profile: 'road',
        ts: t0 + i * 5_000,
        loc: { lat: 40.78 + i * 0.0005, lon: -73.97 },
        fields: { speed: 30, fuel_level: 60, engine_on: true },
      })),
      { kind: 'sensor' as const, id: 'env-1', ts: -5, fields: { temperature: 20 } },
    ],
  })
  t.equal(mixed.response.status, 200, JSON.stringify(mixed.error))
  t.equal(mixed.data?.accepted, 18, 'the valid items of a mixed batch')
  t.same(
    mixed.data?.rejected.map((r) => [r.index, r.code]),
    [[18, 'GW_ERR_TS_INVALID']],
    'the bad one named',
  )

  // ---- live state of every profile, each in its profile's documented shape ----
  const entities: Array<[kind: 'sensor' | 'vehicle', id: string, profile: string]> = [
    ['sensor', 'env-1', 'environment'],
    ['sensor', 'loco-1', 'asset'],
    ['sensor', 'ph-1', 'process'],
    ['vehicle', RACE_VIN, 'race'],
    ['vehicle', ROAD_VIN, 'road'],
  ]
  for (const [kind, id, profile] of entities) {
    let state: LiveState | undefined
    for (let i = 0; i < 100; i++) {
      const r = await viewer.GET('/v1/entities/{kind}/{id}/state', { params: { path: { kind, id } } })
      state = r.data
      if (r.response.status === 200 && (kind !== 'sensor' || id !== 'env-1' || r.data?.lastSeq !== undefined)) break
      await sleep(50)
    }
    t.equal(state?.profile, profile, `${kind}/${id}: ${profile} state`)
    if (state?.profile === 'race')
      t.equal(state.state.openAlerts[0]?.type, 'brake_overheat', 'typed per profile: race openAlerts')
    if (state?.profile === 'environment')
      t.ok(state.state.last.temperature !== undefined, 'typed per profile: environment last')
  }

  // ---- history: alerts from the real detectors, through the projector ----
  let alerts: Alert[] = []
  for (let i = 0; i < 200; i++) {
    alerts = (await viewer.GET('/v1/alerts', { params: { query: { limit: '100' } } })).data?.items ?? []
    if (alerts.some((a) => a.type === 'brake_overheat') && alerts.some((a) => a.type === 'temperature_high')) break
    await sleep(50)
  }
  const brake = alerts.find((a) => a.type === 'brake_overheat')
  t.ok(brake, 'brake_overheat from the race profile')
  if (brake?.type === 'brake_overheat' || brake?.type === 'tire_overheat')
    t.equal(brake.details?.corner, 'fl', 'typed details: the hottest corner')
  t.ok(
    alerts.find((a) => a.type === 'temperature_high'),
    'temperature_high from the environment profile',
  )
  const windows = await viewer.GET('/v1/entities/{kind}/{id}/windows', {
    params: { path: { kind: 'sensor', id: 'env-1' }, query: { window: 'tumbling_1m' } },
  })
  t.equal(windows.response.status, 200)

  // ---- alarm workflow ----
  if (brake) {
    const id = brake.alertId
    const ack = await op.POST('/v1/alerts/{id}/ack', { params: { path: { id } }, body: { comment: 'crew informed' } })
    t.equal(ack.data?.status, 'active_acknowledged')
    const again = await op.POST('/v1/alerts/{id}/ack', { params: { path: { id } }, body: {} })
    t.equal(again.error?.code, 'GW_ERR_ALERT_ACKNOWLEDGED')
    t.equal(
      (await op.POST('/v1/alerts/{id}/assign', { params: { path: { id } }, body: { assignee: 'u-ops' } })).data
        ?.assignee,
      'u-ops',
    )
    const hist = await viewer.GET('/v1/alerts/{id}/history', { params: { path: { id } } })
    t.same(
      hist.data?.items.map((x) => x.action),
      ['open', 'acknowledge', 'assign'],
    )
    t.equal((await viewer.GET('/v1/alerts/{id}', { params: { path: { id } } })).data?.acknowledgedBy, 'u-operator')
  }
  t.equal(
    (await viewer.GET('/v1/alerts/{id}', { params: { path: { id: 'no:such:alert' } } })).error?.code,
    'GW_ERR_ALERT_UNKNOWN',
  )
  t.equal((await viewer.GET('/v1/rollups/open-alerts')).response.status, 200)
  t.equal((await viewer.GET('/v1/late-readings')).response.status, 200)
  t.equal(
    (await viewer.GET('/v1/entities/{kind}/{id}/positions', { params: { path: { kind: 'vehicle', id: ROAD_VIN } } }))
      .response.status,
    200,
  )
  t.equal(
    (await viewer.GET('/v1/entities/{kind}/{id}/laps', { params: { path: { kind: 'vehicle', id: RACE_VIN } } }))
      .response.status,
    200,
  )

  // ---- deletes ----
  t.equal((await admin.DELETE('/v1/sensors/{id}', { params: { path: { id: 'ph-1' } } })).response.status, 204)
  t.equal(
    (await admin.DELETE('/v1/admin/credentials/{credId}', { params: { path: { credId: cred.data?.id ?? '' } } }))
      .response.status,
    204,
  )

  // ---- every reply checked against the document ----
  const bad = checker.results.filter((r) => !r.ok)
  t.same(bad, [], 'every reply fits the document')
  const ops = new Set(checker.results.map((r) => `${r.method} ${r.path}`))
  t.ok(checker.results.length >= 40, `${checker.results.length} replies checked`)
  t.ok(ops.size >= 25, `${ops.size} operations exercised`)
  // The checker itself refuses what the document does not say.
  t.notOk(
    checker.check('GET', '/v1/alerts', 200, { items: [{ alertId: 'x' }], nextCursor: null }).ok,
    'an alert missing its fields fails',
  )
  t.notOk(
    checker.check('GET', '/v1/sensors/{id}', 404, { code: 'GW_ERR_ALERT_UNKNOWN', message: 'x' }).ok,
    'a code not listed for the route fails',
  )
  t.notOk(checker.check('GET', '/healthz', 418, {}).ok, 'a status not listed fails')
})
