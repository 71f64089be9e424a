/**
 * Security headers on every reply (success, client error, 404, router error, preflight), HSTS only when
 * configured, and CORS for exactly the configured origins (never `*`), against a real nats-server.
 */
import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { jetstreamManager } from '@nats-io/jetstream'
import { provision } from '../../actors/mod.js'
import {
  buildGateway,
  compileGatewayConfig,
  gatewayOptionsFromEnv,
  parseCorsOrigins,
  type GatewayOptions,
} from '../../gateway/mod.js'
import { connectTo, startNats } from '../helpers/nats.js'

const APP = 'https://app.example.com'
const DEV = 'http://localhost:3000'
const reading = (id: string): Record<string, unknown> => ({
  kind: 'sensor',
  id,
  ts: Date.now(),
  fields: { temperature: 20 },
})

async function setup(t: { teardown(fn: () => unknown): void }, over: GatewayOptions = {}) {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const cfg = compileGatewayConfig({
    auth: { enabled: false },
    publishTimeoutMs: 2_000,
    runtime: { natsUrl: srv.url, partitions: 2 },
    ...over,
  })
  await provision(nc, await jetstreamManager(nc), cfg.runtime)
  const app = buildGateway({ nc, cfg })
  t.teardown(() => app.close())
  await app.ready()
  return app
}

function securityHeaders(t: Test, res: LightMyRequestResponse, what: string): void {
  t.equal(res.headers['x-content-type-options'], 'nosniff', `${what}: nosniff`)
  t.equal(res.headers['x-frame-options'], 'DENY', `${what}: X-Frame-Options`)
  t.match(res.headers['content-security-policy'], /frame-ancestors 'none'/, `${what}: CSP frame-ancestors`)
  t.equal(res.headers['referrer-policy'], 'no-referrer', `${what}: Referrer-Policy`)
  t.equal(res.headers['cache-control'], 'no-store', `${what}: Cache-Control`)
}

t.test('security headers on every kind of reply; no HSTS and no CORS by default', async (t) => {
  const app = await setup(t)
  const replies: [string, Promise<LightMyRequestResponse>, number][] = [
    ['healthz', app.inject({ method: 'GET', url: '/healthz' }), 200],
    ['ingest 200', app.inject({ method: 'POST', url: '/v1/readings', payload: [reading('h1')] }), 200],
    ['ingest 400', app.inject({ method: 'POST', url: '/v1/readings', payload: [] }), 400],
    [
      'malformed JSON',
      app.inject({
        method: 'POST',
        url: '/v1/readings',
        headers: { 'content-type': 'application/json' },
        payload: '[',
      }),
      400,
    ],
    [
      '415',
      app.inject({ method: 'POST', url: '/v1/readings', headers: { 'content-type': 'text/plain' }, payload: 'x' }),
      415,
    ],
    ['404', app.inject({ method: 'GET', url: '/nope' }), 404],
    ['router error', app.inject({ method: 'GET', url: `/v1/entities/sensor/${'s'.repeat(5000)}/state` }), 400],
    [
      'preflight without CORS',
      app.inject({
        method: 'OPTIONS',
        url: '/v1/readings',
        headers: { origin: APP, 'access-control-request-method': 'POST' },
      }),
      204,
    ],
  ]
  for (const [what, p, status] of replies) {
    const res = await p
    t.equal(res.statusCode, status, `${what}: status ${res.body.slice(0, 120)}`)
    securityHeaders(t, res, what)
    t.notOk(res.headers['strict-transport-security'], `${what}: no HSTS unless configured`)
    t.notOk(res.headers['access-control-allow-origin'], `${what}: no CORS unless configured`)
  }
  const cross = await app.inject({
    method: 'POST',
    url: '/v1/readings',
    headers: { origin: APP },
    payload: [reading('h2')],
  })
  t.equal(cross.statusCode, 200, 'a cross-origin request is served (the browser, not the server, enforces CORS)')
  t.notOk(cross.headers['access-control-allow-origin'])
})

t.test('HSTS when configured', async (t) => {
  const app = await setup(t, { hstsMaxAgeS: 31_536_000 })
  for (const url of ['/healthz', '/nope']) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains', url)
    securityHeaders(t, res, url)
  }
})

t.test('CORS: exact configured origins, preflight answered, never *', async (t) => {
  const app = await setup(t, { corsOrigins: `${APP}, ${DEV}` })
  const preflight = (origin: string, url = '/v1/readings'): Promise<LightMyRequestResponse> =>
    app.inject({
      method: 'OPTIONS',
      url,
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, idempotency-key',
      },
    })
  for (const origin of [APP, DEV]) {
    const res = await preflight(origin)
    t.equal(res.statusCode, 204, `${origin}: preflight 204`)
    t.equal(res.headers['access-control-allow-origin'], origin, "the caller's own origin")
    t.match(res.headers['access-control-allow-methods'], /POST/)
    t.match(res.headers['access-control-allow-headers'], /Authorization/)
    t.match(res.headers['access-control-allow-headers'], /Idempotency-Key/)
    t.equal(res.headers['access-control-max-age'], '600')
    t.match(res.headers.vary, /Origin/)
    t.notOk(res.headers['access-control-allow-credentials'], 'no credentials flag')
    t.equal(res.body, '', 'no body')
    securityHeaders(t, res, `${origin} preflight`)
  }
  const state = await preflight(APP, '/v1/entities/sensor/x/state')
  t.equal(state.headers['access-control-allow-origin'], APP, 'preflight on any route')

  for (const origin of [
    'https://evil.example.com',
    'https://app.example.com.evil.com',
    'http://app.example.com',
    `${APP}:443`,
    'null',
    '*',
    APP.toUpperCase(),
  ]) {
    const res = await preflight(origin)
    t.equal(res.statusCode, 204, `${origin}: preflight answered`)
    t.notOk(res.headers['access-control-allow-origin'], `${origin}: not allowed`)
    t.notOk(res.headers['access-control-allow-methods'], `${origin}: no methods`)
    t.match(res.headers.vary, /Origin/, `${origin}: Vary: Origin`)
  }

  let res = await app.inject({
    method: 'POST',
    url: '/v1/readings',
    headers: { origin: APP },
    payload: [reading('c1')],
  })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['access-control-allow-origin'], APP)
  t.match(res.headers['access-control-expose-headers'], /Retry-After/)
  t.match(res.headers.vary, /Origin/)
  res = await app.inject({
    method: 'POST',
    url: '/v1/readings',
    headers: { origin: 'https://evil.example.com' },
    payload: [reading('c2')],
  })
  t.notOk(res.headers['access-control-allow-origin'], 'other origins get no CORS headers')
  t.match(res.headers.vary, /Origin/)
  res = await app.inject({ method: 'GET', url: '/healthz' })
  t.notOk(res.headers['access-control-allow-origin'], 'no Origin, no CORS headers')
  res = await app.inject({ method: 'GET', url: '/nope', headers: { origin: DEV } })
  t.equal(res.statusCode, 404)
  t.equal(res.headers['access-control-allow-origin'], DEV, 'errors readable by allowed origins too')
  res = await app.inject({
    method: 'GET',
    url: `/v1/entities/sensor/${'s'.repeat(5000)}/state`,
    headers: { origin: DEV },
  })
  t.equal(res.statusCode, 400, 'router-level error')
  t.equal(res.headers['access-control-allow-origin'], DEV, 'router-level errors carry CORS headers too')
  res = await app.inject({ method: 'OPTIONS', url: '/v1/readings', headers: { origin: APP } })
  t.equal(res.statusCode, 404, 'OPTIONS that is not a preflight is not a route')
  t.equal(res.json<{ code: string }>().code, 'GW_ERR_ROUTE_NOT_FOUND')
})

t.test('CORS and HSTS settings: env, defaults, rejected values', async (t) => {
  t.same(compileGatewayConfig({ auth: { enabled: false } }).corsOrigins, [], 'no origins by default')
  t.equal(compileGatewayConfig({ auth: { enabled: false } }).hstsMaxAgeS, 0, 'no HSTS by default')
  const o = gatewayOptionsFromEnv({
    PITWALL_GATEWAY_CORS_ORIGINS: `${APP},${DEV}`,
    PITWALL_GATEWAY_HSTS_MAX_AGE_S: '600',
  })
  const cfg = compileGatewayConfig({ ...o, auth: { enabled: false } })
  t.same(cfg.corsOrigins, [APP, DEV])
  t.equal(cfg.hstsMaxAgeS, 600)
  t.same(parseCorsOrigins(` ${APP} ,, ${APP} `), [APP], 'trimmed, blanks and repeats dropped')
  for (const bad of [
    '*',
    'https://*.example.com',
    `${APP}/`,
    `${APP}/path`,
    'app.example.com',
    'ftp://example.com',
    'null',
    'https://APP.example.com',
  ]) {
    t.throws(
      () => compileGatewayConfig({ auth: { enabled: false }, corsOrigins: bad }),
      { code: 'PW_CONFIG_INVALID' },
      `rejects ${bad}`,
    )
  }
  t.throws(() => compileGatewayConfig({ auth: { enabled: false }, hstsMaxAgeS: -1 }), { code: 'PW_CONFIG_INVALID' })
  t.throws(() => gatewayOptionsFromEnv({ PITWALL_GATEWAY_HSTS_MAX_AGE_S: 'year' }), { code: 'PW_CONFIG_INVALID' })
})
