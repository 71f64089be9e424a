/**
 * Auth matrix: every route of the gateway (found by an onRoute hook, so a new route without a row fails) x every
 * credential kind: none, wrong API key, expired JWT, viewer, operator, admin (JWT), viewer and operator keys,
 * another tenant's fleet-scoped viewer and operator, a device of another entity, a device of the route's own
 * entity, and people whose tokens come from an identity provider (issue 19: RS256 and ES256 verified against a
 * JWKS served by a local HTTP server): viewer, operator, admin, another tenant's operator, and a token the
 * provider issued for another API (wrong `aud`). Each
 * pair must end exactly as the route's access rule says: allowed pairs are not 401/403 (nor a scope 404), denied
 * pairs get the documented status and code. Real PostgreSQL and nats-server.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { migrate as migrateProjection } from '../../projector/mod.js'
import { bearer, device, jwt, setupGateway, SVC_KEY, VIEW_KEY, VIN } from '../helpers/gateway.js'
import { AUDIENCE, idpBearer, ISSUER, makeKey, startJwksServer } from '../helpers/jwks.js'

type Access = 'public' | 'read' | 'ingest' | 'write' | 'operate' | 'admin'
type Cred =
  | 'none'
  | 'wrongKey'
  | 'expired'
  | 'viewer'
  | 'operator'
  | 'admin'
  | 'viewerKey'
  | 'operatorKey'
  | 'tenant'
  | 'tenantOp'
  | 'deviceOther'
  | 'deviceOwn'
  | 'idpViewer'
  | 'idpOperator'
  | 'idpAdmin'
  | 'idpTenantOp'
  | 'idpOtherApi'
const CREDS: readonly Cred[] = [
  'none',
  'wrongKey',
  'expired',
  'viewer',
  'operator',
  'admin',
  'viewerKey',
  'operatorKey',
  'tenant',
  'tenantOp',
  'deviceOther',
  'deviceOwn',
  'idpViewer',
  'idpOperator',
  'idpAdmin',
  'idpTenantOp',
  'idpOtherApi',
]

interface Row {
  access: Access
  /** The concrete request. */
  url: string
  body?: unknown
  headers?: Record<string, string>
  /** The entity the route names (scope and device checks): s1 (fleet acme) or the vehicle VIN (fleet acme). */
  entity?: 'sensor:s1' | `vehicle:${string}`
  /** Ingest with items in the body (POST /v1/readings): a device of another entity gets every item rejected. */
  items?: boolean
  /** The code of the 404 a scoped person outside the entity's fleet gets (default GW_ERR_NOT_FOUND). */
  hiddenCode?: string
}

/** An alert of s1 (fleet acme), written into the projector's table for the alarm workflow routes. */
const ALERT = 'sensor:s1:temp_high:1700000000000'
const alarm = (action: string, body?: unknown): Row => ({
  access: 'operate',
  url: `/v1/alerts/${encodeURIComponent(ALERT)}/${action}`,
  body: body ?? {},
  entity: 'sensor:s1',
  hiddenCode: 'GW_ERR_ALERT_UNKNOWN',
})

const now = (): number => Date.now()
const reading = (): Record<string, unknown> => ({ ts: now(), fields: { temperature: 21 } })
let n = 0
const uniq = (): string => `m${++n}${randomBytes(3).toString('hex')}`

/** One row per route: `METHOD pattern` -> request. Bodies are valid, so an allowed caller gets past validation. */
function rows(): Record<string, Row | (() => Row)> {
  const live = { 'last-event-id': 'x' } // allowed callers get 400 (bad Last-Event-ID) instead of an endless stream
  return {
    'GET /healthz': { access: 'public', url: '/healthz' },
    'GET /readyz': { access: 'public', url: '/readyz' },
    'GET /metrics': { access: 'public', url: '/metrics' },
    'GET /openapi.json': { access: 'public', url: '/openapi.json' },
    // the operator console's pages hold no data (their API calls carry the credential): public
    'GET /console': { access: 'public', url: '/console' },
    'GET /console/*': { access: 'public', url: '/console/' },
    'GET /v1/whoami': { access: 'read', url: '/v1/whoami' },
    'GET /v1/sites': { access: 'read', url: '/v1/sites' },
    // operator site commands: admins (no controller for site zz here, so an allowed caller gets 404 GW_ERR_SITE_UNKNOWN)
    'POST /v1/sites/:site/failover': {
      access: 'admin',
      url: '/v1/sites/zz/failover',
      body: { reason: 'drill', confirm: true },
    },
    'POST /v1/sites/:site/failback': {
      access: 'admin',
      url: '/v1/sites/zz/failback',
      body: { reason: 'drill', confirm: true },
    },
    'POST /v1/readings': {
      access: 'ingest',
      url: '/v1/readings',
      body: [{ kind: 'sensor', id: 's1', ...reading() }],
      items: true,
      entity: 'sensor:s1',
    },
    'POST /v1/sensors/:id/readings': {
      access: 'ingest',
      url: '/v1/sensors/s1/readings',
      body: [reading()],
      entity: 'sensor:s1',
    },
    'POST /v1/vehicles/:vin/telemetry': {
      access: 'ingest',
      url: `/v1/vehicles/${VIN}/telemetry`,
      body: [reading()],
      entity: `vehicle:${VIN}`,
    },
    'GET /v1/entities/:kind/:id/state': { access: 'read', url: '/v1/entities/sensor/s1/state', entity: 'sensor:s1' },
    'POST /v1/admin/devices/:kind/:id/credentials': { access: 'admin', url: '/v1/admin/devices/sensor/s9/credentials' },
    'DELETE /v1/admin/credentials/:credId': { access: 'admin', url: `/v1/admin/credentials/dc_${'0'.repeat(24)}` },
    'POST /v1/customers': () => ({ access: 'write', url: '/v1/customers', body: { id: uniq(), name: 'x' } }),
    'GET /v1/customers': { access: 'read', url: '/v1/customers' },
    'GET /v1/customers/:id': { access: 'read', url: '/v1/customers/acme', entity: 'sensor:s1' },
    'PATCH /v1/customers/:id': { access: 'write', url: '/v1/customers/acme', body: { name: 'Acme' } },
    'DELETE /v1/customers/:id': { access: 'admin', url: '/v1/customers/nobody' },
    'POST /v1/sensors': () => ({
      access: 'write',
      url: '/v1/sensors',
      body: { id: uniq(), type: 't', profile: 'environment', site: 'a' },
    }),
    'GET /v1/sensors': { access: 'read', url: '/v1/sensors' },
    'GET /v1/sensors/:id': { access: 'read', url: '/v1/sensors/s1', entity: 'sensor:s1' },
    'PATCH /v1/sensors/:id': { access: 'write', url: '/v1/sensors/s1', body: { type: 'temp' } },
    'DELETE /v1/sensors/:id': { access: 'admin', url: '/v1/sensors/nobody' },
    'POST /v1/vehicles': {
      access: 'write',
      url: '/v1/vehicles',
      body: { vin: '1HGCM82633A004352', brand: 'b', model: 'm', year: 2003, profile: 'road' },
    },
    'GET /v1/vehicles': { access: 'read', url: '/v1/vehicles' },
    'GET /v1/vehicles/:vin': { access: 'read', url: `/v1/vehicles/${VIN}`, entity: `vehicle:${VIN}` },
    'PATCH /v1/vehicles/:vin': { access: 'write', url: `/v1/vehicles/${VIN}`, body: { model: 'FH16' } },
    'DELETE /v1/vehicles/:vin': { access: 'admin', url: '/v1/vehicles/2HGCM82633A004352' },
    'POST /v1/geofences': () => ({
      access: 'write',
      url: '/v1/geofences',
      body: { id: uniq(), shape: { type: 'circle', lat: 40, lon: -74, radiusM: 100 } },
    }),
    'GET /v1/geofences': { access: 'read', url: '/v1/geofences' },
    'GET /v1/geofences/:id': { access: 'read', url: '/v1/geofences/gacme' },
    'PATCH /v1/geofences/:id': { access: 'write', url: '/v1/geofences/gacme', body: { name: 'Acme depot' } },
    'DELETE /v1/geofences/:id': { access: 'admin', url: '/v1/geofences/nobody' },
    'GET /v1/entities/sensor/:id/service': {
      access: 'read',
      url: '/v1/entities/sensor/s1/service',
      entity: 'sensor:s1',
    },
    'PUT /v1/entities/sensor/:id/service': {
      access: 'write',
      url: '/v1/entities/sensor/s1/service',
      body: { inService: false, reason: 'calibration' },
      entity: 'sensor:s1',
    },
    'GET /v1/entities/:kind/:id/windows': {
      access: 'read',
      url: '/v1/entities/sensor/s1/windows?window=tumbling_1m',
      entity: 'sensor:s1',
    },
    'GET /v1/alerts': { access: 'read', url: '/v1/alerts' },
    'GET /v1/alerts/:id': {
      access: 'read',
      url: `/v1/alerts/${encodeURIComponent(ALERT)}`,
      entity: 'sensor:s1',
      hiddenCode: 'GW_ERR_ALERT_UNKNOWN',
    },
    'GET /v1/alerts/:id/history': {
      access: 'read',
      url: `/v1/alerts/${encodeURIComponent(ALERT)}/history`,
      entity: 'sensor:s1',
      hiddenCode: 'GW_ERR_ALERT_UNKNOWN',
    },
    // repeated acks and clears are 409s: allowed (the caller got past auth and scope)
    'POST /v1/alerts/:id/ack': alarm('ack'),
    'POST /v1/alerts/:id/assign': alarm('assign', { assignee: 'alice' }),
    'POST /v1/alerts/:id/comment': alarm('comment', { comment: 'looking' }),
    'POST /v1/alerts/:id/clear': alarm('clear'),
    // notifications: unscoped operators and admins (a scoped person is refused like on a registry write)
    'POST /v1/notifications/subscriptions': () => ({
      access: 'write',
      url: '/v1/notifications/subscriptions',
      body: { name: uniq(), url: 'http://192.0.2.1:9/hook' },
    }),
    'GET /v1/notifications/subscriptions': { access: 'write', url: '/v1/notifications/subscriptions' },
    'GET /v1/notifications/subscriptions/:id': { access: 'write', url: '/v1/notifications/subscriptions/sub_none' },
    'PATCH /v1/notifications/subscriptions/:id': {
      access: 'write',
      url: '/v1/notifications/subscriptions/sub_none',
      body: { enabled: true },
    },
    'DELETE /v1/notifications/subscriptions/:id': { access: 'admin', url: '/v1/notifications/subscriptions/sub_none' },
    'POST /v1/notifications/subscriptions/:id/secret': {
      access: 'admin',
      url: '/v1/notifications/subscriptions/sub_none/secret',
    },
    'GET /v1/notifications/deliveries': { access: 'write', url: '/v1/notifications/deliveries' },
    'GET /v1/notifications/deliveries/:id': {
      access: 'write',
      url: '/v1/notifications/deliveries/00000000-0000-4000-8000-000000000000',
    },
    'GET /v1/recommendations': { access: 'read', url: '/v1/recommendations' },
    'GET /v1/entities/:kind/:id/laps': {
      access: 'read',
      url: `/v1/entities/vehicle/${VIN}/laps`,
      entity: `vehicle:${VIN}`,
    },
    'GET /v1/late-readings': { access: 'read', url: '/v1/late-readings' },
    'GET /v1/entities/:kind/:id/trips': {
      access: 'read',
      url: `/v1/entities/vehicle/${VIN}/trips`,
      entity: `vehicle:${VIN}`,
    },
    'GET /v1/entities/:kind/:id/scores': {
      access: 'read',
      url: `/v1/entities/vehicle/${VIN}/scores`,
      entity: `vehicle:${VIN}`,
    },
    'GET /v1/entities/:kind/:id/positions': {
      access: 'read',
      url: `/v1/entities/vehicle/${VIN}/positions`,
      entity: `vehicle:${VIN}`,
    },
    'GET /v1/rollups/open-alerts': { access: 'read', url: '/v1/rollups/open-alerts' },
    'GET /v1/rollups/stale': { access: 'read', url: '/v1/rollups/stale?minutes=5' },
    'GET /v1/rollups/alerts': { access: 'read', url: '/v1/rollups/alerts?profile=environment' },
    'GET /v1/rollups/late-readings': { access: 'read', url: '/v1/rollups/late-readings?kind=sensor' },
    'GET /v1/live': { access: 'read', url: '/v1/live?kind=sensor&entity=s1', headers: live, entity: 'sensor:s1' },
    // inject() does not upgrade: the checks before the upgrade run (auth, scope, Last-Event-ID) and answer as for SSE
    'GET /v1/live/ws': { access: 'read', url: '/v1/live/ws?kind=sensor&entity=s1', headers: live, entity: 'sensor:s1' },
  }
}

type Expect =
  'allowed' | 'unauthenticated' | 'forbidden' | 'forbiddenEntity' | 'hidden' | 'itemsRejected' | 'itemsOutOfScope'

/** What the access rules say for one pair. */
function expected(r: Row, c: Cred, key: string): Expect {
  if (r.access === 'public') return 'allowed'
  if (c === 'none' || c === 'wrongKey' || c === 'expired' || c === 'idpOtherApi') return 'unauthenticated'
  if (c === 'deviceOther' || c === 'deviceOwn') {
    if (r.access !== 'ingest') return 'forbidden'
    const own = c === 'deviceOwn' ? 'sensor:s1' : 'sensor:s2'
    if (r.entity === own) return 'allowed'
    return r.items ? 'itemsRejected' : 'forbiddenEntity'
  }
  const role =
    c === 'viewer' || c === 'viewerKey' || c === 'tenant' || c === 'idpViewer'
      ? 0
      : c === 'operator' || c === 'operatorKey' || c === 'tenantOp' || c === 'idpOperator' || c === 'idpTenantOp'
        ? 1
        : 2
  const need = r.access === 'read' ? 0 : r.access === 'admin' ? 2 : 1
  if (role < need) return 'forbidden'
  if (c === 'tenant' || c === 'tenantOp' || c === 'idpTenantOp') {
    // a scoped person never changes the registry; a scoped operator may put a sensor they see out of service
    if (r.access === 'write' && key !== 'PUT /v1/entities/sensor/:id/service') return 'forbidden'
    // the tenants (a viewer and an operator scoped to fleet beta) cannot see acme's entities or customer, nor
    // ingest for them: items are rejected one by one, a device route naming one is a 404 like a query
    if (r.items) return 'itemsOutOfScope'
    // ... nor read a geofence assigned to acme only
    if (r.entity !== undefined || key === 'GET /v1/customers/:id' || key === 'GET /v1/geofences/:id') return 'hidden'
  }
  return 'allowed'
}

t.test('auth matrix: every route x every credential kind', async (t) => {
  const routes: string[] = []
  const rsa = makeKey('RS256', 'rsa-1')
  const ec = makeKey('ES256', 'ec-1')
  const idp = await startJwksServer(t, [rsa, ec])
  const g = await setupGateway(t, {
    auth: { jwksUrl: idp.url, jwtIssuer: ISSUER, jwtAudience: AUDIENCE },
    beforeReady: (a) =>
      a.addHook('onRoute', (r) => {
        for (const m of [r.method].flat()) if (m !== 'HEAD' && !r.url.startsWith('/docs')) routes.push(`${m} ${r.url}`)
      }),
  })
  const { app } = g
  const admin = bearer('admin')
  for (const [url, body] of [
    ['/v1/customers', { id: 'acme', name: 'Acme' }],
    ['/v1/customers', { id: 'beta', name: 'Beta' }],
    ['/v1/sensors', { id: 's1', type: 'temp', profile: 'environment', site: 'a', customerId: 'acme' }],
    ['/v1/sensors', { id: 's2', type: 'temp', profile: 'environment', site: 'b', customerId: 'beta' }],
    ['/v1/vehicles', { vin: VIN, brand: 'Volvo', model: 'FH', year: 2020, profile: 'road', customerId: 'acme' }],
    ['/v1/geofences', { id: 'gacme', shape: { type: 'circle', lat: 40, lon: -74, radiusM: 100 }, customers: ['acme'] }],
  ] as const)
    t.equal((await app.inject({ method: 'POST', url, headers: admin, payload: body })).statusCode, 201)
  // Before the projector has created its tables, queries are a clear 503; then the tables exist (empty).
  const missing = await app.inject({ method: 'GET', url: '/v1/alerts', headers: admin })
  t.equal(missing.statusCode, 503)
  t.match(missing.json(), { code: 'GW_ERR_UNAVAILABLE', message: /projector has not run/ })
  const pool = new pg.Pool({ connectionString: g.db?.url ?? '', max: 1 })
  await migrateProjection(pool)
  await pool.query(
    `INSERT INTO alerts (alert_id, kind, entity, profile, type, severity, state, last_event, started_at, event_at, value, threshold,
    peak_value, explanation, last_output_id, last_seq, site, partition, token) VALUES ($1, 'sensor', 's1', 'environment', 'temp_high', 'warning', 'open',
    'open', now(), now(), 31, 30, 31, 'temperature 31 > 30', $1, 1, 'a', 0, 1)`,
    [ALERT],
  )
  await pool.end()
  const own = await g.issue('sensor', 's1')
  const other = await g.issue('sensor', 's2')
  const headers: Record<Cred, Record<string, string>> = {
    none: {},
    wrongKey: { 'x-api-key': randomBytes(24).toString('hex') },
    expired: { authorization: `Bearer ${jwt({ sub: 'u', role: 'admin', exp: Math.floor(now() / 1000) - 60 })}` },
    viewer: bearer('viewer'),
    operator: bearer('operator'),
    admin,
    viewerKey: { 'x-api-key': VIEW_KEY },
    operatorKey: { 'x-api-key': SVC_KEY },
    tenant: bearer('viewer', { fleets: ['beta'] }),
    tenantOp: bearer('operator', { fleets: ['beta'] }),
    deviceOther: device(other.token),
    deviceOwn: device(own.token),
    idpViewer: idpBearer(rsa, 'viewer'),
    idpOperator: idpBearer(ec, 'operator'),
    idpAdmin: idpBearer(rsa, 'admin'),
    idpTenantOp: idpBearer(ec, 'operator', { fleets: ['beta'] }),
    idpOtherApi: idpBearer(rsa, 'admin', { aud: 'another-api' }),
  }

  const table = rows()
  t.same([...new Set(routes)].sort(), Object.keys(table).sort(), 'the matrix has one row per route, no more, no less')
  let allowed = 0
  let denied = 0
  for (const [key, spec] of Object.entries(table)) {
    for (const c of CREDS) {
      const r = typeof spec === 'function' ? spec() : spec
      const method = key.split(' ')[0] as 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
      const res = await app.inject({
        method,
        url: r.url,
        headers: { ...r.headers, ...headers[c] },
        ...(r.body === undefined ? {} : { payload: r.body as object }),
      })
      const code = res.body.startsWith('{') ? res.json<{ code?: string }>().code : undefined
      const want = expected(r, c, key)
      const name = `${key} as ${c}: ${want} (${res.statusCode} ${code ?? ''})`
      switch (want) {
        case 'allowed':
          allowed++
          // 404 only where the request names a key that does not exist on purpose (deletes); 503 only for the
          // live state of an entity no worker owns (there is no worker in this test)
          t.ok(
            (res.statusCode < 500 && ![401, 403].includes(res.statusCode) && code !== 'GW_ERR_NOT_FOUND') ||
              (res.statusCode === 404 && /nobody|2HGCM|dc_0/.test(r.url)) ||
              (res.statusCode === 503 && key.endsWith('/state')),
            name,
          )
          break
        case 'unauthenticated':
          denied++
          t.ok(res.statusCode === 401 && code === 'GW_ERR_UNAUTHENTICATED', name)
          break
        case 'forbidden':
          denied++
          t.ok(res.statusCode === 403 && code === 'GW_ERR_FORBIDDEN', name)
          break
        case 'forbiddenEntity':
          denied++
          t.ok(res.statusCode === 403 && code === 'GW_ERR_FORBIDDEN_ENTITY', name)
          break
        case 'hidden':
          denied++
          t.ok(res.statusCode === 404 && code === (r.hiddenCode ?? 'GW_ERR_NOT_FOUND'), name)
          break
        case 'itemsRejected': {
          denied++
          const b = res.json<{ code?: string; rejected?: { code: string }[] }>()
          t.ok(
            res.statusCode === 400 &&
              b.code === 'GW_ERR_BATCH_REJECTED' &&
              b.rejected?.every((x) => x.code === 'GW_ERR_FORBIDDEN_ENTITY'),
            name,
          )
          break
        }
        case 'itemsOutOfScope': {
          denied++
          const b = res.json<{ code?: string; rejected?: { index: number; code: string }[] }>()
          t.ok(
            res.statusCode === 400 &&
              b.code === 'GW_ERR_BATCH_REJECTED' &&
              b.rejected?.length === 1 &&
              b.rejected[0]?.index === 0 &&
              b.rejected[0].code === 'GW_ERR_OUT_OF_SCOPE',
            name,
          )
          break
        }
      }
    }
  }
  t.comment(
    `${Object.keys(table).length} routes x ${CREDS.length} credential kinds: ${allowed} allowed, ${denied} denied`,
  )

  // the tenant's lists are filtered, not refused
  const tenant = headers.tenant
  t.same(
    (await app.inject({ method: 'GET', url: '/v1/sensors', headers: tenant }))
      .json<{ items: { id: string }[] }>()
      .items.map((s) => s.id),
    ['s2'],
  )
  t.same(
    (await app.inject({ method: 'GET', url: '/v1/customers', headers: tenant }))
      .json<{ items: { id: string }[] }>()
      .items.map((s) => s.id),
    ['beta'],
  )
  t.same(
    (await app.inject({ method: 'GET', url: '/v1/vehicles', headers: tenant })).json<{ items: unknown[] }>().items,
    [],
  )
  const scopedOp = bearer('operator', { fleets: ['acme'] })
  const res = await app.inject({ method: 'PATCH', url: '/v1/sensors/s1', headers: scopedOp, payload: { type: 'x' } })
  t.equal(res.json<{ code: string }>().code, 'GW_ERR_FORBIDDEN', 'a scoped operator may not change the registry')

  // a scoped operator ingests for its own fleet's entities: a mixed batch keeps them, rejects the rest by index
  const before = await g.count()
  const mixed = await app.inject({
    method: 'POST',
    url: '/v1/readings',
    headers: scopedOp,
    payload: [
      { kind: 'sensor', id: 's1', ...reading() },
      { kind: 'sensor', id: 's2', ...reading() },
      { kind: 'vehicle', id: VIN, ...reading() },
      { kind: 'sensor', id: 'unregistered', ...reading() },
      { kind: 'vehicle', id: VIN, ...reading(), ts: 'x' },
    ],
  })
  t.equal(mixed.statusCode, 200)
  const body = mixed.json<{ accepted: number; rejected: { index: number; code: string }[] }>()
  t.equal(body.accepted, 2, 'own fleet accepted (a sensor and a vehicle)')
  t.same(
    body.rejected.map((x) => [x.index, x.code]),
    [
      [1, 'GW_ERR_OUT_OF_SCOPE'],
      [3, 'GW_ERR_OUT_OF_SCOPE'],
      [4, 'GW_ERR_TS_INVALID'],
    ],
    'another fleet and an unregistered entity rejected alike, by index, with validation codes kept',
  )
  t.equal(await g.count(), before + 2, 'exactly the accepted readings stored')
  // `sites` scope: a site-b operator writes s2 (site b) only; vehicles are scoped by fleet only
  const siteB = bearer('operator', { sites: ['b'] })
  t.equal(
    (await app.inject({ method: 'POST', url: '/v1/sensors/s2/readings', headers: siteB, payload: [reading()] }))
      .statusCode,
    200,
    'site b sensor',
  )
  for (const url of ['/v1/sensors/s1/readings', `/v1/vehicles/${VIN}/telemetry`, '/v1/sensors/unregistered/readings']) {
    const r = await app.inject({ method: 'POST', url, headers: siteB, payload: [reading()] })
    t.equal(r.statusCode, 404, `${url} outside site b`)
    t.match(r.json(), { code: 'GW_ERR_NOT_FOUND', item: url.includes('vehicles') ? 'params.vin' : 'params.id' })
  }
  t.equal(
    (
      await app.inject({
        method: 'POST',
        url: `/v1/vehicles/${VIN}/telemetry`,
        headers: scopedOp,
        payload: [reading()],
      })
    ).statusCode,
    200,
    'acme vehicle by the acme operator',
  )
  t.equal(await g.count(), before + 4, 'and nothing else stored')
})
