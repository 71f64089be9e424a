/**
 * Webhook notifications against real PostgreSQL, nats-server, the real projector and a real HTTP receiver:
 * - a receiver that is down (connection refused), then slow (beyond the delivery timeout), then up: every
 *   delivery accepted exactly once per delivery id, in order per alert (open, update, the people's actions,
 *   close), every request's signature verifies, and the delivery log shows the refused and timed-out attempts;
 * - two workers on one outbox deliver each item once;
 * - subscription filters select exactly the events a reference matcher, written from the documented filter
 *   rules (gateway/README.md, Notifications), selects;
 * - roles: who may list, create, change, delete and rotate; the secret is returned only on create and rotate.
 * The references are computed by the test from the documented rules, never read back from the code under test.
 */
import { createHash, createHmac } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { jetstream } from '@nats-io/jetstream'
import pg from 'pg'
import { Projector } from '../../projector/mod.js'
import type { AlertBody, AlertState, Output } from '../../actors/types.js'
import {
  AddressPolicy,
  compileGatewayConfig,
  compileNotify,
  GatewayMetrics,
  gatewayOptionsFromEnv,
  migrate as migrateGateway,
  NotifyWorker,
  retryDelayMs,
  verifyDelivery,
} from '../../gateway/mod.js'
import { output, subjectOf } from '../projector-fixtures.js'
import { bearer, setupGateway, SVC_KEY } from '../helpers/gateway.js'
import { createTestDb } from '../helpers/pg.js'

type Json = Record<string, unknown>
/** The documented delivery id of a detector event: the MD5 of `<subscription id>\n<output id>`, as a UUID. */
function derivedId(sub: string, outputId: string): string {
  const h = createHash('md5').update(`${sub}\n${outputId}`).digest('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
async function until(what: string, cond: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

interface Arrival {
  deliveryId: string
  event: string
  body: string
  headers: IncomingMessage['headers']
  mode: Mode
  at: number
  json: Json
}
type Mode = 'down' | 'slow' | 'up'

/** A webhook receiver: `down` is a closed port (connection refused), `slow` answers after `slowMs`, `up` answers 200 at once. */
class Receiver {
  mode: Mode = 'up'
  readonly arrivals: Arrival[] = []
  private server: Server | undefined
  port = 0
  constructor(private readonly slowMs: number) {}
  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`
  }
  async listen(): Promise<void> {
    const s = createServer((req, res) => {
      void this.handle(req, res)
    })
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject)
      s.listen(this.port, '127.0.0.1', () => {
        resolve()
      })
    })
    this.port = (s.address() as AddressInfo).port
    this.server = s
  }
  async close(): Promise<void> {
    const s = this.server
    this.server = undefined
    if (!s) return
    s.closeAllConnections()
    await new Promise<void>((resolve) => {
      s.close(() => {
        resolve()
      })
    })
  }
  async setMode(m: Mode): Promise<void> {
    if (m === 'down') await this.close()
    else if (!this.server) await this.listen()
    this.mode = m
  }
  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const body = Buffer.concat(chunks).toString()
    const mode = this.mode
    this.arrivals.push({
      deliveryId: String(req.headers['pitwall-delivery']),
      event: String(req.headers['pitwall-event']),
      body,
      headers: req.headers,
      mode,
      at: Date.now(),
      json: JSON.parse(body) as Json,
    })
    if (mode === 'slow') await sleep(this.slowMs)
    if (!res.destroyed) res.writeHead(mode === 'up' ? 200 : 503).end()
  }
}

const MIN = 60_000
const T1 = Date.now() - 3_600_000
let seq = 0
/** An alert output as a detector emits it (actors/types.ts AlertBody), with type/severity/profile/kind chosen. */
function alert(
  entity: string,
  opened: number,
  state: AlertState,
  o: { type?: string; severity?: 'info' | 'warning' | 'critical'; profile?: string; kind?: string; at?: number } = {},
): Output<'alert'> {
  const type = o.type ?? 'temp_high'
  const kind = o.kind ?? 'sensor'
  const body: AlertBody = {
    alertId: `${kind}:${entity}:${type}:${opened}`,
    type,
    severity: o.severity ?? 'warning',
    state,
    start: opened,
    value: 40,
    threshold: 30,
    explanation: `${type} on ${entity}`,
    details: { feature: 'temperature' },
    ...(state === 'close' ? { end: o.at ?? opened + MIN } : {}),
  }
  const s = ++seq
  return output('alert', entity, `${body.alertId}:${state}:${s}`, body, {
    seq: s,
    kind,
    profile: o.profile ?? 'environment',
    ts: o.at ?? opened,
  })
}

t.test('retry delays: exponential, capped, with equal jitter (gateway/README.md)', async (t) => {
  for (const [base, max] of [
    [1_000, 300_000],
    [100, 400],
  ] as const) {
    for (let n = 1; n <= 30; n++) {
      const exp = Math.min(max, base * 2 ** (n - 1))
      t.equal(
        retryDelayMs(n, base, max, () => 0),
        Math.round(exp / 2),
        `attempt ${n}: the least delay is half`,
      )
      t.equal(
        retryDelayMs(n, base, max, () => 0.999999),
        Math.round(exp / 2 + (0.999999 * exp) / 2),
        `attempt ${n}: the most is the full delay`,
      )
    }
  }
  const d = Array.from({ length: 1000 }, () => retryDelayMs(3, 1_000, 300_000))
  t.ok(d.every((x) => x >= 2_000 && x <= 4_000) && new Set(d).size > 100, 'attempt 3 of the defaults: 2-4 s, spread')
})

t.test('settings: defaults, environment, contradictions named', async (t) => {
  t.match(
    compileNotify(),
    {
      worker: true,
      timeoutMs: 10_000,
      pollMs: 1_000,
      concurrency: 16,
      backoffBaseMs: 1_000,
      backoffMaxMs: 300_000,
      maxAgeMs: 86_400_000,
      maxPending: 100_000,
      retentionMs: 604_800_000,
    },
    'the documented defaults',
  )
  const o = gatewayOptionsFromEnv({
    PITWALL_NOTIFY_WORKER: 'off',
    PITWALL_NOTIFY_TIMEOUT_MS: '2500',
    PITWALL_NOTIFY_MAX_AGE_MS: '3600000',
    PITWALL_NOTIFY_MAX_PENDING: '10',
  })
  t.match(compileGatewayConfig({ ...o, auth: { enabled: false } }).notify, {
    worker: false,
    timeoutMs: 2_500,
    maxAgeMs: 3_600_000,
    maxPending: 10,
    pollMs: 1_000,
  })
  t.throws(() => gatewayOptionsFromEnv({ PITWALL_NOTIFY_WORKER: 'yes' }), {
    code: 'PW_CONFIG_INVALID',
    message: /^PITWALL_NOTIFY_WORKER: /,
  })
  t.throws(() => gatewayOptionsFromEnv({ PITWALL_NOTIFY_POLL_MS: '1.5' }), {
    code: 'PW_CONFIG_INVALID',
    message: /^PITWALL_NOTIFY_POLL_MS: /,
  })
  t.throws(() => compileNotify({ backoffBaseMs: 5_000, backoffMaxMs: 1_000 }), {
    code: 'PW_CONFIG_INVALID',
    message: /^PITWALL_NOTIFY_BACKOFF_MAX_MS: /,
  })
  t.throws(() => compileNotify({ timeoutMs: 60_000, maxAgeMs: 30_000 }), {
    code: 'PW_CONFIG_INVALID',
    message: /^PITWALL_NOTIFY_MAX_AGE_MS: /,
  })
  t.throws(() => compileNotify({ concurrency: 0 }), {
    code: 'PW_CONFIG_INVALID',
    message: /^PITWALL_NOTIFY_CONCURRENCY: /,
  })
})

/**
 * The SSRF guard's reference: addresses written by hand from the documented refused ranges (gateway/README.md,
 * Notifications: loopback, private, shared, link-local/metadata, multicast, reserved; IPv6 unique-local,
 * link-local, and IPv4 embedded in IPv6 judged as the IPv4 address).
 */
const REFUSED = [
  '127.0.0.1',
  '127.255.0.9',
  '10.0.0.1',
  '10.255.255.255',
  '172.16.0.1',
  '172.31.255.254',
  '192.168.1.10',
  '169.254.169.254',
  '169.254.0.1',
  '100.64.0.1',
  '100.100.100.200',
  '168.63.129.16',
  '0.0.0.0',
  '224.0.0.251',
  '239.1.2.3',
  '240.0.0.1',
  '255.255.255.255',
  '192.0.0.170',
  '198.18.0.1',
  '::1',
  '::',
  'fe80::1',
  'fd00:ec2::254',
  'fc00::5',
  'ff02::1',
  '::ffff:127.0.0.1',
  '::ffff:7f00:1',
  '::ffff:a9fe:a9fe',
  '64:ff9b::a00:1',
  '2002:c0a8:101::1',
]
const PERMITTED = [
  '8.8.8.8',
  '1.1.1.1',
  '172.15.255.255',
  '172.32.0.1',
  '192.169.0.1',
  '100.63.255.255',
  '100.128.0.1',
  '169.253.255.255',
  '223.255.255.255',
  '2001:4860:4860::8888',
  '2606:4700::1111',
  '::ffff:8.8.8.8',
  '64:ff9b::808:808',
  '2002:808:808::1',
  'fe00::1',
]

t.test('SSRF guard: refused and permitted addresses, the allow list, names', async (t) => {
  const p = new AddressPolicy()
  for (const a of REFUSED) t.type(p.refusal(a), 'string', `${a} refused (${p.refusal(a) ?? ''})`)
  for (const a of PERMITTED) t.equal(p.refusal(a), undefined, `${a} permitted`)
  t.match(p.refusal('169.254.169.254'), /metadata/, 'the metadata address is named as such')
  const allow = new AddressPolicy(['127.0.0.1/32', '10.20.0.0/16', 'fd00::/8'])
  for (const a of ['127.0.0.1', '10.20.3.4', 'fd12::1', '::ffff:127.0.0.1'])
    t.equal(allow.refusal(a), undefined, `${a} allowed by the list`)
  for (const a of ['127.0.0.2', '10.21.0.1', 'fc00::1', '169.254.169.254'])
    t.type(allow.refusal(a), 'string', `${a} still refused`)
  await t.rejects(p.checkHost('localhost'), { name: 'AddressRefused', address: '127.0.0.1' }, 'localhost is loopback')
  await t.rejects(p.checkHost('api.localhost.'), { name: 'AddressRefused' }, '*.localhost too')
  await t.rejects(p.checkHost('[::1]'), { name: 'AddressRefused' }, 'a bracketed IPv6 literal')
  await t.rejects(
    p.checkHost('inside.example', async () => ['8.8.8.8', '10.1.1.1']),
    { name: 'AddressRefused', address: '10.1.1.1' },
    'a name resolving to any refused address',
  )
  await t.resolves(
    p.checkHost('hooks.example', async () => ['8.8.8.8']),
    'a name resolving to public addresses',
  )
  await t.resolves(
    p.checkHost('nowhere.example', async () => {
      throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' })
    }),
    'a name that does not resolve: checked at delivery',
  )
  t.throws(() => compileNotify({ allowPrivate: '10.0.0.0/8, nope' }), {
    code: 'PW_CONFIG_INVALID',
    message: /^PITWALL_NOTIFY_ALLOW_PRIVATE: "nope"/,
  })
  t.throws(() => compileNotify({ allowPrivate: '10.0.0.0/33' }), {
    code: 'PW_CONFIG_INVALID',
    message: /^PITWALL_NOTIFY_ALLOW_PRIVATE: /,
  })
  t.same(
    compileGatewayConfig({
      ...gatewayOptionsFromEnv({ PITWALL_NOTIFY_ALLOW_PRIVATE: '10.0.0.0/8,fd00::/8 , 192.168.1.5' }),
      auth: { enabled: false },
    }).notify.allowPrivate,
    ['10.0.0.0/8', 'fd00::/8', '192.168.1.5'],
    'from the environment, comma-separated',
  )
  t.same(compileNotify().allowPrivate, [], 'none allowed by default')
})

t.test('notifications', async (t) => {
  // The receivers are on 127.0.0.1, which the SSRF guard refuses unless allowed (as an internal receiver's range would be).
  const g = await setupGateway(t, { gw: { notify: { worker: false, allowPrivate: '127.0.0.1/32,127.0.0.3/32' } } })
  const { app, nc } = g
  if (!g.db) throw new Error('no database')
  const pool = new pg.Pool({ connectionString: g.db.url, max: 6 })
  t.teardown(() => pool.end())
  const admin = bearer('admin')
  const op = bearer('operator')
  const call = async (
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    url: string,
    headers: Record<string, string>,
    payload?: unknown,
  ): Promise<{ status: number; body: Json }> => {
    const res = await app.inject({
      method,
      url,
      headers,
      ...(payload === undefined ? {} : { payload: payload as object }),
    })
    return { status: res.statusCode, body: res.body === '' ? {} : res.json<Json>() }
  }
  for (const [url, body] of [
    ['/v1/customers', { id: 'acme', name: 'Acme' }],
    ['/v1/customers', { id: 'beta', name: 'Beta' }],
    ['/v1/sensors', { id: 's1', type: 'temp', profile: 'environment', site: 'a', customerId: 'acme' }],
    ['/v1/sensors', { id: 's2', type: 'temp', profile: 'environment', site: 'b', customerId: 'beta' }],
    ['/v1/sensors', { id: 'p1', type: 'ph', profile: 'process', site: 'b', customerId: 'acme' }],
    [
      '/v1/vehicles',
      { vin: '1HGCM82633A004352', brand: 'b', model: 'm', year: 2010, profile: 'road', customerId: 'beta' },
    ],
  ] as const)
    t.equal((await call('POST', url, admin, body)).status, 201, `${url} ${JSON.stringify(body).slice(0, 30)}`)

  const js = jetstream(nc)
  const projector = new Projector({ nc, pool, site: 'a', batchMs: 5 })
  await projector.start()
  t.teardown(() => projector.stop())
  let published = 0
  const publish = async (outs: Output[]): Promise<void> => {
    for (const o of outs) await js.publish(subjectOf(o), JSON.stringify(o), { msgID: o.id })
    published += outs.length
    await until('projector', async () => projector.stats().applied >= published)
  }
  const cfg = compileNotify({
    timeoutMs: 1_000,
    pollMs: 50,
    backoffBaseMs: 100,
    backoffMaxMs: 400,
    concurrency: 8,
    allowPrivate: ['127.0.0.1/32'],
  })
  const workers: NotifyWorker[] = []
  const startWorker = (id: string): NotifyWorker => {
    const w = new NotifyWorker({ pool, cfg, metrics: new GatewayMetrics({ service: 'test' }), log: app.log, id })
    w.start()
    workers.push(w)
    return w
  }
  const stopWorkers = async (): Promise<void> => {
    await Promise.all(workers.splice(0).map((w) => w.stop()))
  }
  t.teardown(stopWorkers)

  /**
   * What a receiver that dedupes on the delivery id (as documented) accepts: the first arrival of each id while
   * up, in arrival order. Each outbox delivery must be accepted, have exactly one delivered attempt in the log,
   * and a repeated arrival must be explained by a failed attempt logged for it (the worker timed out after the
   * receiver had the request: at-least-once, never a second send after a success).
   */
  const judge = async (t: Test, rx: Receiver, ids: string[]): Promise<Arrival[]> => {
    const up = rx.arrivals.filter((a) => a.mode === 'up')
    const accepted = up.filter((a, i) => up.findIndex((b) => b.deliveryId === a.deliveryId) === i)
    t.same(accepted.map((a) => a.deliveryId).sort(), ids, `every delivery id accepted (${ids.length})`)
    const log = (
      await pool.query<{ delivery_id: string; delivered: number; failed: number }>(`SELECT o.delivery_id,
        count(*) FILTER (WHERE a.outcome = 'delivered')::int AS delivered, count(*) FILTER (WHERE a.outcome = 'failed')::int AS failed
      FROM notify_outbox o JOIN notify_attempts a ON a.outbox_id = o.id GROUP BY o.delivery_id`)
    ).rows
    t.same(
      log.filter((r) => r.delivered !== 1).map((r) => r.delivery_id),
      [],
      'exactly one delivered attempt per delivery',
    )
    const failed = new Map(log.map((r) => [r.delivery_id, r.failed]))
    const repeats = up.length - accepted.length
    const unexplained = accepted.filter(
      (a) => up.filter((b) => b.deliveryId === a.deliveryId).length - 1 > (failed.get(a.deliveryId) ?? 0),
    )
    t.same(
      unexplained.map((a) => a.deliveryId),
      [],
      `repeated arrivals (${repeats}) each follow a failed attempt`,
    )
    return accepted
  }

  t.test('roles; the secret is shown on create and rotate only', async (t) => {
    const body = { name: 'ops', url: 'https://hooks.example.com/x?token=abc' }
    for (const [who, h] of [
      ['viewer', bearer('viewer')],
      ['a scoped operator', bearer('operator', { fleets: ['acme'] })],
    ] as const) {
      for (const [m, u, b] of [
        ['POST', '/v1/notifications/subscriptions', body],
        ['GET', '/v1/notifications/subscriptions', undefined],
        ['GET', '/v1/notifications/deliveries', undefined],
      ] as const) {
        t.match(await call(m, u, h, b), { status: 403, body: { code: 'GW_ERR_FORBIDDEN' } }, `${who}: ${m} ${u}`)
      }
    }
    t.match(await call('GET', '/v1/notifications/subscriptions', {}), {
      status: 401,
      body: { code: 'GW_ERR_UNAUTHENTICATED' },
    })
    const created = await call('POST', '/v1/notifications/subscriptions', op, {
      ...body,
      filter: { severities: ['critical'] },
    })
    t.equal(created.status, 201)
    const id = created.body.id as string
    const secret = created.body.secret as string
    t.match(secret, /^whsec_[A-Za-z0-9_-]{43}$/)
    t.match(created.body, {
      name: 'ops',
      url: body.url,
      enabled: true,
      createdBy: 'u-operator',
      filter: { severities: ['critical'], events: null, fleets: null },
    })
    const key = await call('POST', '/v1/notifications/subscriptions', { 'x-api-key': SVC_KEY }, body)
    t.match(key, { status: 201, body: { createdBy: 'key:ingest-svc' } }, 'an operator key may create')
    for (const r of [
      await call('GET', `/v1/notifications/subscriptions/${id}`, op),
      await call('GET', '/v1/notifications/subscriptions', op),
      await call('PATCH', `/v1/notifications/subscriptions/${id}`, op, { enabled: false }),
    ]) {
      t.equal(r.status, 200)
      t.notOk(JSON.stringify(r.body).includes(secret), 'no read returns the secret')
      t.notOk(JSON.stringify(r.body).includes('"secret"'), 'nor a secret property')
    }
    t.match(
      await call('PATCH', `/v1/notifications/subscriptions/${id}`, op, { filter: { types: ['x'] } }),
      { status: 200, body: { enabled: false, filter: { severities: null, types: ['x'] } } },
      'a filter in PATCH replaces the whole filter',
    )
    t.match(
      await call('POST', `/v1/notifications/subscriptions/${id}/secret`, op),
      { status: 403, body: { code: 'GW_ERR_FORBIDDEN' } },
      'operators may not rotate',
    )
    t.match(
      await call('DELETE', `/v1/notifications/subscriptions/${id}`, op),
      { status: 403, body: { code: 'GW_ERR_FORBIDDEN' } },
      'operators may not delete',
    )
    const rotated = await call('POST', `/v1/notifications/subscriptions/${id}/secret`, admin)
    t.equal(rotated.status, 200)
    t.not(rotated.body.secret, secret)
    t.equal(
      (await pool.query('SELECT secret FROM notify_subscriptions WHERE id = $1', [id])).rows[0].secret,
      rotated.body.secret,
      'the rotated secret is the one stored',
    )
    // bad input: coded 400s
    for (const [b, code, item] of [
      [{ name: 'x', url: 'ftp://h/x' }, 'GW_ERR_WEBHOOK_URL_INVALID', 'body.url'],
      [{ name: 'x', url: 'http://u:p@h/x' }, 'GW_ERR_WEBHOOK_URL_INVALID', 'body.url'],
      [{ name: 'x', url: 'nope' }, 'GW_ERR_WEBHOOK_URL_INVALID', 'body.url'],
      [{ name: 'x', url: 'http://h/', filter: { severities: ['bad'] } }, 'GW_ERR_BODY_INVALID', undefined],
      [{ name: 'x', url: 'http://h/', filter: { types: [] } }, 'GW_ERR_BODY_INVALID', undefined],
      [{ name: 'x', url: 'http://h/', secret: 'mine' }, 'GW_ERR_BODY_INVALID', undefined],
    ] as const) {
      const r = await call('POST', '/v1/notifications/subscriptions', op, b)
      t.match(r, { status: 400, body: { code, ...(item ? { item } : {}) } }, JSON.stringify(b))
    }
    const chosen = await call('POST', '/v1/notifications/subscriptions', op, { ...body, id: 'ops-pager' })
    t.match(chosen, { status: 201, body: { id: 'ops-pager' } }, 'a client-chosen id')
    t.match(await call('POST', '/v1/notifications/subscriptions', op, { ...body, id: 'ops-pager' }), {
      status: 409,
      body: { code: 'GW_ERR_CONFLICT', item: 'body.id' },
    })
    t.equal((await call('DELETE', '/v1/notifications/subscriptions/ops-pager', admin)).status, 204)
    t.match(await call('GET', '/v1/notifications/subscriptions/sub_nope', op), {
      status: 404,
      body: { code: 'GW_ERR_SUBSCRIPTION_UNKNOWN' },
    })
    t.match(await call('GET', '/v1/notifications/deliveries/00000000-0000-4000-8000-000000000000', op), {
      status: 404,
      body: { code: 'GW_ERR_DELIVERY_UNKNOWN' },
    })
    t.match(await call('GET', '/v1/notifications/deliveries?cursor=zzz', op), {
      status: 400,
      body: { code: 'GW_ERR_CURSOR_INVALID' },
    })
    t.equal((await call('DELETE', `/v1/notifications/subscriptions/${id}`, admin)).status, 204)
    t.equal((await call('DELETE', `/v1/notifications/subscriptions/${key.body.id as string}`, admin)).status, 204)
    t.match(await call('DELETE', `/v1/notifications/subscriptions/${id}`, admin), {
      status: 404,
      body: { code: 'GW_ERR_SUBSCRIPTION_UNKNOWN' },
    })
  })

  t.test('filters select exactly what the documented rules select', async (t) => {
    const filters: Record<string, Json> = {
      all: {},
      critical: { severities: ['critical'] },
      acmeProcess: { fleets: ['acme'], profiles: ['process'] },
      siteB: { sites: ['b'] },
      vehicles: { kinds: ['vehicle'] },
      s1Types: { entities: ['s1'], types: ['temp_high', 'humidity_low'] },
      peopleOnly: { events: ['acknowledge', 'assign', 'unassign', 'comment', 'clear'] },
      opensWarn: { events: ['open'], severities: ['warning', 'info'] },
      beta: { fleets: ['beta'] },
    }
    const ids: Record<string, string> = {}
    for (const [name, filter] of Object.entries(filters)) {
      const r = await call('POST', '/v1/notifications/subscriptions', admin, {
        name,
        url: 'http://127.0.0.1:9/unused',
        filter,
      })
      t.equal(r.status, 201)
      ids[name] = r.body.id as string
    }
    const registry: Record<string, { fleet: string | null; site: string | null }> = {
      s1: { fleet: 'acme', site: 'a' },
      s2: { fleet: 'beta', site: 'b' },
      p1: { fleet: 'acme', site: 'b' },
      '1HGCM82633A004352': { fleet: 'beta', site: null },
    }
    const T = T1 + 100 * MIN
    const outs = [
      alert('s1', T, 'open'),
      alert('s1', T, 'update'),
      alert('s1', T + 1, 'open', { type: 'humidity_low', severity: 'info' }),
      alert('s2', T, 'open', { severity: 'critical' }),
      alert('p1', T, 'open', { profile: 'process', type: 'ph_drift', severity: 'critical' }),
      alert('p1', T, 'close', { profile: 'process', type: 'ph_drift', severity: 'critical', at: T + MIN }),
      alert('1HGCM82633A004352', T, 'open', { kind: 'vehicle', profile: 'road', type: 'low_fuel' }),
      alert('ghost', T, 'open', { severity: 'critical' }), // not registered: no fleet, no site
    ]
    await publish(outs)
    const acked = `sensor:s2:temp_high:${T}`
    t.equal((await call('POST', `/v1/alerts/${encodeURIComponent(acked)}/ack`, op, { comment: 'on it' })).status, 200)
    t.equal((await call('POST', `/v1/alerts/${encodeURIComponent(acked)}/assign`, op, { assignee: 'bob' })).status, 200)
    // the reference: every event as (alert, event, entity facts), matched with the documented rules
    interface Ev {
      alertId: string
      event: string
      kind: string
      entity: string
      profile: string
      type: string
      severity: string
    }
    const events: Ev[] = outs.map((o) => ({
      alertId: o.body.alertId,
      event: o.body.state,
      kind: o.kind,
      entity: o.entity,
      profile: o.profile,
      type: o.body.type,
      severity: o.body.severity,
    }))
    events.push({ ...events[3]!, event: 'acknowledge' }, { ...events[3]!, event: 'assign' })
    const selects = (f: Json, e: Ev): boolean => {
      const reg = registry[e.entity]
      const facts: Record<string, string | null> = {
        events: e.event,
        profiles: e.profile,
        types: e.type,
        severities: e.severity,
        kinds: e.kind,
        entities: e.entity,
        fleets: reg?.fleet ?? null,
        sites: e.kind === 'sensor' ? (reg?.site ?? null) : null,
      }
      return Object.entries(f).every(([k, list]) => facts[k] !== null && (list as string[]).includes(facts[k]!))
    }
    for (const [name, f] of Object.entries(filters)) {
      const want = events
        .filter((e) => selects(f, e))
        .map((e) => `${e.alertId}/${e.event}`)
        .sort()
      const r = await call('GET', `/v1/notifications/deliveries?subscription=${ids[name]!}&limit=100`, op)
      t.equal(r.status, 200)
      const got = (r.body.items as Json[]).map((d) => `${String(d.alertId)}/${String(d.event)}`).sort()
      t.same(got, want, `${name}: ${want.length} events`)
    }
    // delivery ids: derived for the detector's events, random (and distinct) for people's actions
    const all = (await call('GET', `/v1/notifications/deliveries?subscription=${ids.all!}&limit=100`, op)).body
      .items as Json[]
    for (const o of outs) {
      const d = all.find((x) => x.alertId === o.body.alertId && x.event === o.body.state)
      t.equal(d?.deliveryId, derivedId(ids.all!, o.id), `derived delivery id of ${o.id}`)
    }
    t.equal(new Set(all.map((d) => d.deliveryId)).size, all.length, 'delivery ids are distinct')
    // pagination: newest first, pages never repeat or skip
    const seen: string[] = []
    let cursor: string | null = null
    do {
      const page: { status: number; body: Json } = await call(
        'GET',
        `/v1/notifications/deliveries?subscription=${ids.all!}&limit=3${cursor ? `&cursor=${cursor}` : ''}`,
        op,
      )
      seen.push(...(page.body.items as Json[]).map((d) => d.deliveryId as string))
      cursor = page.body.nextCursor as string | null
    } while (cursor)
    t.equal(new Set(seen).size, events.length, 'every delivery once across pages')
    for (const id of Object.values(ids))
      t.equal((await call('DELETE', `/v1/notifications/subscriptions/${id}`, admin)).status, 204)
    t.equal(
      (await pool.query('SELECT count(*)::int AS n FROM notify_outbox')).rows[0].n,
      0,
      'deleting a subscription deletes its deliveries',
    )
  })

  t.test('down, slow, up: once per delivery id, in order per alert, signed, logged; two workers', async (t) => {
    const rx = new Receiver(cfg.timeoutMs + 400)
    await rx.listen()
    t.teardown(() => rx.close())
    const sub = await call('POST', '/v1/notifications/subscriptions', admin, { name: 'rx', url: rx.url })
    t.equal(sub.status, 201)
    const secret = sub.body.secret as string
    const subId = sub.body.id as string
    const other = await call('POST', '/v1/notifications/subscriptions', admin, {
      name: 'rx-critical',
      url: rx.url,
      filter: { severities: ['critical'] },
    })
    await rx.setMode('down')
    startWorker('w1')
    startWorker('w2')
    // three alerts while the receiver is down: open, update, people act, close
    const T = T1 + 200 * MIN
    const plan: [string, 'warning' | 'critical'][] = [
      ['s1', 'warning'],
      ['s2', 'critical'],
      ['p1', 'warning'],
    ]
    await publish(plan.map(([e, severity]) => alert(e, T, 'open', { severity })))
    await publish(plan.map(([e, severity]) => alert(e, T, 'update', { severity })))
    for (const [e] of plan) {
      const id = encodeURIComponent(`sensor:${e}:temp_high:${T}`)
      t.equal((await call('POST', `/v1/alerts/${id}/ack`, op)).status, 200)
      t.equal((await call('POST', `/v1/alerts/${id}/comment`, op, { comment: `note ${e}` })).status, 200)
    }
    await publish(plan.map(([e, severity]) => alert(e, T, 'close', { severity, at: T + MIN })))
    await sleep(1_500)
    t.equal(rx.arrivals.length, 0, 'nothing arrived while down')
    await rx.setMode('slow')
    await until(
      'slow arrivals for every alert',
      async () =>
        new Set(rx.arrivals.filter((a) => a.mode === 'slow').map((a) => (a.json.alert as Json).alertId)).size >= 3,
    )
    await sleep(800)
    await rx.setMode('up')
    const expected = Number((await pool.query('SELECT count(*)::int AS n FROM notify_outbox')).rows[0].n)
    t.equal(
      expected,
      3 * 5 + 1 * 5,
      'one delivery per event and subscription (5 events x 3 alerts; the critical one twice)',
    )
    await until(
      'all delivered',
      async () =>
        (await pool.query("SELECT count(*)::int AS n FROM notify_outbox WHERE status <> 'delivered'")).rows[0].n === 0,
    )
    await sleep(300) // nothing more arrives after that
    await stopWorkers()

    const ids = (await pool.query<{ delivery_id: string }>('SELECT delivery_id FROM notify_outbox')).rows
      .map((r) => r.delivery_id)
      .sort()
    const up = await judge(t, rx, ids)
    for (const a of rx.arrivals) {
      const v = verifyDelivery(
        a.json.subscriptionId === subId ? secret : (other.body.secret as string),
        { timestamp: a.headers['pitwall-timestamp'] as string, signature: a.headers['pitwall-signature'] as string },
        a.body,
        Math.floor(a.at / 1000),
      )
      if (v !== null) t.fail(`signature of ${a.deliveryId}: ${v}`)
      t.equal(a.json.deliveryId, a.deliveryId, 'the body names its delivery id')
    }
    t.pass(`${rx.arrivals.length} signatures checked`)
    // and by the documented recipe itself, not the module under test: v1= hex HMAC-SHA256(secret, "<timestamp>.<body>")
    for (const a of rx.arrivals) {
      const key = a.json.subscriptionId === subId ? secret : (other.body.secret as string)
      const ts = String(a.headers['pitwall-timestamp'])
      if (a.headers['pitwall-signature'] !== `v1=${createHmac('sha256', key).update(`${ts}.${a.body}`).digest('hex')}`)
        t.fail(`documented recipe fails for ${a.deliveryId}`)
      if (Math.abs(Number(ts) - a.at / 1000) > 5) t.fail(`timestamp of ${a.deliveryId} is not the attempt's time`)
    }
    // a tampered body or an old timestamp fails verification
    const a0 = up[0]!
    const hdr = {
      timestamp: a0.headers['pitwall-timestamp'] as string,
      signature: a0.headers['pitwall-signature'] as string,
    }
    t.equal(verifyDelivery(secret, hdr, a0.body.replace('"', ' "'), Math.floor(a0.at / 1000)), 'signature_mismatch')
    t.equal(verifyDelivery(secret, hdr, a0.body, Math.floor(a0.at / 1000) + 301), 'timestamp_too_old')
    // order per alert and subscription: the documented event order
    const want = ['open', 'update', 'acknowledge', 'comment', 'close']
    for (const s of [subId, other.body.id as string]) {
      for (const [e, severity] of plan) {
        if (s !== subId && severity !== 'critical') continue
        const got = up.filter((a) => a.json.subscriptionId === s && (a.json.alert as Json).entity === e)
        t.same(
          got.map((a) => a.event),
          want,
          `${e} for ${s === subId ? 'rx' : 'rx-critical'}: in order`,
        )
        const seqs = got.map((a) => a.json.sequence as number)
        t.same(
          seqs,
          [...seqs].sort((x, y) => x - y),
          'sequence numbers increase',
        )
      }
    }
    const ack = up.find((a) => a.event === 'acknowledge' && (a.json.alert as Json).entity === 's1')!
    t.match(ack.json, {
      by: 'u-operator',
      byType: 'user',
      alert: { alertId: `sensor:s1:temp_high:${T}`, acknowledged: true, active: true, severity: 'warning' },
    })
    const close = up.find((a) => a.event === 'close' && (a.json.alert as Json).entity === 's1')!
    t.match(close.json, {
      by: 'system',
      alert: { active: false, acknowledged: true, endedAt: new Date(T + MIN).toISOString() },
    })
    // the delivery log of each alert's first delivery: refused while down, timed out while slow, then 200
    for (const [e] of plan) {
      const first = up.find(
        (a) => a.event === 'open' && (a.json.alert as Json).entity === e && a.json.subscriptionId === subId,
      )!
      const d = await call('GET', `/v1/notifications/deliveries/${first.deliveryId}`, op)
      t.equal(d.status, 200)
      const log = d.body.attemptLog as Json[]
      t.match(d.body, {
        status: 'delivered',
        lastStatusCode: 200,
        attempts: log.length,
        payload: { deliveryId: first.deliveryId },
      })
      t.ok(
        log.some((l) => l.outcome === 'failed' && /ECONNREFUSED/.test(String(l.error))),
        `${e}: a refused attempt`,
      )
      t.ok(
        log.some((l) => l.outcome === 'failed' && /no response within 1000 ms/.test(String(l.error))),
        `${e}: a timed-out attempt`,
      )
      t.match(log[log.length - 1], { outcome: 'delivered', statusCode: 200, error: null })
      t.equal(log.filter((l) => l.outcome === 'delivered').length, 1, `${e}: delivered once`)
      t.same(
        log.map((l) => l.attempt),
        log.map((_, i) => i + 1),
        'attempts numbered 1..n',
      )
    }
    const byWorker = (
      await pool.query<{ worker: string; n: number }>(
        "SELECT worker, count(*)::int AS n FROM notify_attempts WHERE outcome = 'delivered' GROUP BY worker",
      )
    ).rows
    t.equal(
      byWorker.reduce((s, r) => s + r.n, 0),
      ids.length,
      'one delivered attempt per delivery across both workers',
    )
    t.comment(
      `delivered by worker: ${JSON.stringify(byWorker)}; attempts in all: ${String((await pool.query('SELECT count(*)::int AS n FROM notify_attempts')).rows[0].n)}`,
    )
    for (const id of [subId, other.body.id as string])
      await call('DELETE', `/v1/notifications/subscriptions/${id}`, admin)
  })

  t.test('SSRF: refused at create and update; at delivery after resolving; redirects not followed', async (t) => {
    for (const url of [
      'http://10.0.0.1/x',
      'http://127.0.0.2:9/x',
      'http://169.254.169.254/latest/meta-data/',
      'http://[::1]:9/',
      'http://[::ffff:a9fe:a9fe]/',
      'https://[fd00:ec2::254]/',
    ]) {
      t.match(
        await call('POST', '/v1/notifications/subscriptions', op, { name: 'x', url }),
        { status: 400, body: { code: 'GW_ERR_WEBHOOK_URL_FORBIDDEN', item: 'body.url' } },
        `create ${url}`,
      )
    }
    const rx = new Receiver(0)
    await rx.listen()
    t.teardown(() => rx.close())
    // A second receiver, on another loopback address, that redirects every request to the first.
    const redirect = createServer((req, res) => {
      req.resume()
      res.writeHead(302, { location: rx.url }).end()
    })
    await new Promise<void>((resolve) => {
      redirect.listen(0, '127.0.0.3', resolve)
    })
    t.teardown(
      () =>
        new Promise<void>((resolve) => {
          redirect.closeAllConnections()
          redirect.close(() => {
            resolve()
          })
        }),
    )
    const subs: Record<string, string> = {}
    for (const [name, url] of [
      ['literal', rx.url],
      ['named', `http://localhost:${rx.port}/hook`],
      ['redirect', `http://127.0.0.3:${(redirect.address() as AddressInfo).port}/r`],
    ] as const) {
      const r = await call('POST', '/v1/notifications/subscriptions', admin, {
        name,
        url,
        filter: { entities: ['s2'] },
      })
      t.equal(r.status, 201, `${name}: allowed by this gateway's PITWALL_NOTIFY_ALLOW_PRIVATE`)
      subs[name] = r.body.id as string
    }
    t.match(
      await call('PATCH', `/v1/notifications/subscriptions/${subs.literal!}`, op, { url: 'http://192.168.0.1/x' }),
      { status: 400, body: { code: 'GW_ERR_WEBHOOK_URL_FORBIDDEN' } },
      'update refused',
    )
    // This worker allows only the redirecting receiver: the stored URLs to 127.0.0.1 (allowed when written) are refused when sent.
    const strict = new NotifyWorker({
      pool,
      cfg,
      metrics: new GatewayMetrics({ service: 'test' }),
      log: app.log,
      id: 'strict',
      addresses: new AddressPolicy(['127.0.0.3/32']),
    })
    strict.start()
    t.teardown(() => strict.stop())
    await publish([alert('s2', T1 + 400 * MIN, 'open', { severity: 'critical' })])
    const attempts = async (sub: string): Promise<Json[]> =>
      (
        await pool.query<Json>(
          `SELECT a.outcome, a.error, a.status_code FROM notify_attempts a
      JOIN notify_outbox o ON o.id = a.outbox_id WHERE o.subscription_id = $1 ORDER BY a.attempt`,
          [sub],
        )
      ).rows
    await until('an attempt per subscription', async () =>
      (await Promise.all(Object.values(subs).map(attempts))).every((a) => a.length > 0),
    )
    await strict.stop()
    t.match(
      (await attempts(subs.literal!))[0],
      { outcome: 'failed', error: /address 127\.0\.0\.1 is loopback/ },
      'an IP literal: refused before connecting',
    )
    t.match(
      (await attempts(subs.named!))[0],
      { outcome: 'failed', error: /address (127\.0\.0\.1|::1) is loopback/ },
      'a name: refused on the address it resolved to',
    )
    t.match(
      (await attempts(subs.redirect!))[0],
      { outcome: 'failed', status_code: 302, error: 'HTTP 302 (redirects are not followed)' },
      'a redirect: a failed attempt',
    )
    t.equal(rx.arrivals.length, 0, 'nothing reached the receiver, directly or by the redirect')
    for (const id of Object.values(subs))
      t.equal((await call('DELETE', `/v1/notifications/subscriptions/${id}`, admin)).status, 204)
  })

  t.test('two workers, many alerts at once: each delivery once', async (t) => {
    const rx = new Receiver(0)
    await rx.listen()
    t.teardown(() => rx.close())
    const sub = await call('POST', '/v1/notifications/subscriptions', admin, { name: 'bulk', url: rx.url })
    const T = T1 + 300 * MIN
    const outs: Output[] = []
    for (let i = 0; i < 60; i++)
      outs.push(alert('s1', T + i * 1000, 'open'), alert('s1', T + i * 1000, 'close', { at: T + i * 1000 + 500 }))
    await publish(outs)
    startWorker('wa')
    startWorker('wb')
    await until(
      'all delivered',
      async () =>
        (await pool.query("SELECT count(*)::int AS n FROM notify_outbox WHERE status <> 'delivered'")).rows[0].n === 0,
    )
    await sleep(300)
    await stopWorkers()
    const ids = (await pool.query<{ delivery_id: string }>('SELECT delivery_id FROM notify_outbox')).rows
      .map((r) => r.delivery_id)
      .sort()
    t.equal(ids.length, 120)
    const accepted = await judge(t, rx, ids)
    const per = (
      await pool.query<{ worker: string; n: number }>(
        'SELECT worker, count(*)::int AS n FROM notify_attempts GROUP BY worker ORDER BY worker',
      )
    ).rows
    t.ok(per.length === 2 && per.every((r) => r.n > 0), `both workers delivered: ${JSON.stringify(per)}`)
    for (let i = 0; i < 60; i++) {
      const id = `sensor:s1:temp_high:${T + i * 1000}`
      t.same(
        accepted.filter((a) => (a.json.alert as Json).alertId === id).map((a) => a.event),
        ['open', 'close'],
        id,
      )
    }
    await call('DELETE', `/v1/notifications/subscriptions/${sub.body.id as string}`, admin)
  })

  t.test('two sites: a subscription with one id at both sites gives each detector event one delivery id', async (t) => {
    // Site b's database: its own gateway tables and projector, consuming the same outputs (each site's database
    // is a complete projection, docs/sites.md).
    const db2 = await createTestDb()
    t.teardown(() => db2.drop())
    const pool2 = new pg.Pool({ connectionString: db2.url, max: 3 })
    t.teardown(() => pool2.end())
    await migrateGateway(pool2)
    const projector2 = new Projector({ nc, pool: pool2, site: 'a', batchMs: 5 })
    await projector2.start()
    t.teardown(() => projector2.stop())
    await until('site b caught up', async () => projector2.stats().applied >= published)
    t.equal(
      (
        await call('POST', '/v1/notifications/subscriptions', admin, {
          id: 'pager',
          name: 'pager',
          url: 'http://127.0.0.1:9/x',
        })
      ).status,
      201,
    )
    await pool2.query(
      "INSERT INTO notify_subscriptions (id, name, url, secret, created_by) VALUES ('pager', 'pager', 'http://127.0.0.1:9/x', 'other', 'test')",
    )
    const T = T1 + 350 * MIN
    const outs = [
      alert('s1', T, 'open'),
      alert('s1', T, 'update'),
      alert('s2', T, 'open', { severity: 'critical' }),
      alert('s1', T, 'close', { at: T + MIN }),
    ]
    await publish(outs)
    await until('site b projected them', async () => projector2.stats().applied >= published)
    t.equal((await call('POST', `/v1/alerts/${encodeURIComponent(`sensor:s1:temp_high:${T}`)}/ack`, op)).status, 200)
    const q =
      "SELECT delivery_id, event FROM notify_outbox WHERE subscription_id = 'pager' ORDER BY alert_id, alert_seq"
    const a = (await pool.query<{ delivery_id: string; event: string }>(q)).rows
    const b = (await pool2.query<{ delivery_id: string; event: string }>(q)).rows
    t.same(
      b.map((r) => r.delivery_id).sort(),
      outs.map((o) => derivedId('pager', o.id)).sort(),
      'site b: the derived ids',
    )
    t.same(
      a
        .filter((r) => r.event !== 'acknowledge')
        .map((r) => r.delivery_id)
        .sort(),
      b.map((r) => r.delivery_id).sort(),
      'site a: the same ids for the same events',
    )
    t.equal(
      a.filter((r) => r.event === 'acknowledge').length,
      1,
      'the acknowledgement only at the site where it was made',
    )
    // a redelivered output (stored again by JetStream under another message id) is projected idempotently: no new delivery
    const again = outs[0]!
    await js.publish(subjectOf(again), JSON.stringify(again), { msgID: `${again.id}:again` })
    published++
    await until(
      'projected again',
      async () => projector.stats().applied >= published && projector2.stats().applied >= published,
    )
    t.equal((await pool.query(q)).rows.length, a.length, 'a redelivery notifies nothing (site a)')
    t.equal((await pool2.query(q)).rows.length, b.length, 'nor at site b')
    await call('DELETE', '/v1/notifications/subscriptions/pager', admin)
  })

  t.test('the backlog bound and the age bound', async (t) => {
    const sub = await call('POST', '/v1/notifications/subscriptions', admin, {
      name: 'nowhere',
      url: 'http://127.0.0.1:9/closed',
    })
    const T = T1 + 400 * MIN
    await publish(Array.from({ length: 12 }, (_, i) => alert('s2', T + i * 1000, 'open')))
    const metrics = new GatewayMetrics({ service: 'test' })
    const bounded = new NotifyWorker({
      pool,
      cfg: compileNotify({ ...cfg, maxPending: 5, worker: false }),
      metrics,
      log: app.log,
      id: 'wbound',
    })
    await bounded.sweep()
    const rows = (
      await pool.query<{ status: string; n: number }>(
        'SELECT status, count(*)::int AS n FROM notify_outbox GROUP BY status ORDER BY status',
      )
    ).rows
    t.same(
      rows,
      [
        { status: 'dropped', n: 7 },
        { status: 'pending', n: 5 },
      ],
      'the oldest beyond the bound are dropped',
    )
    const kept = (
      await pool.query<{ alert_id: string }>("SELECT alert_id FROM notify_outbox WHERE status = 'pending' ORDER BY id")
    ).rows.map((r) => r.alert_id)
    t.same(
      kept,
      Array.from({ length: 5 }, (_, i) => `sensor:s2:temp_high:${T + (7 + i) * 1000}`),
      'the newest 5 are kept',
    )
    await pool.query("UPDATE notify_outbox SET created_at = now() - interval '25 hours' WHERE status = 'pending'")
    await bounded.sweep()
    t.equal(
      (await pool.query("SELECT count(*)::int AS n FROM notify_outbox WHERE status = 'expired'")).rows[0].n,
      5,
      'past the max age: expired',
    )
    const text = await metrics.registry.metrics()
    t.match(text, /pitwall_notify_deliveries_total\{outcome="dropped",service="test"\} 7/)
    t.match(text, /pitwall_notify_deliveries_total\{outcome="expired",service="test"\} 5/)
    t.match(text, /pitwall_notify_pending\{service="test"\} 0/)
    const listed = await call(
      'GET',
      `/v1/notifications/deliveries?subscription=${sub.body.id as string}&status=dropped`,
      op,
    )
    t.equal((listed.body.items as Json[]).length, 7)
    t.match((listed.body.items as Json[])[0], {
      status: 'dropped',
      lastError: 'backlog over 5 pending deliveries',
      nextAttemptAt: null,
    })
    await call('DELETE', `/v1/notifications/subscriptions/${sub.body.id as string}`, admin)
  })
})
