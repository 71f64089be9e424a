/**
 * Gateway auth against a real nats-server and a real PostgreSQL: device credentials (issue, rotate, revoke,
 * own entity only), people's JWT roles, service API keys, per-credential rate limits, and no secret in logs.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { compileGatewayConfig, gatewayOptionsFromEnv, migrate, type AuthOptions } from '../../gateway/mod.js'
import { createTestDb } from '../helpers/pg.js'
import {
  b64u,
  bearer as bearerOf,
  device,
  JWT_SECRET,
  jwt,
  setupGateway,
  sha,
  SVC_KEY,
  VIEW_KEY,
  VIN,
} from '../helpers/gateway.js'

const bearer = (role: string, sub = `u-${role}`): Record<string, string> => bearerOf(role, { sub })
const reading = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  ts: Date.now(),
  fields: { temperature: 21 },
  ...over,
})

async function setup(t: { teardown(fn: () => unknown): void }, auth: AuthOptions = {}) {
  const g = await setupGateway(t, { auth: { rateLimitMax: 6_000, ...auth }, capture: true })
  if (!g.db) throw new Error('no database')
  return { ...g, db: g.db }
}

t.test('device credentials: issue, rotate, own entity only, wrong secret, revoke after cache expiry', async (t) => {
  const { app, count, issue, db } = await setup(t, { credentialCacheMs: 300 })
  const c1 = await issue('sensor', 'room1')
  t.match(c1, { entity: 'room1', id: /^dc_[0-9a-f]{24}$/, token: /^dc_[0-9a-f]{24}\.[A-Za-z0-9_-]{43}$/ })

  // the secret is stored hashed only
  const client = new pg.Client({ connectionString: db.url })
  await client.connect()
  t.teardown(() => client.end())
  const row = (
    await client.query<{ secret_hash: string }>('SELECT secret_hash FROM device_credentials WHERE id = $1', [c1.id])
  ).rows[0]
  t.ok(row && !row.secret_hash.includes(c1.token.split('.')[1] ?? '?'), 'secret not stored')
  t.match(row?.secret_hash, /^hmac-sha256:[0-9a-f]{32}:[0-9a-f]{64}$/)

  let res = await app.inject({
    method: 'POST',
    url: '/v1/sensors/room1/readings',
    headers: device(c1.token),
    payload: [reading()],
  })
  t.equal(res.statusCode, 200, res.body)
  res = await app.inject({
    method: 'POST',
    url: '/v1/sensors/room2/readings',
    headers: device(c1.token),
    payload: [reading()],
  })
  t.equal(res.statusCode, 403)
  t.equal(res.json<{ code: string }>().code, 'GW_ERR_FORBIDDEN_ENTITY')
  res = await app.inject({
    method: 'POST',
    url: `/v1/vehicles/${VIN}/telemetry`,
    headers: device(c1.token),
    payload: [reading()],
  })
  t.equal(res.json<{ code: string }>().code, 'GW_ERR_FORBIDDEN_ENTITY', 'a sensor credential cannot write a vehicle')

  // mixed batch: own items land, others rejected per item
  res = await app.inject({
    method: 'POST',
    url: '/v1/readings',
    headers: device(c1.token),
    payload: [
      { kind: 'sensor', id: 'room1', ...reading() },
      { kind: 'sensor', id: 'room2', ...reading() },
      { kind: 'vehicle', id: 'room1', ...reading() },
      { kind: 'sensor', id: 'room1', ...reading({ fields: { co2: 400 } }) },
    ],
  })
  t.equal(res.statusCode, 200, res.body)
  t.same(
    res
      .json<{ accepted: number; rejected: { index: number; code: string }[] }>()
      .rejected.map((x) => [x.index, x.code]),
    [
      [1, 'GW_ERR_FORBIDDEN_ENTITY'],
      [2, 'GW_ERR_FORBIDDEN_ENTITY'],
    ],
  )
  t.equal(res.json<{ accepted: number }>().accepted, 2)
  t.equal(await count(), 3)

  // a device may not read state or administer
  res = await app.inject({ method: 'GET', url: '/v1/entities/sensor/room1/state', headers: device(c1.token) })
  t.equal(res.json<{ code: string }>().code, 'GW_ERR_FORBIDDEN')
  res = await app.inject({
    method: 'POST',
    url: '/v1/admin/devices/sensor/room1/credentials',
    headers: device(c1.token),
  })
  t.equal(res.statusCode, 403)

  // wrong secret, malformed, unknown id: 401
  const wrong = `${c1.id}.${randomBytes(32).toString('base64url')}`
  for (const tok of [wrong, c1.id, 'garbage', `dc_${'0'.repeat(24)}.${randomBytes(32).toString('base64url')}`]) {
    res = await app.inject({
      method: 'POST',
      url: '/v1/sensors/room1/readings',
      headers: device(tok),
      payload: [reading()],
    })
    t.equal(res.statusCode, 401, tok.slice(0, 12))
    t.equal(res.json<{ code: string }>().code, 'GW_ERR_UNAUTHENTICATED')
    t.ok(res.headers['www-authenticate'])
  }

  // rotation: a second credential, both valid; revoke the first
  const c2 = await issue('sensor', 'room1')
  t.not(c2.id, c1.id)
  for (const c of [c1, c2]) {
    res = await app.inject({
      method: 'POST',
      url: '/v1/sensors/room1/readings',
      headers: device(c.token),
      payload: [reading()],
    })
    t.equal(res.statusCode, 200, `${c.id} valid during rotation`)
  }
  res = await app.inject({ method: 'DELETE', url: `/v1/admin/credentials/${c1.id}`, headers: bearer('admin') })
  t.equal(res.statusCode, 204)
  res = await app.inject({ method: 'DELETE', url: `/v1/admin/credentials/${c1.id}`, headers: bearer('admin') })
  t.equal(res.json<{ code: string }>().code, 'GW_ERR_CREDENTIAL_UNKNOWN', 'revoking twice')
  res = await app.inject({
    method: 'POST',
    url: '/v1/sensors/room1/readings',
    headers: device(c1.token),
    payload: [reading()],
  })
  t.equal(res.statusCode, 401, 'revoked (forgotten at once on this gateway)')

  // revoked elsewhere (directly in the database): honoured once the cache entry expires
  res = await app.inject({
    method: 'POST',
    url: '/v1/sensors/room1/readings',
    headers: device(c2.token),
    payload: [reading()],
  })
  t.equal(res.statusCode, 200, 'c2 cached')
  await client.query('UPDATE device_credentials SET revoked_at = now() WHERE id = $1', [c2.id])
  await new Promise((r) => setTimeout(r, 400))
  res = await app.inject({
    method: 'POST',
    url: '/v1/sensors/room1/readings',
    headers: device(c2.token),
    payload: [reading()],
  })
  t.equal(res.statusCode, 401, 'revoked after cache expiry')
})

t.test('roles: JWT and API keys across routes', async (t) => {
  const { app, issue } = await setup(t)
  const ingest = async (h: Record<string, string>): Promise<number> =>
    (
      await app.inject({
        method: 'POST',
        url: '/v1/readings',
        headers: h,
        payload: [{ kind: 'sensor', id: 's1', ...reading() }],
      })
    ).statusCode
  const state = async (h: Record<string, string>): Promise<number> =>
    (await app.inject({ method: 'GET', url: '/v1/entities/sensor/nobody/state', headers: h })).statusCode
  const admin = async (h: Record<string, string>): Promise<number> =>
    (await app.inject({ method: 'POST', url: '/v1/admin/devices/sensor/s1/credentials', headers: h })).statusCode
  const cases: [string, Record<string, string>, number, number, number][] = [
    // name, headers, ingest, state (404/503 = allowed, no entity), issue credential
    ['none', {}, 401, 401, 401],
    ['viewer', bearer('viewer'), 403, 0, 403],
    ['operator', bearer('operator'), 200, 0, 403],
    ['admin', bearer('admin'), 200, 0, 201],
    ['unknown role', bearer('root'), 401, 401, 401],
    ['no sub', { authorization: `Bearer ${jwt({ role: 'admin' })}` }, 401, 401, 401],
    [
      'expired',
      { authorization: `Bearer ${jwt({ sub: 'u', role: 'admin', exp: Math.floor(Date.now() / 1000) - 60 })}` },
      401,
      401,
      401,
    ],
    [
      'other secret',
      { authorization: `Bearer ${jwt({ sub: 'u', role: 'admin' }, randomBytes(32).toString('hex'))}` },
      401,
      401,
      401,
    ],
    [
      'alg none',
      { authorization: `Bearer ${b64u({ alg: 'none' })}.${b64u({ sub: 'u', role: 'admin' })}.` },
      401,
      401,
      401,
    ],
    ['operator key', { 'x-api-key': SVC_KEY }, 200, 0, 403],
    ['viewer key', { 'x-api-key': VIEW_KEY }, 403, 0, 403],
    ['wrong key', { 'x-api-key': 'nope' }, 401, 401, 401],
    ['basic auth', { authorization: 'Basic YWRtaW46YWRtaW4=' }, 401, 401, 401],
  ]
  for (const [name, h, i, s, a] of cases) {
    t.equal(await ingest(h), i, `${name}: ingest`)
    const st = await state(h)
    if (s === 0) t.ok(st === 404 || st === 503, `${name}: state allowed (${st})`)
    else t.equal(st, s, `${name}: state`)
    t.equal(await admin(h), a, `${name}: issue credential`)
  }
  const c = await issue('sensor', 's1')
  t.equal(
    (await app.inject({ method: 'DELETE', url: `/v1/admin/credentials/${c.id}`, headers: { 'x-api-key': SVC_KEY } }))
      .statusCode,
    403,
    'operator cannot revoke',
  )
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'health is public')
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, 'readiness is public')
})

t.test('rate limit per credential: 429 with Retry-After, other credentials unaffected', async (t) => {
  const { app, issue } = await setup(t, { rateLimitMax: 3, rateLimitWindowMs: 60_000 })
  const c = await issue('sensor', 'r1')
  const send = async (
    h: Record<string, string>,
    id = 'r1',
  ): Promise<{ statusCode: number; headers: Record<string, unknown>; body: string }> =>
    await app.inject({ method: 'POST', url: `/v1/sensors/${id}/readings`, headers: h, payload: [reading()] })
  for (let i = 0; i < 3; i++) t.equal((await send(device(c.token))).statusCode, 200)
  const res = await send(device(c.token))
  t.equal(res.statusCode, 429)
  t.equal(JSON.parse(res.body).code, 'GW_ERR_RATE_LIMITED')
  t.ok(Number(res.headers['retry-after']) > 0, `Retry-After ${String(res.headers['retry-after'])}`)
  t.equal((await send(bearer('operator'))).statusCode, 200, 'another credential has its own budget')
  // failed attempts are limited too (by client address)
  const bad = device(`dc_${'0'.repeat(24)}.${randomBytes(32).toString('base64url')}`)
  const codes: number[] = []
  for (let i = 0; i < 5; i++) codes.push((await send(bad)).statusCode)
  t.same(codes, [401, 401, 401, 429, 429])
})

t.test('no secret in logs', async (t) => {
  const { app, issue, logs } = await setup(t)
  const c = await issue('vehicle', VIN)
  const secret = c.token.split('.')[1] ?? '?'
  const admin = bearer('admin')
  await app.inject({
    method: 'POST',
    url: `/v1/vehicles/${VIN}/telemetry`,
    headers: device(c.token),
    payload: [reading({ fields: { speed: 100 } })],
  })
  await app.inject({
    method: 'POST',
    url: `/v1/vehicles/${VIN}/telemetry`,
    headers: device(`${c.id}.${'A'.repeat(43)}`),
    payload: [reading()],
  })
  await app.inject({
    method: 'POST',
    url: '/v1/readings',
    headers: { 'x-api-key': SVC_KEY },
    payload: [{ kind: 'sensor', id: 's', ...reading() }],
  })
  await app.inject({ method: 'DELETE', url: `/v1/admin/credentials/${c.id}`, headers: admin })
  const out = logs()
  t.ok(out.includes('device credential issued') && out.includes(c.id), 'issuance is logged (by id)')
  for (const s of [secret, SVC_KEY, JWT_SECRET, admin.authorization?.slice(7) ?? '?'])
    t.notOk(out.includes(s), 'secret absent from logs')
})

t.test('config: auth on by default, secret required, file, off', async (t) => {
  const db = 'postgres://127.0.0.1/x'
  t.throws(() => compileGatewayConfig({ auth: { databaseUrl: db } }), {
    code: 'PW_CONFIG_INVALID',
    message: /PITWALL_GATEWAY_JWT_SECRET/,
  })
  t.throws(() => compileGatewayConfig({ auth: { databaseUrl: db, jwtSecret: 'short' } }), { message: /at least 32/ })
  t.throws(() => compileGatewayConfig({ auth: { jwtSecret: JWT_SECRET } }), { message: /PITWALL_GATEWAY_DATABASE_URL/ })
  t.throws(() => compileGatewayConfig({ auth: { enabled: false, apiKeys: 'k:root:sha256:' + sha('x') } }), {
    message: /role/,
  })
  t.throws(() => compileGatewayConfig({ auth: { enabled: false, apiKeys: 'k:viewer:plain' } }), {
    message: /PITWALL_GATEWAY_API_KEYS/,
  })
  t.throws(() => gatewayOptionsFromEnv({ PITWALL_GATEWAY_AUTH: 'maybe' }), { message: /PITWALL_GATEWAY_AUTH/ })
  const dir = t.testdir({ secret: `${JWT_SECRET}\n` })
  const cfg = compileGatewayConfig(
    gatewayOptionsFromEnv({
      PITWALL_GATEWAY_JWT_SECRET_FILE: `${dir}/secret`,
      PITWALL_GATEWAY_DATABASE_URL: db,
      PITWALL_GATEWAY_CREDENTIAL_CACHE_MS: '100',
    }),
  )
  t.equal(cfg.auth.enabled, true)
  t.equal(cfg.auth.jwtSecret, JWT_SECRET, 'file read and trimmed')
  t.equal(cfg.auth.credentialCacheMs, 100)
  t.throws(() => gatewayOptionsFromEnv({ PITWALL_GATEWAY_JWT_SECRET_FILE: `${dir}/missing` }), {
    message: /PITWALL_GATEWAY_JWT_SECRET_FILE/,
  })
  t.throws(
    () =>
      gatewayOptionsFromEnv({
        PITWALL_GATEWAY_JWT_SECRET_FILE: `${dir}/secret`,
        PITWALL_GATEWAY_JWT_SECRET: JWT_SECRET,
      }),
    { message: /both/ },
  )
  t.equal(compileGatewayConfig(gatewayOptionsFromEnv({ PITWALL_GATEWAY_AUTH: 'off' })).auth.enabled, false)
})

t.test('migrations: idempotent and safe when run concurrently', async (t) => {
  const db = await createTestDb()
  const pool = new pg.Pool({ connectionString: db.url })
  // One teardown, in order: the pool's idle connections close before DROP DATABASE ... WITH (FORCE) would kill them.
  t.teardown(async () => {
    await pool.end()
    await db.drop()
  })
  const runs = await Promise.all([migrate(pool), migrate(pool), migrate(pool)])
  t.same(
    runs.flat().sort((a, b) => a - b),
    [1, 2, 3, 4, 5, 6, 7, 8],
    'each version applied exactly once (4: geofences, 5: out of service, 6: alarm workflow, 7: notifications, 8: site command audit)',
  )
  t.same(await migrate(pool), [])
})
