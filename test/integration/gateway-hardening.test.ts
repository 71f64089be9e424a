/**
 * Gateway hardening (issue 14), each case against real servers: slow and stalled bodies answered 408 within
 * `requestTimeoutMs` over a real socket; PostgreSQL cut and stalled behind a TCP proxy (503 + Retry-After on
 * every route that needs it, ingest that does not keeps working); NUL in query parameters and cursors (400);
 * `/readyz` riding out one slow JetStream answer (SIGSTOP) but not a lasting outage; repeated Content-Type
 * parameters (415); HTTP parser errors in the gateway's shape with its headers; no deprecation warning at start.
 *
 * `PITWALL_SLOWBODY_TIMEOUTS=5000,30000 npx tap test/integration/gateway-hardening.test.ts` also measures the time to 408
 * for a stalled and a trickling (one byte a second) body with those `requestTimeoutMs` (slow: 30 s timeouts).
 */
import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import pg from 'pg'
import type { FastifyInstance } from 'fastify'
import { migrate as migrateProjection } from '../../projector/mod.js'
import { b64u, bearer, device, setupGateway, SVC_KEY, VIN } from '../helpers/gateway.js'
import { CuttableProxy } from '../helpers/proxy.js'
import { createTestDb } from '../helpers/pg.js'

// ---- FSTDEP022 (item 7): listened for before any gateway is built in this process ----------------------------
const warnings: { name: string; code?: string; message: string }[] = []
process.on('warning', (w: Error & { code?: string }) => {
  warnings.push({ name: w.name, code: w.code, message: w.message })
})

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const reading = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  kind: 'sensor',
  id: 's1',
  ts: Date.now(),
  fields: { temperature: 20 },
  ...over,
})

interface RawReply {
  status: number
  headers: Record<string, string>
  body: string
  ms: number
  closed: boolean
}

/**
 * Sends `parts` on a raw socket (a number = pause that many ms; a function = write repeatedly until the reply)
 * and returns the first reply, parsed, with the time from the first byte sent; gives up after `giveUpMs`.
 */
async function raw(
  port: number,
  parts: (string | Buffer | number | { trickle: string; everyMs: number })[],
  giveUpMs: number,
): Promise<RawReply> {
  const sock: Socket = connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve)
    sock.once('error', reject)
  })
  let data = Buffer.alloc(0)
  let closed = false
  let done = false
  const start = Date.now()
  let answeredAt = 0
  const reply = new Promise<void>((resolve) => {
    const finish = (): void => {
      done = true
      resolve()
    }
    sock.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d])
      if (answeredAt === 0) answeredAt = Date.now()
      const text = data.toString('latin1')
      const headEnd = text.indexOf('\r\n\r\n')
      const len = /\r\ncontent-length: *([0-9]+)/i.exec(text)
      if (headEnd >= 0 && len && data.length >= headEnd + 4 + Number(len[1])) finish()
    })
    sock.on('close', () => {
      closed = true
      finish()
    })
    sock.on('error', () => undefined)
    setTimeout(finish, giveUpMs).unref()
  })
  void (async () => {
    for (const p of parts) {
      if (done || sock.destroyed) return
      if (typeof p === 'number') await sleep(p)
      else if (typeof p === 'object' && !Buffer.isBuffer(p)) {
        for (const ch of p.trickle) {
          if (done || sock.destroyed) return
          sock.write(ch)
          await sleep(p.everyMs)
        }
      } else sock.write(p)
    }
  })()
  await reply
  // A moment for the server's close to arrive after the reply (Connection: close).
  if (!closed) await Promise.race([new Promise((r) => sock.once('close', r)), sleep(300)])
  sock.destroy()
  const text = data.toString('utf8')
  const headEnd = text.indexOf('\r\n\r\n')
  const head = headEnd < 0 ? text : text.slice(0, headEnd)
  const [statusLine = '', ...lines] = head.split('\r\n')
  const headers: Record<string, string> = {}
  for (const l of lines) {
    const i = l.indexOf(':')
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
  }
  return {
    status: Number(statusLine.split(' ')[1] ?? 0),
    headers,
    body: headEnd < 0 ? '' : text.slice(headEnd + 4),
    ms: (answeredAt || Date.now()) - start,
    closed: closed || sock.destroyed,
  }
}

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const addr = app.server.address()
  return typeof addr === 'object' && addr ? addr.port : 0
}

/** The gateway's error shape and security headers on a reply written outside Fastify's hooks. */
function assertShape(t: Test, r: RawReply, status: number, code: string, what: string): void {
  t.equal(r.status, status, `${what}: status ${status} (${r.body.slice(0, 120)})`)
  let body: { code?: unknown; message?: unknown; error?: unknown; statusCode?: unknown } = {}
  try {
    body = JSON.parse(r.body) as typeof body
  } catch {
    t.fail(`${what}: body is not JSON: ${r.body.slice(0, 80)}`)
  }
  t.equal(body.code, code, `${what}: code`)
  t.type(body.message, 'string', `${what}: message`)
  t.equal(body.statusCode, undefined, `${what}: not Fastify's default shape`)
  t.equal(r.headers['x-content-type-options'], 'nosniff', `${what}: nosniff`)
  t.equal(r.headers['x-frame-options'], 'DENY', `${what}: X-Frame-Options`)
  t.match(r.headers['content-security-policy'] ?? '', /default-src 'none'/, `${what}: CSP`)
  t.equal(r.headers['referrer-policy'], 'no-referrer', `${what}: Referrer-Policy`)
  t.equal(r.headers['cache-control'], 'no-store', `${what}: Cache-Control`)
  t.match(r.headers['content-type'] ?? '', /^application\/json/, `${what}: JSON`)
  t.equal(r.headers.connection, 'close', `${what}: Connection: close`)
}

t.test('item 7: no FSTDEP022 (maxParamLength) deprecation warning when the gateway is built', async (t) => {
  const { app } = await setupGateway(t, { auth: false })
  await sleep(50) // process warnings are emitted on the next tick
  t.same(
    warnings.filter((w) => w.code === 'FSTDEP022' || /maxParamLength/.test(w.message)),
    [],
    'no maxParamLength deprecation',
  )
  // the 1,024-character limit still holds, through routerOptions
  const long = await app.inject({ method: 'GET', url: `/v1/entities/sensor/${'s'.repeat(1025)}/state` })
  t.match(long.json(), { code: 'GW_ERR_PARAMS_INVALID' }, 'over 1,024 characters: refused by the router')
  const ok = await app.inject({ method: 'GET', url: `/v1/entities/sensor/${'s'.repeat(1024)}/state` })
  t.match(ok.json(), { code: 'GW_ERR_ID_INVALID' }, '1,024 characters: reaches the route and its id check')
})

t.test('item 1: a stalled or trickling body is answered 408 within requestTimeoutMs plus a small margin', async (t) => {
  const TIMEOUT = 2_000
  const MARGIN = 900 // the connection check runs every TIMEOUT / 10 ms (200 here), plus scheduling on a busy 2-core machine
  const { app, count } = await setupGateway(t, {
    auth: false,
    gw: { requestTimeoutMs: TIMEOUT, publishTimeoutMs: 500, corsOrigins: 'https://ops.example.com' },
  })
  const port = await listen(app)
  const head = (len: number, extra = ''): string =>
    `POST /v1/readings HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: ${len}\r\n${extra}\r\n`
  const body = JSON.stringify([reading({ id: 'slow' })])

  const stalled = await raw(
    port,
    [head(body.length, 'Origin: https://ops.example.com\r\n'), body.slice(0, 10)],
    TIMEOUT + 5_000,
  )
  t.comment(`stalled body: 408 after ${stalled.ms} ms (requestTimeoutMs ${TIMEOUT})`)
  assertShape(t, stalled, 408, 'GW_ERR_REQUEST_TIMEOUT', 'stalled body')
  t.ok(
    stalled.ms >= TIMEOUT - 50 && stalled.ms <= TIMEOUT + MARGIN,
    `stalled body answered in ${stalled.ms} ms, within ${TIMEOUT}..${TIMEOUT + MARGIN}`,
  )
  t.equal(
    stalled.headers['access-control-allow-origin'],
    'https://ops.example.com',
    'CORS: the request headers were read, so the origin is answered',
  )

  const trickle = await raw(port, [head(body.length), { trickle: body, everyMs: 150 }], TIMEOUT + 5_000)
  t.comment(`trickling body (a byte every 150 ms): 408 after ${trickle.ms} ms`)
  assertShape(t, trickle, 408, 'GW_ERR_REQUEST_TIMEOUT', 'trickling body')
  t.ok(trickle.ms <= TIMEOUT + MARGIN, `trickling body answered in ${trickle.ms} ms`)

  const slowHeaders = await raw(
    port,
    ['POST /v1/readings HTTP/1.1\r\nHost: gw\r\n', { trickle: 'X-Slow: abcdefghijklmnopqrstuvwxyz', everyMs: 150 }],
    TIMEOUT + 5_000,
  )
  assertShape(t, slowHeaders, 408, 'GW_ERR_REQUEST_TIMEOUT', 'trickling headers')
  t.ok(slowHeaders.ms <= TIMEOUT + MARGIN, `trickling headers answered in ${slowHeaders.ms} ms`)

  // a body that arrives within the deadline, in pieces, is served as usual
  const inTime = await raw(port, [head(body.length), body.slice(0, 5), 500, body.slice(5)], TIMEOUT + 5_000)
  t.equal(inTime.status, 200, `a body sent in pieces within the deadline is accepted (${inTime.body})`)
  t.equal(await count(), 1, 'only that reading is stored')

  const measure = (process.env.PITWALL_SLOWBODY_TIMEOUTS ?? '')
    .split(',')
    .filter((x) => x !== '')
    .map(Number)
  for (const ms of measure) {
    const g = await setupGateway(t, { auth: false, gw: { requestTimeoutMs: ms, publishTimeoutMs: 500 } })
    const p = await listen(g.app)
    const s = await raw(p, [head(body.length), body.slice(0, 10)], ms + 120_000)
    const tr = await raw(p, [head(1_000), { trickle: 'x'.repeat(1_000), everyMs: 1_000 }], ms + 120_000)
    t.comment(
      `MEASURED requestTimeoutMs ${ms}: stalled body ${s.status} after ${s.ms} ms; trickling 1 byte/s ${tr.status} after ${tr.ms} ms`,
    )
    t.equal(s.status, 408)
    t.ok(s.ms <= ms + 1_500, `requestTimeoutMs ${ms}: stalled body within ${ms + 1_500} ms`)
    t.ok(tr.ms <= ms + 1_500, `requestTimeoutMs ${ms}: trickling body within ${ms + 1_500} ms`)
  }
})

t.test('item 6: HTTP parser errors have the {code, message} shape and the security headers', async (t) => {
  const { app } = await setupGateway(t, { auth: false })
  const port = await listen(app)
  const cases: [string, string | Buffer, number, string][] = [
    [
      'Content-Length with Transfer-Encoding',
      'POST /v1/readings HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      400,
      'GW_ERR_REQUEST_MALFORMED',
    ],
    [
      'bad chunk size',
      'POST /v1/readings HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n[]\r\n0\r\n\r\n',
      400,
      'GW_ERR_REQUEST_MALFORMED',
    ],
    [
      'NUL in a header value',
      Buffer.from('GET /healthz HTTP/1.1\r\nHost: gw\r\nX-A: a\u0000b\r\n\r\n', 'latin1'),
      400,
      'GW_ERR_REQUEST_MALFORMED',
    ],
    ['obs-fold header', 'GET /healthz HTTP/1.1\r\nHost: gw\r\nX-A: a\r\n  b\r\n\r\n', 400, 'GW_ERR_REQUEST_MALFORMED'],
    ['space before the colon', 'GET /healthz HTTP/1.1\r\nHost: gw\r\nX-A : b\r\n\r\n', 400, 'GW_ERR_REQUEST_MALFORMED'],
    ['garbage request line', 'HELLO\r\n\r\n', 400, 'GW_ERR_REQUEST_MALFORMED'],
    [
      '20 KiB of headers',
      `GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`,
      431,
      'GW_ERR_HEADERS_TOO_LARGE',
    ],
  ]
  for (const [name, bytes, status, code] of cases) {
    const r = await raw(port, [bytes], 5_000)
    assertShape(t, r, status, code, name)
    t.ok(r.closed, `${name}: connection closed`)
  }
  const ok = await raw(port, ['GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n'], 5_000)
  t.equal(ok.status, 200, 'still serving')
})

/** Splits raw HTTP/1.1 bytes into replies by Content-Length. */
function replies(bytes: Buffer): RawReply[] {
  const out: RawReply[] = []
  let rest = bytes.toString('utf8')
  while (rest.length > 0) {
    const headEnd = rest.indexOf('\r\n\r\n')
    if (headEnd < 0) break
    const [statusLine = '', ...lines] = rest.slice(0, headEnd).split('\r\n')
    const headers: Record<string, string> = {}
    for (const l of lines) {
      const i = l.indexOf(':')
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
    }
    const len = Number(headers['content-length'] ?? 0)
    out.push({
      status: Number(statusLine.split(' ')[1] ?? 0),
      headers,
      body: rest.slice(headEnd + 4, headEnd + 4 + len),
      ms: 0,
      closed: true,
    })
    rest = rest.slice(headEnd + 4 + len)
  }
  return out
}

t.test("item 6: a request arriving while the gateway shuts down gets 503 in the gateway's shape", async (t) => {
  const { app, count } = await setupGateway(t, { auth: false, gw: { retryAfterS: 4 } })
  const port = await listen(app)
  const body = JSON.stringify([reading({ id: 'closing' })])
  const sock = connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve)
    sock.once('error', reject)
  })
  let data = Buffer.alloc(0)
  sock.on('data', (d: Buffer) => {
    data = Buffer.concat([data, d])
  })
  const ended = new Promise<void>((resolve) => {
    sock.on('close', () => resolve())
    sock.on('error', () => resolve())
  })
  // a request in flight (its body not complete) when close starts ...
  sock.write(
    `POST /v1/readings HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`,
  )
  await sleep(200)
  const closed = app.close()
  await sleep(200)
  // ... finishes, and a second request follows on the same keep-alive connection
  sock.write(`${body.slice(10)}GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n`)
  await Promise.race([ended, sleep(5_000)])
  sock.destroy()
  await closed
  const [first, second] = replies(data)
  t.equal(first?.status, 200, `the request in flight is served (${first?.body ?? 'no reply'})`)
  t.ok(second, 'the second request is answered')
  if (second) {
    assertShape(t, second, 503, 'GW_ERR_UNAVAILABLE', 'during shutdown')
    t.equal(second.headers['retry-after'], '4', 'Retry-After')
  }
  t.equal(await count(), 1, 'the in-flight reading was stored')
})

t.test('item 5: a Content-Type parameter given twice is a 415', async (t) => {
  const { app, count } = await setupGateway(t, { runtime: { workerId: 'gw-hard-ct' } })
  const op = bearer('operator')
  for (const ct of [
    'application/json; charset=utf-8; charset=latin1',
    'application/json; charset=utf-8; charset=utf-8',
    'application/json; charset=latin1; charset=utf-8',
    'application/x-ndjson; CHARSET=utf-8; charset=latin1',
  ]) {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/readings',
      headers: { ...op, 'content-type': ct },
      payload: ct.includes('ndjson') ? JSON.stringify(reading()) : JSON.stringify([reading()]),
    })
    t.equal(res.statusCode, 415, `${ct}: 415`)
    t.match(res.json(), { code: 'GW_ERR_MEDIA_TYPE', item: 'headers.content-type' }, `${ct}: GW_ERR_MEDIA_TYPE`)
  }
  // the registry's JSON bodies follow the same rules
  for (const ct of ['application/json; charset=utf-8; charset=latin1', 'application/json; charset=latin1']) {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/customers',
      headers: { ...op, 'content-type': ct },
      payload: JSON.stringify({ id: 'c1', name: 'C' }),
    })
    t.equal(res.statusCode, 415, `registry ${ct}: 415`)
  }
  const one = await app.inject({
    method: 'POST',
    url: '/v1/readings',
    headers: { ...op, 'content-type': 'application/json; charset=utf-8' },
    payload: JSON.stringify([reading()]),
  })
  t.equal(one.statusCode, 200, 'a single charset=utf-8 is accepted')
  t.equal(await count(), 1, 'only that reading stored')
})

t.test('item 3: NUL in a query parameter or a cursor is a 400, never a 5xx', async (t) => {
  const { app, db } = await setupGateway(t, { runtime: { workerId: 'gw-hard-nul' } })
  if (!db) throw new Error('no database')
  const pool = new pg.Pool({ connectionString: db.url, max: 1 })
  t.teardown(() => pool.end())
  await migrateProjection(pool) // the projector's tables, so the queries reach PostgreSQL
  const viewer = bearer('viewer')
  const op = bearer('operator')
  const cases: [string, string][] = [
    ['/v1/alerts?type=a%00b', 'GW_ERR_QUERY_INVALID'],
    ['/v1/alerts?entity=a%00b', 'GW_ERR_QUERY_INVALID'],
    ['/v1/sensors?type=a%00b', 'GW_ERR_QUERY_INVALID'],
    ['/v1/sensors?site=a%00', 'GW_ERR_QUERY_INVALID'],
    ['/v1/vehicles?brand=%00', 'GW_ERR_QUERY_INVALID'],
    ['/v1/entities/sensor/x/windows?window=a%00b', 'GW_ERR_QUERY_INVALID'],
    ['/v1/recommendations?action=a%00b', 'GW_ERR_QUERY_INVALID'],
    ['/v1/alerts?type=a&type=b%00', 'GW_ERR_QUERY_INVALID'],
    [`/v1/alerts?cursor=${b64u([1, 'a\u0000'])}`, 'GW_ERR_CURSOR_INVALID'],
    [`/v1/recommendations?cursor=${b64u([1, '\u0000'])}`, 'GW_ERR_CURSOR_INVALID'],
    [`/v1/late-readings?cursor=${b64u([1, 'x\u0000y'])}`, 'GW_ERR_CURSOR_INVALID'],
    [`/v1/rollups/stale?minutes=5&cursor=${b64u(['sensor', 'a\u0000'])}`, 'GW_ERR_CURSOR_INVALID'],
    [`/v1/sensors?cursor=${b64u({ k: 'a\u0000' })}`, 'GW_ERR_CURSOR_INVALID'],
    [`/v1/customers?cursor=${b64u({ k: '\u0000' })}`, 'GW_ERR_CURSOR_INVALID'],
  ]
  for (const [url, code] of cases) {
    const res = await app.inject({ method: 'GET', url, headers: viewer })
    t.equal(res.statusCode, 400, `${url}: 400 (${res.body.slice(0, 100)})`)
    t.equal(res.json<{ code: string }>().code, code, `${url}: ${code}`)
  }
  // bodies the registry stores: a NUL the schema lets through is refused before PostgreSQL sees it
  for (const [url, method, payload] of [
    ['/v1/customers', 'POST', { id: 'c1', name: 'a\u0000b' }],
    ['/v1/sensors', 'POST', { id: 's1', type: 't\u0000', profile: 'environment', site: 'a' }],
    ['/v1/vehicles', 'POST', { vin: VIN, brand: 'V\u0000', model: 'm', year: 2020, profile: 'road' }],
  ] as const) {
    const res = await app.inject({ method, url, headers: op, payload })
    t.equal(res.statusCode, 400, `${method} ${url} with a NUL in the body: 400 (${res.body.slice(0, 100)})`)
    t.equal(res.json<{ code: string }>().code, 'GW_ERR_BODY_INVALID', `${method} ${url}: GW_ERR_BODY_INVALID`)
  }
  t.equal(
    (await app.inject({ method: 'POST', url: '/v1/customers', headers: op, payload: { id: 'c1', name: 'C' } }))
      .statusCode,
    201,
  )
  const patched = await app.inject({
    method: 'PATCH',
    url: '/v1/customers/c1',
    headers: op,
    payload: { name: '\u0000' },
  })
  t.equal(patched.statusCode, 400, 'PATCH with a NUL: 400')
  t.equal(
    (await app.inject({ method: 'GET', url: '/v1/alerts?type=ab', headers: viewer })).statusCode,
    200,
    'a clean query still works',
  )
})

t.test(
  'item 2: PostgreSQL down: 503 GW_ERR_UNAVAILABLE with Retry-After where it is needed, ingest that does not need it keeps working',
  async (t) => {
    const db = await createTestDb()
    t.teardown(() => db.drop())
    const target = new URL(db.url)
    const proxy = new CuttableProxy({ host: target.hostname, port: Number(target.port || 5432) })
    await proxy.start()
    t.teardown(() => proxy.stop())
    const via = new URL(db.url)
    via.host = `127.0.0.1:${proxy.port}`
    const DB_TIMEOUT = 800
    const g = await setupGateway(t, {
      db: false,
      auth: { databaseUrl: via.toString(), credentialCacheMs: 600_000 },
      gw: { databaseTimeoutMs: DB_TIMEOUT, retryAfterS: 7 },
      runtime: { workerId: 'gw-hard-pg' },
    })
    const { app } = g
    // the projector's tables, directly (not through the proxy)
    const direct = new pg.Pool({ connectionString: db.url, max: 1 })
    t.teardown(() => direct.end())
    await migrateProjection(direct)
    const admin = bearer('admin')
    for (const [url, body] of [
      ['/v1/customers', { id: 'acme', name: 'Acme' }],
      ['/v1/sensors', { id: 's1', type: 'temp', profile: 'environment', site: 'a', customerId: 'acme' }],
    ] as const)
      t.equal((await app.inject({ method: 'POST', url, headers: admin, payload: body })).statusCode, 201)
    const cached = await g.issue('sensor', 's1')
    const uncached = await g.issue('sensor', 's1')
    type Res = Awaited<ReturnType<FastifyInstance['inject']>>
    const ingest = (
      headers: Record<string, string>,
      url = '/v1/readings',
      items: unknown[] = [reading()],
    ): Promise<Res> => app.inject({ method: 'POST', url, headers, payload: items })
    t.equal(
      (await ingest(device(cached.token))).statusCode,
      200,
      'the first credential is verified (and cached) while PostgreSQL is up',
    )

    const scoped = bearer('operator', { fleets: ['acme'] })
    const needsDb: [string, () => Promise<Res>][] = [
      ['ingest by a device whose credential is not cached', () => ingest(device(uncached.token))],
      [
        'device route by a device whose credential is not cached',
        () => ingest(device(uncached.token), '/v1/sensors/s1/readings', [{ ts: Date.now(), fields: { a: 1 } }]),
      ],
      ['ingest by a fleet-scoped person', () => ingest(scoped)],
      [
        'device route by a fleet-scoped person',
        () => ingest(scoped, '/v1/sensors/s1/readings', [{ ts: Date.now(), fields: { a: 1 } }]),
      ],
      ['alerts', () => app.inject({ method: 'GET', url: '/v1/alerts', headers: bearer('viewer') })],
      [
        'windows',
        () =>
          app.inject({
            method: 'GET',
            url: '/v1/entities/sensor/s1/windows?window=tumbling_1m',
            headers: bearer('viewer'),
          }),
      ],
      ['roll-up', () => app.inject({ method: 'GET', url: '/v1/rollups/open-alerts', headers: bearer('viewer') })],
      ['registry list', () => app.inject({ method: 'GET', url: '/v1/sensors', headers: bearer('viewer') })],
      ['registry read', () => app.inject({ method: 'GET', url: '/v1/customers/acme', headers: bearer('viewer') })],
      [
        'registry create',
        () => app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { id: 'beta', name: 'B' } }),
      ],
      [
        'issuing a credential',
        () => app.inject({ method: 'POST', url: '/v1/admin/devices/sensor/s1/credentials', headers: admin }),
      ],
      [
        'revoking a credential',
        () => app.inject({ method: 'DELETE', url: `/v1/admin/credentials/${uncached.id}`, headers: admin }),
      ],
      [
        'live state of a scoped person',
        () => app.inject({ method: 'GET', url: '/v1/entities/sensor/s1/state', headers: scoped }),
      ],
    ]
    const noDb: [string, () => Promise<Res>][] = [
      ['ingest by a device whose credential is cached', () => ingest(device(cached.token))],
      ['ingest with an API key', () => ingest({ 'x-api-key': SVC_KEY })],
      ['ingest by an unscoped operator', () => ingest(bearer('operator'))],
    ]
    let stored = 1
    const outage = async (how: string): Promise<void> => {
      for (const [name, call] of needsDb) {
        const started = Date.now()
        const res = await call()
        const took = Date.now() - started
        t.equal(res.statusCode, 503, `${how}: ${name}: 503 (${res.body.slice(0, 120)})`)
        t.match(res.json(), { code: 'GW_ERR_UNAVAILABLE' }, `${how}: ${name}: GW_ERR_UNAVAILABLE`)
        t.equal(res.headers['retry-after'], '7', `${how}: ${name}: Retry-After`)
        t.notMatch(res.body, /127\.0\.0\.1|ECONN|5432/, `${how}: ${name}: no address in the reply`)
        t.ok(
          took <= 2 * DB_TIMEOUT + 1_000,
          `${how}: ${name}: answered in ${took} ms (databaseTimeoutMs ${DB_TIMEOUT})`,
        )
      }
      for (const [name, call] of noDb) {
        const res = await call()
        t.equal(res.statusCode, 200, `${how}: ${name}: still 200 (${res.body.slice(0, 120)})`)
        stored++
      }
    }

    proxy.split() // connections dropped, new ones refused
    await outage('cut')
    proxy.heal()
    const back = await app.inject({ method: 'GET', url: '/v1/alerts', headers: bearer('viewer') })
    t.equal(back.statusCode, 200, 'after the cut heals, PostgreSQL routes answer again')

    proxy.stall() // connections open but silent, new ones never answered: bounded by databaseTimeoutMs
    await outage('stalled')
    proxy.heal()
    t.equal(
      (await ingest(device(uncached.token))).statusCode,
      200,
      'after the stall heals, the uncached credential works',
    )
    stored++
    t.equal(await g.count(), stored, `the stream holds exactly the ${stored} accepted readings`)
  },
)

t.test('item 4: /readyz rides out one slow JetStream answer, reports a lasting outage', async (t) => {
  const READY_TIMEOUT = 300
  const { app, srv } = await setupGateway(t, {
    auth: false,
    gw: { readyTimeoutMs: READY_TIMEOUT, readyFailureThreshold: 3 },
  })
  const probe = async (): Promise<{
    status: number
    body: { status?: string; code?: string; item?: string; checks?: Record<string, string> }
  }> => {
    const res = await app.inject({ method: 'GET', url: '/readyz' })
    return { status: res.statusCode, body: res.json() }
  }
  /** SIGSTOP, and wait until the kernel says every thread of nats-server is stopped (state T). */
  const freeze = async (): Promise<void> => {
    srv.proc.kill('SIGSTOP')
    for (let i = 0; i < 100 && !/^\S+ \(.*\) T/.test(readFileSync(`/proc/${srv.proc.pid}/stat`, 'utf8')); i++)
      await sleep(10)
    await sleep(20)
  }
  t.same(await probe(), { status: 200, body: { status: 'ready', checks: { nats: 'ok', jetstream: 'ok' } } }, 'ready')
  // SIGSTOP: nats-server answers nothing, as JetStream does for a moment during a takeover on a busy machine
  await freeze()
  t.teardown(() => {
    srv.proc.kill('SIGCONT')
  })
  const slow = await probe()
  t.equal(slow.status, 200, 'one slow answer: still ready (200)')
  t.equal(slow.body.status, 'degraded')
  t.match(slow.body.checks?.jetstream ?? '', /^failing \(1\/3\)/, 'the check says it is failing, 1 of 3')
  srv.proc.kill('SIGCONT')
  await sleep(100)
  t.same(
    (await probe()).body,
    { status: 'ready', checks: { nats: 'ok', jetstream: 'ok' } },
    'answered again: ready, the count reset',
  )

  // concurrent probes share one check: three at once count one failure
  await freeze()
  const together = await Promise.all([probe(), probe(), probe()])
  t.same(
    together.map((p) => p.status),
    [200, 200, 200],
    'three concurrent probes during one slow check: still ready',
  )
  t.equal((await probe()).status, 200, 'second consecutive failure: still ready')
  const down = await probe()
  t.equal(down.status, 503, 'third consecutive failure: not ready')
  t.match(down.body, { code: 'GW_ERR_NOT_READY', item: 'jetstream' })
  srv.proc.kill('SIGCONT')
  await sleep(100)
  t.equal((await probe()).status, 200, 'JetStream back: ready again on the next probe')
})

t.test('item 4: a gateway whose JetStream never answered is not ready at once', async (t) => {
  const { app } = await setupGateway(t, { auth: false, provision: false, gw: { readyTimeoutMs: 300 } })
  const res = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(res.statusCode, 503, 'no success yet: no tolerance')
  t.match(res.json(), { code: 'GW_ERR_NOT_READY', item: 'jetstream' })
})
