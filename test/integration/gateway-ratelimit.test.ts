/**
 * Rate limits across gateways (issue 19): two gateway instances of one site, each with its own NATS connection
 * and PostgreSQL pool, on one nats-server. With the shared store (default) the limit holds for their sum,
 * sequential and concurrent; with `rateLimitStore: 'local'` (the per-process limiter, the old behaviour) the two
 * allow twice the limit, which is what the shared store fixes. When the store fails (its bucket deleted under
 * it) requests are still answered, counted per process, with `pitwall_gateway_rate_limit_store_up` 0, the
 * fallback counted and logged; after `rateLimitStoreRetryMs` the store is used again.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { buildGateway, compileGatewayConfig, type AuthOptions } from '../../gateway/mod.js'
import { connectTo } from '../helpers/nats.js'
import { bearer, JWT_SECRET, setupGateway, SVC_KEY, VIEW_KEY, type TestGateway } from '../helpers/gateway.js'

const MAX = 10
const WINDOW_MS = 60_000
const sha = (s: string): string => createHash('sha256').update(s).digest('hex')
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Waits until the current fixed window has at least `ms` left, so a test's requests fall in one window. */
async function roomInWindow(ms: number): Promise<void> {
  const left = WINDOW_MS - (Date.now() % WINDOW_MS)
  if (left < ms) await sleep(left + 50)
}

/** A first gateway (the helper's) and a second one on the same nats-server and database, with its own connection. */
async function twoGateways(
  t: { teardown(fn: () => unknown): void },
  auth: AuthOptions,
): Promise<{ g: TestGateway; a: FastifyInstance; b: FastifyInstance }> {
  const g = await setupGateway(t, { auth: { rateLimitMax: MAX, rateLimitWindowMs: WINDOW_MS, ...auth }, capture: true })
  const nc2 = await connectTo(g.srv.url)
  t.teardown(() => nc2.close())
  const cfg2 = compileGatewayConfig({
    publishTimeoutMs: 1_000,
    auth: {
      jwtSecret: JWT_SECRET,
      apiKeys: `ingest-svc:operator:sha256:${sha(SVC_KEY)},dash:viewer:sha256:${sha(VIEW_KEY)}`,
      databaseUrl: g.db?.url ?? '',
      rateLimitMax: MAX,
      rateLimitWindowMs: WINDOW_MS,
      ...auth,
    },
    runtime: { natsUrl: g.srv.url, partitions: 4, workerId: 'gw-test-2' },
  })
  const b = buildGateway({ nc: nc2, cfg: cfg2 })
  t.teardown(() => b.close())
  await b.ready()
  return { g, a: g.app, b }
}

const call = async (
  app: FastifyInstance,
  headers: Record<string, string>,
): Promise<{ status: number; code?: string; retryAfter?: string }> => {
  const res = await app.inject({ method: 'GET', url: '/v1/customers?limit=1', headers })
  const code = res.statusCode === 200 ? undefined : res.json<{ code: string }>().code
  return {
    status: res.statusCode,
    ...(code === undefined ? {} : { code }),
    ...(res.headers['retry-after'] === undefined ? {} : { retryAfter: String(res.headers['retry-after']) }),
  }
}
const metric = async (app: FastifyInstance, name: string): Promise<number | undefined> => {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(
    (await app.inject({ method: 'GET', url: '/metrics' })).body,
  )
  return m ? Number(m[1]) : undefined
}

t.test('two gateways sharing the site store: the limit holds for their sum', async (t) => {
  const { a, b } = await twoGateways(t, {})
  await roomInWindow(20_000)
  // sequential, alternating gateways: 16 requests, 10 allowed in all
  const key = { 'x-api-key': VIEW_KEY }
  const seq: number[] = []
  for (let i = 0; i < 16; i++) seq.push((await call(i % 2 === 0 ? a : b, key)).status)
  t.equal(seq.filter((s) => s === 200).length, MAX, `${MAX} allowed across both gateways`)
  t.same(seq.slice(0, MAX), Array(MAX).fill(200), 'the first ten, whichever gateway')
  t.same(seq.slice(MAX), Array(16 - MAX).fill(429), 'then 429 on both')
  const refused = await call(b, key)
  t.match(refused, { status: 429, code: 'GW_ERR_RATE_LIMITED' })
  t.ok(
    Number(refused.retryAfter) > 0 && Number(refused.retryAfter) <= WINDOW_MS / 1000,
    `Retry-After ${refused.retryAfter} s, the rest of the window`,
  )
  // concurrent: 30 requests of another credential at once, 15 on each gateway: exactly 10 allowed
  const person = bearer('viewer')
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => call(i % 2 === 0 ? a : b, person)))
  t.equal(results.filter((r) => r.status === 200).length, MAX, 'concurrent: 10 allowed across both gateways')
  t.equal(results.filter((r) => r.status === 429).length, 30 - MAX, 'the others refused')
  // credentials are counted apart
  t.equal((await call(a, { 'x-api-key': SVC_KEY })).status, 200, 'another credential has its own count')
  t.equal(await metric(a, 'pitwall_gateway_rate_limit_store_up'), 1, 'store up')
  t.equal(await metric(a, 'pitwall_gateway_rate_limit_fallback_total'), 0, 'no fallback')
})

t.test('per-process counting (rateLimitStore local): two gateways allow twice the limit', async (t) => {
  const { a, b } = await twoGateways(t, { rateLimitStore: 'local' })
  await roomInWindow(20_000)
  const key = { 'x-api-key': VIEW_KEY }
  const seq: number[] = []
  for (let i = 0; i < 24; i++) seq.push((await call(i % 2 === 0 ? a : b, key)).status)
  t.equal(seq.filter((s) => s === 200).length, 2 * MAX, 'each gateway allows the full limit')
  t.equal(await metric(a, 'pitwall_gateway_rate_limit_store_up'), undefined, 'no store, no store gauge value')
})

t.test(
  'store down: the per-process limiter counts, the gauge and the log say so; the store is used again after the retry delay',
  async (t) => {
    const { g, a, b } = await twoGateways(t, { rateLimitStoreRetryMs: 500, rateLimitStoreTimeoutMs: 200 })
    await roomInWindow(25_000)
    const key = { 'x-api-key': VIEW_KEY }
    t.equal((await call(a, key)).status, 200, 'store in use')
    t.equal(await metric(a, 'pitwall_gateway_rate_limit_store_up'), 1)
    // The bucket disappears under both gateways (an operator deleting it, a JetStream that lost it).
    await g.jsm.streams.delete(`KV_${g.cfg.auth.rateLimitBucket}`)
    const statuses: number[] = []
    for (let i = 0; i < 14; i++) statuses.push((await call(a, key)).status)
    t.notOk(statuses.includes(500) || statuses.includes(503), 'requests are answered while the store is down')
    // Gateway a counts alone now: its one shared-store request is not in its local count, so 10 more pass, then 429.
    t.equal(statuses.filter((s) => s === 200).length, MAX, 'the per-process limit applies')
    t.equal(statuses.filter((s) => s === 429).length, 14 - MAX)
    t.equal(await metric(a, 'pitwall_gateway_rate_limit_store_up'), 0, 'store_up 0')
    t.ok(((await metric(a, 'pitwall_gateway_rate_limit_fallback_total')) ?? 0) >= 14, 'fallbacks counted')
    t.match(g.logs(), /rate limit store unavailable: counting per process/, 'logged')
    // Recovery: after the retry delay the bucket is created again and counting is shared again, from zero.
    await sleep(600)
    await roomInWindow(10_000)
    const person = bearer('operator')
    const mixed: number[] = []
    for (let i = 0; i < 14; i++) mixed.push((await call(i % 2 === 0 ? a : b, person)).status)
    t.equal(await metric(a, 'pitwall_gateway_rate_limit_store_up'), 1, 'store up again')
    t.equal(mixed.filter((s) => s === 200).length, MAX, 'shared again: the limit holds for the sum')
    t.match(g.logs(), /rate limits counted in the site's shared store again/, 'recovery logged')
  },
)
