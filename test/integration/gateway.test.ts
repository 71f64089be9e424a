import t from 'tap'
import { jetstreamManager } from '@nats-io/jetstream'
import { provision, PROFILES, Worker, buildProfiles, partitionOf } from '../../actors/mod.js'
import {
  buildGateway,
  compileGatewayConfig,
  gatewayOptionsFromEnv,
  GW_ERR,
  vinCheckDigit,
  vinProblem,
  type GatewayConfig,
} from '../../gateway/mod.js'
import { connectTo, startNats } from '../helpers/nats.js'

const quiet = (): void => undefined
const VIN = '1M8GDM9AXKP042788' // the textbook VIN: check digit X

/** Starts a nats-server (provisioned unless told not to) and a gateway; everything is torn down with `t`. */
async function setup(
  t: { teardown(fn: () => unknown): void },
  opts: { provision?: boolean; gw?: Parameters<typeof compileGatewayConfig>[0] } = {},
) {
  const srv = await startNats()
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const cfg: GatewayConfig = compileGatewayConfig({
    publishTimeoutMs: 1_000,
    auth: { enabled: false },
    ...opts.gw,
    runtime: {
      natsUrl: srv.url,
      partitions: 4,
      workerId: 'gw-test',
      heartbeatMs: 100,
      leaseTtlMs: 1000,
      checkpointIntervalMs: 200,
    },
  })
  const jsm = await jetstreamManager(nc)
  if (opts.provision !== false) await provision(nc, jsm, cfg.runtime)
  const app = buildGateway({ nc, cfg })
  t.teardown(() => app.close())
  const count = async (): Promise<number> => (await jsm.streams.info('TLM')).state.messages
  return { srv, nc, cfg, app, jsm, count }
}

const now = (): number => Date.now()
const r = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  kind: 'sensor',
  id: 's1',
  ts: now(),
  fields: { temperature: 21.5 },
  ...over,
})

t.test('VIN check digit', async (t) => {
  t.equal(vinCheckDigit(VIN), 'X')
  t.equal(vinProblem(VIN), undefined)
  t.match(vinProblem('1M8GDM9A1KP042788'), /check digit/)
  t.equal(vinProblem('WVWZZZ1JZ3W386752'), undefined, 'letter in position 9: no check digit applies')
  t.match(vinProblem('1M8GDM9AXKP04278'), /17/)
  t.match(vinProblem('1M8GDM9AXKP04278O'), /except I, O and Q/)
})

t.test('mixed batch: valid items in the stream, invalid listed with index and code', async (t) => {
  const { app, count, jsm } = await setup(t)
  const res = await app.inject({
    method: 'POST',
    url: '/v1/readings',
    payload: [
      r({ rid: 'a1' }),
      r({ id: 'bad id' }),
      r({
        kind: 'vehicle',
        id: 'car7',
        fields: { speed: 200, pit: false, tyre: 'soft' },
        loc: { lat: 45.6, lon: 9.28 },
      }),
      r({ fields: { temperature: 'NaN' } }),
      r({ ts: now() + 3_600_000 }),
      42,
    ],
  })
  t.equal(res.statusCode, 200)
  const body = res.json<{ accepted: number; duplicates: number; rejected: { index: number; code: string }[] }>()
  t.equal(body.accepted, 2)
  t.same(
    body.rejected.map((x) => [x.index, x.code]),
    [
      [1, 'GW_ERR_ID_INVALID'],
      [3, 'GW_ERR_FIELD_NOT_FINITE'],
      [4, 'GW_ERR_TS_IN_FUTURE'],
      [5, 'GW_ERR_ITEM_NOT_OBJECT'],
    ],
  )
  t.equal(await count(), 2)
  const m = await jsm.streams.getMessage('TLM', {
    last_by_subj: `tlm.a.${partitionOf('vehicle', 'car7', 4)}.vehicle.car7`,
  })
  t.same(m?.json(), {
    ts: m?.json<{ ts: number }>().ts,
    fields: { speed: 200, pit: false, tyre: 'soft' },
    loc: { lat: 45.6, lon: 9.28 },
  })
})

t.test('NDJSON, idempotent retries, device routes', async (t) => {
  const { app, count } = await setup(t)
  const nd = [
    JSON.stringify(r({ rid: 'n1' })),
    '',
    JSON.stringify(r({ rid: 'n2', id: 's2' })),
    '{"kind":"sensor","id":"s3","ts":',
  ].join('\n')
  let res = await app.inject({
    method: 'POST',
    url: '/v1/readings',
    headers: { 'content-type': 'application/x-ndjson' },
    payload: nd,
  })
  t.equal(res.statusCode, 200)
  t.same(res.json<{ accepted: number }>().accepted, 2)
  t.same(res.json<{ rejected: unknown[] }>().rejected, [
    {
      index: 2,
      code: 'GW_ERR_ITEM_MALFORMED',
      message: res.json<{ rejected: { message: string }[] }>().rejected[0]?.message,
    },
  ])
  t.equal(await count(), 2)
  res = await app.inject({
    method: 'POST',
    url: '/v1/readings',
    headers: { 'content-type': 'application/x-ndjson' },
    payload: nd,
  })
  t.equal(res.json<{ duplicates: number }>().duplicates, 2, 'retry recognised')
  t.equal(await count(), 2, 'retry with rid: stream unchanged')
  // Idempotency-Key without rids
  const batch = [r(), r({ id: 's9' })]
  for (let i = 0; i < 2; i++) {
    res = await app.inject({
      method: 'POST',
      url: '/v1/readings',
      headers: { 'idempotency-key': 'batch-42' },
      payload: batch,
    })
    t.equal(res.statusCode, 200)
  }
  t.equal(await count(), 4, 'retry with Idempotency-Key: stored once')
  res = await app.inject({
    method: 'POST',
    url: '/v1/sensors/s5/readings',
    payload: [{ ts: now(), fields: { co2: 400 } }],
  })
  t.equal(res.statusCode, 200)
  res = await app.inject({
    method: 'POST',
    url: `/v1/vehicles/${VIN}/telemetry`,
    payload: [{ ts: now(), fields: { speed: 88 }, profile: 'race' }],
  })
  t.equal(res.statusCode, 200)
  t.equal(await count(), 6)
  res = await app.inject({
    method: 'POST',
    url: '/v1/vehicles/1M8GDM9A1KP042788/telemetry',
    payload: [{ ts: now(), fields: { speed: 88 } }],
  })
  t.equal(res.statusCode, 400)
  t.equal(res.json<{ code: string }>().code, 'GW_ERR_VIN_INVALID')
  res = await app.inject({
    method: 'POST',
    url: '/v1/sensors/s5/readings',
    payload: [{ kind: 'sensor', id: 's5', ts: now(), fields: { co2: 400 } }],
  })
  t.equal(res.json<{ code: string }>().code, 'GW_ERR_BATCH_REJECTED', 'device routes take kind/id from the path only')
  t.equal(await count(), 6)
})

t.test('limits: NaN/Infinity, far future, oversized body, too many items', async (t) => {
  const { app, count } = await setup(t, { gw: { bodyLimitBytes: 4096, maxItemsPerBatch: 5 } })
  let res = await app.inject({
    method: 'POST',
    url: '/v1/readings',
    headers: { 'content-type': 'application/json' },
    payload: `[{"kind":"sensor","id":"s1","ts":${now()},"fields":{"t":NaN}}]`,
  })
  t.equal(res.statusCode, 400)
  t.equal(res.json<{ code: string }>().code, 'GW_ERR_BODY_MALFORMED')
  res = await app.inject({
    method: 'POST',
    url: '/v1/readings',
    headers: { 'content-type': 'application/json' },
    payload: `[{"kind":"sensor","id":"s1","ts":${now()},"fields":{"t":1e400}}]`,
  })
  t.equal(res.json<{ rejected: { code: string }[] }>().rejected[0]?.code, 'GW_ERR_FIELD_NOT_FINITE')
  for (const s of ['Infinity', '-inf', 'NaN']) {
    res = await app.inject({ method: 'POST', url: '/v1/readings', payload: [r({ fields: { t: s } })] })
    t.equal(res.statusCode, 400)
    t.equal(res.json<{ rejected: { code: string }[] }>().rejected[0]?.code, 'GW_ERR_FIELD_NOT_FINITE', s)
  }
  res = await app.inject({ method: 'POST', url: '/v1/readings', payload: [r({ ts: 32_503_680_000_000 })] })
  t.equal(res.json<{ rejected: { code: string }[] }>().rejected[0]?.code, 'GW_ERR_TS_IN_FUTURE')
  res = await app.inject({ method: 'POST', url: '/v1/readings', payload: [r({ fields: { s: 'x'.repeat(5000) } })] })
  t.equal(res.statusCode, 413)
  t.equal(res.json<{ code: string }>().code, 'GW_ERR_BODY_TOO_LARGE')
  res = await app.inject({
    method: 'POST',
    url: '/v1/readings',
    headers: { 'content-type': 'application/x-ndjson' },
    payload: 'x'.repeat(5000),
  })
  t.equal(res.statusCode, 413, 'NDJSON has the same body limit')
  res = await app.inject({ method: 'POST', url: '/v1/readings', payload: Array.from({ length: 6 }, () => r()) })
  t.equal(res.statusCode, 413)
  t.equal(res.json<{ code: string }>().code, 'GW_ERR_BATCH_TOO_LARGE')
  t.equal(await count(), 0)
})

t.test('healthz, readyz, 503 with Retry-After when JetStream has no stream', async (t) => {
  const { app, nc } = await setup(t, { provision: false })
  let res = await app.inject({ method: 'GET', url: '/healthz' })
  t.equal(res.statusCode, 200)
  res = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(res.statusCode, 503)
  t.equal(res.json<{ code: string }>().code, 'GW_ERR_NOT_READY')
  const started = Date.now()
  res = await app.inject({ method: 'POST', url: '/v1/readings', payload: [r()] })
  t.equal(res.statusCode, 503)
  t.equal(res.json<{ code: string }>().code, 'GW_ERR_UNAVAILABLE')
  t.equal(res.headers['retry-after'], '1')
  t.ok(Date.now() - started < 3_000, 'answers within the publish timeout')
  const jsm = await jetstreamManager(nc)
  await provision(
    nc,
    jsm,
    compileGatewayConfig({ auth: { enabled: false }, runtime: { natsUrl: 'nats://127.0.0.1:1', partitions: 4 } })
      .runtime,
  )
  res = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(res.statusCode, 200)
})

t.test('state route: 404 for unknown, 200 after a worker processed the entity', async (t) => {
  const { app, cfg } = await setup(t)
  const w = new Worker({ cfg: cfg.runtime, profiles: PROFILES, log: quiet })
  await w.start()
  t.teardown(() => w.stop())
  for (let i = 0; i < 50 && w.owned().length < 4; i++) await new Promise((res) => setTimeout(res, 50))
  let res = await app.inject({ method: 'GET', url: '/v1/entities/sensor/ghost/state' })
  t.equal(res.statusCode, 404)
  t.equal(res.json<{ code: string }>().code, 'GW_ERR_ENTITY_UNKNOWN')
  res = await app.inject({
    method: 'POST',
    url: '/v1/sensors/room1/readings',
    payload: [
      { ts: now() - 1000, fields: { temperature: 22 } },
      { ts: now(), fields: { temperature: 23 } },
    ],
  })
  t.equal(res.statusCode, 200)
  for (let i = 0; i < 100 && w.stats.processed < 2; i++) await new Promise((res) => setTimeout(res, 50))
  res = await app.inject({ method: 'GET', url: '/v1/entities/sensor/room1/state' })
  t.equal(res.statusCode, 200)
  const body = res.json<{ source: string; kind: string; id: string; profile: string }>()
  t.match(body, { kind: 'sensor', id: 'room1', profile: 'environment' })
  res = await app.inject({ method: 'GET', url: '/v1/entities/robot/x/state' })
  t.equal(res.json<{ code: string }>().code, 'GW_ERR_KIND_INVALID')
  t.ok(buildProfiles(PROFILES, cfg.runtime).size >= 2)
})

t.test('every GW_ERR code has a 4xx/5xx status', async (t) => {
  for (const [code, status] of Object.entries(GW_ERR)) t.ok(status >= 400 && status < 600, code)
})

t.test('config: env, defaults, contradictions named, frozen', async (t) => {
  const cfg = compileGatewayConfig(
    gatewayOptionsFromEnv({
      PITWALL_GATEWAY_AUTH: 'off',
      PITWALL_GATEWAY_PORT: '9000',
      PITWALL_GATEWAY_MAX_ITEMS: '10',
      PITWALL_SITE: 'b',
      PITWALL_PARTITIONS: '8',
    }),
  )
  t.equal(cfg.port, 9000)
  t.equal(cfg.maxItemsPerBatch, 10)
  t.equal(cfg.runtime.site, 'b')
  t.equal(cfg.runtime.partitions, 8)
  t.equal(cfg.maxFutureMs, 300_000)
  t.ok(Object.isFrozen(cfg))
  t.throws(() => gatewayOptionsFromEnv({ PITWALL_GATEWAY_PORT: 'abc' }), {
    code: 'PW_CONFIG_INVALID',
    message: /PITWALL_GATEWAY_PORT/,
  })
  t.throws(() => compileGatewayConfig({ auth: { enabled: false }, port: 70_000 }), { message: /^port/ })
  t.throws(() => compileGatewayConfig({ auth: { enabled: false }, publishTimeoutMs: 5_000, requestTimeoutMs: 1_000 }), {
    message: /^publishTimeoutMs/,
  })
  t.throws(() => compileGatewayConfig({ auth: { enabled: false }, bodyLimitBytes: 2048, maxStringLength: 4096 }), {
    message: /^maxStringLength/,
  })
  t.throws(() => compileGatewayConfig({ auth: { enabled: false }, host: 'a b' }), { message: /^host/ })
})

t.test('JetStream stalls: 503 with Retry-After within the publish timeout, never a hang', async (t) => {
  const { app, srv } = await setup(t)
  t.equal((await app.inject({ method: 'POST', url: '/v1/readings', payload: [r()] })).statusCode, 200)
  // SIGSTOP freezes the server with its sockets open: exactly a JetStream that never acks.
  srv.proc.kill('SIGSTOP')
  t.teardown(() => {
    srv.proc.kill('SIGCONT')
  })
  // The stop takes effect when the kernel next schedules the server's threads; give it that moment.
  await new Promise((res) => setTimeout(res, 200))
  const started = Date.now()
  const res = await app.inject({ method: 'POST', url: '/v1/readings', payload: [r({ rid: 'late-1' })] })
  const took = Date.now() - started
  t.equal(res.statusCode, 503, res.body)
  t.equal(res.json<{ code: string }>().code, 'GW_ERR_UNAVAILABLE')
  t.equal(res.headers['retry-after'], '1')
  t.ok(took < 2_500, `answered in ${took} ms (publish timeout 1000 ms)`)
  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503, 'not ready while JetStream does not answer')
  srv.proc.kill('SIGCONT')
  const again = await app.inject({ method: 'POST', url: '/v1/readings', payload: [r({ rid: 'late-1' })] })
  t.equal(again.statusCode, 200, 'recovers once the server answers')
})
